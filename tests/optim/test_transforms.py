"""The building blocks: safe counters, masks, the learning-rate scale."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.optim import transforms


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.float32])
def test_safe_increment_saturates_instead_of_wrapping(dtype):
  info = jnp.iinfo(dtype) if jnp.issubdtype(dtype, jnp.integer) else jnp.finfo(dtype)
  top = jnp.array(info.max, dtype)
  assert transforms.safe_increment(top) == top
  assert transforms.safe_increment(jnp.array(5, dtype)) == 6
  assert transforms.safe_increment(jnp.array(5, dtype)).dtype == dtype
  assert transforms.safe_increment(top) == optax.safe_increment(top)


def test_weight_decay_follows_a_prefix_mask():
  params = {"w": jnp.ones((2, 2)), "bias": {"a": jnp.ones(3), "b": jnp.ones(1)}}
  grads = jax.tree.map(jnp.zeros_like, params)
  tx = transforms.add_decayed_weights(0.5, mask={"w": True, "bias": False})
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], 0.5)
  np.testing.assert_array_equal(updates["bias"]["a"], 0.0)
  with pytest.raises(ValueError, match="needs `params`"):
    tx.update(grads, tx.init(params))


def test_scale_by_learning_rate_flips_the_sign_and_counts_schedule_steps():
  g = {"x": jnp.array([1.0, -2.0])}
  tx = transforms.scale_by_learning_rate(0.5)
  np.testing.assert_array_equal(tx.update(g, tx.init(g))[0]["x"], [-0.5, 1.0])
  tx = transforms.scale_by_learning_rate(lambda t: 1.0 / (t + 1), flip_sign=False)
  state = tx.init(g)
  for expected in (1.0, 0.5, 1 / 3):
    updates, state = tx.update(g, state)
    np.testing.assert_allclose(updates["x"], np.array([1.0, -2.0]) * expected, rtol=1e-6)
  assert state.count == 3
  assert transforms.scale_by_learning_rate(None).update(g, optax.EmptyState())[0] is g
