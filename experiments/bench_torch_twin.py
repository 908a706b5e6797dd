"""A PyTorch twin of experiments/configs/shakespeare_char.py (nanoGPT's CPU recipe), written
here to tell seed noise from a real gap in the val-loss target. Reference only: torch comes
from the dev extra and never enters research/.

  python experiments/bench_torch_twin.py SEED [DATA]
  # last line: seed=S val20=<val loss at iter 2000, 20 random batches> full_val=<every window
  #            of the 10% split> ms_per_iter=<median of the training steps>

It draws from torch's generator in nanoGPT's order (train.py, model.py), so a seed gives
nanoGPT's own run: module construction (default inits), then normal(0.02) over every weight,
the tied head twice, then 0.02/sqrt(2L) over the residual projections; one train batch ahead;
20 train and 20 val batches at every eval, iter 0 included. Parameters are registered in
nanoGPT's order too, since the gradient-clipping norm sums over them in that order. Seed 1337
prints val20=1.8857, the issue's nanoGPT figure.
"""
import math, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

L, B, D, H, NL = 64, 12, 128, 4, 4         # block_size, batch_size, n_embd, n_head, n_layer
STEPS, WARMUP, LR, MIN_LR, EVAL_EVERY, EVAL_BATCHES = 2000, 100, 1e-3, 1e-4, 250, 20


class LayerNorm(nn.Module):                 # no bias, eps 1e-5
  def __init__(s): super().__init__(); s.w = nn.Parameter(torch.ones(D))
  def forward(s, x): return F.layer_norm(x, (D,), s.w, None, 1e-5)


class Block(nn.Module):
  def __init__(s):                          # attribute order = nanoGPT's parameter order
    super().__init__()
    s.ln1 = LayerNorm(); s.qkv = nn.Linear(D, 3 * D, bias=False); s.proj = nn.Linear(D, D, bias=False)
    s.ln2 = LayerNorm(); s.up = nn.Linear(D, 4 * D, bias=False); s.down = nn.Linear(4 * D, D, bias=False)

  def forward(s, x_BxLxD):
    b, l, _ = x_BxLxD.shape
    q, k, v = s.qkv(s.ln1(x_BxLxD)).split(D, 2)
    q, k, v = (t.view(b, l, H, D // H).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, l, D)
    x_BxLxD = x_BxLxD + s.proj(y)
    return x_BxLxD + s.down(F.gelu(s.up(s.ln2(x_BxLxD))))


class GPT(nn.Module):
  def __init__(s, vocab):
    super().__init__()
    s.wte, s.wpe = nn.Embedding(vocab, D), nn.Embedding(L, D)
    s.blocks = nn.ModuleList([Block() for _ in range(NL)]); s.lnf = LayerNorm()
    s.head = nn.Linear(D, vocab, bias=False); s.wte.weight = s.head.weight   # tied
    weights = [s.wte.weight, s.wpe.weight]
    weights += [w for blk in s.blocks for w in (blk.qkv.weight, blk.proj.weight, blk.up.weight, blk.down.weight)]
    for w in weights + [s.head.weight]:      # the tied matrix is drawn twice, as in nanoGPT
      nn.init.normal_(w, 0.0, 0.02)
    for blk in s.blocks:                     # residual projections: std 0.02 / sqrt(2 L)
      for w in (blk.proj.weight, blk.down.weight): nn.init.normal_(w, 0.0, 0.02 / math.sqrt(2 * NL))

  def forward(s, idx_BxL):
    x = s.wte(idx_BxL) + s.wpe(torch.arange(idx_BxL.shape[1]))
    for blk in s.blocks: x = blk(x)
    return s.head(s.lnf(x))


def lr_at(it):                               # nanoGPT: (t+1)/(W+1) warmup, cosine to MIN_LR
  if it < WARMUP: return LR * (it + 1) / (WARMUP + 1)
  ratio = (it - WARMUP) / (STEPS - WARMUP)
  return MIN_LR + 0.5 * (1 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def main(seed, path):
  torch.set_num_threads(2)
  text = open(path).read()
  chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
  data = torch.tensor([stoi[c] for c in text], dtype=torch.int64)
  n = int(0.9 * len(data)); split = {"train": data[:n], "val": data[n:]}

  def batch(name):                           # uniform random offsets, as nanoGPT's get_batch
    d = split[name]; ix = torch.randint(len(d) - L, (B,))
    return torch.stack([d[i:i + L] for i in ix]), torch.stack([d[i + 1:i + 1 + L] for i in ix])

  def loss_of(x, y, reduction="mean"):
    return F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1), reduction=reduction)

  @torch.no_grad()
  def estimate():
    model.eval()
    out = {name: float(np.mean([loss_of(*batch(name)).item() for _ in range(EVAL_BATCHES)]))
           for name in ("train", "val")}
    model.train()
    return out

  torch.manual_seed(seed)
  model = GPT(len(chars))
  params = list(model.parameters())
  opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                           {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                          lr=LR, betas=(0.9, 0.99))
  x, y = batch("train")
  t0, times = time.time(), []
  for it in range(STEPS + 1):
    if it % EVAL_EVERY == 0:
      losses = estimate()
      print(f"iter {it}: train {losses['train']:.4f} val {losses['val']:.4f}", flush=True)
    if it == STEPS:
      break
    tick = time.perf_counter()
    for g in opt.param_groups: g["lr"] = lr_at(it)
    loss = loss_of(x, y); x, y = batch("train")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - tick)
  model.eval()
  with torch.no_grad():                      # every non-overlapping window of the val split
    val = split["val"]; windows = (len(val) - 1) // L; total = 0.0
    for start in range(0, windows, 256):
      idx = torch.arange(start, min(start + 256, windows)) * L
      xs = torch.stack([val[j:j + L] for j in idx]); ys = torch.stack([val[j + 1:j + 1 + L] for j in idx])
      total += loss_of(xs, ys, "sum").item()
  print(f"seed={seed} val20={losses['val']:.4f} full_val={total / (windows * L):.4f} "
        f"ms_per_iter={1000 * np.median(times):.2f} s={time.time() - t0:.0f}")


if __name__ == "__main__":
  main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "../shared/data/tinyshakespeare/input.txt")
