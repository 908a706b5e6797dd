"""Backprop chapter: reverse mode on a computational graph, checked against the notebook and JAX."""

from pathlib import Path

import jax
import jax.numpy as jnp
from jax import test_util
import matplotlib
matplotlib.use("Agg")
import numpy as np  # pylint: disable=wrong-import-position

from experiments.configs import backprop as backprop_config
from research import files
from research import tour
from research.autodiff import custom_ops
from research.autodiff import draw
from research.autodiff import graph as g
from research.autodiff import numerical


def worked_example(config, out_dir):
  x, y_gt = g.constant(config.x, "x"), g.constant(config.y_gt, "y_gt")
  w, b = g.leaf(config.w, "w"), g.leaf(config.b, "b")
  y = g.add(g.mul(w, x, name="wx"), b, name="y")
  loss = g.mul(g.power(y - y_gt, 2), 0.5, name="L")  # L = (y - y_gt)^2 / 2
  g.backward(loss)
  files.write_text(out_dir / "worked_example.dot", draw.to_dot(loss))
  files.save_figure(draw.draw(loss, "L = (w x + b - y_gt)^2 / 2: value / gradient on each edge"),
                    out_dir / "worked_example.png")
  got = [y.value, loss.value, y.grad, w.grad, b.grad]
  want = [1.4, 0.18, 0.6, 0.9, 0.6]  # the notebook's numbers
  return float(max(abs(float(a) - v) for a, v in zip(got, want))), got


def two_layer_chain(config, out_dir):
  rng = np.random.default_rng(config.seed)
  x = g.constant(rng.normal(size=config.chain_in), "x")
  w1 = g.leaf(rng.normal(size=(config.chain_hidden, config.chain_in)), "W1")
  b1 = g.leaf(rng.normal(size=config.chain_hidden), "b1")
  w2 = g.leaf(rng.normal(size=(config.chain_out, config.chain_hidden)), "W2")
  b2 = g.leaf(rng.normal(size=config.chain_out), "b2")
  h = g.add(g.matmul(w1, x, name="W1 x"), b1, name="h")
  y = g.add(g.matmul(w2, h, name="W2 h"), b2, name="y")
  loss = g.mul(g.sum(g.power(y, 2)), 0.5, name="L")
  visited = g.backward(loss)
  files.write_text(out_dir / "two_layer.dot", draw.to_dot(loss))
  files.save_figure(draw.draw(loss, "two linear layers: dL/dh is computed once, used twice"),
                    out_dir / "two_layer.png")
  calls = max(n.backward_calls for n in visited if n.rule is not None)
  dh = w2.value.T @ y.value  # dL/dh = W2^T dL/dy, dL/dy = y
  reuse_error = max(float(np.max(np.abs(w1.grad - np.outer(dh, x.value)))),
                    float(np.max(np.abs(b1.grad - dh))))
  return calls, reuse_error


def _mlp_engine(params, x_np, labels):
  """Every op of the engine: matmul, add, tanh, sigmoid, relu, exp, log, pow, sum, mean."""
  h = g.constant(x_np, "x")
  acts = [g.tanh, g.sigmoid, g.relu]
  for i, (w, b) in enumerate(params[:-1]):
    h = acts[i % 3](h @ w + b)
  logits = h @ params[-1][0] + params[-1][1]
  # softmax cross-entropy: log sum exp(z) - z_label (logits are small, no max-shift needed)
  lse = g.log(g.sum(g.exp(logits), axis=1))
  picked = g.sum(logits * labels, axis=1)
  return g.mean(lse - picked) + 1e-3 * g.sum(params[0][0] ** 2)


def _mlp_jax(params, x, labels):
  acts = [jnp.tanh, jax.nn.sigmoid, jax.nn.relu]
  h = x
  for i, (w, b) in enumerate(params[:-1]):
    h = acts[i % 3](h @ w + b)
  logits = h @ params[-1][0] + params[-1][1]
  lse = jnp.log(jnp.sum(jnp.exp(logits), axis=1))
  return jnp.mean(lse - jnp.sum(logits * labels, axis=1)) + 1e-3 * jnp.sum(params[0][0] ** 2)


