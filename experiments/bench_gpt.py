"""Times the jitted train step of the shakespeare_char model (no data loading, no eval).

  python -m experiments.bench_gpt [--steps=200] [--config=experiments/configs/shakespeare_char.py]

Prints the median and minimum ms per step, the measured fp32 matmul peak and the MFU, and the
machine's load average beside them: on a shared machine a figure means little without it.
"""

import os
import statistics
import time
from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "shakespeare_char.py"), "Model config.")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed steps (after 5 warm-up steps).")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from research.nn import count  # pylint: disable=g-import-not-at-top
  from research.nn import transformer  # pylint: disable=g-import-not-at-top
  from research.train import flops  # pylint: disable=g-import-not-at-top
  from research.train import lm  # pylint: disable=g-import-not-at-top
  from research.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from research.train import step as step_lib  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  model_config = lm.model_config_for(config, 65)
  tx = state_lib.make_optimizer(config)
  graphdef, state = state_lib.create(
      transformer.Transformer(model_config, rngs=nnx.Rngs(config.seed)), tx)
  train_step = step_lib.make_train_step(graphdef, tx, config.dtype, config.seed,
                                        model_config.dropout > 0)
  rng = np.random.default_rng(0)
  shape = (1, config.batch_size, config.context_length)
  batches = [(rng.integers(0, 65, shape).astype(np.int32),
              rng.integers(0, 65, shape).astype(np.int32)) for _ in range(8)]
  times, cpu_times = [], []
  for i in range(5 + _STEPS.value):
    inputs, targets = batches[i % len(batches)]
    tick, cpu_tick = time.perf_counter(), time.process_time()
    state, metrics = train_step(state, inputs, targets)
    float(metrics["loss"])
    if i >= 5:
      times.append(time.perf_counter() - tick)
      cpu_times.append(time.process_time() - cpu_tick)  # all threads: less load-sensitive
  peak = flops.measure_matmul_peak()
  median = statistics.median(times)
  tokens = config.batch_size * config.context_length
  mfu = flops.mfu(count.flops_per_token(model_config, config.context_length), tokens / median,
                  peak)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} load={os.getloadavg()[0]:.2f}")
  print(f"ms_per_iter median={1000 * median:.2f} min={1000 * min(times):.2f} "
        f"cpu_ms_per_iter={1000 * statistics.median(cpu_times):.2f} "
        f"tokens_per_s={tokens / median:.0f} peak_gflops={peak / 1e9:.0f} mfu={100 * mfu:.1f}%")


if __name__ == "__main__":
  app.run(main)
