"""The hand-written aliases against optax 0.2.8: signatures, 1000-step parity of updates and
states, dtypes, compilation count, sharding, and convergence."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from research import optim

ALIASES = ["sgd", "adagrad", "rmsprop", "adam", "adamw"]
STEPS = 1000
RTOL = 1e-6  # f32; the twins run the same arithmetic in the same order


def _schedule():
  return optax.warmup_cosine_decay_schedule(0.0, 0.05, warmup_steps=100, decay_steps=STEPS)


def _wd_schedule():
  return optax.linear_schedule(0.1, 0.0, transition_steps=STEPS)


# (alias, kwargs): every option that changes the arithmetic, plus schedules for rates.
CASES = [
    ("sgd", dict(learning_rate=0.1)),
    ("sgd", dict(learning_rate=0.05, momentum=0.9)),
    ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("sgd", dict(learning_rate=_schedule(), momentum=0.5, accumulator_dtype=jnp.bfloat16)),
    ("adagrad", dict(learning_rate=0.1)),
    ("adagrad", dict(learning_rate=_schedule(), initial_accumulator_value=0.0, eps=1e-3)),
    ("rmsprop", dict(learning_rate=0.01)),
    ("rmsprop", dict(learning_rate=0.01, decay=0.5, eps=1e-4, initial_scale=1.0,
                     eps_in_sqrt=False)),
    ("rmsprop", dict(learning_rate=0.01, bias_correction=True)),
    ("rmsprop", dict(learning_rate=0.01, centered=True, eps=1e-2)),
    ("rmsprop", dict(learning_rate=0.01, centered=True, eps=1e-2, eps_in_sqrt=False,
                     bias_correction=True)),
    ("rmsprop", dict(learning_rate=_schedule(), momentum=0.9)),
    ("rmsprop", dict(learning_rate=0.01, momentum=0.9, nesterov=True, centered=True, eps=1e-2)),
    ("adam", dict(learning_rate=1e-3)),
    ("adam", dict(learning_rate=_schedule(), b1=0.5, b2=0.99, eps=1e-6, eps_root=1e-8)),
    ("adam", dict(learning_rate=1e-3, mu_dtype=jnp.bfloat16)),
    ("adam", dict(learning_rate=1e-3, nesterov=True)),
    ("adamw", dict(learning_rate=1e-3)),
    ("adamw", dict(learning_rate=1e-3, weight_decay=0.1,
                   mask={"w": True, "b": False, "s": True, "deep": [False, True]})),
    ("adamw", dict(learning_rate=_schedule(), weight_decay=_wd_schedule(),
                   mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p), nesterov=True)),
    ("adamw", dict(learning_rate=1e-3, weight_decay=0.05, mu_dtype=jnp.bfloat16,
                   eps_root=1e-10)),
]


def _case_id(case):
  name, kwargs = case
  return name + "-" + "-".join(k for k in kwargs if k != "learning_rate") if len(kwargs) > 1 \
      else name


def _params(key, dtype=jnp.float32):
  shapes = {"w": (3, 4), "b": (4,), "s": (), "deep": [(2, 3, 5), (7,)]}
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
      treedef, [jax.random.normal(k, s, dtype) for k, s in zip(keys, leaves)])


def _random_like(tree, key):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                      for k, x in zip(keys, leaves)])


def _gradient_stream(params, key, steps):
  """`steps` random gradient trees stacked on a leading axis (NumPy: nothing to compile)."""
  rng = np.random.default_rng(jax.random.randint(key, (), 0, 2**31 - 1).item())
  # Gradients of varied size from step to step, so moments see more than one scale.
  scale_S = np.exp(rng.standard_normal(steps))
  return jax.tree.map(
      lambda p: jnp.asarray(scale_S.reshape((steps,) + (1,) * p.ndim)
                            * rng.standard_normal((steps,) + p.shape), p.dtype), params)


def _run(tx, params, key, steps=STEPS):
  """`steps` updates on random gradients inside one jitted scan; all updates and final state."""
  grads = _gradient_stream(params, key, steps)

  @jax.jit
  def run(params, grads):
    def step(carry, g):
      params, state = carry
      updates, state = tx.update(g, state, params)
      return (optax.apply_updates(params, updates), state), updates
    (params, state), updates = jax.lax.scan(step, (params, tx.init(params)), grads)
    return params, state, updates

  return run(params, grads)


def _assert_trees_close(actual, expected, what):
  a_leaves, e_leaves = jax.tree.leaves(actual), jax.tree.leaves(expected)
  assert len(a_leaves) == len(e_leaves), f"{what}: {len(a_leaves)} leaves vs {len(e_leaves)}"
  for i, (a, e) in enumerate(zip(a_leaves, e_leaves)):
    assert a.dtype == e.dtype and a.shape == e.shape, f"{what} leaf {i}: {a.dtype}{a.shape}"
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64),
                               rtol=RTOL, atol=0, err_msg=f"{what} leaf {i}")


@pytest.mark.parametrize("name", ALIASES)
def test_signature_matches_optax(name):
  ours = inspect.signature(getattr(optim, name)).parameters.values()
  theirs = inspect.signature(getattr(optax, name)).parameters.values()
  assert [(p.name, p.kind, p.default) for p in ours] == \
      [(p.name, p.kind, p.default) for p in theirs]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_1000_steps_equal_optax(case):
  name, kwargs = case
  key_params, key_grads = jax.random.split(jax.random.key(len(kwargs)))
  params = _params(key_params)
  ours = _run(getattr(optim, name)(**kwargs), params, key_grads)
  theirs = _run(getattr(optax, name)(**kwargs), params, key_grads)
  _assert_trees_close(ours[2], theirs[2], f"{name} updates")
  _assert_trees_close(ours[1], theirs[1], f"{name} state")
  _assert_trees_close(ours[0], theirs[0], f"{name} params")
  assert np.all(np.isfinite(np.asarray(jax.tree.leaves(ours[2])[0])))


# Defaults plus the options that add state.
DTYPE_CASES = [("sgd", dict(momentum=0.9)), ("adagrad", {}),
               ("rmsprop", dict(centered=True, momentum=0.9, bias_correction=True)),
               ("adam", {}),
               ("adamw", dict(weight_decay=0.1,
                              mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)))]


@pytest.mark.parametrize("name,kwargs", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_bf16_params_keep_their_dtype(name, kwargs):
  params = _params(jax.random.key(0), jnp.bfloat16)
  tx, ref = getattr(optim, name)(1e-2, **kwargs), getattr(optax, name)(1e-2, **kwargs)
  new_params, state, updates = _run(tx, params, jax.random.key(1), steps=5)
  for leaf in jax.tree.leaves((new_params, updates)):
    assert leaf.dtype == jnp.bfloat16
  state_dtypes = [x.dtype for x in jax.tree.leaves(state)]
  assert all(d in (jnp.bfloat16, jnp.int32) for d in state_dtypes), state_dtypes
  assert state_dtypes == [x.dtype for x in jax.tree.leaves(ref.init(params))]


@pytest.mark.parametrize("name,kwargs", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_second_update_does_not_recompile(name, kwargs):
  tx = getattr(optim, name)(_schedule(), **kwargs)
  params = _params(jax.random.key(0))
  update = jax.jit(tx.update)
  state = tx.init(params)
  for i in range(3):
    updates, state = update(_random_like(params, jax.random.key(i)), state, params)
    params = optax.apply_updates(params, updates)
  assert update._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("name,kwargs", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_init_and_update_keep_sharding(name, kwargs):
  mesh = jax.make_mesh((4,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
  specs = {"rows": P("x", None), "cols": P(None, "x"), "vec": P("x"), "rep": P()}
  shapes = {"rows": (8, 3), "cols": (3, 8), "vec": (12,), "rep": (5,)}
  tx = getattr(optim, name)(1e-2, **kwargs)

  def check(tree, what):
    checked = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      key = next((p.key for p in path if getattr(p, "key", None) in shapes), None)
      if key is not None and leaf.shape == shapes[key]:
        assert leaf.sharding.is_equivalent_to(params[key].sharding, leaf.ndim), \
            f"{what} {jax.tree_util.keystr(path)}: {leaf.sharding}"
        checked += 1
    assert checked >= len(shapes), f"{what}: only {checked} parameter-shaped leaves"

  with jax.set_mesh(mesh):
    params = {k: jnp.ones(shapes[k], out_sharding=NamedSharding(mesh, specs[k]))
              for k in shapes}
    grads = jax.tree.map(lambda p: p * 0.5, params)
    state = tx.init(params)
    check(state, "init state")
    check(jax.jit(tx.init)(params), "jitted init state")
    updates, new_state = jax.jit(tx.update)(grads, state, params)
    check(updates, "updates")
    check(new_state, "updated state")
    # Same types (shape, dtype, sharding) before and after: a train step never re-specialises.
    assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(jax.typeof, state)


def _minimize(tx, loss, x0, steps):
  def step(carry, _):
    x, state = carry
    updates, state = tx.update(jax.grad(loss)(x), state, x)
    return (optax.apply_updates(x, updates), state), None
  (x, _), _ = jax.jit(lambda x: jax.lax.scan(step, (x, tx.init(x)), length=steps))(x0)
  return x


def _parabola(x):
  return 0.5 * jnp.sum(jnp.array([1.0, 4.0, 10.0]) * x ** 2)  # minimum 0 at x = 0


def _rosenbrock(x):
  return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # minimum 0 at x = (1, 1)


CONVERGENCE = [  # alias, kwargs for the parabola, kwargs for Rosenbrock
    ("sgd", dict(learning_rate=0.1), dict(learning_rate=1e-3, momentum=0.9)),
    ("adagrad", dict(learning_rate=0.5), dict(learning_rate=1.0)),
    ("rmsprop", dict(learning_rate=optax.linear_schedule(0.05, 0.0, 2000)),
     dict(learning_rate=optax.linear_schedule(0.01, 0.0, 5000))),
    ("adam", dict(learning_rate=0.05), dict(learning_rate=optax.linear_schedule(0.02, 0.0, 5000))),
    ("adamw", dict(learning_rate=0.05, weight_decay=0.0),
     dict(learning_rate=optax.linear_schedule(0.02, 0.0, 5000), weight_decay=0.0)),
]


@pytest.mark.parametrize("name,on_parabola,on_rosenbrock", CONVERGENCE,
                         ids=[c[0] for c in CONVERGENCE])
def test_converges_on_parabola_and_rosenbrock(name, on_parabola, on_rosenbrock):
  x = _minimize(getattr(optim, name)(**on_parabola), _parabola, jnp.array([3.0, -2.0, 1.0]), 2000)
  np.testing.assert_allclose(x, 0.0, atol=1e-3)
  # AdaGrad's rate decays as 1/sqrt(t) (the chapter's point), so it gets more steps.
  steps = 20000 if name == "adagrad" else 5000
  x = _minimize(getattr(optim, name)(**on_rosenbrock), _rosenbrock, jnp.array([-1.5, 2.0]), steps)
  np.testing.assert_allclose(x, [1.0, 1.0], atol=2e-2)
