"""Initialisation x activation x depth x seed on digits: statistics at init and accuracy after a
fixed budget, with every trial of one depth trained together by `jax.vmap` in one program.

Trials of equal depth have equal parameter shapes (PReLU's slope is carried by every net), so one
compiled program per depth runs all of them; `run_loop` runs the same trials one at a time for
the speed comparison.
"""

import dataclasses
import functools
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from research import optim
from research import runs
from research.nn import initializers
from research.sweeps import mlp

INITS = ("zeros", "normal", "xavier", "kaiming", "lecun")
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "gelu")
DEPTHS = (2, 4, 8, 16, 32, 64)


@dataclasses.dataclass(frozen=True)
class Trial:
  init: str
  activation: str
  depth: int
  seed: int


@dataclasses.dataclass(frozen=True)
class Budget:
  """The fixed training budget every trial gets."""
  width: int = 32
  steps: int = 150
  batch_size: int = 64
  learning_rate: float = 0.02


def grid(inits: Sequence[str], activations: Sequence[str], depths: Sequence[int],
         seeds: Sequence[int]) -> list[Trial]:
  for name in inits:
    initializers.get(name)  # unknown names stop here, with the list of known ones
  unknown = sorted(set(activations) - set(mlp.ACTIVATIONS))
  if unknown:
    raise ValueError(f"unknown activations {unknown}; expected some of {mlp.ACTIVATIONS}.")
  return [Trial(i, a, int(d), int(s)) for d in depths for i in inits for a in activations
          for s in seeds]


def init_params(trial: Trial, width: int, d_in: int, d_out: int):
  """The trial's initial params and its training key; all trials with one seed share the keys."""
  k_init, k_train = jax.random.split(jax.random.key(trial.seed))
  params = mlp.init(k_init, initializers.get(trial.init), d_in, width, trial.depth, d_out)
  return params, k_train


def _train_fn(budget: Budget) -> Callable:
  def one(params, key, act, data):
    x_train, y_train, x_test, y_test = data
    trained = mlp.train(params, key, act, x_train, y_train, steps=budget.steps,
                        batch_size=budget.batch_size, learning_rate=budget.learning_rate)
    return {"accuracy": mlp.accuracy(trained, x_test, y_test, act),
            "train_loss": mlp.loss_fn(trained, x_train, y_train, act)}
  return one


def _stats_fn(params, key, act, data):
  del key
  x_BxD, labels_B = data
  stats = mlp.init_stats(params, x_BxD, labels_B, act)
  _, hidden_LxBxW = mlp.apply(params, x_BxD, act)
  # |f(z)| > 0.99: a tanh unit on its flat tails, where f' < 0.02
  return {**stats, "saturated": jnp.mean(jnp.abs(hidden_LxBxW) > 0.99, axis=(1, 2))}


# LLVM's level 1 compiles these scan-heavy programs ~1.5x faster than the default, at equal speed.
_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.lru_cache(maxsize=None)
def _vmapped(fn):
  return jax.jit(jax.vmap(fn, in_axes=(0, 0, 0, None)), compiler_options=_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=None)
def _single(fn):
  return jax.jit(fn, static_argnums=2, compiler_options=_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=None)
def _cached_train_fn(budget: Budget):
  return _train_fn(budget)


def _rows(trials, out) -> list[dict]:
  out = jax.tree.map(np.asarray, out)
  return [{"trial": t, **{k: v[i] for k, v in out.items()}} for i, t in enumerate(trials)]


def _by_depth(trials, max_batch):
  """Trials of one depth in equal chunks (equal shapes: one compilation per depth)."""
  chunks = []
  for depth in sorted({t.depth for t in trials}):
    same = [t for t in trials if t.depth == depth]
    size = math.ceil(len(same) / math.ceil(len(same) / max_batch))
    chunks += [same[i: i + size] for i in range(0, len(same), size)]
  return chunks


def _vmapped_rows(trials, fn, data, width, d_in, d_out, max_batch, desc, progress):
  rows = []
  bar = runs.progress(_by_depth(trials, max_batch), desc=desc, unit="group",
                      disable=not progress)
  for chunk in bar:
    bar.set_postfix(depth=chunk[0].depth, trials=len(chunk))
    params, keys = zip(*(init_params(t, width, d_in, d_out) for t in chunk))
    params = jax.tree.map(lambda *a: jnp.stack(a), *params)
    acts = jnp.array([mlp.ACTIVATIONS.index(t.activation) for t in chunk], jnp.int32)
    rows += _rows(chunk, _vmapped(fn)(params, jnp.stack(keys), acts, data))
  return rows


def _shapes(data):
  data = tuple(jnp.asarray(a) for a in data)
  return data, data[0].shape[1], int(np.max(data[1])) + 1


