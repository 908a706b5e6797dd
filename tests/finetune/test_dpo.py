"""The DPO family: DPO on LoRA starts at ln 2 (policy = reference) and learns the preference;
each pref_loss reads the answers' log-probs summed or averaged as LLaMA-Factory does."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.data import sft as sft_data
from research.finetune import dpo
from research.finetune import sft


def test_dpo_starts_at_ln2_and_prefers_the_chosen(finetune_config):
  config = finetune_config(stage="dpo", dataset="prefs", learning_rate=2e-2, max_steps=10,
                           pref_beta=0.1)
  _, result = dpo.run(config, show_progress=False)
  first, last = result.history[0], result.history[-1]
  assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
  assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
  assert last["loss"] < first["loss"] and last["rewards/margins"] > 0
  assert last["rewards/accuracies"] == 1.0
  assert last["logps/chosen"] > first["logps/chosen"] - 1e-3  # summed: a few tokens' worth


def test_dpo_needs_lora_and_a_ranking_dataset(finetune_config):
  with pytest.raises(ValueError, match="finetuning_type: DPO here needs 'lora' for pref_loss "
                     "'sigmoid'"):
    dpo.run(finetune_config(stage="dpo", dataset="prefs", finetuning_type="full"),
            show_progress=False)
  with pytest.raises(sft_data.DataError, match=r"dataset_info\.json: record 0 has no rejected"):
    dpo.run(finetune_config(stage="dpo", dataset="toy"), show_progress=False)


def test_preference_arrays_pad_both_halves_to_one_length():
  ignore = sft_data.IGNORE  # the prompt's labels: no loss there
  rows = [([1, 2, 3], [ignore, ignore, 3], [1, 4, 5, 6, 7], [ignore, ignore, 5, 6, 7]),
          ([1, 8], [ignore, 8], [1, 9, 9], [ignore, 9, 9])]
  arrays = dpo.preference_arrays(rows, pad_id=0)
  length = sft.bucket(4)  # the longest sequence, 5 ids, predicts 4 tokens
  for name in ("chosen", "rejected"):
    for part in ("inputs", "targets", "weights"):
      assert arrays[f"{name}_{part}"].shape == (2, length), (name, part)
  # log pi(answer | prompt) sums over the answer's tokens only
  assert arrays["chosen_weights"].sum(axis=1).tolist() == [1, 1]
  assert arrays["rejected_weights"].sum(axis=1).tolist() == [3, 2]
  assert arrays["lengths"].tolist() == [2 + 4, 1 + 2]  # chosen + rejected predicted tokens


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def test_each_pref_loss_sums_or_averages_the_answer_log_probs_as_llama_factory(finetune_config):
  """sigmoid and hinge on summed log pi, ipo, orpo and simpo on per-token means (NumPy here,
  float64, from the model's logits); pref_ftx adds the chosen answer's mean NLL."""
  config = finetune_config(stage="dpo", dataset="prefs")
  lm, _, examples, _ = sft.prepare(config)
  examples = examples[:3]
  examples[1] = sft_data.Example(examples[1].messages, "t52 t53 t54 t55 t56 t57")  # a longer one
  rows = dpo.encode_pairs(lm.tokenizer, examples, config, "prefs")
  batch = {k: jnp.asarray(v) for k, v in dpo.preference_arrays(rows, 0).items()}
  both = jnp.concatenate([batch["chosen_inputs"], batch["rejected_inputs"]])
  logits = nnx.jit(lambda m, tokens: m(tokens)[0])(lm.model, both)
  z = np.asarray(logits, np.float64)
  logp = z - z.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  sums, counts = {}, {}
  for half, name in enumerate(("chosen", "rejected")):
    rows_logp = logp[3 * half:3 * half + 3]
    targets = np.asarray(batch[f"{name}_targets"])
    token = np.take_along_axis(rows_logp, targets[..., None], -1)[..., 0]
    weights = np.asarray(batch[f"{name}_weights"], np.float64)
    sums[name], counts[name] = (token * weights).sum(-1), weights.sum(-1)
  assert len(set(counts["chosen"] / counts["rejected"])) > 1
  c, r = sums["chosen"], sums["rejected"]
  mc, mr = c / counts["chosen"], r / counts["rejected"]
  ref_c, ref_r = np.array([-5.0, -9.0, -4.0]), np.array([-7.0, -6.0, -8.0])
  ref = (jnp.asarray(ref_c, jnp.float32), jnp.asarray(ref_r, jnp.float32))
  beta, gamma, ftx = 0.5, 0.3, 0.25
  z_sum = (c - ref_c) - (r - ref_r)
  z_mean = (mc - ref_c / counts["chosen"]) - (mr - ref_r / counts["rejected"])
  odds = lambda lp: np.exp(lp) / (1 - np.exp(lp))
  want = {"sigmoid": -_log_sigmoid(beta * z_sum), "hinge": np.maximum(0, 1 - beta * z_sum),
          "ipo": (z_mean - 1 / (2 * beta)) ** 2,
          "orpo": -mc - beta * _log_sigmoid(np.log(odds(mc) / odds(mr))),
          "simpo": -_log_sigmoid(beta * (mc - mr) - gamma)}

  @jax.jit
  def objectives(logits, batch, ref):  # every kind in one compile, on one forward's logits
    model = lambda tokens, dropout_key=None: (logits, None)
    return {kind: dpo.make_objective(beta, kind, ftx=ftx, simpo_gamma=gamma)(model, batch, ref)
            for kind in want}

  for kind, (loss, metrics) in objectives(logits, batch, ref).items():
    np.testing.assert_allclose(float(loss), np.mean(want[kind] + ftx * -mc), rtol=1e-5,
                               err_msg=kind)
    averaged = kind in ("ipo", "orpo", "simpo")
    np.testing.assert_allclose(float(metrics["logps/chosen"]), np.mean(mc if averaged else c),
                               rtol=1e-5, err_msg=kind)

# hinge differs from sigmoid by its loss line only, which the test above checks in the objective
@pytest.mark.parametrize("kind,finetuning_type", [("ipo", "lora"), ("orpo", "full"),
                                                  ("simpo", "lora")])
def test_every_pref_loss_trains(finetune_config, kind, finetuning_type):
  """Two steps of each; the reference-free ones run without one, orpo in full fine-tuning."""
  beta = 0.1
  config = finetune_config(stage="dpo", dataset="prefs", pref_loss=kind, pref_beta=beta,
                           finetuning_type=finetuning_type, max_steps=2,
                           gradient_accumulation_steps=1, logging_steps=1, save_steps=0,
                           learning_rate=1e-2 if finetuning_type == "full" else 2e-2)
  _, result = dpo.run(config, show_progress=False)
  first, last = result.history[0], result.history[-1]
  if kind == "ipo":  # z = 0 at the start: LoRA B is 0, the policy is the reference
    assert first["loss"] == pytest.approx(1 / (4 * beta ** 2), rel=1e-5)
  assert np.isfinite(first["loss"]) and last["loss"] < first["loss"]
  assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
          "logps/chosen", "logps/rejected"} <= set(first)
