"""Initialisation chapter: symmetry, and the init x activation x depth sweep."""

import csv
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import init_sweep as init_sweep_config
from research import files
from research import tour
from research.nn import initializers
from research.sweeps import mlp
from research.sweeps import digits
from research.sweeps import init_sweep
from research.sweeps import probes


@probes.jit
def _train_symmetry(params_N, key, x, y):
  act = mlp.ACTIVATIONS.index("tanh")
  train = lambda p: mlp.train(p, key, act, x, y, steps=100, batch_size=64, learning_rate=0.05)
  return jax.vmap(train)(params_N)


def symmetry(config, data):
  """Max difference between two units of a layer after training, per init."""
  inits = {"zeros": initializers.zeros,
           f"constant {config.symmetry_constant:g}": initializers.constant(config.symmetry_constant),
           "xavier": initializers.xavier_normal()}
  key = jax.random.key(config.seed)
  trees = [mlp.init(key, init, data[0].shape[1], config.symmetry_width, config.symmetry_depth, 10)
           for init in inits.values()]
  params = jax.tree.map(lambda *a: jnp.stack(a), *trees)
  trained = _train_symmetry(params, key, jnp.asarray(data[0]), jnp.asarray(data[1]))
  out = {}
  for i, name in enumerate(inits):
    after = jax.tree.map(lambda a, i=i: a[i], trained)
    moved = float(jnp.max(jnp.abs(after["w_in"] - trees[i]["w_in"])))
    acc = float(mlp.accuracy(after, jnp.asarray(data[2]), jnp.asarray(data[3]),
                             mlp.ACTIVATIONS.index("tanh")))
    out[name] = {"spread": float(probes.unit_spread(after)), "moved": moved, "accuracy": acc}
  return out


def _median(rows, key, fn):
  groups = {}
  for r in rows:
    groups.setdefault(key(r["trial"]), []).append(fn(r))
  return {k: float(np.median(v)) for k, v in groups.items()}


def _heatmaps(config, table, title, path, fmt, **imshow):
  depths = config.depths
  fig, axes = plt.subplots(1, len(depths), figsize=(2.6 * len(depths) + 1, 0.5 * len(config.inits) + 2),
                           squeeze=False)
  for col, (ax, depth) in enumerate(zip(axes[0], depths)):
    grid = np.array([[table[i, a, depth] for a in config.activations] for i in config.inits])
    image = ax.imshow(grid, aspect="auto", **imshow)
    ax.set_xticks(range(len(config.activations)), config.activations, rotation=60, fontsize=7)
    ax.set_yticks(range(len(config.inits)), config.inits if col == 0 else [], fontsize=7)
    ax.set_title(f"depth {depth}", fontsize=9)
    for (r, c), v in np.ndenumerate(grid):
      ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6)
  fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
  fig.suptitle(title, fontsize=10)
  files.save_figure(fig, path)


def _std_curves(config, stats_rows, depth, path):
  acts = [a for a in ("tanh", "relu") if a in config.activations] or config.activations[:2]
  fig, axes = plt.subplots(1, len(acts), figsize=(5 * len(acts), 3.4), squeeze=False)
  for ax, act in zip(axes[0], acts):
    for init in config.inits:
      curves = [r["act_std"] for r in stats_rows
                if r["trial"].init == init and r["trial"].activation == act
                and r["trial"].depth == depth]
      if init != "zeros" and curves:
        ax.semilogy(range(1, depth + 1), np.median(curves, axis=0), label=init)
    ax.set_title(f"{act}, depth {depth}: activation std per layer at init", fontsize=9)
    ax.set_xlabel("layer")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  files.save_figure(fig, path)


