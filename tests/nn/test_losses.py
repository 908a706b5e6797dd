import jax.numpy as jnp
import numpy as np

from research.nn import losses


def test_cross_entropy_of_uniform_logits_is_log_v():
  logits = jnp.zeros((2, 3, 17))
  targets = jnp.zeros((2, 3), jnp.int32)
  np.testing.assert_allclose(losses.cross_entropy(logits, targets), np.log(17), rtol=1e-6)
  weights = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.cross_entropy(logits, targets, weights), np.log(17),
                             rtol=1e-6)