def run_vmapped(trials: Sequence[Trial], data, budget: Budget, max_batch: int = 40,
                progress: bool = True) -> list[dict]:
  """Trains all trials, one vmapped program per depth, run on equal chunks of at most
  `max_batch` trials (on a CPU, 40 nets' activations still fit in cache; 120 do not)."""
  data, d_in, d_out = _shapes(data)
  return _vmapped_rows(trials, _cached_train_fn(budget), data, budget.width, d_in, d_out,
                       max_batch, "sweep (vmapped)", progress)


def run_loop(trials: Sequence[Trial], data, budget: Budget, progress: bool = True) -> list[dict]:
  """The same trials one at a time (one jitted program per depth and activation)."""
  data, d_in, d_out = _shapes(data)
  rows = []
  for t in runs.progress(trials, desc="sweep (loop)", unit="trial", disable=not progress):
    params, key = init_params(t, budget.width, d_in, d_out)
    out = _single(_cached_train_fn(budget))(params, key, mlp.ACTIVATIONS.index(t.activation),
                                            data)
    rows += _rows([t], jax.tree.map(lambda a: a[None], out))
  return rows


@functools.lru_cache(maxsize=None)
def _step_and_eval(budget: Budget):
  optimizer = optim.sgd(budget.learning_rate, momentum=0.9)

  def step(params, opt_state, key, act, x_train, y_train):
    return mlp.sgd_step(params, opt_state, key, act, x_train, y_train,
                        batch_size=budget.batch_size, optimizer=optimizer)

  def evaluate(params, act, data):
    x_train, y_train, x_test, y_test = data
    return {"accuracy": mlp.accuracy(params, x_test, y_test, act),
            "train_loss": mlp.loss_fn(params, x_train, y_train, act)}

  return (optimizer, jax.jit(step, static_argnums=3, compiler_options=_COMPILER_OPTIONS),
          jax.jit(evaluate, static_argnums=1))


def run_loop_steps(trials: Sequence[Trial], data, budget: Budget,
                   progress: bool = True) -> list[dict]:
  """The same trials as a plain training script runs them: a Python loop over trials, and in
  each a Python loop calling a jitted SGD step (one program per depth and activation)."""
  data, d_in, d_out = _shapes(data)
  optimizer, step, evaluate = _step_and_eval(budget)
  rows = []
  for t in runs.progress(trials, desc="sweep (step loop)", unit="trial", disable=not progress):
    params, key = init_params(t, budget.width, d_in, d_out)
    act = mlp.ACTIVATIONS.index(t.activation)
    opt_state = optimizer.init(params)
    for step_key in jax.random.split(key, budget.steps):
      params, opt_state = step(params, opt_state, step_key, act, data[0], data[1])
    rows += _rows([t], jax.tree.map(lambda a: a[None], evaluate(params, act, data)))
  return rows


def run_init_stats(trials: Sequence[Trial], x_BxD, labels_B, width: int, max_batch: int = 256,
                   progress: bool = True) -> list[dict]:
  """Per-layer activation std, weight-gradient norm and tanh saturation at init."""
  data, d_in, _ = _shapes((x_BxD, labels_B))
  d_out = int(np.max(labels_B)) + 1
  return _vmapped_rows(trials, _stats_fn, data, width, d_in, d_out, max_batch,
                       "init statistics", progress)


def timed(fn, *args, **kwargs):
  """(fn's rows, seconds): rows are numpy already, so the time includes the computation."""
  start = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - start


def merge(train_rows: list[dict], stats_rows: list[dict]) -> list[dict]:
  stats = {r["trial"]: r for r in stats_rows}
  return [{**stats[r["trial"]], **r} for r in train_rows]


def std_ratio(row: dict) -> float:
  """Last hidden layer's activation std over the first's; nan when the first is 0 (zero init)."""
  std = row["act_std"]
  return float(std[-1] / std[0]) if std[0] > 0 else float("nan")


def to_table(rows: list[dict]) -> tuple[list[str], list[list]]:
  """CSV-ready: one line per trial with the scalar results and per-layer std / grad norms."""
  header = ["init", "activation", "depth", "seed", "accuracy", "train_loss",
            "std_ratio_last_first", "act_std", "grad_norm"]
  lines = []
  for r in rows:
    t, std = r["trial"], r["act_std"]
    lines.append([t.init, t.activation, t.depth, t.seed, f"{float(r['accuracy']):.4f}",
                  f"{float(r['train_loss']):.5g}", f"{std_ratio(r):.5g}",
                  " ".join(f"{v:.4g}" for v in std),
                  " ".join(f"{v:.4g}" for v in r["grad_norm"])])
  return header, lines