def run_experiment(config, out_dir) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  data = digits.load(seed=config.seed)
  sym = symmetry(config, data)

  budget = init_sweep.Budget(config.width, config.steps, config.batch_size, config.learning_rate)
  seeds = range(config.seed, config.seed + config.seeds)
  trials = init_sweep.grid(config.inits, config.activations, config.depths, seeds)
  stats_rows, stats_s = init_sweep.timed(
      init_sweep.run_init_stats, trials, data[0][: config.stats_batch],
      data[1][: config.stats_batch], config.stats_width, max_batch=64)
  train_rows, sweep_s = init_sweep.timed(init_sweep.run_vmapped, trials, data, budget)
  rows = init_sweep.merge(train_rows, stats_rows)
  timings = {"trials": len(trials), "init_stats_s": stats_s, "vmapped_s": sweep_s}
  if config.benchmark:
    # Cold: compilation included, as a user running the sweep pays it. Warm: the second call of
    # each finds its programs compiled.
    _, timings["loop_s"] = init_sweep.timed(init_sweep.run_loop, trials, data, budget)
    _, timings["step_loop_s"] = init_sweep.timed(init_sweep.run_loop_steps, trials, data, budget)
    warm = {"vmapped": init_sweep.run_vmapped, "loop": init_sweep.run_loop,
            "step_loop": init_sweep.run_loop_steps}
    for name, fn in warm.items():
      timings[f"{name}_warm_runs_s"] = []
    for _ in range(config.benchmark_repeats):  # interleaved, so load changes hit all three
      for name, fn in warm.items():
        timings[f"{name}_warm_runs_s"].append(init_sweep.timed(fn, trials, data, budget)[1])
    for name in warm:
      timings[f"{name}_warm_s"] = float(np.median(timings[f"{name}_warm_runs_s"]))
  files.write_json(out_dir / "timings.json", timings)

  header, lines = init_sweep.to_table(rows)
  text = io.StringIO()
  csv.writer(text).writerows([header] + lines)
  files.write_text(out_dir / "init_sweep.csv", text.getvalue())

  cell = lambda t: (t.init, t.activation, t.depth)  # pylint: disable=unnecessary-lambda-assignment
  accuracy = _median(rows, cell, lambda r: r["accuracy"])
  ratio = _median(rows, cell, init_sweep.std_ratio)
  _heatmaps(config, accuracy, f"test accuracy after {config.steps} SGD steps (median of "
            f"{config.seeds} seeds)", out_dir / "accuracy_heatmap.png", "{:.2f}",
            vmin=0, vmax=1, cmap="viridis")
  log_ratio = {k: np.log10(v) if v > 0 else np.nan for k, v in ratio.items()}
  _heatmaps(config, log_ratio, "log10(std of last layer / std of first) at init",
            out_dir / "std_ratio_heatmap.png", "{:.1f}", vmin=-6, vmax=6, cmap="coolwarm")
  depth = config.verdict_depth
  _std_curves(config, stats_rows, depth, out_dir / "std_curves.png")

  def at(init, act, table):
    return table.get((init, act, depth), float("nan"))

  def shrink_steps(init, act):
    curves = [r["act_std"] for r in stats_rows if cell(r["trial"]) == (init, act, depth)]
    std = np.median(curves, axis=0)
    return float(np.mean(std[1:] < std[:-1]))  # fraction of layers below the one before

  saturated = _median(rows, cell, lambda r: float(np.mean(r["saturated"])))
  constant = f"constant {config.symmetry_constant:g}"
  claims = [
      tour.Claim.at_most(f"{constant} init leaves every unit of a layer identical after "
                         "training", "max difference between two units", sym[constant]["spread"],
                         0.0, fmt="{:.3g}"),
      tour.Claim.at_least("... although its weights did move", "max |W_1 change|",
                          sym[constant]["moved"], 1e-3, fmt="{:.3g}"),
      tour.Claim.at_most("zero init: identical units too (and nothing moves)",
                         "max difference between two units", sym["zeros"]["spread"], 0.0,
                         fmt="{:.3g}"),
      tour.Claim.at_least("random (Xavier) init breaks the symmetry",
                          "max difference between two units", sym["xavier"]["spread"], 1e-3,
                          fmt="{:.3g}"),
  ]
  verdicts = depth in config.depths
  if verdicts and {"xavier", "normal"} <= set(config.inits) and "tanh" in config.activations:
    claims += [
        tour.Claim.within(f"Xavier keeps tanh's activation std within [0.5, 2]x of layer 1 "
                          f"across {depth} layers", "last/first (median over seeds)",
                          at("xavier", "tanh", ratio), 0.5, 2.0, fmt="{:.3g}",
                          figure="std_curves.png"),
        tour.Claim.at_least(f"N(0, 1) saturates tanh (|tanh| > 0.99) in most units",
                            "saturated fraction", at("normal", "tanh", saturated), 0.5,
                            fmt="{:.3f}", figure="std_curves.png"),
    ]
  if verdicts and {"xavier", "kaiming"} <= set(config.inits) and "relu" in config.activations:
    claims += [
        tour.Claim.within(f"Kaiming keeps ReLU's activation std within [0.5, 2]x of layer 1 "
                          f"across {depth} layers", "last/first (median over seeds)",
                          at("kaiming", "relu", ratio), 0.5, 2.0, fmt="{:.3g}",
                          figure="std_curves.png"),
        tour.Claim.at_least("while Xavier shrinks ReLU's std layer by layer",
                            f"fraction of layers below the one before (last/first "
                            f"{at('xavier', 'relu', ratio):.2g})",
                            shrink_steps("xavier", "relu"), 0.9, fmt="{:.3f}",
                            figure="std_ratio_heatmap.png"),
    ]
  if "kaiming" in config.inits and "relu" in config.activations:
    shallow = min(config.depths)
    claims.append(tour.Claim.at_least(
        f"Kaiming + ReLU at depth {shallow} trains on digits", "test accuracy (median)",
        accuracy[("kaiming", "relu", shallow)], 0.9, fmt="{:.3f}", figure="accuracy_heatmap.png"))
  if "zeros" in config.inits:
    zero_acc = max(v for k, v in accuracy.items() if k[0] == "zeros")
    claims.append(tour.Claim.at_most("zero init never gets past chance (10 classes)",
                                     "best median accuracy", zero_acc, 0.2, fmt="{:.3f}",
                                     figure="accuracy_heatmap.png"))
  claims.append(tour.Claim.at_most(
      f"the sweep ({len(trials)} trials, vmapped per depth) fits the time budget",
      "seconds", stats_s + sweep_s, 300.0 if len(trials) >= 720 else 60.0, fmt="{:.1f}",
      figure="accuracy_heatmap.png"))
  return claims


chapter = tour.experiment_chapter(
    "initialization", "Initialisation: symmetry and scale", 4,
    init_sweep_config.get_config, run_experiment)
