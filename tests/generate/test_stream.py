import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.generate import decode
from research.generate import stream
from research.nn import config as config_lib
from research.nn import transformer


def _model():
  config = config_lib.llama(vocab_size=40, num_layers=2, width=32, num_heads=4, num_kv_heads=2,
                            ffn_width=48, init_std=0.5)
  return transformer.Transformer(config, rngs=nnx.Rngs(3))


def test_greedy_stream_equals_compiled_generate():
  model = _model()
  for prompt in ([5, 6, 7], list(range(1, 70))):  # inside one bucket, and across two
    ours = list(stream.stream(model, prompt, 12, jax.random.key(0), temperature=0.0))
    out, _ = decode.generate(model, jnp.asarray([prompt]), 12, jax.random.key(0),
                             temperature=0.0)
    assert ours == out[0, len(prompt):].tolist()


def test_stream_stops_at_eos():
  model = _model()
  first = list(stream.stream(model, [5, 6, 7], 12, jax.random.key(0), temperature=0.0))
  eos = first[3]
  stopped = list(stream.stream(model, [5, 6, 7], 12, jax.random.key(0), temperature=0.0,
                               eos_id=eos))
  assert stopped == first[:first.index(eos) + 1]


class _Bytes:
  """Decodes ids as UTF-8 bytes, as a byte-level tokenizer would."""

  def decode(self, ids, skip_special_tokens=True):
    return bytes(ids).decode("utf-8", errors="replace")


def test_stream_text_never_shows_half_a_character():
  pieces = list(stream.stream_text(_Bytes(), iter("a中b".encode("utf-8"))))
  assert "".join(pieces) == "a中b"
  assert all("\ufffd" not in p for p in pieces)


def test_stream_text_drops_bytes_that_never_make_a_character():
  # a lead byte, then a letter: the lead byte can never complete
  pieces = list(stream.stream_text(_Bytes(), iter(b"a\xe4b" + "中".encode("utf-8")[:2])))
  assert "".join(pieces) == "ab"  # and the cut "中" at the end is dropped too
  assert all("\ufffd" not in p for p in pieces)


class _EvenThenStop:
  """A stand-in grammar: even tokens only, complete after `length` of them."""

  def __init__(self, vocab_size, length):
    self.allowed = np.arange(vocab_size) % 2 == 0
    self.length, self.seen = length, []

  def allowed_V(self):
    return self.allowed

  def advance(self, token):
    self.seen.append(token)

  def complete(self):
    return len(self.seen) == self.length


def test_a_constrained_stream_scores_tokens_by_the_log_softmax_of_a_full_recompute():
  model = _model()
  prompt = [5, 6, 7]
  constraint = _EvenThenStop(40, 6)
  scored = list(stream.stream_scored(model, prompt, 12, jax.random.key(1), top_logprobs=3,
                                     temperature=0.7, constraint=constraint))
  tokens = [s.token for s in scored]
  assert tokens == constraint.seen and len(tokens) == 6  # it saw each, it ended the stream
  assert all(t % 2 == 0 for t in tokens)  # the mask held at every step
  logits_1xTxV, _ = model(jnp.asarray([prompt + tokens]))
  want_TxV = np.asarray(jax.nn.log_softmax(logits_1xTxV[0, len(prompt) - 1:-1]))
  for t, s in enumerate(scored):
    # the raw model's distribution: not the sampler's temperature, not the mask
    np.testing.assert_allclose(s.logprob, want_TxV[t, s.token], atol=1e-5)
    top = np.argsort(-want_TxV[t], kind="stable")[:3]
    assert [i for i, _ in s.top] == top.tolist()
    np.testing.assert_allclose([lp for _, lp in s.top], want_TxV[t, top], atol=1e-5)
