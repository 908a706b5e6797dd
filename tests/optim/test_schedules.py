"""Schedules against optax's, at every count, traced and not."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research import optim

PAIRS = [
    (optim.step_decay(0.1, gamma=0.5, every=30),
     optax.exponential_decay(0.1, transition_steps=30, decay_rate=0.5, staircase=True)),
    (optim.linear(1.0, 0.01, transition_steps=100),
     optax.linear_schedule(1.0, 0.01, transition_steps=100)),
    (optim.linear(0.0, 0.3, transition_steps=50, transition_begin=20),
     optax.linear_schedule(0.0, 0.3, transition_steps=50, transition_begin=20)),
    (optim.warmup_cosine(0.0, 1.0, warmup_steps=20, decay_steps=200, end_value=0.1),
     optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=20, decay_steps=200,
                                        end_value=0.1)),
    (optim.warmup_cosine(1e-4, 3e-3, warmup_steps=1, decay_steps=300),
     optax.warmup_cosine_decay_schedule(1e-4, 3e-3, warmup_steps=1, decay_steps=300)),
]


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_schedule_equals_optax(ours, theirs):
  counts = jnp.arange(400, dtype=jnp.int32)
  # Compiled against compiled: XLA may turn x/T into x*(1/T), which eager arithmetic does not.
  np.testing.assert_allclose(jax.jit(jax.vmap(ours))(counts), jax.jit(jax.vmap(theirs))(counts),
                             rtol=1e-6, atol=1e-9)
  for count in (0, 1, 29, 30, 199, 250):
    np.testing.assert_allclose(ours(count), theirs(count), rtol=1e-6, atol=1e-9)


def test_step_decay_multiplies_by_gamma_every_k_steps():
  schedule = optim.step_decay(0.2, gamma=0.1, every=10)
  assert [float(schedule(t)) for t in (0, 9, 10, 19, 20)] == pytest.approx(
      [0.2, 0.2, 0.02, 0.02, 0.002])
