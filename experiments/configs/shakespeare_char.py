"""nanoGPT's shakespeare_char CPU recipe, for the side-by-side benchmark (BENCHMARKS.md).

COMMAND: python -m experiments.train_lm --config=experiments/configs/shakespeare_char.py
RESULT:  val_loss 1.8984 at iter 2000 at seed 1337 (nanoGPT, experiments/bench_torch_twin.py:
         1.8857); over 21 seeds 1.9071 +- 0.0157 (nanoGPT 1.9040 +- 0.0157), full validation
         1.9062 +- 0.0073 (nanoGPT 1.9069 +- 0.0089). 17.2-17.8 ms/iter at load <= 1.9 on the
         2-core CPU, nanoGPT 28.1-28.2 side by side (1.6x); see BENCHMARKS.md. Last line:
         val_loss=<float> ms_per_iter=<median> tokens_per_s=<float>
Presets: `shakespeare_char.py:quick` (200 iters) and overrides like `:steps=500`.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  config = ml_collections.ConfigDict()
  config.seed = 1337
  config.data = "../shared/data/tinyshakespeare/input.txt"
  config.tokenizer = "char"
  config.vocab_size = 0        # the characters of the text decide
  config.max_chars = 0
  config.val_fraction = 0.1
  config.context_length = 64   # block_size
  config.batch_size = 12
  config.stride = 1
  config.sampler = "random"    # nanoGPT's get_batch: uniform random offsets
  config.model = ml_collections.ConfigDict(dict(
      num_layers=4, num_heads=4, width=128, dropout=0.0, qkv_bias=False, out_bias=False,
      ffn_bias=False, norm_bias=False, tied_head=True, position="learned", ffn="gelu",
      attention="explicit"))
  config.steps = 200 if options.get("quick") else 2000
  config.lr = 1e-3
  config.min_lr = 1e-4
  config.warmup_steps = 100
  config.b1 = 0.9
  config.b2 = 0.99
  config.weight_decay = 0.1
  config.max_grad_norm = 1.0
  config.grad_accum = 1
  config.dtype = "float32"
  config.eval_every = 250
  config.eval_batches = 20
  config.checkpoint_every = 0
  config.keep = 2
  config.log_every = 10
  config.mesh_data = 1
  config.mesh_fsdp = 1
  config.full_val_eval = True   # also the loss on every validation window, beside the recipe's
  config.samples = 0           # no generation in the benchmark
  config.max_new_tokens = 0
  config.prompt = ""
  config.update({k: v for k, v in options.items() if k != "quick"})
  return config
