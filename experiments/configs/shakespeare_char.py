"""nanoGPT's shakespeare_char CPU recipe, for the side-by-side benchmark (BENCHMARKS.md).

COMMAND: python -m experiments.train_lm --config=experiments/configs/shakespeare_char.py
RESULT:  eval_loss 1.8984 at iter 2000 at seed 1337 (nanoGPT, experiments/bench_torch_twin.py:
         1.8857); over 21 seeds 1.9071 +- 0.0157 (nanoGPT 1.9040 +- 0.0157), full validation
         1.9062 +- 0.0073 (nanoGPT 1.9069 +- 0.0089). 17.2-17.8 ms/iter at load <= 1.9 on the
         2-core CPU, nanoGPT 28.1-28.2 side by side (1.6x); see BENCHMARKS.md. Last line:
         eval_loss=<float> ms_per_iter=<median> tokens_per_s=<float>
Presets: `shakespeare_char.py:quick` (200 iters) and overrides like `:steps=500`.
"""

from experiments.configs import train_lm
from research import runs


def get_config(arg: str | None = None):
  """train_lm's full config with nanoGPT's data, model and schedule."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = train_lm.get_config()
  config.seed = 1337               # nanoGPT's seed
  config.data = "../shared/data/tinyshakespeare/input.txt"  # 1.1M characters of Shakespeare
  config.tokenizer = "char"        # one token per character
  config.vocab_size = 0            # the characters of the text decide
  config.batch_size = 12           # nanoGPT's CPU recipe: batch_size 12, block_size 64
  config.stride = 1                # every offset may start a window
  config.sampler = "random"        # nanoGPT's get_batch: uniform random offsets
  config.model.dropout = 0.0       # nanoGPT's CPU recipe trains without dropout
  config.model.qkv_bias = config.model.out_bias = False  # nanoGPT's bias=False
  config.model.ffn_bias = config.model.norm_bias = False  # (the same)
  config.steps = 200 if quick else 2000  # max_iters
  config.eval_batches = 20         # nanoGPT's eval_iters
  config.checkpoint_every = 0      # the benchmark times training only
  config.full_val_eval = True      # also the loss on every validation window, beside the recipe's
  config.samples = 0               # no generation in the benchmark
  config.max_new_tokens = 0        # (no samples)
  config.prompt = ""               # (no samples)
  return runs.override(config, options)
