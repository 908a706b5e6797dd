"""The generation worker: stop strings, order, cancellation, a full queue."""

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.serve import worker


def cut_all(pieces, stops):
  cutter = worker.StopCutter(stops)
  out = []
  for piece in pieces:
    text, stopped = cutter.feed(piece)
    out.append(text)
    if stopped:
      return "".join(out), True
  return "".join(out) + cutter.flush(), False


def cut_at_first_complete_stop(pieces, stops):
  """What generation shows: it ends with the first piece after which the text holds a stop
  string, cut where the earliest such string starts (later pieces never exist)."""
  text = ""
  for piece in pieces:
    text += piece
    found = [text.find(s) for s in stops if s in text]
    if found:
      return text[:min(found)], True
  return text, False


@given(st.lists(st.text("abc", max_size=4), max_size=8),
       st.lists(st.text("abc", min_size=1, max_size=3), max_size=3))
def test_stop_cutter_equals_cutting_the_text_so_far(pieces, stops):
  assert cut_all(pieces, stops) == cut_at_first_complete_stop(pieces, stops)


def test_a_stop_completed_first_wins_over_a_longer_one_still_open():
  # "aca" would start earlier, but generation ends when "c" arrives
  assert cut_all(["a", "c", "a"], ["c", "aca"]) == ("a", True)
  assert cut_all(["aca"], ["c", "aca"]) == ("", True)  # both complete in one piece


def test_stop_cutter_never_shows_part_of_a_stop_string():
  cutter = worker.StopCutter(["</s>"])
  assert cutter.feed("hello <") == ("hello ", False)
  assert cutter.feed("/") == ("", False)
  assert cutter.feed("x") == ("</x", False)
  assert cutter.feed(" </s> more") == (" ", True)


def test_generation_streams_whole_characters_only(smollm2_tokenizer, monkeypatch):
  # The chat answer: two bytes of "谁" that never complete, then "））" and an answer
  # that max_tokens cuts in the middle of "告".
  import types  # pylint: disable=g-import-not-at-top
  tok = smollm2_tokenizer
  ids = tok.encode("您好，我是谁")[:-1] + tok.encode("））分析师报告")
  max_tokens = len(ids) - 1
  assert "\ufffd" in tok.decode(ids[:max_tokens])
  monkeypatch.setattr(worker.stream_lib, "stream", lambda *args, **kwargs: (t for t in ids))
  lm = types.SimpleNamespace(model=None, tokenizer=tok)
  *pieces, done = worker.generation(lm, [1, 2], worker.Sampling(max_tokens=max_tokens),
                                    64, threading.Event())
  assert not any("\ufffd" in p for p in pieces), pieces
  assert "".join(pieces) == "您好，我是））分析师报"
  assert (done.reason, done.tokens) == ("length", max_tokens)


def run(coro):
  return asyncio.run(coro)


def test_jobs_run_in_order_and_each_stream_gets_its_own_items():
  w = worker.Worker(queue_size=4)

  async def main():
    streams = [w.submit(lambda cancel, i=i: iter([f"{i}a", f"{i}b"])) for i in range(3)]
    return [await s.collect() for s in streams]
  assert run(main()) == [["0a", "0b"], ["1a", "1b"], ["2a", "2b"]]
  assert w.completed == 3


def test_a_failure_reaches_its_stream_and_the_worker_goes_on():
  w = worker.Worker()

  def broken(cancel):
    yield "x"
    raise ValueError("bad prompt")

  async def main():
    bad = w.submit(broken)
    good = w.submit(lambda cancel: iter(["ok"]))
    with pytest.raises(ValueError, match="bad prompt"):
      await bad.collect()
    return await good.collect()
  assert run(main()) == ["ok"]


def test_cancel_stops_the_job_and_a_full_queue_is_busy():
  w = worker.Worker(queue_size=1)
  release = threading.Event()
  produced = []

  def long_job(cancel):
    for i in range(1000):
      release.wait(5)
      if cancel.is_set():
        return
      produced.append(i)
      yield i

  async def main():
    first = w.submit(long_job)
    await asyncio.sleep(0.1)  # the worker has taken `first`; the queue is empty again
    second = w.submit(lambda cancel: iter(["second"]))
    with pytest.raises(worker.Busy, match="busy"):
      w.submit(lambda cancel: iter(["third"]))
    first.cancel()
    release.set()
    return await second.collect()
  assert run(main()) == ["second"]
  assert len(produced) < 1000 and w.cancelled == 1
