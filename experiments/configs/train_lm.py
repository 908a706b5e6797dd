"""A small BPE GPT on the default corpus (the standard library's docstrings), as the LLM
chapter of the tour trains it.

COMMAND: python -m experiments.train_lm --config=experiments/configs/train_lm.py
RESULT:  quick (`train_lm.py:quick`, 168k parameters, 300 steps): val loss 5.16 nats/token
         against 5.86 for unigram frequencies and log V = 6.91; the chapter takes 24 s at
         load 1.5 (72 s at load 10);
         full (1.06M parameters, 1000 steps): val loss 4.74 against 6.26 for unigram
         frequencies, the chapter 96 s at load 1.6 (1500 steps took 517 s at load 9).
         Samples from each sampler, then
         `val_loss=<float> ms_per_iter=<median> tokens_per_s=<float>`.
Presets: `quick`; overrides like `train_lm.py:steps=300,data=notes.txt`.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.get("quick"))
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = "default"
  config.tokenizer = "bpe"
  config.vocab_size = 1000 if quick else 2000
  config.max_chars = 400_000 if quick else 0   # 0: the whole corpus
  config.val_fraction = 0.1
  config.context_length = 64
  config.batch_size = 16
  config.stride = 32
  config.sampler = "epoch"
  config.model = ml_collections.ConfigDict(dict(
      num_layers=2 if quick else 4, num_heads=4, width=64 if quick else 128,
      dropout=0.0 if quick else 0.1, position="learned", ffn="gelu", norm="layernorm",
      tied_head=True, attention="explicit"))
  config.steps = 300 if quick else 1000
  config.lr = 3e-3 if quick else 1e-3
  config.min_lr = 1e-4
  config.warmup_steps = 20 if quick else 100
  config.b1 = 0.9
  config.b2 = 0.99
  config.weight_decay = 0.1
  config.max_grad_norm = 1.0
  config.grad_accum = 1
  config.dtype = "float32"
  config.eval_every = 100 if quick else 250
  config.eval_batches = 4 if quick else 10
  config.checkpoint_every = 0 if quick else 500
  config.keep = 2
  config.log_every = 10
  config.mesh_data = 1
  config.mesh_fsdp = 1
  config.samples = 1
  config.max_new_tokens = 24 if quick else 48
  config.prompt = "Return the"
  config.update({k: v for k, v in options.items() if k != "quick"})
  return config
