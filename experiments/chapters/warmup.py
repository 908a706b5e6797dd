"""Warm-up chapter: the derivative is a slope, and jax.grad computes it exactly."""

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import warmup as warmup_config
from research import files
from research import tour
from research.autodiff import numerical


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  x = jnp.linspace(-config.x_range, config.x_range, config.grid_points)
  grad_square = jax.jit(jax.vmap(jax.grad(lambda t: t ** 2)))(x)
  grad_error = float(jnp.max(jnp.abs(grad_square - 2 * x)))  # d/dx x^2 = 2x

  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.plot(x, x ** 2, label="f(x) = x^2")
  ax.plot(x, grad_square, label="jax.grad f")
  ax.legend()
  ax.set_xlabel("x")
  files.save_figure(fig, out_dir / "grad_square.png")

  steps = np.asarray(config.steps)
  exact = np.cos(config.point)  # d/dx sin x = cos x
  central = [abs(numerical.central_difference(np.sin, config.point, h) - exact) for h in steps]
  forward = [abs(numerical.forward_difference(np.sin, config.point, h) - exact) for h in steps]
  order_central = numerical.convergence_order(steps, central)
  order_forward = numerical.convergence_order(steps, forward)

  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.loglog(steps, central, "o-", label=f"central, slope {order_central:.2f}")
  ax.loglog(steps, forward, "s-", label=f"forward, slope {order_forward:.2f}")
  ax.set_xlabel("h")
  ax.set_ylabel("|error| of f'(0.7), f = sin")
  ax.legend()
  files.save_figure(fig, out_dir / "finite_differences.png")

  return [
      tour.Claim.at_most("jax.grad of x^2 is exactly 2x", "max |error|", grad_error, 0.0,
                         figure="grad_square.png"),
      tour.Claim.within("a central difference has error O(h^2)", "order", order_central,
                        1.8, 2.2, fmt="{:.2f}", figure="finite_differences.png"),
      tour.Claim.within("a forward difference has error O(h)", "order", order_forward,
                        0.8, 1.2, fmt="{:.2f}", figure="finite_differences.png"),
  ]


chapter = tour.experiment_chapter(
    "warmup", "Warm-up: derivatives", 0,
    warmup_config.get_config, run_experiment)
