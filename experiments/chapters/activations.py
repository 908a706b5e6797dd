"""Activations chapter: why a net needs a non-linearity, and what each one costs."""

from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import activations as activations_config
from research import files
from research import tour
from research.nn import activations
from research.sweeps import mlp
from research.sweeps import digits
from research.sweeps import init_sweep
from research.sweeps import probes

# Each activation with the init made for it: Xavier for the saturating ones, Kaiming for ReLUs.
PAIRED_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "kaiming",
               "leaky_relu": "kaiming", "prelu": "kaiming", "gelu": "kaiming"}


def _indices(names):
  return jnp.array([mlp.ACTIVATIONS.index(n) for n in names], jnp.int32)


def plot_functions(config, out_dir):
  x = jnp.linspace(-config.x_range, config.x_range, config.grid_points)
  fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
  for name in ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "gelu", "silu"):
    f, df = activations.FUNCTIONS[name]
    ax_f.plot(x, f(x), label=name)
    ax_d.plot(x, df(x), label=name)
  ax_f.set_title("f(x)")
  ax_d.set_title("f'(x), closed form")
  ax_f.set_ylim(-1.5, 3)
  ax_d.legend(fontsize=7)
  files.save_figure(fig, out_dir / "activations.png")
  return float(jnp.max(activations.sigmoid_grad(x))), float(jnp.max(activations.tanh_grad(x)))


def vanishing(config, data, out_dir):
  """Median over seeds of ||dL/dW_1|| at init, per activation and depth."""
  x, labels = data[0][:256], data[1][:256]
  names = list(PAIRED_INIT)
  trials = [init_sweep.Trial(PAIRED_INIT[a], a, d, s) for d in config.vanish_depths
            for a in names for s in range(config.seed, config.seed + config.vanish_seeds)]
  rows = init_sweep.run_init_stats(trials, x, labels, config.vanish_width, progress=False)
  first = {(r["trial"].activation, r["trial"].depth): [] for r in rows}
  for r in rows:
    first[r["trial"].activation, r["trial"].depth].append(float(r["grad_norm"][0]))
  norms = {a: np.array([np.median(first[a, d]) for d in config.vanish_depths]) for a in names}
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  for a in names:
    ax.semilogy(config.vanish_depths, norms[a], "o-", label=f"{a} ({PAIRED_INIT[a]})")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("depth (hidden layers)")
  ax.set_ylabel("||dL/dW_1|| at init")
  ax.legend(fontsize=7)
  files.save_figure(fig, out_dir / "vanishing.png")
  return {a: (float(v[0]), float(v[-1])) for a, v in norms.items()}


def dead_units(config, data):
  names = ["relu", "leaky_relu", "prelu"]
  n = len(names) * config.dead_seeds
  key = jax.random.key(config.seed)
  params = probes.stack_params(jax.random.split(key, n), "kaiming", data[0].shape[1],
                               config.dead_width, config.dead_depth, 10)
  acts = jnp.repeat(_indices(names), config.dead_seeds)
  x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
  curve = []
  for check in range(config.dead_checks):
    keys = jax.random.split(jax.random.fold_in(key, check + 1), n)
    params, dead = probes.train_and_count_dead(
        params, keys, acts, jnp.full((n,), config.dead_learning_rate), x, y,
        steps=config.dead_steps_per_check, batch_size=64)
    curve.append(np.asarray(dead))
  curve = np.stack(curve).reshape(len(curve), len(names), config.dead_seeds).mean(axis=2)
  return names, curve


def sign_agreement(config, data):
  names = ["sigmoid", "tanh"]
  keys = jax.random.split(jax.random.key(config.seed), len(names))
  params = probes.stack_params(keys, "xavier", data[0].shape[1], config.sign_width, 2, 10)
  agree = probes.sign_agreement(params, keys, _indices(names), jnp.asarray(data[0]),
                                jnp.asarray(data[1]), steps=config.sign_steps,
                                learning_rate=config.sign_learning_rate)
  return dict(zip(names, map(float, agree)))


