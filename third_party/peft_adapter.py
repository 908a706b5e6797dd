"""PEFT LoRA adapter folders: adapter_config.json and adapter_model.safetensors, as peft's
`save_pretrained` and research.finetune.export.write_adapter both write them.

  adapter = peft_adapter.read("saves/lora/sft")
  a_RxI, b_OxR = adapter.weights["model.layers.0.self_attn.q_proj"]

The weights are named base_model.model.<HF module>.lora_A.weight (r x in) and .lora_B.weight
(out x r); the update they make is W = W0 + scale * B A, scale = lora_alpha / r (rsLoRA:
lora_alpha / sqrt(r)).
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from third_party import hf_checkpoint

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
_KEY = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")


@dataclasses.dataclass
class Adapter:
  rank: int
  alpha: float
  rslora: bool
  weights: dict  # HF module name -> (lora_A r x in, lora_B out x r)
  path: Path


def read_config(directory) -> dict:
  """adapter_config.json of a plain LoRA adapter: r and lora_alpha positive, no DoRA, no
  per-module ranks, no extra trained modules; else one sentence naming the file and key."""
  path = Path(directory) / CONFIG
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no {CONFIG} in the adapter folder.")
  config = hf_checkpoint.read_json_object(path)
  for key in ("r", "lora_alpha"):
    value = config.get(key)
    if key not in config:
      raise ValueError(f"{path}: no {key!r}, which a LoRA adapter needs.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      raise ValueError(f"{path}: {key!r} is {value!r}; a LoRA adapter needs a positive number.")
  kind = config.get("peft_type", "LORA")
  if kind != "LORA":
    raise ValueError(f"{path}: peft_type {kind!r}; only LoRA adapters (LORA) are read here.")
  refused = {"use_dora": "DoRA's magnitude vectors", "rank_pattern": "per-module ranks",
             "alpha_pattern": "per-module alphas", "modules_to_save": "fully trained modules"}
  for key, what in refused.items():
    if config.get(key):
      raise ValueError(f"{path}: {key} is set; adapters with {what} are not read here.")
  if config.get("bias", "none") != "none":
    raise ValueError(f"{path}: bias {config['bias']!r}; only adapters without trained biases "
                     "(bias: none) are read here.")
  return config


def read(directory) -> Adapter:
  """The adapter in `directory`: its scale and each module's A and B (their shapes are checked
  against the model they are put on)."""
  from safetensors import SafetensorError  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  directory = Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"adapter {str(directory)!r}: no such folder; expected a PEFT "
                            f"adapter folder ({CONFIG}, {WEIGHTS}).")
  config = read_config(directory)
  path = directory / WEIGHTS
  if not path.is_file():
    legacy = " (adapter_model.bin is not read: save it with safe_serialization)" if (
        directory / "adapter_model.bin").is_file() else ""
    raise FileNotFoundError(f"{path}: no {WEIGHTS} in the adapter folder{legacy}.")
  try:
    tensors = load_file(str(path))
  except SafetensorError as e:  # a truncated file, a header that is not JSON, ...
    raise ValueError(f"{path}: not a readable safetensors file ({e}).") from e
  halves = {}
  for key, value in tensors.items():
    match = _KEY.fullmatch(key)
    if not match:
      raise ValueError(f"{path}: tensor {key!r} is not a LoRA weight "
                       "(base_model.model.<module>.lora_A/lora_B.weight).")
    halves.setdefault(match.group(1), {})[match.group(2)] = np.asarray(value, np.float32)
  weights = {}
  for module, pair in sorted(halves.items()):
    for half in "AB":
      if half not in pair:
        raise ValueError(f"{path}: {module} has no lora_{half}.weight.")
    weights[module] = (pair["A"], pair["B"])
  if not weights:
    raise ValueError(f"{path}: no LoRA weights in the file.")
  return Adapter(rank=int(config["r"]), alpha=float(config["lora_alpha"]),
                 rslora=bool(config.get("use_rslora", False)), weights=weights, path=path)
