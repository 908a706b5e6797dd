"""Weight initialisers with `jax.nn.initializers`' signature: `init(key, shape, dtype)`.

Why the scale matters: a linear layer's output variance is fan_in * Var(w) * E[x^2]. Pick
Var(w) = 1/fan_in (LeCun) and a tanh net keeps its signal; average the fans (Xavier/Glorot) and
the backward pass keeps it too; double it (Kaiming/He) and ReLU, which zeroes half the signal,
keeps it. Zeros (or any constant) gives every unit of a layer the same value and the same
gradient forever: the symmetry is never broken.

Fans: the last axis is fan-out, the one before fan-in, any others a convolution's window
(multiplied into both), as in `jax.nn.initializers`.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def fans(shape) -> tuple[float, float]:
  """(fan_in, fan_out) of a weight of this shape: (in, out) or (*window, in, out)."""
  if len(shape) < 2:
    raise ValueError(f"fans: a weight needs at least 2 axes (in, out); got shape {tuple(shape)}.")
  window = math.prod(shape[:-2])
  return shape[-2] * window, shape[-1] * window


def _fan(shape, mode: str) -> float:
  fan_in, fan_out = fans(shape)
  if mode == "fan_in":
    return fan_in
  if mode == "fan_out":
    return fan_out
  if mode == "fan_avg":
    return (fan_in + fan_out) / 2
  raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'; got {mode!r}.")


def _normal(key, shape, dtype, variance):
  return jax.random.normal(key, shape, dtype) * jnp.sqrt(jnp.asarray(variance, dtype))


def _uniform(key, shape, dtype, variance):
  # U(-a, a) has variance a^2 / 3, so a = sqrt(3 var)
  return jax.random.uniform(key, shape, dtype, -1) * jnp.sqrt(jnp.asarray(3 * variance, dtype))


def zeros(key, shape, dtype=jnp.float32):
  del key
  return jnp.zeros(shape, dtype)


def constant(value: float) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.full(shape, value, dtype)
  return init


def normal(stddev: float = 1.0) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    return _normal(key, shape, dtype, stddev ** 2)  # N(0, stddev^2)
  return init


def _scaled(scale_of_shape, distribution: str) -> Initializer:
  sample = {"normal": _normal, "uniform": _uniform}[distribution]

  def init(key, shape, dtype=jnp.float32):
    return sample(key, shape, dtype, scale_of_shape(shape))
  return init


def xavier_normal() -> Initializer:
  return _scaled(lambda s: 1.0 / _fan(s, "fan_avg"), "normal")  # Var = 2 / (fan_in + fan_out)


def xavier_uniform() -> Initializer:
  return _scaled(lambda s: 1.0 / _fan(s, "fan_avg"), "uniform")


def kaiming_gain(negative_slope: float = 0.0) -> float:
  """Variance gain 2 / (1 + a^2): ReLU (a = 0) keeps half the signal, leaky ReLU a bit more."""
  return 2.0 / (1.0 + negative_slope ** 2)


def kaiming_normal(mode: str = "fan_in", negative_slope: float = 0.0) -> Initializer:
  gain = kaiming_gain(negative_slope)
  return _scaled(lambda s: gain / _fan(s, mode), "normal")  # Var = 2 / fan_in for ReLU


def kaiming_uniform(mode: str = "fan_in", negative_slope: float = 0.0) -> Initializer:
  gain = kaiming_gain(negative_slope)
  return _scaled(lambda s: gain / _fan(s, mode), "uniform")


def lecun_normal() -> Initializer:
  return _scaled(lambda s: 1.0 / _fan(s, "fan_in"), "normal")  # Var = 1 / fan_in


def lecun_uniform() -> Initializer:
  return _scaled(lambda s: 1.0 / _fan(s, "fan_in"), "uniform")


glorot_normal, glorot_uniform = xavier_normal, xavier_uniform
he_normal, he_uniform = kaiming_normal, kaiming_uniform


def variance(name: str, shape, negative_slope: float = 0.0) -> float:
  """The variance each named scheme aims for, from the formula."""
  fan_in, fan_out = fans(shape)
  return {
      "zeros": 0.0,
      "normal": 1.0,
      "xavier": 2.0 / (fan_in + fan_out),
      "kaiming": kaiming_gain(negative_slope) / fan_in,
      "lecun": 1.0 / fan_in,
  }[name]


def get(name: str, negative_slope: float = 0.0) -> Initializer:
  """The sweep's names -> initialisers (normal variants; zeros; N(0, 1))."""
  table = {
      "zeros": lambda: zeros,
      "normal": lambda: normal(1.0),
      "xavier": xavier_normal,
      "kaiming": lambda: kaiming_normal(negative_slope=negative_slope),
      "lecun": lecun_normal,
  }
  if name not in table:
    raise ValueError(f"unknown initialiser {name!r}; expected one of {sorted(table)}.")
  return table[name]()
