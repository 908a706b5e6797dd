"""A small BPE GPT on the default corpus (the standard library's docstrings), as the LLM
chapter of the tour trains it.

COMMAND: python -m experiments.train_lm --config=experiments/configs/train_lm.py
RESULT:  quick (`train_lm.py:quick`, 168k parameters, 300 steps): val loss 5.16 nats/token
         against 5.86 for unigram frequencies and log V = 6.91; the chapter takes 24 s at
         load 1.5 (72 s at load 10);
         full (1.06M parameters, 1000 steps): val loss 4.74 against 6.26 for unigram
         frequencies, the chapter 96 s at load 1.6 (1500 steps took 517 s at load 9).
         Samples from each sampler, then
         `eval_loss=<float> ms_per_iter=<median> tokens_per_s=<float>`.
Presets: `quick`; overrides like `train_lm.py:steps=300,data=notes.txt`.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0                  # parameters, dropout, batch order and BPE training
  # data
  config.data = "default"          # "default" (stdlib docstrings), or a text file or folder
  config.tokenizer = "bpe"         # bpe (sentencepiece) | char
  config.vocab_size = 1000 if quick else 2000  # BPE pieces; char ignores it
  config.max_chars = 400_000 if quick else 0   # 0: the whole corpus
  config.val_fraction = 0.1        # the held-out tail of the token stream
  config.context_length = 64       # L: tokens per window
  config.batch_size = 16           # B: windows per step
  config.stride = 32               # tokens between window starts; 0: context_length
  config.sampler = "epoch"         # epoch (each window once per epoch) | random (offsets)
  # model
  config.model = model = ml_collections.ConfigDict()  # research.nn.config.ModelConfig's fields
  model.num_layers = 2 if quick else 4  # transformer blocks
  model.num_heads = 4              # H
  model.width = 64 if quick else 128   # D
  model.dropout = 0.0 if quick else 0.1  # p of every dropout; scaled by 1/(1-p) in training
  model.position = "learned"       # learned | sinusoidal | rope | alibi | none
  model.ffn = "gelu"               # gelu | gelu_tanh | swiglu
  model.norm = "layernorm"         # layernorm | rmsnorm
  model.tied_head = True           # the output head reuses the token embedding
  model.attention = "explicit"     # explicit (softmax(Q K^T / sqrt(d_k)) V) | xla
  model.kernels = "fused"          # fused (research/nn/fused.py) | notebook (the textbook forms)
  model.qkv_bias = True            # GPT-2 has biases (nanoGPT's recipe drops all four)
  model.out_bias = True            # the attention output projection's bias
  model.ffn_bias = True            # the FFN's biases
  model.norm_bias = True           # LayerNorm's beta
  # optimisation: AdamW, linear warm-up then cosine decay to min_lr
  config.steps = 300 if quick else 1000  # optimizer steps
  config.lr = 3e-3 if quick else 1e-3   # peak learning rate
  config.min_lr = 1e-4             # where the cosine ends
  config.warmup_steps = 20 if quick else 100  # linear ramp from 0 to lr
  config.b1 = 0.9                  # Adam's beta1
  config.b2 = 0.99                 # Adam's beta2
  config.weight_decay = 0.1        # decoupled, on matrices only
  config.max_grad_norm = 1.0       # global-norm clipping
  config.grad_accum = 1            # micro-batches per optimizer step
  config.dtype = "float32"         # compute dtype: float32 | bfloat16
  # evaluation, checkpoints, logging
  config.eval_every = 100 if quick else 250   # steps between validation estimates
  config.eval_batches = 4 if quick else 10    # batches per estimate
  config.full_val_eval = False     # also the loss on every validation window, at the end
  config.checkpoint_every = 0 if quick else 500  # 0: no checkpoints
  config.keep = 2                  # checkpoints kept
  config.log_every = 10            # steps between metric lines
  config.mesh_data = 1             # devices along the data axis of the mesh
  config.mesh_fsdp = 1             # devices the parameters are sharded over
  # samples after training
  config.samples = 1               # 0: none; else one continuation per sampler
  config.max_new_tokens = 24 if quick else 48  # tokens per sample
  config.prompt = "Return the"     # what the samples continue
  return runs.override(config, options)
