"""Ledger rows of the backprop chapter: the graph engine and the custom-gradient ops against
jax.grad, in float64 (tests/autodiff/)."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ledger
from research.autodiff import custom_ops
from research.autodiff import graph as g


def _mlp_loss(p, x_NxD, t_NxC, lib):
  """mean (sigmoid(tanh(x W1 + b1) W2 + b2) - t)^2 + mean log(1 + W1^2): every kind of op (matmul,
  broadcast add, tanh, sigmoid, power, log, mean), written once for the engine and once for
  jax.numpy (lib = g or jnp)."""
  h = lib.tanh(x_NxD @ p["W1"] + p["b1"])
  y = _sigmoid(lib)(h @ p["W2"] + p["b2"])
  return lib.mean((y - t_NxC) ** 2) + lib.mean(lib.log(p["W1"] * p["W1"] + 1.0))


def _sigmoid(lib):
  return g.sigmoid if lib is g else jax.nn.sigmoid


def graph_parity(loss=_mlp_loss):
  rng = np.random.default_rng(0)
  params = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4),
            "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2)}
  x_NxD, t_NxC = rng.normal(size=(5, 3)), rng.uniform(size=(5, 2))
  leaves = {k: g.leaf(v, k) for k, v in params.items()}
  g.backward(loss(leaves, g.constant(x_NxD, "x"), t_NxC, g))
  ours = {k: leaves[k].grad for k in params}
  with jax.enable_x64(True):
    want = jax.grad(lambda q: loss(q, x_NxD, t_NxC, jnp))(
        {k: jnp.asarray(v, jnp.float64) for k, v in params.items()})
    want = jax.tree.map(np.asarray, want)
  return ours, want


@ledger.row("graph-engine", "research.autodiff.graph.backward (a 2-layer MLP loss)",
            "jax.grad, float64", ledger.Tolerance(rtol=1e-10, atol=1e-12),
            test="tests/autodiff/test_graph.py::"
                 "test_two_linear_layers_compute_the_upstream_gradient_once_and_reuse_it")
def graph_engine(ctx):
  del ctx
  return graph_parity()


@ledger.row("custom-ops", "research.autodiff.custom_ops (sigmoid, multiply)",
            "jax.grad of the plain functions, float64",
            {"sigmoid": ledger.Tolerance(rtol=1e-12), "multiply": ledger.Tolerance()},
            test="tests/autodiff/test_custom_ops.py::test_custom_ops_pass_check_grads")
def custom(ctx):
  del ctx
  with jax.enable_x64(True):
    x = jnp.linspace(-3.0, 3.0, 7, dtype=jnp.float64)
    y = jnp.cos(x)
    sigmoid = (jax.grad(lambda t: jnp.sum(custom_ops.sigmoid(t)))(x),
               jax.grad(lambda t: jnp.sum(jax.nn.sigmoid(t)))(x))
    multiply = (jax.grad(lambda a, b: jnp.sum(custom_ops.multiply(a, b)), (0, 1))(x, y),
                jax.grad(lambda a, b: jnp.sum(a * b), (0, 1))(x, y))
    return jax.tree.map(np.asarray, {"sigmoid": sigmoid, "multiply": multiply})
