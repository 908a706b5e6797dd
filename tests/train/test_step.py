"""The one train step: the laws it must keep for every objective."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from research.nn import losses
from research.train import state as state_lib
from research.train import step as step_lib
from tests.train import test_state


_model = test_state.tiny_model


def _setup(**changes):
  tx = test_state.optimizer(**changes)
  parts, state = state_lib.create(_model(), tx)
  return parts, tx, state


def _batch(a, b, seed=0):
  tokens = jax.random.randint(jax.random.key(seed), (a * b, 9), 0, 20)
  return {"inputs": tokens[:, :-1].reshape(a, b, 8), "targets": tokens[:, 1:].reshape(a, b, 8)}


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


def _flat(tree):
  return {jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _reference_grads(model, batch_BxL, trainable):
  """jax.grad of the mean cross-entropy w.r.t. the `trainable` leaves, the rest held fixed."""
  graphdef, params, rest = nnx.split(model, trainable, ...)

  def loss(p):
    logits_BxLxV, _ = nnx.merge(graphdef, p, rest)(batch_BxL["inputs"])
    return losses.cross_entropy(logits_BxLxV, batch_BxL["targets"])

  return nnx.to_pure_dict(jax.grad(loss)(params))


def test_two_micro_batches_equal_one_batch_of_twice_the_size():
  parts, tx, state = _setup()
  batch = _batch(1, 8)
  halves = jax.tree.map(lambda x: x.reshape(2, 4, 8), batch)
  whole, m_whole = step_lib.make_train_step(parts.graphdef, tx)(_copy(state), batch)
  split, m_split = step_lib.make_train_step(parts.graphdef, tx)(state, halves)
  np.testing.assert_allclose(m_split["loss"], m_whole["loss"], rtol=1e-6)
  np.testing.assert_allclose(m_split["grad_norm"], m_whole["grad_norm"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(split.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_trainable_filter_steps_by_the_gradient_and_leaves_the_rest_bit_identical():
  model = _model()
  trainable = nnx.All(nnx.Param, nnx.PathContains("ffn"))
  before = _flat(nnx.to_pure_dict(nnx.state(model)))
  batch = _batch(1, 4)
  want = _reference_grads(model, jax.tree.map(lambda x: x[0], batch), trainable)
  parts, state = state_lib.create(model, optax.sgd(1.0), trainable)
  assert set(_flat(parts.params)) == set(_flat(want)) and parts.frozen
  new, _ = step_lib.make_train_step(parts.graphdef, optax.sgd(1.0))(state, batch, parts.frozen)
  after = _flat(nnx.to_pure_dict(nnx.state(
      state_lib.merge(parts.graphdef, new.params, new.rng, parts.frozen))))
  for name, grad in _flat(want).items():  # theta <- theta - g
    np.testing.assert_allclose(after[name], before[name] - grad, rtol=1e-5, atol=1e-7)
  frozen = [name for name in before if name not in _flat(want)]
  assert frozen
  for name in frozen:
    np.testing.assert_array_equal(after[name], before[name])


def test_a_reference_output_gets_no_gradient():
  """loss - stop_gradient(reference loss) has the value 0 and the gradient of the loss."""
  model = _model()
  batch = _batch(1, 4)
  want = _reference_grads(model, jax.tree.map(lambda x: x[0], batch), nnx.Param)
  parts, state = state_lib.create(model, optax.sgd(1.0))

  def reference(model_at, params, batch_BxL):
    return step_lib.lm_objective(model_at(params), batch_BxL)[0]

  def objective(model, batch_BxL, reference_loss, dropout_key=None):
    loss, _ = step_lib.lm_objective(model, batch_BxL, None, dropout_key)
    return loss - reference_loss, {}

  before = _flat(state.params)
  new, metrics = step_lib.make_train_step(parts.graphdef, optax.sgd(1.0), objective,
                                          reference=reference)(state, batch)
  assert abs(float(metrics["loss"])) < 1e-6
  after = _flat(new.params)
  for name, grad in _flat(want).items():
    np.testing.assert_allclose(after[name], before[name] - grad, rtol=1e-5, atol=1e-7)


def test_loss_scaling_skips_an_overflowing_step_and_halves_the_scale():
  parts, tx, state = _setup()
  batch = _batch(1, 4)
  train_step = step_lib.make_train_step(parts.graphdef, tx, dtype="float16", loss_scaling=True)
  huge = state._replace(loss_scale=jnp.float32(2.0 ** 100), good_steps=jnp.int32(7))
  before = _copy(huge)
  skipped, metrics = train_step(huge, batch)  # 2^100 x the gradient overflows float16
  assert float(metrics["finite"]) == 0.0
  for a, b in zip(jax.tree.leaves((before.params, before.opt_state)),
                  jax.tree.leaves((skipped.params, skipped.opt_state))):
    np.testing.assert_array_equal(a, b)
  assert float(skipped.loss_scale) == 2.0 ** 99 and int(skipped.good_steps) == 0
  assert int(skipped.step) == 1


def test_a_scaled_step_equals_the_unscaled_one_and_the_scale_grows_on_schedule():
  parts, tx, state = _setup()
  batch = _batch(1, 4)
  plain, _ = step_lib.make_train_step(parts.graphdef, tx)(_copy(state), batch)
  ready = state._replace(loss_scale=jnp.float32(2.0 ** 15),
                         good_steps=jnp.int32(step_lib.GROW_EVERY - 1))
  scaled, metrics = step_lib.make_train_step(parts.graphdef, tx, loss_scaling=True)(ready, batch)
  assert float(metrics["finite"]) == 1.0 and float(metrics["loss_scale"]) == 2.0 ** 15
  for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(scaled.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert float(scaled.loss_scale) == 2.0 ** 16 and int(scaled.good_steps) == 0


def test_bfloat16_compute_keeps_float32_master_weights_and_close_loss():
  parts, tx, state = _setup()
  batch = _batch(1, 4)
  _, m32 = step_lib.make_train_step(parts.graphdef, tx)(_copy(state), batch)
  new, m16 = step_lib.make_train_step(parts.graphdef, tx, dtype="bfloat16")(state, batch)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new.params))
  np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)
  assert int(new.step) == 1


def test_learning_rate_metric_is_the_schedule_at_the_step_taken():
  config = ml_collections.ConfigDict(dict(lr=1e-2, min_lr=1e-3, warmup_steps=2, steps=10))
  schedule = state_lib.learning_rate_schedule(config)
  parts, tx, state = _setup()
  train_step = step_lib.make_train_step(parts.graphdef, tx, schedule=schedule)
  for t in range(3):
    state, metrics = train_step(state, _batch(1, 4, seed=t))
    np.testing.assert_allclose(metrics["learning_rate"], schedule(t), rtol=1e-6)
