"""SFT on a tiny llama: what trains, what stays frozen, resume, dtypes."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from research.finetune import sft
from research.finetune import trainer
from research.nn import lora


def _params(model, kind):
  return {".".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, kind))}


def test_lora_sft_learns_and_leaves_the_base_untouched(finetune_config, tmp_path):
  config = finetune_config()
  lm, _, _, _ = sft.prepare(config)
  base_before = _params(lm.model, nnx.Param)
  tuned, result = sft.run(config, show_progress=False)
  losses = [r["loss"] for r in result.history]
  assert len(losses) == 12 and losses[-1] < 0.5 * losses[0]
  after = _params(tuned.model, nnx.Param)  # base and adapters alike
  frozen = [k for k in base_before if not k.endswith(("lora_a", "lora_b"))]
  assert len(frozen) == 2 * 9 + 3  # 7 linears, 2 norms a block; embedding, final norm, head
  for name in frozen:
    np.testing.assert_array_equal(after[name], base_before[name])
  assert all(np.any(after[k] != 0) for k in after if k.endswith("lora_b"))
  assert (tmp_path / "out" / "training_loss.png").exists()
  assert (tmp_path / "out" / "metrics.jsonl").exists()


def test_checkpoints_hold_only_the_adapter_and_resume_exactly(finetune_config, tmp_path):
  # LoRA dropout on: its RNG streams are part of the state, so they must resume too
  full = finetune_config(output_dir=str(tmp_path / "a" / "out"), max_steps=8, lora_dropout=0.1)
  _, uninterrupted = sft.run(full, show_progress=False)
  split = finetune_config(output_dir=str(tmp_path / "b" / "out"), max_steps=8, lora_dropout=0.1)
  _, first = sft.run(split, show_progress=False, stop_at=4)
  assert first.steps == 4
  _, resumed = sft.run(split, show_progress=False)
  assert resumed.steps == 8 and [r["step"] for r in resumed.history] == [5, 6, 7, 8]
  a, b = (_params(r.model, lora.LoRAParam) for r in (uninterrupted, resumed))
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])
  np.testing.assert_allclose([r["loss"] for r in uninterrupted.history[4:]],
                             [r["loss"] for r in resumed.history], rtol=0, atol=0)
  # Restoring is a function: the newest checkpoint back into a freshly prepared model.
  model, step = trainer.restore(sft.prepare(split)[0].model, split)
  assert step == 8
  restored = _params(model, nnx.Param)
  for name, value in _params(resumed.model, nnx.Param).items():
    np.testing.assert_array_equal(restored[name], value)
  # What the checkpoint holds: the adapter and its two Adam moments, plus a few counters
  # and the dropout streams.
  import orbax.checkpoint as ocp
  step_dir = tmp_path / "b" / "out" / "checkpoints" / "last" / "8" / "default"
  saved = jax.tree.leaves(ocp.StandardCheckpointer().metadata(step_dir).item_metadata)
  streams = len(jax.tree.leaves(resumed.state.rng))  # the dropout streams' keys and counts
  assert streams > 0
  assert 3 * resumed.trainable_parameters <= sum(math.prod(a.shape) for a in saved) < (
      3 * resumed.trainable_parameters + 10 + streams)


@pytest.mark.parametrize("compute_type", ["bf16", "fp16"])
def test_low_precision_runs_train(finetune_config, compute_type):
  config = finetune_config(compute_type=compute_type)
  _, result = sft.run(config, show_progress=False)
  losses = [r["loss"] for r in result.history if r.get("finite", 1.0)]  # fp16 skips some
  assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
  if compute_type == "fp16":
    assert result.history[0]["loss_scale"] == 2.0 ** 15


def test_disable_gradient_checkpointing_keeps_activations_with_the_same_losses(
    finetune_config, tmp_path, monkeypatch):
  seen, objective = [], sft.sft_objective
  monkeypatch.setattr(sft, "sft_objective", lambda *a, remat=True, **k: seen.append(remat) or
                      objective(*a, remat=remat, **k))
  losses = {}
  for off in (False, True):
    config = finetune_config(disable_gradient_checkpointing=off, max_steps=2,
                             output_dir=str(tmp_path / f"off={off}"))
    _, result = sft.run(config, show_progress=False)
    losses[off] = [r["loss"] for r in result.history]
  assert sorted(set(seen)) == [False, True]  # the YAML key reaches the objective
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)  # memory, not math


def test_full_finetuning_trains_every_parameter(finetune_config):
  config = finetune_config(finetuning_type="full", learning_rate=3e-3, max_steps=6)
  lm, _, _, _ = sft.prepare(config)
  before = _params(lm.model, nnx.Param)
  tuned, result = sft.run(config, show_progress=False)
  after = _params(tuned.model, nnx.Param)
  assert result.history[-1]["loss"] < result.history[0]["loss"]
  assert all(np.any(after[k] != before[k]) for k in before)


def test_length_buckets_are_few_and_pad_less_than_twice():
  lengths = range(1, 2049)
  buckets = {sft.bucket(n) for n in lengths}
  assert buckets == {32, 64, 128, 256, 512, 1024, 2048}  # 7 programs for cutoff_len 2048
  assert all(n <= sft.bucket(n) < max(2 * n, 33) for n in lengths)


def test_the_bar_shows_the_first_step_apart_and_the_steady_rate_without_compiles(
    finetune_config, monkeypatch, capsys):
  monkeypatch.setattr(sft, "SHORTEST_BUCKET", 8)  # the toy rows then fall in several buckets
  config = finetune_config(max_steps=8, per_device_train_batch_size=1,
                           gradient_accumulation_steps=1)
  _, result = sft.run(config, show_progress=True)
  lm, _, train_examples, _ = sft.prepare(config)
  rows = sft.encode_examples(lm.tokenizer, train_examples, config, "test")
  batches = sft.StepBatches(rows, 1, 1, 0, config.seed)
  first_seen, steady = set(), []
  for step, row in enumerate(result.history):
    shape = batches.step_batch(step)["inputs"].shape
    if shape in first_seen:
      steady.append(row)
    first_seen.add(shape)
  assert len(first_seen) > 1 and steady  # else this test checks nothing
  assert result.compiled_steps == len(first_seen)
  assert result.first_step_s == result.history[0]["seconds"]
  assert result.tokens_per_s == pytest.approx(np.median([r["tokens_per_s"] for r in steady]))
  assert result.ms_per_iter == pytest.approx(1000 * np.median([r["seconds"] for r in steady]))
  drawn = [d for d in capsys.readouterr().err.replace("\r", "\n").splitlines() if "/8 [" in d]
  assert "first_step=" in drawn[-1] and f"tok_s={result.tokens_per_s:.3g}" in drawn[-1]
  assert "s/step" not in drawn[-1] and "step/s" not in drawn[-1]  # no rate with compiles in