def engine_vs_jax(config):
  rng = np.random.default_rng(config.seed)
  sizes = list(config.widths)
  params_np = [(rng.normal(size=(a, b)) / np.sqrt(a), 0.1 * rng.normal(size=b))
               for a, b in zip(sizes[:-1], sizes[1:])]
  x = rng.normal(size=(config.batch, sizes[0]))
  labels = np.eye(sizes[-1])[rng.integers(0, sizes[-1], config.batch)]
  params = [(g.leaf(w), g.leaf(b)) for w, b in params_np]
  loss = _mlp_engine(params, x, labels)
  g.backward(loss)
  with jax.enable_x64(True):
    want = jax.grad(_mlp_jax)([(jnp.asarray(w), jnp.asarray(b)) for w, b in params_np], x, labels)
    want_loss = float(_mlp_jax(params_np, x, labels))
  error = max(float(np.max(np.abs(p.grad - np.asarray(q))))
              for pair, qpair in zip(params, want) for p, q in zip(pair, qpair))
  return error, abs(float(loss.value) - want_loss)


def custom_ops_vs_reference():
  """custom_vjp gradients against jax.grad of the plain functions and central differences."""
  with jax.enable_x64(True):
    x = jnp.linspace(-4.0, 4.0, 41, dtype=jnp.float64)
    y = jnp.cos(x)
    gx, gy = jax.grad(lambda a, b: jnp.sum(custom_ops.multiply(a, b)), (0, 1))(x, y)
    gs = jax.grad(lambda a: jnp.sum(custom_ops.sigmoid(a)))(x)
    vs_jax = max(float(jnp.max(jnp.abs(gx - y))), float(jnp.max(jnp.abs(gy - x))),
                 float(jnp.max(jnp.abs(gs - jax.grad(lambda a: jnp.sum(jax.nn.sigmoid(a)))(x)))))
    sigmoid = lambda t: np.asarray(custom_ops.sigmoid(jnp.asarray(t)))  # pylint: disable=unnecessary-lambda-assignment
    vs_fd = float(np.max(np.abs(np.asarray(gs) - numerical.central_difference(sigmoid, x, 1e-5))))
    test_util.check_grads(custom_ops.multiply, (x, y), order=1, modes=["rev"])
    test_util.check_grads(custom_ops.sigmoid, (x,), order=1, modes=["rev"])
  return vs_jax, vs_fd


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  example_error, got = worked_example(config, out_dir)
  calls, reuse_error = two_layer_chain(config, out_dir)
  grad_error, loss_error = engine_vs_jax(config)
  custom_vs_jax, custom_vs_fd = custom_ops_vs_reference()
  y, loss, dy, dw, db = (float(v) for v in got)
  return [
      tour.Claim.at_most("the worked example: y = 1.4, L = 0.18, dL/dy = 0.6, dL/dw = 0.9, "
                         "dL/db = 0.6", f"y {y:.4g}, L {loss:.4g}, dL/dy {dy:.4g}, dL/dw {dw:.4g}, "
                         f"dL/db {db:.4g}; max |error|", example_error, 1e-12, fmt="{:.2g}",
                         figure="worked_example.png"),
      tour.Claim.at_most("reverse mode computes each node's upstream gradient once",
                         "most backward calls of one node", calls, 1, fmt="{:d}",
                         figure="two_layer.png"),
      tour.Claim.at_most("... and reuses it: dL/dW1 = dL/dh x^T, dL/db1 = dL/dh",
                         "max |error|", reuse_error, 1e-12, fmt="{:.2g}", figure="two_layer.png"),
      tour.Claim.at_most("the engine's gradients equal jax.grad (float64, an MLP using every op)",
                         "max |difference|", grad_error, 1e-10, fmt="{:.2g}"),
      tour.Claim.at_most("... and so does its loss", "|difference|", loss_error, 1e-12,
                         fmt="{:.2g}"),
      tour.Claim.at_most("custom_vjp multiply and sigmoid give jax.grad's gradients",
                         "max |difference|", custom_vs_jax, 1e-12, fmt="{:.2g}"),
      tour.Claim.at_most("... and match central differences (h = 1e-5)", "max |difference|",
                         custom_vs_fd, 1e-8, fmt="{:.2g}"),
  ]


chapter = tour.experiment_chapter(
    "backprop", "Backpropagation on a computational graph", 2,
    backprop_config.get_config, run_experiment)
