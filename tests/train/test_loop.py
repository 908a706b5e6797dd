import math

import jax
import ml_collections
import numpy as np
from flax import nnx

from research import runs
from research.data import windows as windows_lib
from research.nn import config as config_lib
from research.nn import transformer
from research.train import checkpoint as checkpoint_lib
from research.train import lm
from research.train import loop
from research.train import state as state_lib


def tiny_model(**changes):
  base = dict(vocab_size=32, num_layers=2, width=32, num_heads=4, max_length=16)
  base.update(changes)
  return config_lib.ModelConfig(**base)


def train_config(**changes):
  config = ml_collections.ConfigDict(dict(
      seed=0, steps=20, lr=3e-3, min_lr=3e-4, warmup_steps=4, b1=0.9, b2=0.99,
      weight_decay=0.1, max_grad_norm=1.0, grad_accum=1, dtype="float32", eval_every=0,
      eval_batches=2, checkpoint_every=0, keep=2, log_every=1, sampler="epoch",
      mesh_data=1, mesh_fsdp=1))
  config.update(changes)
  return config


def tokens(n=4000, seed=0):
  rng = np.random.default_rng(seed)
  pattern = rng.integers(0, 32, size=37)  # a repeating pattern a model can learn
  noise = rng.integers(0, 32, size=n)
  return np.where(rng.random(n) < 0.8, np.resize(pattern, n), noise).astype(np.uint16)


def windows(batch_size=8, context_length=16, seed=0):
  return windows_lib.Windows(tokens(), context_length, context_length // 2, batch_size,
                             seed=seed)


def _params(result):
  return [np.asarray(x) for x in jax.tree.leaves(result.state.params)]


def test_loss_falls_and_metrics_and_figure_are_written(tmp_path):
  config = train_config(steps=30, eval_every=15)
  result = lm.pretrain(tiny_model(), config, windows(), windows(seed=1),
                       workdir=tmp_path, peak_flops=1e11, show_progress=False)
  assert result.history[-1]["loss"] < result.history[0]["loss"] - 0.5
  assert [e["step"] for e in result.evals] == [15, 30]
  rows = runs.read_metrics(tmp_path)
  assert rows[-1]["step"] == 30 and "eval_loss" in rows[-1] and "mfu" in rows[-1]
  assert (tmp_path / "training_loss.png").stat().st_size > 0
  assert list((tmp_path / "tb").iterdir())
  assert result.ms_per_iter > 0 and 0 < result.mfu < 1


def test_killed_at_k_and_resumed_equals_uninterrupted_bit_for_bit(tmp_path, monkeypatch):
  k = 6
  config = train_config(steps=2 * k, checkpoint_every=k)
  model = tiny_model(dropout=0.1)  # dropout keys must replay too
  whole = lm.pretrain(model, config, windows(), workdir=tmp_path / "whole",
                      peak_flops=1e11, show_progress=False)
  first = lm.pretrain(model, config, windows(), workdir=tmp_path / "resumed",
                      stop_at=k, peak_flops=1e11, show_progress=False)
  assert int(first.state.step) == k
  curves = []
  monkeypatch.setattr(loop, "save_loss_curve", lambda history, evals, path: curves.append(
      [r["step"] for r in history]))
  second = lm.pretrain(model, config, windows(), workdir=tmp_path / "resumed",
                       peak_flops=1e11, show_progress=False)
  assert second.start_step == k and int(second.state.step) == 2 * k
  for a, b in zip(_params(whole), _params(second)):
    np.testing.assert_array_equal(a, b)
  assert curves == [list(range(1, 2 * k + 1))]  # the figure shows the whole run, not its tail


def test_a_run_told_not_to_resume_starts_afresh_over_old_checkpoints(tmp_path, capsys):
  k = 4
  model = tiny_model()
  lm.pretrain(model, train_config(steps=k, checkpoint_every=k), windows(), workdir=tmp_path / "old",
              peak_flops=1e11, show_progress=False)
  again = lm.pretrain(model, train_config(steps=k, checkpoint_every=k, resume=False), windows(),
                      workdir=tmp_path / "old", peak_flops=1e11)
  fresh = lm.pretrain(model, train_config(steps=k, checkpoint_every=k), windows(),
                      workdir=tmp_path / "new", peak_flops=1e11, show_progress=False)
  assert again.start_step == 0 and len(again.history) == k
  assert "starting afresh: deleted the earlier run's checkpoints" in capsys.readouterr().out
  for a, b in zip(_params(fresh), _params(again)):
    np.testing.assert_array_equal(a, b)
  assert checkpoint_lib.Checkpoints(tmp_path / "old" / "checkpoints").latest_step() == k


