import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.nn import activations
from research.nn import initializers
from research.sweeps import mlp

_FUNCS = {"sigmoid": activations.sigmoid, "tanh": activations.tanh, "relu": activations.relu,
          "leaky_relu": lambda x: activations.leaky_relu(x, mlp.LEAKY_SLOPE),
          "prelu": lambda x: activations.prelu(x, mlp.PRELU_INIT), "gelu": activations.gelu,
          "identity": lambda x: x}


def _params(depth=3, init="xavier", seed=0):
  return mlp.init(jax.random.key(seed), initializers.get(init), 5, 7, depth, 3)


def test_shapes():
  p = _params(depth=4)
  assert p["w_in"].shape == (5, 7) and p["w_hidden"].shape == (3, 7, 7)
  assert p["b_hidden"].shape == (3, 7) and p["w_out"].shape == (7, 3) and p["slope"].shape == (4,)
  assert _params(depth=1)["w_hidden"].shape == (0, 7, 7)
  with pytest.raises(ValueError, match="depth must be >= 1"):
    _params(depth=0)


@pytest.mark.parametrize("name", mlp.ACTIVATIONS)
def test_apply_equals_a_plain_loop(name):
  p = _params()
  x = jax.random.normal(jax.random.key(1), (4, 5))
  f = _FUNCS[name]
  h = f(x @ p["w_in"] + p["b_in"])
  hidden = [h]
  for w, b in zip(p["w_hidden"], p["b_hidden"]):
    h = f(h @ w + b)
    hidden.append(h)
  logits, got_hidden = mlp.apply(p, x, mlp.ACTIVATIONS.index(name))
  np.testing.assert_allclose(logits, h @ p["w_out"] + p["b_out"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_hidden, jnp.stack(hidden), rtol=1e-5, atol=1e-6)


def test_vmapped_activation_index_equals_each_static_activation():
  # The sweep relies on this: one program with a batched activation index gives each net
  # exactly what the net would give alone.
  p = _params()
  x = jax.random.normal(jax.random.key(1), (4, 5))
  y = jnp.array([0, 1, 2, 1])
  n = len(mlp.ACTIVATIONS)
  stacked = jax.tree.map(lambda a: jnp.stack([a] * n), p)
  grad = jax.grad(mlp.loss_fn)
  batched = jax.jit(jax.vmap(grad, in_axes=(0, None, None, 0)))(stacked, x, y, jnp.arange(n))
  alone = jax.jit(lambda p: [grad(p, x, y, i) for i in range(n)])(p)  # static index each
  for i in range(n):
    for k in alone[i]:
      np.testing.assert_allclose(batched[k][i], alone[i][k], rtol=1e-5, atol=1e-7)


def test_layer_weight_grads_are_per_layer_frobenius_norms():
  p = _params(depth=3)
  x, y = jax.random.normal(jax.random.key(1), (4, 5)), jnp.array([0, 1, 2, 1])
  g = jax.grad(mlp.loss_fn)(p, x, y, 1)
  want = [jnp.linalg.norm(g["w_in"])] + [jnp.linalg.norm(w) for w in g["w_hidden"]]
  np.testing.assert_allclose(mlp.layer_weight_grads(g), jnp.stack(want), rtol=1e-5)


def test_training_lowers_the_loss():
  key = jax.random.key(0)
  x = jax.random.normal(key, (64, 5))
  y = (x[:, 0] > 0).astype(jnp.int32)
  p = _params(depth=2, init="kaiming")
  trained = mlp.train(p, key, 2, x, y, steps=50, batch_size=16, learning_rate=0.05)
  assert float(mlp.loss_fn(trained, x, y, 2)) < 0.5 * float(mlp.loss_fn(p, x, y, 2))