def xor_collapse(config, out_dir):
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  x_np, y_np = probes.xor(config.xor_points, config.xor_noise, config.seed)
  linear_acc = float(linear_model.LogisticRegression().fit(x_np, y_np).score(x_np, y_np))
  x, y = jnp.asarray(x_np), jnp.asarray(y_np)
  names = ["identity", "tanh", "relu"]
  keys = jax.random.split(jax.random.key(config.seed), len(names))
  params = probes.stack_params(keys, "xavier", 2, config.xor_width, config.xor_depth, 2)
  acts = _indices(names)
  trained, acc = probes.fit_full_batch(params, acts, x, y, steps=config.xor_steps,
                                       learning_rate=config.xor_learning_rate)
  acc = dict(zip(names, map(float, acc)))

  grid = np.linspace(-2, 2, 121, dtype=np.float32)
  gx, gy = np.meshgrid(grid, grid)
  points = jnp.concatenate([x, jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1))])
  logits = _logits(trained, acts, points)  # one call: the data, then the grid
  regions = jnp.argmax(logits[:, len(x):], axis=-1)

  w, b = probes.collapse_matrix(jax.tree.map(lambda a: a[0], trained))
  deep_linear = logits[0, : len(x)]
  collapse_error = float(jnp.max(jnp.abs(deep_linear - (x @ w + b)))
                         / jnp.max(jnp.abs(deep_linear)))
  fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
  for i, (ax, name) in enumerate(zip(axes, names)):
    ax.contourf(gx, gy, np.asarray(regions[i]).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    ax.scatter(x_np[:, 0], x_np[:, 1], c=y_np, s=6, cmap="coolwarm")
    ax.set_title(f"depth {config.xor_depth}, {name}: accuracy {acc[name]:.2f}", fontsize=9)
  files.save_figure(fig, out_dir / "xor.png")
  return acc, linear_acc, collapse_error


@probes.jit
def _logits(params_N, acts_N, x_BxD):
  return jax.vmap(lambda p, a: mlp.apply(p, x_BxD, a)[0])(params_N, acts_N)


def _norms_label(pair):
  return f"{pair[1]:.3g} vs {pair[0]:.3g} (float32); ratio"


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  data = digits.load(seed=config.seed)

  sigmoid_max, tanh_max = plot_functions(config, out_dir)
  norms = vanishing(config, data, out_dir)
  dead_names, dead_curve = dead_units(config, data)
  agree = sign_agreement(config, data)
  xor_acc, linear_acc, collapse_error = xor_collapse(config, out_dir)

  fig, ax = plt.subplots(figsize=(5.5, 3.4))
  steps = np.arange(1, dead_curve.shape[0] + 1) * config.dead_steps_per_check
  for i, name in enumerate(dead_names):
    ax.plot(steps, dead_curve[:, i], "o-", label=name)
  ax.set_xlabel(f"SGD steps at learning rate {config.dead_learning_rate:g}")
  ax.set_ylabel("fraction of units never active")
  ax.legend()
  files.save_figure(fig, out_dir / "dead_units.png")
  dead = dict(zip(dead_names, dead_curve[-1]))

  fig, ax = plt.subplots(figsize=(4, 3))
  ax.bar(list(agree), list(agree.values()), color=["tab:orange", "tab:blue"])
  ax.set_ylabel("steps with one-signed weight gradients")
  ax.set_ylim(0, 1.05)
  files.save_figure(fig, out_dir / "sign_agreement.png")

  deepest = config.vanish_depths[-1]
  first = config.vanish_depths[0]
  others_dead = max(dead["leaky_relu"], dead["prelu"])
  d = config.xor_depth
  return [
      tour.Claim.close_to("sigmoid'(x) is at most 1/4, reached at x = 0", "max sigmoid'",
                          sigmoid_max, 0.25, 1e-6, figure="activations.png"),
      tour.Claim.close_to("tanh'(x) is at most 1, reached at x = 0", "max tanh'", tanh_max, 1.0,
                          1e-6, figure="activations.png"),
      tour.Claim.at_most(f"sigmoid's gradient vanishes: ||dL/dW_1|| at depth {deepest} is under "
                         f"1e-3 of depth {first} (Xavier init)", _norms_label(norms["sigmoid"]),
                         norms["sigmoid"][1] / norms["sigmoid"][0], 1e-3, fmt="{:.3g}",
                         figure="vanishing.png"),
      tour.Claim.within(f"ReLU with Kaiming init keeps ||dL/dW_1|| at depth {deepest} within 10x "
                        f"of depth {first}", _norms_label(norms["relu"]),
                        norms["relu"][1] / norms["relu"][0], 0.1, 10.0, fmt="{:.3g}",
                        figure="vanishing.png"),
      tour.Claim.at_least(f"at learning rate {config.dead_learning_rate:g} ReLU units die (never "
                          "active on any training example)", "dead fraction", dead["relu"], 0.05,
                          fmt="{:.3f}", figure="dead_units.png"),
      tour.Claim.at_least("Leaky ReLU and PReLU end with fewer never-active units than ReLU",
                          f"ReLU {dead['relu']:.3f} minus max(Leaky, PReLU)",
                          dead["relu"] - others_dead, 0.01, fmt="{:.3f}",
                          figure="dead_units.png"),
      tour.Claim.at_least("after sigmoid (outputs > 0) all weight gradients into a unit share one "
                          "sign (single-example steps)", "fraction of steps", agree["sigmoid"],
                          0.99, fmt="{:.3f}", figure="sign_agreement.png"),
      tour.Claim.at_most("after tanh (zero-centred) they do not", "fraction of steps",
                         agree["tanh"], 0.01, fmt="{:.3f}", figure="sign_agreement.png"),
      tour.Claim.at_most(f"a depth-{d} net without activations is one linear map x W + b",
                         "max relative |f(x) - (x W + b)|", collapse_error, 1e-4, fmt="{:.2g}",
                         figure="xor.png"),
      tour.Claim.at_most("so on XOR it does no better than a linear model (logistic regression)",
                         f"accuracy {xor_acc['identity']:.3f} minus linear's {linear_acc:.3f}",
                         xor_acc["identity"] - linear_acc, 0.0, fmt="{:.3f}", figure="xor.png"),
      tour.Claim.at_least(f"while depth-{d} tanh and ReLU nets fit XOR exactly",
                          "min(tanh, ReLU) accuracy", min(xor_acc["tanh"], xor_acc["relu"]),
                          1.0, fmt="{:.3f}", figure="xor.png"),
  ]


chapter = tour.experiment_chapter(
    "activations", "Activations: non-linearity and its costs", 3,
    activations_config.get_config, run_experiment)
