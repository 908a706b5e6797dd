"""The DPO family (config.pref_loss: sigmoid, hinge, ipo, orpo, simpo) as LLaMA-Factory runs it.

  sigmoid (DPO)  loss = -log sigmoid(beta * [(log pi - log pi_ref)(chosen) - (same)(rejected)])

with log pi(answer | prompt) summed over the answer's tokens (the prompt is masked); ipo, orpo
and simpo use the per-token mean instead. The reference of sigmoid, hinge and ipo is the same
LoRA model with its adapters off (B = 0), so no second copy of the weights is needed; orpo and
simpo have none, so they also train with finetuning_type full. pref_ftx adds the chosen answer's
SFT loss, pref_ftx * (-mean_t log pi(y_t)), to every row.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from research.data import sft as sft_data
from research.finetune import sft
from research.finetune import trainer
from research.nn import losses


AVERAGED = ("ipo", "orpo", "simpo")  # compare per-token means of log pi, as LLaMA-Factory


def pair_logps(model, batch, dropout_key=None):
  """(chosen, rejected) answer log-probs, both halves in one forward pass."""
  both = lambda k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]])
  logits_BxLxV, _ = model(both("inputs"), dropout_key=dropout_key)
  logps = losses.sequence_logps(logits_BxLxV, both("targets"), both("weights"))
  half = batch["chosen_inputs"].shape[0]
  return logps[:half], logps[half:]


def answer_lengths(batch):
  """(chosen, rejected) number of answer tokens per row: the weights summed."""
  count = lambda name: jnp.maximum(jnp.sum(batch[f"{name}_weights"], axis=-1), 1.0)
  return count("chosen"), count("rejected")


def make_objective(beta: float, kind: str = "sigmoid", *, ftx: float = 0.0,
                   label_smoothing: float = 0.0, simpo_gamma: float = 0.5):
  """objective(model, batch, reference, dropout_key) -> (loss, metrics) of one pref_loss."""
  def objective(model, batch, reference, dropout_key=None):
    chosen_sum, rejected_sum = pair_logps(model, batch, dropout_key)
    n_chosen, n_rejected = answer_lengths(batch)
    chosen, rejected, ref = chosen_sum, rejected_sum, reference
    if kind in AVERAGED:                                  # mean_t log pi(y_t)
      chosen, rejected = chosen_sum / n_chosen, rejected_sum / n_rejected
    if kind in losses.REFERENCE_FREE:
      ref = (None, None)
    elif kind in AVERAGED:                                # ipo: the reference's means too
      ref = (reference[0] / n_chosen, reference[1] / n_rejected)
    loss_B, metrics = losses.preference_loss(kind, chosen, rejected, *ref, beta,
                                             label_smoothing=label_smoothing,
                                             simpo_gamma=simpo_gamma)
    loss_B = loss_B + ftx * (-chosen_sum / n_chosen)     # + pref_ftx * SFT loss of y_w
    metrics.update({"logps/chosen": jnp.mean(chosen), "logps/rejected": jnp.mean(rejected)})
    return jnp.mean(loss_B), metrics
  return objective


def objective_from(config):
  return make_objective(config.pref_beta, config.pref_loss, ftx=config.pref_ftx,
                        label_smoothing=config.dpo_label_smoothing,
                        simpo_gamma=config.simpo_gamma)


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
  """The DPO family from a config (stage "dpo"); returns (lm, result)."""
  needs_reference = config.pref_loss not in losses.REFERENCE_FREE
  if needs_reference and config.finetuning_type != "lora":
    raise ValueError(f"config field finetuning_type: DPO here needs 'lora' for pref_loss "
                     f"{config.pref_loss!r} (its reference is the model with the adapters off); "
                     "orpo and simpo need no reference and also train with 'full'.")
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
  result = trainer.train(lm.model, config, batches, val, objective_from(config),
                         reference=reference if needs_reference else None,
                         show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model
  return lm, result
