"""Data-pipeline timings: python -m experiments.bench_data [--data=input.txt] [--repeats=200].

Medians over --repeats calls, one process, side by side: the char tokenizer and BPE on the
text; a batch of windows (shuffled epoch order vs nanoGPT's random offsets) from an in-memory
array and from a memory-mapped token file; and what one epoch's np.random.permutation would
cost for a large corpus, the alternative to grain's index_shuffle that Windows uses.
"""

import tempfile
import time
from pathlib import Path

from absl import flags
import numpy as np

from experiments import script
from research.data import corpus
from research.data import tokens
from research.data import windows
from research.text import bpe
from research.text import char

_DATA = flags.DEFINE_string("data", None, "Text file or folder; default: stdlib docstrings.")
_REPEATS = flags.DEFINE_integer("repeats", 200, "Timed calls per measurement.")
_BATCH = flags.DEFINE_integer("batch_size", 12, "Windows per batch (nanoGPT CPU recipe: 12).")
_CONTEXT = flags.DEFINE_integer("context_length", 64, "Tokens per window (nanoGPT CPU: 64).")


def median_s(fn, repeats):
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    fn(i)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv):
  del argv
  text = corpus.load_text(_DATA.value) if _DATA.value else corpus.default_corpus()
  b, l, r = _BATCH.value, _CONTEXT.value, _REPEATS.value
  with tempfile.TemporaryDirectory() as tmp:
    chars = char.CharTokenizer.from_text(text)
    start = time.perf_counter()
    ids = np.asarray(chars.encode(text))
    char_s = time.perf_counter() - start
    start = time.perf_counter()
    tok = bpe.train_bpe(text, 4096, Path(tmp) / "bpe")
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    bpe_ids = tok.encode(text)
    bpe_s = time.perf_counter() - start
    print(f"text: {len(text):,} chars; char encode {len(text) / char_s / 1e6:.2f} M chars/s; "
          f"BPE-4096 train {train_s:.2f} s, encode {len(text) / bpe_s / 1e6:.2f} M chars/s "
          f"({len(text) / len(bpe_ids):.2f} chars/token)")

    mapped = tokens.open_tokens(tokens.write_tokens(Path(tmp) / "t.bin", ids))
    for name, source in (("in memory", ids), ("memmap", mapped)):
      w = windows.Windows(source, l, 1, b, seed=0)
      shuffled = median_s(w.batch, r)
      offsets = median_s(w.random_batch, r)
      print(f"B={b} L={l} stride 1 ({w.num_windows:,} windows), {name}: batch(step) "
            f"{shuffled * 1e6:.0f} us, random_batch(step) {offsets * 1e6:.0f} us")

  n = 100_000_000
  start = time.perf_counter()
  perm = np.random.default_rng(0).permutation(n)
  perm_s = time.perf_counter() - start
  print(f"one epoch's np.random.permutation of {n:,} windows: {perm_s:.2f} s and "
        f"{perm.nbytes / 2**20:.0f} MiB; Windows (grain index_shuffle) holds none of it")


if __name__ == "__main__":
  script.run(main)
