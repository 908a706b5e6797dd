import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.nn import initializers as inits

_SHAPE = (1000, 1000)
_KEY = jax.random.key(0)


@pytest.mark.parametrize("make, target", [
    (lambda: inits.normal(1.0), 1.0),
    (inits.xavier_normal, 2.0 / 2000),
    (inits.xavier_uniform, 2.0 / 2000),
    (inits.kaiming_normal, 2.0 / 1000),
    (inits.kaiming_uniform, 2.0 / 1000),
    (lambda: inits.kaiming_normal(negative_slope=0.2), 2.0 / (1.04 * 1000)),
    (inits.lecun_normal, 1.0 / 1000),
    (inits.lecun_uniform, 1.0 / 1000),
])
def test_sample_variance_matches_the_formula(make, target):
  w = make()(_KEY, _SHAPE, jnp.float32)
  assert w.shape == _SHAPE and w.dtype == jnp.float32
  # 1e6 samples: the sample variance is within ~0.3% of the truth; 2% is the stated contract.
  assert abs(float(jnp.var(w)) / target - 1) < 0.02
  assert abs(float(jnp.mean(w))) < 0.01 * np.sqrt(target)


def test_fan_modes_and_conv_windows():
  assert inits.fans((3, 3, 16, 32)) == (144, 288)
  w = inits.kaiming_normal(mode="fan_out")(_KEY, (200, 2000))
  assert abs(float(jnp.var(w)) / (2.0 / 2000) - 1) < 0.02
  with pytest.raises(ValueError, match="at least 2 axes"):
    inits.fans((5,))


def test_zeros_and_constant():
  assert not jnp.any(inits.zeros(_KEY, (4, 5)))
  assert jnp.all(inits.constant(0.1)(_KEY, (4, 5)) == jnp.float32(0.1))


@pytest.mark.parametrize("ours, theirs", [
    (inits.xavier_normal(), jax.nn.initializers.variance_scaling(1.0, "fan_avg", "normal")),
    (inits.xavier_uniform(), jax.nn.initializers.glorot_uniform()),
    (inits.kaiming_normal(), jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")),
    (inits.kaiming_uniform(), jax.nn.initializers.he_uniform()),
    (inits.lecun_normal(), jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")),
    (inits.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
    (inits.normal(1.0), jax.nn.initializers.normal(1.0)),
    (inits.zeros, jax.nn.initializers.zeros),
])
def test_agrees_with_jax_nn_initializers_on_the_same_scheme(ours, theirs):
  for shape in [(64, 32), (3, 3, 8, 16)]:
    np.testing.assert_allclose(ours(_KEY, shape, jnp.float32), theirs(_KEY, shape, jnp.float32),
                               rtol=1e-6, atol=1e-7)


def test_truncated_jax_default_has_the_same_variance():
  # jax's glorot_normal / he_normal truncate at 2 sigma and rescale: same variance, other draws.
  for ours, theirs in [(inits.xavier_normal(), jax.nn.initializers.glorot_normal()),
                       (inits.kaiming_normal(), jax.nn.initializers.he_normal())]:
    a, b = ours(_KEY, _SHAPE), theirs(_KEY, _SHAPE)
    assert abs(float(jnp.var(a)) / float(jnp.var(b)) - 1) < 0.02


def test_unknown_name_is_an_error():
  with pytest.raises(ValueError, match="unknown initialiser 'glorot'"):
    inits.get("glorot")
