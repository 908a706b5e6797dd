"""Text to a trained language model: tokenizer, token files, windows, then the train loop.

  tokenizer, train_windows, val_windows = lm.prepare_data(config, workdir)
  result = lm.train_lm(config, workdir)

`config.data` is "default" (the standard library's docstrings) or a text file or folder;
`config.tokenizer` is "bpe" (sentencepiece, `config.vocab_size` pieces) or "char".
"""

import dataclasses
from pathlib import Path

import jax
import numpy as np

from research.data import corpus
from research.data import tokens as tokens_lib
from research.data import windows as windows_lib
from research.nn import config as config_lib
from research.text import bpe
from research.text import char
from research.train import loop
from research.train import mesh as mesh_lib
from research.train import step as step_lib


@dataclasses.dataclass
class LmRun:
  tokenizer: object
  model_config: config_lib.ModelConfig
  result: loop.TrainResult
  val_loss: float
  full_val_loss: float = float("nan")  # every non-overlapping validation window, when asked
  train_windows: object = None
  val_windows: object = None


def load_corpus(config) -> str:
  text = corpus.default_corpus() if config.data == "default" else corpus.load_text(config.data)
  if config.get("max_chars", 0):
    text = text[: config.max_chars]
  return text


def build_tokenizer(config, text: str, workdir: Path):
  if config.tokenizer == "char":
    return char.CharTokenizer.from_text(text)
  if config.tokenizer == "bpe":
    return bpe.train_bpe(text, config.vocab_size, workdir / "tokenizer" / "bpe",
                         seed=config.seed)
  raise ValueError(f"config.tokenizer={config.tokenizer!r}: expected 'bpe' or 'char'.")


def prepare_data(config, workdir):
  """(tokenizer, train Windows, val Windows); the ids go through memory-mapped token files."""
  workdir = Path(workdir)
  text = load_corpus(config)
  tokenizer = build_tokenizer(config, text, workdir)
  path = tokens_lib.encode_to_file(tokenizer, text, workdir / "tokens" / "all.bin")
  train_ids, val_ids = tokens_lib.split_train_val(tokens_lib.open_tokens(path),
                                                  config.val_fraction)
  stride = config.get("stride", 0) or config.context_length
  hosts = dict(shard_index=jax.process_index(), shard_count=jax.process_count())
  make = lambda ids, seed: windows_lib.Windows(ids, config.context_length, stride,
                                               config.batch_size, seed=seed, **hosts)
  return tokenizer, make(train_ids, config.seed), make(val_ids, config.seed + 1)


def model_config_for(config, vocab_size: int) -> config_lib.ModelConfig:
  fields = dict(config.model)
  fields.setdefault("max_length", config.context_length)
  return config_lib.ModelConfig(vocab_size=vocab_size, **fields)


def train_lm(config, workdir, peak_flops=None, show_progress=True) -> LmRun:
  workdir = Path(workdir)
  tokenizer, train_windows, val_windows = prepare_data(config, workdir)
  model_config = model_config_for(config, tokenizer.vocab_size)
  result = loop.train(model_config, config, train_windows, val_windows, workdir=workdir,
                      peak_flops=peak_flops, show_progress=show_progress)
  val_loss = result.evals[-1]["val_loss"] if result.evals else float("nan")
  run = LmRun(tokenizer, model_config, result, val_loss, train_windows=train_windows,
              val_windows=val_windows)
  if config.get("full_val_eval", False):
    run.full_val_loss = full_validation_loss(result, val_windows, config.get("dtype", "float32"))
  return run


def full_validation_loss(result, val_windows, dtype="float32") -> float:
  """Mean loss over every non-overlapping window of the validation tokens, in order: the
  figure a 20-batch estimate samples. With several hosts each feeds its rows of every batch
  (val_windows' shard), and the batch is split over the mesh the parameters live on."""
  every = windows_lib.Windows(val_windows.tokens, val_windows.context_length,
                              val_windows.context_length, val_windows.batch_size,
                              shuffle=False, shard_index=val_windows.shard_index,
                              shard_count=val_windows.shard_count)
  mesh = jax.tree.leaves(result.state.params)[0].sharding.mesh
  eval_step = step_lib.make_eval_step(result.graphdef, dtype)
  return loop.evaluate(eval_step, result.state.params, every, every.batches_per_epoch,
                       sharding=mesh_lib.batch_sharding(mesh, ndim=2))


def unigram_cross_entropy(train_tokens, val_tokens, vocab_size: int) -> float:
  """Validation cross-entropy of token frequencies counted on the training split (add-one
  smoothed): the loss of a model that ignores context."""
  counts = np.bincount(np.asarray(train_tokens), minlength=vocab_size) + 1.0
  log_p = np.log(counts / counts.sum())
  return float(-np.mean(log_p[np.asarray(val_tokens)]))
