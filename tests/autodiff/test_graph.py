import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from research.autodiff import graph as g


def test_the_notebooks_worked_example():
  x, y_gt = g.constant(1.5, "x"), g.constant(0.8, "y_gt")
  w, b = g.leaf(0.8, "w"), g.leaf(0.2, "b")
  y = w * x + b
  loss = 0.5 * (y - y_gt) ** 2
  g.backward(loss)
  # The notebook's numbers; float64 rounding is the only slack.
  np.testing.assert_allclose(y.value, 1.4, atol=1e-12)
  np.testing.assert_allclose(loss.value, 0.18, atol=1e-12)
  np.testing.assert_allclose(y.grad, 0.6, atol=1e-12)
  np.testing.assert_allclose(w.grad, 0.9, atol=1e-12)
  np.testing.assert_allclose(b.grad, 0.6, atol=1e-12)
  assert x.grad is None  # data gets no gradient


def test_two_linear_layers_compute_the_upstream_gradient_once_and_reuse_it():
  rng = np.random.default_rng(0)
  x_np, t_np = rng.normal(size=3), rng.normal(size=2)
  params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4),
            "W2": rng.normal(size=(2, 4)), "b2": rng.normal(size=2)}
  p = {k: g.leaf(v, k) for k, v in params.items()}
  h = g.add(p["W1"] @ g.constant(x_np, "x"), p["b1"], name="h")
  y = g.add(p["W2"] @ h, p["b2"], name="y")
  loss = 0.5 * g.sum((y - t_np) ** 2)
  visited = g.backward(loss)

  assert all(n.backward_calls == 1 for n in visited if n.rule is not None and n.requires_grad)
  dh = params["W2"].T @ (y.value - t_np)  # dL/dh = W2^T dL/dy
  np.testing.assert_allclose(h.grad, dh, rtol=1e-12)
  np.testing.assert_allclose(p["W1"].grad, np.outer(dh, x_np), rtol=1e-12)  # dL/dW1 = dL/dh x^T
  np.testing.assert_allclose(p["b1"].grad, dh, rtol=1e-12)  # dL/db1 = dL/dh, the same array

  def loss_fn(q):
    hj = q["W1"] @ x_np + q["b1"]
    return 0.5 * jnp.sum((q["W2"] @ hj + q["b2"] - t_np) ** 2)

  with jax.enable_x64(True):
    want = jax.grad(loss_fn)({k: jnp.asarray(v, jnp.float64) for k, v in params.items()})
  for k in params:
    np.testing.assert_allclose(p[k].grad, want[k], rtol=1e-10, atol=1e-12)


def test_a_value_used_twice_sums_both_gradients():
  a = g.leaf(3.0)
  g.backward(a * a + a)  # d/da (a^2 + a) = 2a + 1
  assert a.grad == 7.0


def test_broadcast_bias_and_mean_against_jax():
  rng = np.random.default_rng(1)
  x_np, w_np, b_np = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
  w, b = g.leaf(w_np), g.leaf(b_np)
  loss = g.mean(g.sigmoid(g.constant(x_np) @ w + b))
  g.backward(loss)
  with jax.enable_x64(True):
    gw, gb = jax.grad(lambda w, b: jnp.mean(jax.nn.sigmoid(x_np @ w + b)), (0, 1))(
        jnp.asarray(w_np), jnp.asarray(b_np))
  np.testing.assert_allclose(w.grad, gw, rtol=1e-10)
  np.testing.assert_allclose(b.grad, gb, rtol=1e-10)


def test_a_deep_chain_does_not_hit_the_recursion_limit():
  a = g.leaf(0.5)
  z = a
  for _ in range(5000):
    z = z * 1.0
  g.backward(z)
  assert a.grad == 1.0


# Random expression graphs: each op is built twice, once in the engine and once in jax.numpy.
# Inputs: vectors u, v of shape (3,), matrix M (2, 3), scalar s. Values stay in ranges where
# every op is defined (log sees a positive argument, exp a bounded one).
_UNARY = {
    "exp": (lambda a: g.exp(g.tanh(a)), lambda a: jnp.exp(jnp.tanh(a))),
    "log": (lambda a: g.log(a * a + 1.0), lambda a: jnp.log(a * a + 1.0)),
    "tanh": (g.tanh, jnp.tanh),
    "sigmoid": (g.sigmoid, jax.nn.sigmoid),
    "relu": (g.relu, jax.nn.relu),
    "pow2": (lambda a: a ** 2, lambda a: a ** 2),
    "pow3": (lambda a: a ** 3, lambda a: a ** 3),
    "sum": (lambda a: g.sum(a), jnp.sum),
    "mean": (lambda a: g.mean(a), jnp.mean),
}
_BINARY = {
    "add": (g.add, jnp.add),
    "mul": (g.mul, jnp.multiply),
}


@st.composite
def _programs(draw):
  steps = []
  shapes = [(3,), (3,), (2, 3), ()]  # u, v, M, s
  for _ in range(draw(st.integers(1, 10))):
    kind = draw(st.sampled_from(["unary", "binary", "matmul"]))
    if kind == "unary":
      i = draw(st.integers(0, len(shapes) - 1))
      op = draw(st.sampled_from(sorted(_UNARY)))
      steps.append(("unary", op, i))
      shapes.append(() if op in ("sum", "mean") else shapes[i])
    elif kind == "binary":
      i = draw(st.integers(0, len(shapes) - 1))
      # a partner of the same shape, or a scalar (broadcast)
      j = draw(st.sampled_from([k for k, s in enumerate(shapes) if s in (shapes[i], ())]))
      steps.append(("binary", draw(st.sampled_from(sorted(_BINARY))), i, j))
      shapes.append(shapes[i] if shapes[i] != () else shapes[j])
    else:
      mats = [k for k, s in enumerate(shapes) if s == (2, 3)]
      vecs = [k for k, s in enumerate(shapes) if s == (3,)]
      steps.append(("matmul", draw(st.sampled_from(mats)), draw(st.sampled_from(vecs))))
      shapes.append((2,))
  return steps


def _run(steps, inputs, lib):
  pool = list(inputs)
  for step in steps:
    if step[0] == "unary":
      pool.append(_UNARY[step[1]][lib](pool[step[2]]))
    elif step[0] == "binary":
      pool.append(_BINARY[step[1]][lib](pool[step[2]], pool[step[3]]))
    else:
      pool.append(pool[step[1]] @ pool[step[2]])
  return pool


_floats = st.floats(-2.0, 2.0, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(_programs(),
       st.lists(_floats, min_size=3, max_size=3), st.lists(_floats, min_size=3, max_size=3),
       st.lists(_floats, min_size=6, max_size=6), _floats)
def test_random_graphs_match_jax_grad(steps, u, v, m, s):
  values = [np.array(u), np.array(v), np.array(m).reshape(2, 3), np.array(s)]
  nodes = [g.leaf(x) for x in values]
  pool = _run(steps, nodes, 0)
  loss = g.sum(pool[-1])
  g.backward(loss)

  def loss_fn(*xs):
    return jnp.sum(_run(steps, xs, 1)[-1])

  with jax.enable_x64(True):
    xs = [jnp.asarray(x, jnp.float64) for x in values]
    want_loss = loss_fn(*xs)
    want = jax.grad(loss_fn, argnums=(0, 1, 2, 3))(*xs)
  np.testing.assert_allclose(loss.value, want_loss, rtol=1e-6, atol=1e-6)
  for node, w in zip(nodes, want):
    got = np.zeros_like(node.value) if node.grad is None else node.grad
    np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-6)
