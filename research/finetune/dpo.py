"""Direct preference optimisation on LoRA: the reference model is the same model with its
adapters off (B = 0), so no second copy of the weights is needed.

  loss = -log sigmoid(beta * [(log pi - log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)])

with log pi(answer | prompt) summed over the answer's tokens (the prompt is masked).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from research.data import sft as sft_data
from research.finetune import sft
from research.finetune import trainer
from research.nn import losses


def pair_logps(model, batch, dropout_key=None):
  """(chosen, rejected) answer log-probs, both halves in one forward pass."""
  both = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]])
  logits_BxLxV, _ = model(both("inputs"), dropout_key=dropout_key)
  logps = losses.sequence_logps(logits_BxLxV, both("targets"), both("weights"))
  half = batch["chosen_inputs"].shape[0]
  return logps[:half], logps[half:]


def make_objective(beta: float):
  def objective(model, batch, reference, dropout_key=None):
    chosen, rejected = pair_logps(model, batch, dropout_key)
    return losses.dpo_loss(chosen, rejected, *reference, beta)
  return objective


def reference(model_at, params, batch):
  """The reference log-probs: the model with every LoRA parameter (so B, hence every update)
  at zero."""
  return pair_logps(model_at(jax.tree.map(jnp.zeros_like, params)), batch)


def preference_arrays(rows, pad_id: int) -> dict:
  """rows: (chosen ids, labels, rejected ids, labels); both halves padded to one length."""
  length = sft.bucket(max(max(len(r[0]), len(r[2])) for r in rows) - 1)
  out = {}
  for name, (ids_i, labels_i) in (("chosen", (0, 1)), ("rejected", (2, 3))):
    pairs = [(r[ids_i], r[labels_i]) for r in rows]
    inputs, targets, weights = sft_data.pad_batch(pairs, pad_id, length)
    out.update({f"{name}_inputs": inputs, f"{name}_targets": targets,
                f"{name}_weights": weights})
  out["lengths"] = np.array([min(len(r[0]) - 1, length) + min(len(r[2]) - 1, length)
                             for r in rows], np.int32)
  return out


def encode_pairs(tokenizer, examples, config, source):
  rows = []
  for i, example in enumerate(examples):
    if example.rejected is None:
      raise sft_data.DataError(f"{source}: record {i} has no rejected answer; DPO needs a "
                               "dataset with \"ranking\": true.")
    chosen = sft_data.encode_conversation(tokenizer, example.messages, config.cutoff_len,
                                          config.train_on_prompt)
    rejected_messages = example.messages[:-1] + [{"role": "assistant",
                                                  "content": example.rejected}]
    rejected = sft_data.encode_conversation(tokenizer, rejected_messages, config.cutoff_len,
                                            config.train_on_prompt)
    rows.append((*chosen, *rejected))
  return rows


def run(config, show_progress=True, stop_at=None):
  """DPO from a config (stage "dpo", finetuning_type "lora"); returns (lm, result)."""
  if config.finetuning_type != "lora":
    raise ValueError("config field finetuning_type: DPO here needs 'lora' (its reference is "
                     "the model with the adapters off).")
  lm, _, train_examples, val_examples = sft.prepare(config)
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  pad_id = lm.tokenizer.pad_id if lm.tokenizer.pad_id is not None else 0
  make = lambda rows, pad: preference_arrays(rows, pad)
  batches = sft.StepBatches(encode_pairs(lm.tokenizer, train_examples, config, source),
                            config.per_device_train_batch_size,
                            config.gradient_accumulation_steps, pad_id, config.seed, make)
  val = None
  if val_examples:
    val_rows = encode_pairs(lm.tokenizer, val_examples, config, source)
    size = config.per_device_train_batch_size
    val = [preference_arrays(val_rows[i:i + size], pad_id) for i in range(0, len(val_rows), size)]
  result = trainer.train(lm.model, config, batches, val, make_objective(config.pref_beta),
                         reference=reference, show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model
  return lm, result
