"""Ledger rows of the gradient descent chapter: each hand-written optimizer against optax's
built-in, on the gradient streams of its test (tests/optim/test_alias.py, test_notebook.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import ledger
from research import optim
from research.optim import notebook

ALIAS_TEST = "tests/optim/test_alias.py::test_1000_steps_equal_optax"
ALIAS_TOL = ledger.Tolerance(rtol=1e-6)  # test_alias.RTOL: the same arithmetic, same order
NOTEBOOK_TEST = "tests/optim/test_notebook.py::"


def _params():
  """A small tree of every rank (scalar to 3-d), so each leaf kind is updated."""
  shapes = {"w": (3, 4), "b": (4,), "s": (), "deep": [(2, 3, 5), (7,)]}
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(jax.random.key(0), len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, s) for k, s in zip(keys, leaves)])


def _gradients(params, steps, varied, seed=1):
  """`steps` gradient trees stacked on a leading axis; varied: of a different size each step
  (test_alias), so moments see more than one scale; else unit normal (test_notebook)."""
  rng = np.random.default_rng(seed)
  scale_S = np.exp(rng.standard_normal(steps)) if varied else np.ones(steps)
  return jax.tree.map(lambda p: jnp.asarray(
      scale_S.reshape((steps,) + (1,) * p.ndim) * rng.standard_normal((steps,) + p.shape),
      p.dtype), params)


def trajectories(txs, steps: int, apply: bool = True):
  """(final params, final state, every update) of each of `txs` on one gradient stream, in one
  jitted function (one compilation for the pair); apply=False keeps the parameters fixed and
  the gradients unit normal (test_notebook's setting)."""
  params = _params()
  grads = _gradients(params, steps, varied=apply)

  def scan(tx, params, grads):
    def step(carry, g):
      params, state = carry
      updates, state = tx.update(g, state, params)
      params = optax.apply_updates(params, updates) if apply else params
      return (params, state), updates
    (params, state), updates = jax.lax.scan(step, (params, tx.init(params)), grads)
    return params, state, updates

  return jax.jit(lambda params, grads: [scan(tx, params, grads) for tx in txs])(params, grads)


def alias_parity(ours, theirs, ctx, steps: int = 1000):
  """Updates, states and parameters of two optax transforms over the same steps."""
  steps = min(steps, 100) if ctx.quick else steps
  mine, ref = trajectories([ours, theirs], steps)
  return {"updates": (mine[2], ref[2]), "state": (mine[1], ref[1]),
          "params": (mine[0], ref[0])}


def update_parity(ours, theirs, ctx, steps: int = 300, scale: bool = False):
  """Only the updates, parameters held fixed; scale=True divides both by the largest
  reference step, so that an atol reads as a fraction of it."""
  steps = min(steps, 100) if ctx.quick else steps
  (_, _, mine), (_, _, ref) = trajectories([ours, theirs], steps, apply=False)
  if scale:
    s = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(ref))
    mine, ref = jax.tree.map(lambda x: x / s, mine), jax.tree.map(lambda x: x / s, ref)
  return mine, ref


def _alias(name, row_name, kwargs, shown):
  """Registers optim.NAME(**kwargs) against optax.NAME(**kwargs); `shown`: the arguments."""
  def measure(ctx):
    return alias_parity(getattr(optim, name)(**kwargs), getattr(optax, name)(**kwargs), ctx)
  ledger.row(row_name, f"research.optim.{name}({shown})", f"optax.{name}({shown})", ALIAS_TOL,
             test=ALIAS_TEST)(measure)


_alias("sgd", "sgd", dict(learning_rate=0.1), "0.1")
_alias("sgd", "sgd-momentum", dict(learning_rate=0.05, momentum=0.9), "0.05, momentum=0.9")
_alias("sgd", "sgd-nesterov", dict(learning_rate=0.05, momentum=0.9, nesterov=True),
       "0.05, momentum=0.9, nesterov=True")
_alias("adagrad", "adagrad", dict(learning_rate=0.1), "0.1")
_alias("rmsprop", "rmsprop", dict(learning_rate=0.01), "0.01")
_alias("rmsprop", "rmsprop-centered", dict(learning_rate=0.01, centered=True, eps=1e-2),
       "0.01, centered=True")
_alias("adam", "adam", dict(learning_rate=1e-3), "1e-3")
_alias("adamw", "adamw", dict(learning_rate=1e-3, weight_decay=0.1), "1e-3, weight_decay=0.1")


@ledger.row("notebook-gd", "research.optim.notebook.gradient_descent(0.1)", "optax.sgd(0.1)",
            ledger.Tolerance(),
            test=NOTEBOOK_TEST + "test_gradient_descent_is_sgd_without_momentum")
def notebook_gd(ctx):
  return update_parity(notebook.gradient_descent(0.1), optax.sgd(0.1), ctx)


@ledger.row("notebook-momentum", "research.optim.notebook.momentum(0.05, a=0.9), steps / max",
            "optax.sgd(0.05, 0.9), steps / max", ledger.Tolerance(rtol=1e-5, atol=1e-6),
            test=NOTEBOOK_TEST + "test_momentum_velocity_is_minus_rate_times_optax_trace")
def notebook_momentum(ctx):
  # v <- a*v - eps*g rounds differently from t <- g + a*t, and v feeds back: the test allows
  # 1e-6 of the largest step, which is atol 1e-6 once both are divided by it.
  return update_parity(notebook.momentum(0.05, a=0.9), optax.sgd(0.05, 0.9), ctx, scale=True)


@ledger.row("notebook-adagrad", "research.optim.notebook.adagrad(0.1, delta=0)",
            "optax.adagrad(0.1, initial_accumulator_value=0, eps=0)", ledger.Tolerance(rtol=1e-6),
            test=NOTEBOOK_TEST + "test_adagrad_equals_optax_adagrad_without_the_offsets")
def notebook_adagrad(ctx):
  return update_parity(notebook.adagrad(0.1, delta=0.0),
                       optax.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0), ctx)


@ledger.row("notebook-rmsprop", "research.optim.notebook.rmsprop(0.01, rho=0.9, delta=1e-6)",
            "optax.rmsprop(0.01, decay=0.9, eps=1e-6)", ledger.Tolerance(rtol=1e-6),
            test=NOTEBOOK_TEST + "test_rmsprop_equals_optax_rmsprop")
def notebook_rmsprop(ctx):
  return update_parity(notebook.rmsprop(0.01, rho=0.9, delta=1e-6),
                       optax.rmsprop(0.01, decay=0.9, eps=1e-6), ctx)


@ledger.row("notebook-adam", "research.optim.notebook.adam(1e-3, rho1=0.8, rho2=0.99)",
            "optax.adam(1e-3, b1=0.8, b2=0.99)", ledger.Tolerance(rtol=1e-6),
            test=NOTEBOOK_TEST + "test_adam_equals_optax_adam")
def notebook_adam(ctx):
  return update_parity(notebook.adam(1e-3, rho1=0.8, rho2=0.99, delta=1e-8),
                       optax.adam(1e-3, b1=0.8, b2=0.99, eps=1e-8), ctx)