class _CorruptAfter(windows_lib.Windows):
  """Batches from step `bad` on hold an id past the vocabulary: its embedding reads NaN."""

  def __init__(self, bad, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.bad = bad

  def batch(self, step):
    inputs, targets = super().batch(step)
    if step >= self.bad:
      inputs = inputs.copy()
      inputs[0, 0] = 10_000
    return inputs, targets


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = train_config(steps=12, checkpoint_every=4)
  corrupt = _CorruptAfter(6, tokens(), 16, 8, 8)
  result = lm.pretrain(tiny_model(), config, corrupt, workdir=tmp_path, peak_flops=1e11,
                       show_progress=False)
  assert result.stopped == "non-finite"
  bad_step = len(result.history) + 1
  assert bad_step == 7
  checkpoints = checkpoint_lib.Checkpoints(tmp_path / "checkpoints")
  latest = checkpoints.latest_step()
  assert latest is not None and latest < bad_step
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), result.state)
  restored = checkpoints.restore(abstract)
  assert int(restored.step) == latest
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))
  checkpoints.close()


def test_last_n_and_best_are_kept_and_restore_returns_the_saved_model(tmp_path):
  config = train_config(steps=12, checkpoint_every=2, keep=2, eval_every=4)
  result = lm.pretrain(tiny_model(), config, windows(), windows(seed=1),
                       workdir=tmp_path, peak_flops=1e11, show_progress=False)
  checkpoints = checkpoint_lib.Checkpoints(tmp_path / "checkpoints")
  assert checkpoints.last.all_steps() == [10, 12]
  best = checkpoints.best_step()
  assert best in (4, 8, 12) and len(checkpoints.best.all_steps()) == 1
  checkpoints.close()
  tx = state_lib.make_optimizer(config)
  fresh = lambda: transformer.Transformer(tiny_model(), rngs=nnx.Rngs(7))  # another init
  model, step = loop.restore(fresh(), tx, tmp_path / "checkpoints")
  assert step == 12
  saved = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(result.state.params)):
    np.testing.assert_array_equal(a, b)
  _, best_step = loop.restore(fresh(), tx, tmp_path / "checkpoints", best=True)
  assert best_step == best


def test_one_device_and_four_fake_devices_give_the_same_losses():
  assert jax.device_count() >= 4, "tests/conftest.py should give 4 fake CPU devices"
  single = lm.pretrain(tiny_model(), train_config(eval_every=10), windows(), windows(seed=1),
                       peak_flops=1e11, show_progress=False)
  sharded = lm.pretrain(tiny_model(), train_config(eval_every=10, mesh_data=2, mesh_fsdp=2),
                        windows(), windows(seed=1), peak_flops=1e11, show_progress=False)
  kernel = sharded.state.params["blocks"][0]["ffn"]["up"]["kernel"][...]
  assert len(kernel.sharding.device_set) == 4
  losses_1 = [r["loss"] for r in single.history]
  losses_4 = [r["loss"] for r in sharded.history]
  assert len(losses_1) == len(losses_4) == 20
  np.testing.assert_allclose(losses_4, losses_1, rtol=0, atol=1e-5)
  np.testing.assert_allclose([e["eval_loss"] for e in sharded.evals],
                             [e["eval_loss"] for e in single.evals], rtol=0, atol=1e-5)
  assert math.isfinite(losses_1[-1])


class _OnPolicy:
  """Targets drawn from the model as it is now: collect sees every update so far."""

  def __init__(self):
    self.source, self.seen = lm.WindowBatches(windows()), []

  def collect(self, step, current_model):
    self.seen.append(np.asarray(current_model().embed.embedding[...]).copy())

  def step_batch(self, step):
    return self.source.step_batch(step)

  def metrics(self, step):
    return {"collected": float(len(self.seen))}


def test_an_on_policy_source_sees_the_model_after_each_update(tmp_path):
  source = _OnPolicy()
  model = transformer.Transformer(tiny_model(), rngs=nnx.Rngs(0))
  first = np.asarray(model.embed.embedding[...]).copy()
  loop.train(model, state_lib.make_optimizer(train_config(steps=3)), source,
             loop.Settings(steps=3), workdir=tmp_path, show_progress=False)
  assert len(source.seen) == 3
  np.testing.assert_array_equal(source.seen[0], first)
  assert not np.array_equal(source.seen[0], source.seen[1])  # step 1's update is visible
  assert [row["collected"] for row in runs.read_metrics(tmp_path)] == [1.0, 2.0, 3.0]


def test_the_curve_of_an_on_policy_run_draws_its_reward_beside_the_loss(tmp_path):
  rows = [{"step": i, "loss": 1.0 / i, "reward/mean": 0.1 * i} for i in range(1, 6)]
  plain = loop.save_loss_curve([{"step": r["step"], "loss": r["loss"]} for r in rows], [],
                               tmp_path / "plain.png")
  rewarded = loop.save_loss_curve(rows, [], tmp_path / "rewarded.png")
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  assert matplotlib.image.imread(rewarded).shape[1] > matplotlib.image.imread(plain).shape[1]
