"""A PyTorch twin of experiments/configs/shakespeare_char.py (nanoGPT's CPU recipe), written
here to tell seed noise from a real gap in the val-loss target. Reference only: torch comes
from the dev extra and never enters research/.

  python experiments/bench_torch_twin.py SEED [DATA]   # prints val20 (20 random batches) and
                                                       # full_val (every window of the 10% split)
"""
import math, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
seed = int(sys.argv[1]); torch.manual_seed(seed); torch.set_num_threads(2)
text = open(sys.argv[2] if len(sys.argv) > 2 else "../shared/data/tinyshakespeare/input.txt").read()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
data = np.array([stoi[c] for c in text], dtype=np.int64)
n = int(0.9 * len(data)); train, val = torch.from_numpy(data[:n]), torch.from_numpy(data[n:])
L, B, D, H, NL, V = 64, 12, 128, 4, 4, len(chars)
def batch(split):
  d = train if split == "train" else val
  ix = torch.randint(len(d) - L, (B,))
  return torch.stack([d[i:i + L] for i in ix]), torch.stack([d[i + 1:i + 1 + L] for i in ix])
class LN(nn.Module):
  def __init__(s): super().__init__(); s.w = nn.Parameter(torch.ones(D))
  def forward(s, x): return F.layer_norm(x, (D,), s.w, None, 1e-5)
class Block(nn.Module):
  def __init__(s):
    super().__init__(); s.ln1, s.ln2 = LN(), LN()
    s.qkv = nn.Linear(D, 3 * D, bias=False); s.proj = nn.Linear(D, D, bias=False)
    s.up = nn.Linear(D, 4 * D, bias=False); s.down = nn.Linear(4 * D, D, bias=False)
  def forward(s, x):
    b, l, _ = x.shape
    q, k, v = s.qkv(s.ln1(x)).split(D, 2)
    q, k, v = (t.view(b, l, H, D // H).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, l, D)
    x = x + s.proj(y)
    return x + s.down(F.gelu(s.up(s.ln2(x))))
class GPT(nn.Module):
  def __init__(s):
    super().__init__(); s.wte = nn.Embedding(V, D); s.wpe = nn.Embedding(L, D)
    s.blocks = nn.ModuleList([Block() for _ in range(NL)]); s.lnf = LN()
    for name, p in s.named_parameters():
      if p.dim() == 2: nn.init.normal_(p, 0, 0.02 / math.sqrt(2 * NL) if name.endswith(("proj.weight", "down.weight")) else 0.02)
  def forward(s, idx):
    x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
    for blk in s.blocks: x = blk(x)
    return s.lnf(x) @ s.wte.weight.T
m = GPT()
decay = [p for p in m.parameters() if p.dim() >= 2]; nodecay = [p for p in m.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
def lr_at(it):
  if it < 100: return 1e-3 * (it + 1) / 101
  r = (it - 100) / (2000 - 100); return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * (1e-3 - 1e-4)
t0, times = time.time(), []
for it in range(2000):
  tick = time.perf_counter()
  for g in opt.param_groups: g["lr"] = lr_at(it)
  x, y = batch("train")
  loss = F.cross_entropy(m(x).view(-1, V), y.view(-1))
  opt.zero_grad(set_to_none=True); loss.backward()
  torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
  times.append(time.perf_counter() - tick)
m.eval()
with torch.no_grad():
  losses = [F.cross_entropy(m(x).view(-1, V), y.view(-1)).item() for x, y in (batch("val") for _ in range(20))]
  nw = (len(val) - 1) // L; full = []
  for i in range(0, nw, 256):
    idx = torch.arange(i, min(i + 256, nw)) * L
    x = torch.stack([val[j:j + L] for j in idx]); y = torch.stack([val[j + 1:j + 1 + L] for j in idx])
    full.append(F.cross_entropy(m(x).view(-1, V), y.view(-1), reduction="sum").item())
print(f"seed={seed} val20={np.mean(losses):.4f} full_val={sum(full) / (nw * L):.4f} "
      f"ms_per_iter={1000 * np.median(times):.2f} s={time.time() - t0:.0f}")
