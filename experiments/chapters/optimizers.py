"""Gradient descent chapter: GD, momentum, AdaGrad, RMSProp and Adam at work.

1. the worked example: GD on b of y = w_hat*x + b lands on the closed-form b*;
2. the ravine: momentum damps the oscillation across the steep walls;
3. learning-rate decay: AdaGrad's effective rate falls too early, RMSProp's does not;
4. full-batch GD vs minibatch SGD on 10^6 samples: loss against wall time and step memory.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import optax

from experiments.configs import optimizers as optimizers_config
from research import files
from research import optim
from research import runs
from research import tour
from research.optim import notebook


def _trajectory(tx, loss, theta0, steps):
  """theta_0 .. theta_steps of `tx` minimising `loss`, from one jitted scan."""

  @jax.jit
  def run(theta0):
    def step(carry, _):
      theta, state = carry
      update, state = tx.update(jax.grad(loss)(theta), state, theta)
      theta = optax.apply_updates(theta, update)
      return (theta, state), theta
    _, thetas = jax.lax.scan(step, (theta0, tx.init(theta0)), length=steps)
    return jnp.concatenate([theta0[None], thetas])

  return np.asarray(run(jnp.asarray(theta0, jnp.float32)))


# 1. The worked example ------------------------------------------------------------------------

def worked_example(cfg, out_dir: Path) -> list[tour.Claim]:
  x, y = jnp.array(cfg.x), jnp.array(cfg.y)

  def loss(b):
    e = cfg.w_hat * x + b - y  # e_i = w_hat*x_i + b - y_i
    return 0.5 * jnp.sum(e ** 2)  # L = 1/2 sum e_i^2

  b_star = float(jnp.mean(y - cfg.w_hat * x))  # dL/db = sum e_i = 0
  bs = _trajectory(notebook.gradient_descent(cfg.learning_rate), loss, cfg.b0, cfg.steps)
  b_final = float(bs[-1])
  print(f"worked example: GD b = {b_final:.8f}, closed form b* = {b_star:.8f}")

  grid = np.linspace(min(cfg.b0, b_star) - 1, max(cfg.b0, b_star) + 1, 200)
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.plot(grid, jax.vmap(loss)(jnp.asarray(grid)), label="L(b) = 1/2 sum e^2")
  ax.plot(bs, jax.vmap(loss)(jnp.asarray(bs)), "o-", ms=3, label=f"GD, eps={cfg.learning_rate}")
  ax.axvline(b_star, color="k", ls=":", label=f"b* = {b_star:.3f}")
  ax.set_xlabel("b")
  ax.set_ylabel("L(b)")
  ax.legend()
  files.save_figure(fig, out_dir / "worked_example.png")
  return [tour.Claim.close_to(
      "GD on the worked example ends at the closed-form b* = mean(y - w_hat x)",
      "b", b_final, b_star, 1e-5, fmt="{:.8f}", figure="worked_example.png")]


# 2. The ravine ------------------------------------------------------------------------------

def _sign_changes(values) -> int:
  signs = np.sign(values)
  signs = signs[signs != 0]
  return int(np.sum(signs[1:] != signs[:-1]))


def _rosenbrock(theta):
  return (1 - theta[0]) ** 2 + 100 * (theta[1] - theta[0] ** 2) ** 2


def ravine(cfg, out_dir: Path) -> list[tour.Claim]:
  c = jnp.array(cfg.curvatures)

  def quadratic(theta):
    return 0.5 * jnp.sum(c * theta ** 2)  # L = 1/2 (c_x x^2 + c_y y^2)

  a = cfg.momentum
  on_quadratic = {
      "GD": notebook.gradient_descent(cfg.gd_rate),
      # eps*(1-a): the same terminal speed eps/(1-a) along the flat floor as GD's eps.
      f"momentum a={a}": notebook.momentum(cfg.gd_rate * (1 - a), a),
      "AdaGrad": notebook.adagrad(cfg.adagrad_rate),
      "RMSProp": notebook.rmsprop(cfg.rmsprop_rate),
      "Adam": notebook.adam(cfg.adam_rate),
  }
  on_rosenbrock = {
      "GD": notebook.gradient_descent(cfg.rosenbrock_gd_rate),
      f"momentum a={a}": notebook.momentum(cfg.rosenbrock_gd_rate * (1 - a), a),
      "AdaGrad": notebook.adagrad(cfg.rosenbrock_adagrad_rate),
      "RMSProp": notebook.rmsprop(cfg.rosenbrock_rmsprop_rate),
      "Adam": notebook.adam(cfg.rosenbrock_adam_rate),
  }
  paths_q = {k: _trajectory(tx, quadratic, cfg.start, cfg.steps) for k, tx in on_quadratic.items()}
  paths_r = {k: _trajectory(tx, _rosenbrock, cfg.rosenbrock_start, cfg.rosenbrock_steps)
             for k, tx in on_rosenbrock.items()}
  momentum_name = f"momentum a={a}"
  flips_gd = _sign_changes(paths_q["GD"][:, 1])  # the steep coordinate y
  flips_momentum = _sign_changes(paths_q[momentum_name][:, 1])
  loss_gd = float(quadratic(paths_q["GD"][-1]))
  loss_momentum = float(quadratic(paths_q[momentum_name][-1]))
  # The notebook's v <- a*v - eps*g against optax's t <- g + a*t, u = -eps*t: one path.
  optax_form = _trajectory(optim.sgd(cfg.gd_rate * (1 - a), momentum=a), quadratic, cfg.start,
                           cfg.steps)
  form_gap = float(np.max(np.abs(optax_form - paths_q[momentum_name])))
  print(f"ravine: sign changes of the steep coordinate, GD {flips_gd}, momentum "
        f"{flips_momentum}; final loss GD {loss_gd:.3g}, momentum {loss_momentum:.3g}")

  fig, axes = plt.subplots(2, 2, figsize=(11, 8))
  for col, (title, loss, paths, lim) in enumerate([
      ("ill-conditioned quadratic", quadratic, paths_q, ((-9, 2), (-1.5, 1.5))),
      ("Rosenbrock", _rosenbrock, paths_r, ((-2, 2), (-1, 3)))]):
    gx, gy = np.meshgrid(np.linspace(*lim[0], 200), np.linspace(*lim[1], 200))
    grid = jnp.stack([gx, gy], -1).reshape(-1, 2)
    z = np.asarray(jax.vmap(loss)(grid)).reshape(gx.shape)
    ax = axes[0, col]
    ax.contour(gx, gy, np.log10(z + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
    for name, path in paths.items():
      label = name
      if col == 0:
        label += f" ({_sign_changes(path[:, 1])} sign changes of y)"
      ax.plot(path[:, 0], path[:, 1], ".-", ms=2, lw=0.8, label=label)
    ax.set_xlim(*lim[0])
    ax.set_ylim(*lim[1])
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax = axes[1, col]
    for name, path in paths.items():
      ax.semilogy(np.asarray(jax.vmap(loss)(jnp.asarray(path))) + 1e-12, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
  files.save_figure(fig, out_dir / "ravine.png")
  return [
      tour.Claim.at_most("momentum damps the oscillation across the ravine (sign changes of the "
                         "steep coordinate, momentum / GD, same flat-direction speed)",
                         f"{flips_momentum}/{flips_gd} =", flips_momentum / max(flips_gd, 1),
                         0.5, fmt="{:.2f}", figure="ravine.png"),
      tour.Claim.at_most("the notebook's momentum v <- a*v - eps*g; theta <- theta + v is "
                         "optax's trace form t <- g + a*t; theta <- theta - eps*t (constant eps)",
                         "max |theta gap| over the path", form_gap, 1e-5, fmt="{:.2g}",
                         figure="ravine.png"),
      tour.Claim.at_most("with the oscillation damped, momentum ends lower in the ravine than GD",
                         "final loss momentum / GD", loss_momentum / loss_gd, 1.0, fmt="{:.3g}",
                         figure="ravine.png"),
  ]


# 3. Learning-rate decay -------------------------------------------------------------------

def _regression(rng, n, d, noise, weight_scale, condition):
  """y = x.w + noise; feature scales spread so the Hessian has the given condition number."""
  scales_D = np.logspace(0, -0.5 * np.log10(condition), d)
  x_NxD = (rng.standard_normal((n, d)) * scales_D).astype(np.float32)
  w_D = (weight_scale * rng.standard_normal(d)).astype(np.float32)
  y_N = (x_NxD @ w_D + noise * rng.standard_normal(n)).astype(np.float32)
  return x_NxD, y_N


def _mse(w_D, x_NxD, y_N):
  return 0.5 * jnp.mean((x_NxD @ w_D - y_N) ** 2)  # L = 1/(2m) sum (x_i.w - y_i)^2


def _optimal_loss(x_NxD, y_N) -> float:
  w_D, *_ = np.linalg.lstsq(x_NxD.astype(np.float64), y_N.astype(np.float64), rcond=None)
  return float(0.5 * np.mean((x_NxD.astype(np.float64) @ w_D - y_N) ** 2))


def learning_rate_decay(cfg, out_dir: Path, seed: int) -> list[tour.Claim]:
  rng = np.random.default_rng(seed)
  x_NxD, y_N = _regression(rng, cfg.num_samples, cfg.dim, cfg.noise, cfg.weight_scale,
                           cfg.condition)
  best = _optimal_loss(x_NxD, y_N)
  sampler = optim.MinibatchSampler(cfg.num_samples, cfg.batch_size, seed)
  idx_TxM = np.stack([idx for _, _, idx in sampler.batches(num_steps=cfg.steps)])
  x, y = jnp.asarray(x_NxD), jnp.asarray(y_N)
  every = max(cfg.steps // 5, 1)

  # Each method: the transform for a rate, and its effective per-coordinate rate from the state.
  rsqrt_median = lambda lr, r: jnp.median(lr * jax.lax.rsqrt(r + 1e-7))  # eps / sqrt(r + delta)
  methods = {
      "SGD constant": (lambda lr: optim.sgd(lr), lambda lr, s: lr),
      f"SGD step decay (x{cfg.gamma} every {every})": (
          lambda lr: optim.sgd(optim.step_decay(lr, cfg.gamma, every)),
          lambda lr, s: optim.step_decay(lr, cfg.gamma, every)(s[1].count)),
      "AdaGrad": (lambda lr: optim.adagrad(lr, initial_accumulator_value=0.0),
                  lambda lr, s: rsqrt_median(lr, s[0].sum_of_squares)),
      "RMSProp": (lambda lr: optim.rmsprop(lr), lambda lr, s: rsqrt_median(lr, s[0].nu)),
  }
  rates = jnp.asarray(cfg.rates, jnp.float32)
  curves = {}
  for name, (make, effective_rate) in methods.items():

    @jax.jit
    def run(lr, make=make, effective_rate=effective_rate):
      tx = make(lr)
      w0 = jnp.zeros(cfg.dim)

      def step(carry, idx_M):
        w, state = carry
        g = jax.grad(_mse)(w, x[idx_M], y[idx_M])
        update, state = tx.update(g, state, w)
        w = optax.apply_updates(w, update)
        return (w, state), (_mse(w, x, y), effective_rate(lr, state))

      _, (loss_T, rate_T) = jax.lax.scan(step, (w0, tx.init(w0)), jnp.asarray(idx_TxM))
      return loss_T, rate_T

    loss_RxT, rate_RxT = jax.vmap(run)(rates)  # the whole rate grid in one program
    loss_RxT = np.nan_to_num(np.asarray(loss_RxT), nan=np.inf)
    # Best rate = lowest mean loss over the last tenth (a diverged rate is never best).
    r = int(np.argmin(np.mean(loss_RxT[:, -max(cfg.steps // 10, 1):], axis=1)))
    curves[name] = (float(rates[r]), loss_RxT[r] - best, np.asarray(rate_RxT[r]))

  tenth = max(cfg.steps // 10, 1)
  # Effective rates after the first update (t = 1) and at the end; for AdaGrad also how much
  # of its whole (log) fall had already happened one tenth into training.
  fall = {name: float(c[2][-1] / c[2][0]) for name, c in curves.items()}
  early_share = float(np.log(curves["AdaGrad"][2][tenth] / curves["AdaGrad"][2][0])
                      / np.log(fall["AdaGrad"]))
  tail = {name: float(np.mean(c[1][-tenth:])) for name, c in curves.items()}
  constant, decayed = list(curves)[:2]
  print("lr decay: best rates " + ", ".join(f"{k} {v[0]:g}" for k, v in curves.items()))
  print("lr decay: effective rate end / t=1: " + ", ".join(f"{k} {v:.3g}" for k, v in fall.items())
        + f"; AdaGrad's fall done by t={tenth}: {early_share:.0%}")
  print("lr decay: excess loss over the last tenth: "
        + ", ".join(f"{k} {v:.3g}" for k, v in tail.items()))

  fig, (ax_loss, ax_rate) = plt.subplots(1, 2, figsize=(11, 3.8))
  for name, (lr, excess, rate) in curves.items():
    ax_loss.semilogy(np.maximum(excess, 1e-8), lw=0.8, label=f"{name}, eps={lr:g}")
    ax_rate.semilogy(rate / rate[0], lw=0.8, label=name)
  ax_loss.set_xlabel("step")
  ax_loss.set_ylabel("L - L* (all samples)")
  ax_loss.legend(fontsize=7)
  ax_rate.axvline(tenth, color="k", ls=":", lw=0.6)
  ax_rate.set_xlabel("step")
  ax_rate.set_ylabel("effective rate / its value at t = 1 (median over w)")
  ax_rate.legend(fontsize=7)
  files.save_figure(fig, out_dir / "lr_decay.png")
  return [
      tour.Claim.at_most("AdaGrad's effective rate falls (end / t=1, below 1/2)",
                         "end / start", fall["AdaGrad"], 0.5, fmt="{:.3g}",
                         figure="lr_decay.png"),
      tour.Claim.at_least("AdaGrad's fall comes too early: most of it (in log) within the first "
                          "tenth of training", "share", early_share, 0.5, fmt="{:.2f}",
                          figure="lr_decay.png"),
      tour.Claim.at_least("RMSProp's effective rate does not fall (end / t=1, at least 1)",
                          "end / start", fall["RMSProp"], 1.0, fmt="{:.3g}",
                          figure="lr_decay.png"),
      tour.Claim.at_most("decaying the rate lowers SGD's noise floor (excess loss over the last "
                         "tenth, step decay / constant, each at its best rate)",
                         "ratio", tail[decayed] / tail[constant], 1.0, fmt="{:.3g}",
                         figure="lr_decay.png"),
  ]


# 4. Full-batch GD vs minibatch SGD -----------------------------------------------------------

def _step_bytes(jitted, *args) -> int:
  """Peak bytes one call of `jitted` holds: arguments + outputs + temporaries, per XLA."""
  stats = jitted.lower(*args).compile().memory_analysis()
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def full_batch_vs_minibatch(cfg, out_dir: Path, seed: int) -> list[tour.Claim]:
  rng = np.random.default_rng(seed + 1)
  x_NxD, y_N = _regression(rng, cfg.num_samples, cfg.dim, cfg.noise, 1.0, cfg.condition)
  best = _optimal_loss(x_NxD, y_N)
  target = best * (1 + cfg.target)
  x_dev, y_dev = jnp.asarray(x_NxD), jnp.asarray(y_N)
  full_loss = jax.jit(_mse)
  w0 = jnp.zeros(cfg.dim)

  gd = optim.sgd(cfg.gd_rate)

  @jax.jit
  def gd_step(w, state, x_NxD, y_N):
    g = jax.grad(_mse)(w, x_NxD, y_N)  # g = 1/n sum_i grad L_i: every sample, every step
    update, state = gd.update(g, state, w)
    return optax.apply_updates(w, update), state

  sgd = optim.sgd(cfg.sgd_rate)

  @jax.jit
  def sgd_steps(w, state, x_KxMxD, y_KxM):
    def step(carry, batch):
      w, state = carry
      g = jax.grad(_mse)(w, *batch)  # g = 1/m sum over the minibatch
      update, state = sgd.update(g, state, w)
      return (optax.apply_updates(w, update), state), None
    (w, state), _ = jax.lax.scan(step, (w, state), (x_KxMxD, y_KxM))
    return w, state

  k, m = cfg.steps_per_call, cfg.batch_size
  sampler = optim.MinibatchSampler(cfg.num_samples, m, seed)
  batches = sampler.batches()

  def next_chunk():
    idx_KxM = np.stack([next(batches)[2] for _ in range(k)])
    return jnp.asarray(x_NxD[idx_KxM]), jnp.asarray(y_N[idx_KxM])  # only K*m rows leave the host

  bytes_gd = _step_bytes(gd_step, w0, gd.init(w0), x_dev, y_dev)
  bytes_sgd = _step_bytes(sgd_steps, w0, sgd.init(w0), *next_chunk()) // k  # per SGD step

  def race(advance, state, steps_per_call):
    """Runs `advance` until the time budget is spent; the clock stops while we evaluate."""
    w, elapsed, steps, next_eval = w0, 0.0, 0, 0.0
    times, losses = [0.0], [float(full_loss(w, x_dev, y_dev))]
    jax.block_until_ready(advance(w, state))  # compile outside the clock
    bar = runs.progress(total=None, desc="steps", leave=False)
    while elapsed < cfg.seconds:
      start = time.perf_counter()
      w, state = jax.block_until_ready(advance(w, state))
      elapsed += time.perf_counter() - start
      steps += steps_per_call
      bar.update(steps_per_call)
      if elapsed >= next_eval or elapsed >= cfg.seconds:  # ~100 evaluations per run
        times.append(elapsed)
        losses.append(float(full_loss(w, x_dev, y_dev)))
        next_eval = elapsed + cfg.seconds / 100
    bar.close()
    return np.array(times), np.array(losses), steps

  t_gd, l_gd, n_gd = race(lambda w, s: gd_step(w, s, x_dev, y_dev), gd.init(w0), 1)
  t_sgd, l_sgd, n_sgd = race(lambda w, s: sgd_steps(w, s, *next_chunk()), sgd.init(w0), k)

  def time_to_target(times, losses):
    hit = np.nonzero(losses <= target)[0]
    return float(times[hit[0]]) if len(hit) else float("inf")

  reach_gd, reach_sgd = time_to_target(t_gd, l_gd), time_to_target(t_sgd, l_sgd)
  # GD that never reaches the target within the budget is at least the budget.
  speedup = min(reach_gd, t_gd[-1]) / reach_sgd if np.isfinite(reach_sgd) else 0.0
  bound = "" if np.isfinite(reach_gd) else ">= "
  print(f"GD vs SGD (n={cfg.num_samples}): GD {n_gd} steps, reached target in {reach_gd:.3g} s; "
        f"SGD {n_sgd} steps, reached in {reach_sgd:.3g} s; step memory GD {bytes_gd / 2**20:.2f} "
        f"MiB, SGD {bytes_sgd / 2**20:.4f} MiB")

  fig, (ax_loss, ax_mem) = plt.subplots(1, 2, figsize=(11, 3.8),
                                        gridspec_kw=dict(width_ratios=[2, 1]))
  ax_loss.semilogy(t_gd, l_gd - best + 1e-9, label=f"full-batch GD, eps={cfg.gd_rate}")
  ax_loss.semilogy(t_sgd, l_sgd - best + 1e-9, label=f"minibatch SGD, m={m}, eps={cfg.sgd_rate}")
  ax_loss.axhline(target - best, color="k", ls=":", lw=0.8, label=f"{cfg.target:.0%} above L*")
  ax_loss.set_xlabel("wall time (s), evaluation excluded")
  ax_loss.set_ylabel("L - L* on all samples")
  ax_loss.set_title(f"n = {cfg.num_samples:,} samples, d = {cfg.dim}")
  ax_loss.legend(fontsize=8)
  ax_mem.bar(["GD step", "SGD step"], [bytes_gd / 2**20, bytes_sgd / 2**20])
  ax_mem.set_yscale("log")
  ax_mem.set_ylabel("peak memory of one step (MiB, XLA)")
  files.save_figure(fig, out_dir / "gd_vs_sgd.png")
  return [
      tour.Claim.at_least(f"minibatch SGD reaches {cfg.target:.0%} above the optimal loss sooner "
                          "in wall time than full-batch GD (time GD / time SGD)",
                          f"speed-up {bound}", speedup, 1.0, fmt="{:.3g}",
                          figure="gd_vs_sgd.png"),
      tour.Claim.at_least("a minibatch step needs a fraction of full-batch memory (GD / SGD peak "
                          f"step memory; n/m = {cfg.num_samples // m})",
                          "ratio", bytes_gd / bytes_sgd, 10.0, fmt="{:.0f}",
                          figure="gd_vs_sgd.png"),
  ]


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  claims = []
  for name, experiment in [
      ("worked example", lambda: worked_example(config.worked, out_dir)),
      ("ravine", lambda: ravine(config.ravine, out_dir)),
      ("learning-rate decay", lambda: learning_rate_decay(config.decay, out_dir, config.seed)),
      ("GD vs SGD", lambda: full_batch_vs_minibatch(config.minibatch, out_dir, config.seed))]:
    start = time.perf_counter()
    claims += experiment()
    print(f"{name}: {time.perf_counter() - start:.1f} s")
  return claims


chapter = tour.experiment_chapter(
    "optimizers", "Gradient descent and its optimizers", 1,
    optimizers_config.get_config, run_experiment)
