"""LoRA: a frozen linear W0 plus a trainable low-rank update, y = x W0 + scale * x A^T B^T.

A (r x in) starts kaiming-uniform and B (out x r) at zero, so a fresh adapter changes nothing.
scale = alpha / r (rsLoRA: alpha / sqrt(r)). A and B are `LoRAParam`s, so
`nnx.split(model, LoRAParam, ...)` separates what fine-tuning trains from what it freezes.
Layers are chosen by our own module paths (blocks.3.attn.query); LLaMA-Factory's HF-named
`lora_target` becomes such a predicate in third_party/hf_names.LoraTarget.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import quantized


class LoRAParam(nnx.Param):
  """A low-rank adapter weight: the only kind of parameter fine-tuning updates."""


class LoRALinear(nnx.Module):
  def __init__(self, base: nnx.Linear, rank: int, alpha: float, *, dropout: float = 0.0,
               rslora: bool = False, rngs: nnx.Rngs):
    if rank < 1:
      raise ValueError(f"lora_rank={rank}: expected a positive integer.")
    self.base = base
    self.rank = rank
    self.scale = alpha / (math.sqrt(rank) if rslora else rank)
    bound = 1.0 / math.sqrt(base.in_features)  # kaiming-uniform with a = sqrt(5), as PEFT
    self.lora_a = LoRAParam(jax.random.uniform(rngs.params(), (rank, base.in_features),
                                               jnp.float32, -bound, bound))
    self.lora_b = LoRAParam(jnp.zeros((base.out_features, rank), jnp.float32))
    self.rate = dropout
    self.deterministic = True  # nnx's model.train() / model.eval() flip this
    self.rngs = rngs if dropout > 0 else None
    self.merged = False

  def __call__(self, x):
    y = self.base(x)
    if self.merged:
      return y
    h = x
    if self.rate > 0 and not self.deterministic:
      keep = jax.random.bernoulli(self.rngs.dropout(), 1.0 - self.rate, x.shape)
      h = jnp.where(keep, x / (1.0 - self.rate), 0.0)  # inverted dropout on the LoRA path
    a_RxI = self.lora_a[...].astype(x.dtype)
    b_OxR = self.lora_b[...].astype(x.dtype)
    return y + self.scale * ((h @ a_RxI.T) @ b_OxR.T)  # scale * x A^T B^T

  def delta_kernel(self):
    """scale * (B A)^T, shaped like the base kernel (in x out)."""
    return self.scale * (self.lora_b[...] @ self.lora_a[...]).T

  def merge(self):
    """W <- W0 + scale * B A: the adapter folded into the base weight."""
    if isinstance(self.base, quantized.QuantizedLinear):
      raise ValueError("LoRA merge: the base weight is kept quantized; load the model with "
                       "quantized=False to merge into it.")
    if not self.merged:
      kernel = self.base.kernel[...]
      self.base.kernel.set_value((kernel + self.delta_kernel()).astype(kernel.dtype))
      self.merged = True

  def unmerge(self):
    if self.merged:
      kernel = self.base.kernel[...]
      self.base.kernel.set_value((kernel - self.delta_kernel()).astype(kernel.dtype))
      self.merged = False


def apply_lora(model, matches: Callable[[str], bool] = lambda path: True, rank: int = 8,
               alpha: float | None = None, *, dropout: float = 0.0, rslora: bool = False,
               seed: int = 0) -> list[str]:
  """Wraps in place each linear of each block whose path (blocks.3.attn.query) `matches`
  accepts; returns those paths. The default wraps every linear of every block."""
  alpha = 2.0 * rank if alpha is None else alpha
  rngs = nnx.Rngs(params=seed, dropout=seed + 1)
  wrapped = []
  for i, block in enumerate(model.blocks):
    for group_name in ("attn", "ffn"):
      group = getattr(block, group_name)
      for attr, value in list(vars(group).items()):
        path = f"blocks.{i}.{group_name}.{attr}"
        if isinstance(value, (nnx.Linear, quantized.QuantizedLinear)) and matches(path):
          setattr(group, attr, LoRALinear(value, rank, alpha, dropout=dropout, rslora=rslora,
                                          rngs=rngs))
          wrapped.append(path)
  if not wrapped:
    raise ValueError(f"{matches!r} matches no linear layer of the model.")
  return wrapped


def lora_layers(model):
  """(path, LoRALinear) for every adapter in the model."""
  return [(".".join(map(str, path)), module) for path, module in nnx.iter_modules(model)
          if isinstance(module, LoRALinear)]


def merge_all(model):
  for _, layer in lora_layers(model):
    layer.merge()


def unmerge_all(model):
  for _, layer in lora_layers(model):
    layer.unmerge()


def count_parameters(model) -> tuple[int, int]:
  """(trainable LoRA parameters, frozen base parameters)."""
  lora_state, base_state = nnx.state(model, LoRAParam, nnx.Param)
  size = lambda state: sum(x.size for x in jax.tree_util.tree_leaves(state))
  return size(lora_state), size(base_state)
