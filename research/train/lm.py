"""Text to a trained language model: tokenizer, token files, windows, then the train loop.

  tokenizer, train_windows, val_windows = lm.prepare_data(config, workdir)
  result = lm.pretrain(model_config, config, train_windows, val_windows, workdir)
  run = lm.train_lm(config, workdir)     # all of it from a config

`config` (experiments/configs/train_lm.py): seed, steps, lr, min_lr, warmup_steps, b1, b2,
weight_decay, max_grad_norm, grad_accum, dtype, eval_every, eval_batches, checkpoint_every, keep,
log_every, sampler ("epoch" or "random"), mesh_data, mesh_fsdp.

`config.data` is "default" (the standard library's docstrings) or a text file or folder;
`config.tokenizer` is "bpe" (sentencepiece, `config.vocab_size` pieces) or "char".
"""

import dataclasses
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from research.data import corpus
from research.data import tokens as tokens_lib
from research.data import windows as windows_lib
from research.nn import config as config_lib
from research.nn import count
from research.nn import fused
from research.nn import transformer
from research.text import bpe
from research.text import char
from research.train import loop
from research.train import state as state_lib
from research.train import step as step_lib


@dataclasses.dataclass
class LmRun:
  tokenizer: object
  model_config: config_lib.ModelConfig
  result: loop.TrainResult
  eval_loss: float
  full_eval_loss: float = float("nan")  # every non-overlapping validation window, when asked
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


class WindowBatches:
  """Windows as the loop's batches: {"inputs", "targets"}, A x B x L for one optimizer step."""

  def __init__(self, windows, accum: int = 1, sampler: str = "epoch"):
    self.windows, self.accum = windows, accum
    self.fetch = windows.random_batch if sampler == "random" else windows.batch

  def step_batch(self, step: int) -> dict:
    pairs = [self.fetch(step * self.accum + a) for a in range(self.accum)]
    return {"inputs": np.stack([p[0] for p in pairs]),
            "targets": np.stack([p[1] for p in pairs])}


class EvalBatches:
  """A fixed set of `count` B x L batches of windows, the same ones every time it is read."""

  def __init__(self, windows, count: int, sampler: str = "epoch"):
    self.count = count
    self.fetch = windows.random_batch if sampler == "random" else windows.batch

  def __iter__(self):
    for i in range(self.count):
      inputs, targets = self.fetch(i)
      yield {"inputs": inputs, "targets": targets}


def settings_for(config, model_config) -> loop.Settings:
  dtype = config.get("dtype", "float32")
  return loop.Settings(
      steps=config.steps, dtype=dtype, loss_scaling=dtype == "float16", seed=config.seed,
      dropout=model_config.dropout > 0, eval_every=config.get("eval_every", 0),
      checkpoint_every=config.get("checkpoint_every", 0), keep=config.get("keep", 2),
      log_every=config.get("log_every", 1), mesh_data=config.get("mesh_data", None),
      mesh_fsdp=config.get("mesh_fsdp", 1), resume=config.get("resume", True))


def pretrain(model_config, config, train_windows, val_windows=None, workdir=None,
             stop_at: int | None = None, peak_flops: float | None = None, show_progress=True,
             model=None) -> loop.TrainResult:
  """Next-token pretraining of a Transformer(model_config), every parameter trained."""
  fused.retain_freed_memory()  # the step's scratch space: no page faults on every call
  sampler = config.get("sampler", "epoch")
  if model is None:
    model = lambda: transformer.Transformer(model_config, rngs=nnx.Rngs(config.seed))
  eval_batches = None
  if val_windows is not None:
    eval_batches = EvalBatches(val_windows, config.eval_batches, sampler)
  return loop.train(
      model, state_lib.make_optimizer(config),
      WindowBatches(train_windows, config.get("grad_accum", 1), sampler),
      settings_for(config, model_config), objective=step_lib.lm_objective,
      schedule=state_lib.learning_rate_schedule(config), eval_batches=eval_batches,
      workdir=workdir, snapshot=_snapshot(model_config, config), stop_at=stop_at,
      show_progress=show_progress,
      flops_per_token=count.flops_per_token(model_config, train_windows.context_length),
      peak_flops=peak_flops)


def _snapshot(model_config, config) -> dict:
  train = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return {"model": dataclasses.asdict(model_config), "train": train}


def train_lm(config, workdir, peak_flops=None, show_progress=True) -> LmRun:
  workdir = Path(workdir)
  tokenizer, train_windows, val_windows = prepare_data(config, workdir)
  model_config = model_config_for(config, tokenizer.vocab_size)
  result = pretrain(model_config, config, train_windows, val_windows, workdir=workdir,
                    peak_flops=peak_flops, show_progress=show_progress)
  eval_loss = result.evals[-1]["eval_loss"] if result.evals else float("nan")
  run = LmRun(tokenizer, model_config, result, eval_loss, train_windows=train_windows,
              val_windows=val_windows)
  if config.get("full_val_eval", False):
    run.full_eval_loss = full_validation_loss(result, val_windows, config.get("dtype", "float32"))
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
  eval_step = step_lib.make_eval_step(result.graphdef, step_lib.lm_objective, dtype=dtype)
  frozen = state_lib.cast_floats(result.frozen, dtype)
  return loop.evaluate(eval_step, result.state, frozen,
                       EvalBatches(every, every.batches_per_epoch), mesh)["eval_loss"]


def unigram_cross_entropy(train_tokens, val_tokens, vocab_size: int) -> float:
  """Validation cross-entropy of token frequencies counted on the training split (add-one
  smoothed): the loss of a model that ignores context."""
  counts = np.bincount(np.asarray(train_tokens), minlength=vocab_size) + 1.0
  log_p = np.log(counts / counts.sum())
  return float(-np.mean(log_p[np.asarray(val_tokens)]))
