import jax
import jax.numpy as jnp
import numpy as np

from research.nn import initializers
from research.sweeps import mlp
from research.sweeps import probes


def test_dead_fraction_counts_units_that_never_fire():
  p = mlp.init(jax.random.key(0), initializers.kaiming_normal(), 3, 4, 1, 2)
  x = jax.random.normal(jax.random.key(1), (50, 3))
  relu = mlp.ACTIVATIONS.index("relu")
  base = float(probes.dead_fraction(p, x, relu))
  p["b_in"] = p["b_in"].at[0].set(-1e3)  # unit 0 of layer 1 can never fire
  assert float(probes.dead_fraction(p, x, relu)) == base + 1 / 4


def test_sigmoid_inputs_give_one_signed_gradients_and_tanh_inputs_do_not():
  key = jax.random.key(0)
  x = jax.random.normal(key, (100, 6))
  y = (x[:, 0] > 0).astype(jnp.int32)
  keys = jax.random.split(key, 2)
  params = probes.stack_params(keys, "xavier", 6, 16, 2, 2)
  acts = jnp.array([mlp.ACTIVATIONS.index("sigmoid"), mlp.ACTIVATIONS.index("tanh")])
  agree = probes.sign_agreement(params, keys, acts, x, y, steps=20, learning_rate=0.05)
  assert float(agree[0]) == 1.0 and float(agree[1]) < 0.05


def test_a_net_without_activations_collapses_to_one_matrix():
  p = mlp.init(jax.random.key(0), initializers.xavier_normal(), 2, 5, 6, 3)
  x = jax.random.normal(jax.random.key(1), (10, 2))
  w, b = probes.collapse_matrix(p)
  assert w.shape == (2, 3)
  logits, _ = mlp.apply(p, x, mlp.ACTIVATIONS.index("identity"))
  np.testing.assert_allclose(logits, x @ w + b, rtol=1e-4, atol=1e-6)


def test_xor_is_balanced_and_not_linearly_separable():
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  x, y = probes.xor(400, 0.1, 0)
  assert abs(y.mean() - 0.5) < 0.1
  assert linear_model.LogisticRegression().fit(x, y).score(x, y) < 0.8


def test_unit_spread_is_zero_only_for_identical_units():
  same = mlp.init(jax.random.key(0), initializers.constant(0.1), 4, 5, 3, 2)
  assert float(probes.unit_spread(same)) == 0.0
  rand = mlp.init(jax.random.key(0), initializers.xavier_normal(), 4, 5, 3, 2)
  assert float(probes.unit_spread(rand)) > 0.1
