"""The gradient transformations behind SGD, momentum, AdaGrad, RMSProp and Adam, optax-style.

Each is a `NamedTuple` state with `init_fn` / `update_fn` returned as an
`optax.GradientTransformation`, a twin of the optax transform of the same name. The arithmetic
runs in the same order, so the twins agree within rtol 1e-6 after 1000 steps
(tests/optim/test_alias.py) and compile to the same optimised HLO (BENCHMARKS.md).
Gradients g, updates u, parameters p; all state keeps the dtype of the parameters unless asked.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Schedule = Callable[[jax.Array], jax.Array]


def safe_increment(count: jax.Array) -> jax.Array:
  """count + 1, saturating at the dtype's largest value instead of wrapping to negative."""
  count = jnp.asarray(count)
  if jnp.issubdtype(count.dtype, jnp.integer):
    largest = jnp.iinfo(count.dtype).max
  elif jnp.issubdtype(count.dtype, jnp.floating):
    largest = jnp.finfo(count.dtype).max
  else:
    raise ValueError(f"safe_increment: count has dtype {count.dtype}; expected int or float.")
  largest = jnp.array(largest, count.dtype)
  return jnp.where(count < largest, count + jnp.array(1, count.dtype), largest)


def _canonical(dtype):
  return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def _cast(tree, dtype):
  return tree if dtype is None else jax.tree.map(lambda t: t.astype(dtype), tree)


def _debias(moment, decay, count):
  # 1 - decay^t in float32, cast only afterwards: decay^t in bf16 rounds to 1 and divides by 0.
  correction = 1 - decay ** count
  return jax.tree.map(lambda t: t / correction.astype(t.dtype), moment)


class TraceState(NamedTuple):
  trace: optax.Updates


def trace(decay, nesterov: bool = False, accumulator_dtype: Any = None
          ) -> optax.GradientTransformation:
  """Momentum in optax's form t <- g + a*t (the notebook's v is -eps*t, see notebook.py)."""
  accumulator_dtype = _canonical(accumulator_dtype)

  def init_fn(params):
    return TraceState(trace=jax.tree.map(lambda p: jnp.zeros_like(p, dtype=accumulator_dtype),
                                         params))

  def update_fn(updates, state, params=None):
    del params
    accumulate = lambda g, t: g + decay * t  # t <- g + a*t
    new_trace = jax.tree.map(accumulate, updates, state.trace)
    # Nesterov looks one step ahead: u = g + a*t_new.
    updates = jax.tree.map(accumulate, updates, new_trace) if nesterov else new_trace
    return updates, TraceState(trace=_cast(new_trace, accumulator_dtype))

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRssState(NamedTuple):
  sum_of_squares: optax.Updates


def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7) -> optax.GradientTransformation:
  """AdaGrad's scaling: divide by the root of the sum of all squared gradients so far."""

  def init_fn(params):
    return ScaleByRssState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value),
                                        params))

  def update_fn(updates, state, params=None):
    del params
    r = jax.tree.map(lambda g, r: g * g + r, updates, state.sum_of_squares)  # r <- r + g*g
    # An all-zero history gives a zero step, not 0/0.
    inv_root = jax.tree.map(lambda r: jnp.where(r > 0, jax.lax.rsqrt(r + eps), 0.0), r)
    updates = jax.tree.map(lambda s, g: s * g, inv_root, updates)  # u = g / sqrt(r + eps)
    return updates, ScaleByRssState(sum_of_squares=r)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
  nu: optax.Updates


class ScaleByRmsWithCountState(NamedTuple):
  count: jax.Array  # int32 scalar
  nu: optax.Updates


def _rms_scaling(nu_hat, eps, eps_in_sqrt):
  if eps_in_sqrt:
    return jax.tree.map(lambda n: jax.lax.rsqrt(n + eps), nu_hat)  # 1 / sqrt(nu + eps)
  return jax.tree.map(lambda n: 1 / (jnp.sqrt(n) + eps), nu_hat)  # 1 / (sqrt(nu) + eps)


def scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt: bool = True,
                 bias_correction: bool = False) -> optax.GradientTransformation:
  """RMSProp's scaling: divide by the root of an exponential average of squared gradients."""

  def init_fn(params):
    nu = jax.tree.map(lambda p: jnp.full_like(p, initial_scale), params)
    if bias_correction:
      return ScaleByRmsWithCountState(count=jnp.zeros([], jnp.int32), nu=nu)
    return ScaleByRmsState(nu=nu)

  def update_fn(updates, state, params=None):
    del params
    nu = jax.tree.map(lambda g, n: (1 - decay) * g ** 2 + decay * n,  # r <- rho*r + (1-rho)*g^2
                      updates, state.nu)
    if bias_correction:
      count = safe_increment(state.count)
      nu_hat = _debias(nu, decay, count)
    else:
      nu_hat = nu
    updates = jax.tree.map(lambda s, g: s * g, _rms_scaling(nu_hat, eps, eps_in_sqrt), updates)
    if bias_correction:
      return updates, ScaleByRmsWithCountState(count=count, nu=nu)
    return updates, ScaleByRmsState(nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRStdDevState(NamedTuple):
  mu: optax.Updates
  nu: optax.Updates


class ScaleByRStdDevWithCountState(NamedTuple):
  count: jax.Array  # int32 scalar
  mu: optax.Updates
  nu: optax.Updates


def scale_by_stddev(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt: bool = True,
                    bias_correction: bool = False) -> optax.GradientTransformation:
  """Centered RMSProp: divide by the root of the running variance nu - mu^2 instead."""

  def init_fn(params):
    mu = jax.tree.map(jnp.zeros_like, params)
    nu = jax.tree.map(lambda p: jnp.full_like(p, initial_scale), params)
    if bias_correction:
      return ScaleByRStdDevWithCountState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)
    return ScaleByRStdDevState(mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda g, m: (1 - decay) * g + decay * m, updates, state.mu)
    nu = jax.tree.map(lambda g, n: (1 - decay) * g ** 2 + decay * n, updates, state.nu)
    if bias_correction:
      count = safe_increment(state.count)
      mu_hat, nu_hat = _debias(mu, decay, count), _debias(nu, decay, count)
    else:
      mu_hat, nu_hat = mu, nu
    if eps_in_sqrt:
      scaling = jax.tree.map(lambda m, n: jax.lax.rsqrt(n - m * m + eps), mu_hat, nu_hat)
    else:
      scaling = jax.tree.map(lambda m, n: 1 / (jnp.sqrt(n - m * m) + eps), mu_hat, nu_hat)
    updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
    if bias_correction:
      return updates, ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
    return updates, ScaleByRStdDevState(mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdamState(NamedTuple):
  count: jax.Array  # int32 scalar, the notebook's t
  mu: optax.Updates  # the notebook's s
  nu: optax.Updates  # the notebook's r


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype: Any = None, *,
                  nesterov: bool = False) -> optax.GradientTransformation:
  """Adam's scaling: bias-corrected first moment over the root of the second."""
  mu_dtype = _canonical(mu_dtype)

  def init_fn(params):
    mu = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=mu_dtype), params)
    nu = jax.tree.map(jnp.zeros_like, params)
    return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda g, s: (1 - b1) * g + b1 * s,  # s <- rho1*s + (1-rho1)*g
                      updates, state.mu)
    nu = jax.tree.map(lambda g, r: (1 - b2) * g ** 2 + b2 * r,  # r <- rho2*r + (1-rho2)*g^2
                      updates, state.nu)
    count = safe_increment(state.count)  # t <- t + 1
    if nesterov:
      # Nadam: the next step's debiased moment, b1*s_hat(t+1) + (1-b1)*g_hat(t).
      mu_hat = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g,
                            _debias(mu, b1, safe_increment(count)),
                            _debias(updates, b1, count))
    else:
      mu_hat = _debias(mu, b1, count)  # s_hat = s / (1 - rho1^t)
    nu_hat = _debias(nu, b2, count)  # r_hat = r / (1 - rho2^t)
    # u = s_hat / (sqrt(r_hat) + delta)
    updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
    mu = _cast(mu, mu_dtype)
    nu = jax.tree.map(lambda n, old: n.astype(old.dtype), nu, state.nu)
    return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


class WeightDecayScheduleState(NamedTuple):
  count: jax.Array  # int32 scalar


def _apply_mask(mask, updates, new_updates):
  """Keeps new_updates where the (prefix) mask is True and the old updates elsewhere."""
  return jax.tree.map(lambda m, new, old: new if m else old, mask, new_updates, updates)


def add_decayed_weights(weight_decay=0.0, mask=None) -> optax.GradientTransformation:
  """Decoupled weight decay (AdamW): u <- u + wd*p, only where `mask` (a tree or fn) is True."""
  scheduled = callable(weight_decay)

  def init_fn(params):
    del params
    if scheduled:
      return WeightDecayScheduleState(count=jnp.zeros([], jnp.int32))
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("add_decayed_weights needs `params` in update(updates, state, params).")
    new_state = WeightDecayScheduleState(safe_increment(state.count)) if scheduled else state
    if not scheduled and isinstance(weight_decay, (int, float)) and weight_decay == 0.0:
      return updates, new_state
    wd = weight_decay(state.count) if scheduled else weight_decay
    decayed = jax.tree.map(lambda g, p: g + wd * p, updates, params)  # u <- u + wd*p
    if mask is not None:
      decayed = _apply_mask(mask(updates) if callable(mask) else mask, updates, decayed)
    return decayed, new_state

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByScheduleState(NamedTuple):
  count: jax.Array  # int32 scalar, the step the schedule is evaluated at


def scale_by_learning_rate(learning_rate: float | Schedule | None = None, *,
                           flip_sign: bool = True) -> optax.GradientTransformation:
  """u <- -eps*u; `learning_rate` is a number or a schedule eps(t) of the step count."""
  if learning_rate is None:
    return optax.identity()
  sign = -1 if flip_sign else 1

  if not callable(learning_rate):
    step_size = sign * learning_rate

    def update_constant(updates, state, params=None):
      del params
      return jax.tree.map(lambda g: step_size * g, updates), state  # u = -eps*g

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_constant)

  def init_fn(params):
    del params
    return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    step_size = sign * learning_rate(state.count)
    updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g,  # u = -eps_t*g
                           updates)
    return updates, ScaleByScheduleState(count=safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)
