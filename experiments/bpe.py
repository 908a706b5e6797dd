"""BPE tokenizer: python -m experiments.bpe [--data=corpus.txt] [--config=...:vocab_size=8192].

Trains on the first 90% of the text, writes WORKDIR/tokenizer.model and the token<->id table
WORKDIR/tokenizer.vocab.tsv, and prints the vocabulary size, characters per token on the
training and the held-out text, and how example sentences split.
"""

from pathlib import Path

from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments import script
from research import files
from research import runs
from research.data import corpus
from research.text import bpe

_CONFIG = script.config_flag("bpe")
_WORKDIR = flags.DEFINE_string("workdir", "runs/bpe", "Where results are written.")
_DATA = flags.DEFINE_string(
    "data", None, "A text file or folder of .txt/.md files (overrides config.data); "
    "default: the docstrings of Python's standard library.")


def run_experiment(config, out_dir) -> dict:
  out_dir = Path(out_dir)
  text = corpus.load_text(config.data) if config.data else corpus.default_corpus()
  train_text, val_text = corpus.split_text(text, config.val_fraction)
  tok = bpe.train_bpe(train_text, config.vocab_size, out_dir / "tokenizer",
                      character_coverage=config.character_coverage, seed=config.seed)
  result = {
      "corpus": config.data or "python stdlib docstrings",
      "chars": len(text),
      "vocab_size": tok.vocab_size,
      "train": bpe.compression(tok, train_text),
      "val": bpe.compression(tok, val_text),
      "splits": {s: tok.encode_pieces(s) for s in config.examples},
      "model": str(tok.model_path),
      "vocab_table": str(out_dir / "tokenizer.vocab.tsv"),
  }
  sweep = []
  for vocab_size in runs.progress(config.sweep, desc="vocab sweep", unit="vocab"):
    swept = bpe.train_bpe(train_text, vocab_size, out_dir / "sweep" / f"bpe{vocab_size}",
                          character_coverage=config.character_coverage, seed=config.seed)
    sweep.append({"vocab_size": vocab_size, **bpe.compression(swept, val_text)})
  if sweep:
    result["sweep"] = sweep
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogx([r["vocab_size"] for r in sweep], [r["chars_per_token"] for r in sweep], "o-",
                base=2)
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel("held-out characters per token")
    files.save_figure(fig, out_dir / "compression_vs_vocab.png")
  files.write_json(out_dir / "bpe.json", result)
  return result


def main(argv):
  del argv
  config = _CONFIG.value
  if _DATA.value is not None:
    config.data = _DATA.value
  runs.seed_everything(config.seed)
  with runs.Run(_WORKDIR.value, config, tensorboard=False) as run:
    result = run_experiment(config, run.dir)
    run.log(0, vocab_size=result["vocab_size"], **{
        f"{split}_{k}": v for split in ("train", "val") for k, v in result[split].items()})
  print(f"corpus: {result['corpus']} ({result['chars']:,} characters)")
  print(f"vocab_size={result['vocab_size']}")
  for split in ("train", "val"):
    s = result[split]
    print(f"{split}: {s['tokens']:,} tokens, {s['chars_per_token']:.3f} chars/token, "
          f"{s['bytes_per_token']:.3f} bytes/token, "
          f"{100 * s['byte_fallback_fraction']:.3f}% byte-fallback tokens")
  for text, pieces in result["splits"].items():
    print(f"  {text!r} -> {pieces}")
  for row in result.get("sweep", []):
    print(f"  vocab {row['vocab_size']:>6}: {row['chars_per_token']:.3f} held-out chars/token")
  print(f"wrote {result['model']} and {result['vocab_table']}")


if __name__ == "__main__":
  script.run(main)
