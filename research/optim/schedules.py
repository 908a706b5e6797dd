"""Learning-rate schedules eps(t) of the step count t: step decay, linear, warmup + cosine.

Each is a pure function of a (traced) integer count, so it runs inside `jit` and `scan`;
each equals its optax counterpart (tests/optim/test_schedules.py).
"""

import jax.numpy as jnp


def step_decay(init_value: float, gamma: float, every: int):
  """The notebook's manual schedule: multiply the rate by gamma every `every` steps.

  Equals optax.exponential_decay(init_value, every, gamma, staircase=True).
  """
  if every <= 0:
    raise ValueError(f"step_decay: every={every}; expected a positive number of steps.")

  def schedule(count):
    return init_value * jnp.power(gamma, jnp.floor(count / every))  # eps_0 * gamma^floor(t/k)

  return schedule


def linear(init_value: float, end_value: float, transition_steps: int,
           transition_begin: int = 0):
  """init_value until transition_begin, then linear to end_value; optax.linear_schedule."""
  if transition_steps <= 0:
    return lambda count: init_value

  def schedule(count):
    t = jnp.clip(count - transition_begin, 0, transition_steps)
    frac = 1 - t / transition_steps
    return (init_value - end_value) * frac + end_value  # eps_t = eps_0 + (eps_T - eps_0) * t/T

  return schedule


def warmup_cosine(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                  end_value: float = 0.0):
  """Linear warmup to peak_value, then a half cosine down to end_value at `decay_steps`.

  `decay_steps` counts the warmup too, as in optax.warmup_cosine_decay_schedule.
  """
  cosine_steps = decay_steps - warmup_steps
  if cosine_steps <= 0:
    raise ValueError(f"warmup_cosine: decay_steps={decay_steps} must exceed "
                     f"warmup_steps={warmup_steps}.")
  alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
  warmup = linear(init_value, peak_value, warmup_steps)

  def schedule(count):
    t = jnp.minimum(jnp.asarray(count - warmup_steps, jnp.float32), float(cosine_steps))
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / cosine_steps))  # (1 + cos(pi*t/T)) / 2
    decayed = peak_value * ((1 - alpha) * cosine + alpha)
    return jnp.where(count < warmup_steps, warmup(count), decayed)

  return schedule
