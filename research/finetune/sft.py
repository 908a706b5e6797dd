"""Supervised fine-tuning: the chat-templated conversations of a LLaMA-Factory dataset, the
prompt masked from the loss, next-token cross-entropy on the assistant's tokens.

  result = sft.run(config)      # config: research.finetune.config.defaults() and overrides
"""

import functools
import math
import textwrap
from pathlib import Path

import numpy as np

from research import pretrained
from research.data import sft as sft_data
from research.finetune import config as config_lib
from research.finetune import trainer
from research.nn import lora
from research.nn import fused
from third_party import hf_names


class StepBatches:
  """Rows of (ids, labels) served as A micro-batches of B rows per optimizer step.

  Each epoch is a permutation seeded by (seed, epoch); the last step of an epoch is filled
  from the start of the same permutation. Any step can be asked for (resume).
  """

  def __init__(self, rows, batch_size: int, accum: int, pad_id: int, seed: int,
               make_arrays=None):
    self.rows, self.batch_size, self.accum = rows, batch_size, accum
    self.pad_id, self.seed = pad_id, seed
    self.make_arrays = make_arrays or sft_arrays
    self.steps_per_epoch = max(1, math.ceil(len(rows) / (batch_size * accum)))

  def indices(self, step: int) -> np.ndarray:
    epoch, offset = divmod(step, self.steps_per_epoch)
    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
    per_step = self.batch_size * self.accum
    picked = np.arange(offset * per_step, (offset + 1) * per_step) % len(order)
    return order[picked]

  def step_batch(self, step: int) -> dict:
    rows = [self.rows[i] for i in self.indices(step)]
    arrays = self.make_arrays(rows, self.pad_id)
    shape = (self.accum, self.batch_size)
    return {k: v.reshape(shape + v.shape[1:]) for k, v in arrays.items()}


SHORTEST_BUCKET = 32


def bucket(length: int) -> int:
  """The padded length of a batch whose longest row is `length`: a power of two from 32 up.

  Every padded length is one more program to compile, the slowest part of a short run
  (BENCHMARKS.md, "Compile once"), so a run sees at most log2(cutoff_len / 32) + 1 of them;
  the price is at most twice the tokens of the longest row.
  """
  return max(SHORTEST_BUCKET, 1 << max(int(length) - 1, 0).bit_length())


def sft_arrays(rows, pad_id: int) -> dict:
  length = bucket(max(len(ids) for ids, _ in rows) - 1)
  inputs, targets, weights = sft_data.pad_batch(rows, pad_id, length)
  lengths = np.array([min(len(ids) - 1, length) for ids, _ in rows], np.int32)
  return {"inputs": inputs, "targets": targets, "weights": weights, "lengths": lengths}


def eval_batches(rows, batch_size: int, pad_id: int) -> list[dict]:
  return [sft_arrays(rows[i:i + batch_size], pad_id) for i in range(0, len(rows), batch_size)]


def sft_objective(model, batch, reference=None, dropout_key=None, remat=True):
  """Cross-entropy on the answer tokens (weight 1; the prompt's are 0)."""
  del reference
  # peak memory: blocks and the head's logits recomputed in the backward pass (gradient
  # checkpointing, on by default as in LLaMA-Factory; remat=False keeps both instead) and the
  # head a chunk of rows at a time
  x_BxLxD = model.hidden(batch["inputs"], dropout_key=dropout_key, remat=remat)
  return fused.chunked_cross_entropy(model.head_logits, x_BxLxD, batch["targets"],
                                     batch["weights"], recompute=remat), {}


def encode_examples(tokenizer, examples, config, source: str):
  rows = [sft_data.encode_conversation(tokenizer, e.messages, config.cutoff_len,
                                       config.train_on_prompt) for e in examples]
  rows = [r for r in rows if any(label != sft_data.IGNORE for label in r[1][1:])]
  if not rows:
    raise sft_data.DataError(_none_fit(tokenizer, examples, config, source))
  return rows


def _none_fit(tokenizer, examples, config, source: str) -> str:
  """Why no sample kept an answer token (LLaMA-Factory's "Cannot find valid samples"): each
  prompt is longer than cutoff_len, and the shortest one says by how much."""
  prompt_lengths = []
  for e in examples:
    _, labels = sft_data.encode_conversation(tokenizer, e.messages, 1 << 30)  # answers only
    prompt_lengths.append(next((t for t, label in enumerate(labels)
                                if label != sft_data.IGNORE), len(labels)))
  i = min(range(len(examples)), key=prompt_lengths.__getitem__, default=None)
  if i is None:
    return f"{source}: dataset {config.dataset!r} has no samples to train on."
  opening = next((m["content"] for m in examples[i].messages if m["role"] == "user"), "")
  opening = textwrap.shorten(opening, 40, placeholder=" ...")
  return (f"{source}: all {len(examples)} samples of {config.dataset!r} are longer than "
          f"cutoff_len={config.cutoff_len}, so none keeps an answer token (the shortest "
          f"prompt, {opening!r}, has {prompt_lengths[i]} tokens); raise cutoff_len or shorten "
          "the prompts.")


def prepare(config):
  """The loaded model (LoRA applied), tokenizer, and the train and validation examples."""
  config_lib.validate(config)
  examples = []
  for name in config.dataset.split(","):
    examples += sft_data.load_dataset(config.dataset_dir, name.strip(),
                                      config.max_samples or None)
  train_examples, val_examples = sft_data.split_train_val(examples, config.val_size,
                                                          config.seed)
  lm = pretrained.load_model(config.model, quantized=False)
  wrapped = []
  if config.finetuning_type == "lora":
    wrapped = lora.apply_lora(lm.model, hf_names.LoraTarget(config.lora_target),
                              config.lora_rank, config.lora_alpha or 2 * config.lora_rank,
                              dropout=config.lora_dropout, rslora=config.use_rslora,
                              seed=config.seed)
  return lm, wrapped, train_examples, val_examples


def run(config, show_progress=True, stop_at=None):
  """SFT from a config; returns (PretrainedLM with the tuned model, loop.TrainResult)."""
  lm, wrapped, train_examples, val_examples = prepare(config)
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  pad_id = lm.tokenizer.pad_id if lm.tokenizer.pad_id is not None else 0
  rows = encode_examples(lm.tokenizer, train_examples, config, source)
  batches = StepBatches(rows, config.per_device_train_batch_size,
                        config.gradient_accumulation_steps, pad_id, config.seed)
  val = None
  if val_examples:
    val_rows = encode_examples(lm.tokenizer, val_examples, config, source)
    val = eval_batches(val_rows, config.per_device_train_batch_size, pad_id)
  if wrapped:
    trainable, base = lora.count_parameters(lm.model)
    print(f"finetune: LoRA on {len(wrapped)} linears, {trainable:,} trainable parameters = "
          f"{100 * trainable / base:.3f}% of the {base:,} in the base model")
  objective = functools.partial(sft_objective, remat=not config.disable_gradient_checkpointing)
  result = trainer.train(lm.model, config, batches, val, objective,
                         show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model
  return lm, result
