"""SFT and DPO on a tiny llama: what trains, what stays frozen, resume, dtypes, DPO's start."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from research.finetune import config as config_lib
from research.finetune import dpo
from research.finetune import sft
from research.finetune import trainer
from research.nn import lora


def _config(model_dir, dataset_dir, tmp_path, **changes):
  c = config_lib.defaults()
  c.model, c.dataset_dir, c.dataset = str(model_dir), str(dataset_dir), "toy"
  c.output_dir = str(tmp_path / "out")
  c.per_device_train_batch_size, c.gradient_accumulation_steps = 2, 2
  c.learning_rate, c.max_steps, c.logging_steps, c.save_steps = 3e-2, 12, 4, 4
  c.cutoff_len, c.lora_rank = 64, 4
  c.update(changes)
  return c


def _params(model, kind):
  return {".".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, kind))}


def test_lora_sft_learns_and_leaves_the_base_untouched(tiny_model_dir, dataset_dir, tmp_path):
  config = _config(tiny_model_dir, dataset_dir, tmp_path)
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


def test_checkpoints_hold_only_the_adapter_and_resume_exactly(tiny_model_dir, dataset_dir,
                                                              tmp_path):
  # LoRA dropout on: its RNG streams are part of the state, so they must resume too
  full = _config(tiny_model_dir, dataset_dir, tmp_path / "a", max_steps=8, lora_dropout=0.1)
  _, uninterrupted = sft.run(full, show_progress=False)
  split = _config(tiny_model_dir, dataset_dir, tmp_path / "b", max_steps=8, lora_dropout=0.1)
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
def test_low_precision_runs_train(tiny_model_dir, dataset_dir, tmp_path, compute_type):
  config = _config(tiny_model_dir, dataset_dir, tmp_path, compute_type=compute_type)
  _, result = sft.run(config, show_progress=False)
  losses = [r["loss"] for r in result.history if r.get("finite", 1.0)]  # fp16 skips some
  assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
  if compute_type == "fp16":
    assert result.history[0]["loss_scale"] == 2.0 ** 15


def test_full_finetuning_trains_every_parameter(tiny_model_dir, dataset_dir, tmp_path):
  config = _config(tiny_model_dir, dataset_dir, tmp_path, finetuning_type="full",
                   learning_rate=3e-3, max_steps=6)
  lm, _, _, _ = sft.prepare(config)
  before = _params(lm.model, nnx.Param)
  tuned, result = sft.run(config, show_progress=False)
  after = _params(tuned.model, nnx.Param)
  assert result.history[-1]["loss"] < result.history[0]["loss"]
  assert all(np.any(after[k] != before[k]) for k in before)


def test_dpo_starts_at_ln2_and_prefers_the_chosen(tiny_model_dir, dataset_dir, tmp_path):
  config = _config(tiny_model_dir, dataset_dir, tmp_path, stage="dpo", dataset="prefs",
                   learning_rate=2e-2, max_steps=10, pref_beta=0.1)
  _, result = dpo.run(config, show_progress=False)
  first, last = result.history[0], result.history[-1]
  assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
  assert first["rewards/margin"] == pytest.approx(0.0, abs=1e-6)
  assert last["loss"] < first["loss"] and last["rewards/margin"] > 0
  assert last["rewards/accuracy"] == 1.0


def test_schedules_warm_up_then_decay():
  config = config_lib.defaults()
  config.learning_rate, config.warmup_steps = 1.0, 10
  for kind, end in (("linear", 0.0), ("cosine", 0.0), ("constant", 1.0)):
    config.lr_scheduler_type = kind
    schedule = trainer.make_schedule(config, 110)
    assert float(schedule(0)) == 0.0 and float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(110)) == pytest.approx(end, abs=1e-6)


def test_llama_factory_yaml_is_accepted(tmp_path):
  (tmp_path / "train.yaml").write_text(
      "model_name_or_path: some/dir\nstage: sft\nfinetuning_type: lora\nlora_target: all\n"
      "dataset: a,b\ndataset_dir: data\ntemplate: qwen\ncutoff_len: 512\nlearning_rate: 1.0e-4\n"
      "num_train_epochs: 2.0\nbf16: true\nper_device_train_batch_size: 2\n")
  config = config_lib.from_yaml(tmp_path / "train.yaml")
  assert (config.model, config.dataset, config.cutoff_len, config.compute_type) == (
      "some/dir", "a,b", 512, "bf16")
  assert config.learning_rate == 1e-4 and config.per_device_train_batch_size == 2
  (tmp_path / "bad.yaml").write_text("learning_rat: 1.0\n")
  with pytest.raises(ValueError, match="setting 'learning_rat' is not a fine-tuning knob"):
    config_lib.from_yaml(tmp_path / "bad.yaml")
  (tmp_path / "bad2.yaml").write_text("cutoff_len: many\n")
  with pytest.raises(ValueError, match="'cutoff_len'='many' should be a int"):
    config_lib.from_yaml(tmp_path / "bad2.yaml")
