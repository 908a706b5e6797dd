"""Per-step update time of each hand-written optimizer against its optax twin.

  python -m experiments.bench_optimizers --samples=100 --calls=5

A 10M-parameter pytree; each pair runs side by side in one process, interleaved sample by sample
(a sample is `calls` steps back to back; the order flips every sample). The table reports the
median time per step of each, and the median of the paired ratios ours/optax: pairing adjacent
samples cancels the load that other processes put on a shared machine. It also compares
the two compiled steps (XLA's optimised HLO, source-line metadata stripped): identical text
means both sides run the same machine program, so any gap in time is noise.
"""

import re
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import script
from research import files
from research import optim
from research import runs

_SAMPLES = flags.DEFINE_integer("samples", 100, "Timed samples per optimizer (medians reported).")
_CALLS = flags.DEFINE_integer("calls", 5, "Steps per sample, run back to back.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_ONLY = flags.DEFINE_list("only", [], "Run only these pairs (by name).")
_OUT = flags.DEFINE_string("out", "", "Optional path for the Markdown table.")
_CONTROL = flags.DEFINE_bool("control", True, "Add an A/A row: optax's adamw against itself, "
                             "which shows how far the ratio strays by noise alone.")

CONTROL = "control: optax adamw vs optax adamw"

PAIRS = {  # name: (ours, optax's)
    "sgd": lambda m: m.sgd(1e-3),
    "sgd momentum=0.9 nesterov": lambda m: m.sgd(1e-3, momentum=0.9, nesterov=True),
    "adagrad": lambda m: m.adagrad(1e-2),
    "rmsprop": lambda m: m.rmsprop(1e-3),
    "rmsprop centered momentum=0.9": lambda m: m.rmsprop(1e-3, centered=True, momentum=0.9),
    "adam": lambda m: m.adam(1e-3),
    "adamw": lambda m: m.adamw(1e-3, weight_decay=0.1),
}


def _params(key):
  """About 10.1M float32 parameters in a transformer-like tree of mixed shapes."""
  shapes = {"embed": (8000, 512), "head": (512, 3500),
            "blocks": [{"w1": (512, 2048), "b1": (2048,), "w2": (2048, 512), "b2": (512,),
                        "scale": (512,)} for _ in range(2)]}
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [0.02 * jax.random.normal(k, s) for k, s in zip(keys, leaves)])


def _train_step(tx):
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return jax.jit(step, donate_argnums=(0, 1))


def _optimised_hlo(jitted, *args) -> str:
  """The optimised HLO that XLA runs for `jitted(*args)`, without names of source lines."""
  text = jitted.lower(*args).compile().as_text()
  text = re.sub(r", metadata=\{[^}]*\}", "", text)
  text = re.sub(r"^HloModule \S+", "HloModule", text)
  return text.split("\nFileNames")[0]  # the debug table of Python files and functions


def main(argv):
  del argv
  names = (_ONLY.value or list(PAIRS)) + ([CONTROL] if _CONTROL.value else [])
  params = _params(jax.random.key(0))
  grads = jax.tree.map(lambda p: 0.1 * p + 1e-3, params)
  size = sum(p.size for p in jax.tree.leaves(params))
  print(f"{size / 1e6:.2f}M parameters, {jax.devices()[0].platform}, "
        f"{_SAMPLES.value} samples x {_CALLS.value} steps")
  rows = []
  for name in names:
    if name == CONTROL:
      txs = {"ours": PAIRS["adamw"](optax), "optax": PAIRS["adamw"](optax)}
    else:
      txs = {"ours": PAIRS[name](optim), "optax": PAIRS[name](optax)}
    steps = {k: _train_step(tx) for k, tx in txs.items()}
    hlo = {k: _optimised_hlo(steps[k], params, tx.init(params), grads) for k, tx in txs.items()}
    carry = {k: (jax.tree.map(jnp.copy, params), tx.init(params)) for k, tx in txs.items()}
    for _ in range(_WARMUP.value + 1):  # the first call compiles
      for k in txs:
        carry[k] = jax.block_until_ready(steps[k](*carry[k], grads))
    seconds = {k: [] for k in txs}
    for i in runs.progress(range(_SAMPLES.value), desc=name, unit="sample"):
      for k in (("ours", "optax") if i % 2 == 0 else ("optax", "ours")):
        start = time.perf_counter()
        for _ in range(_CALLS.value):
          carry[k] = steps[k](*carry[k], grads)
        jax.block_until_ready(carry[k])
        seconds[k].append((time.perf_counter() - start) / _CALLS.value)
    ours, theirs = (float(np.median(seconds[k])) for k in ("ours", "optax"))
    ratio = float(np.median(np.array(seconds["ours"]) / np.array(seconds["optax"])))
    same_ops = "yes" if hlo["ours"] == hlo["optax"] else "no"
    rows.append((name, ours * 1e3, theirs * 1e3, ratio, same_ops))
    print(f"{name}: ours {ours * 1e3:.2f} ms, optax {theirs * 1e3:.2f} ms, "
          f"paired ratio {ratio:.3f}, identical HLO: {same_ops}")

  table = ["| optimizer | ours (ms/step) | optax (ms/step) | ratio ours/optax (median of pairs) "
           "| identical optimised HLO |", "|---|---|---|---|---|"]
  table += [f"| {n} | {a:.2f} | {b:.2f} | {r:.3f} | {s} |" for n, a, b, r, s in rows]
  print("\n".join(table))
  if _OUT.value:
    files.write_text(_OUT.value, "\n".join(table) + "\n")
  worst = max(r for n, _, _, r, _ in rows if n != CONTROL)
  print(f"worst ratio {worst:.3f} ({'within' if worst <= 1.05 else 'ABOVE'} the 1.05 bound)")


if __name__ == "__main__":
  script.run(main)
