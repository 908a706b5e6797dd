"""Export: the merged model as an HF directory (config.json, model.safetensors, tokenizer
files) and the adapter in PEFT's layout, each written to a temporary folder and renamed.

  export.export(lm, "runs/persona/export")   # -> export/ (merged) and export/adapter/
"""

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
from flax import nnx

from research import files
from research import pretrained
from research.nn import lora
from third_party import gguf_write
from third_party import hf_checkpoint
from third_party import hf_names
from third_party import peft_adapter


def hf_config(config, tokenizer) -> dict:
  """config.json for transformers: llama, or qwen2 when q/k/v carry biases."""
  kind = "qwen2" if config.qkv_bias else "llama"
  out = {
      "architectures": ["Qwen2ForCausalLM" if kind == "qwen2" else "LlamaForCausalLM"],
      "model_type": kind, "vocab_size": config.vocab_size, "hidden_size": config.width,
      "intermediate_size": config.ffn_hidden, "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads, "num_key_value_heads": config.kv_heads,
      "head_dim": config.head, "hidden_act": "silu", "rms_norm_eps": config.norm_eps,
      "rope_theta": config.rope_base, "max_position_embeddings": config.max_length,
      "tie_word_embeddings": config.tied_head, "torch_dtype": "float32",
      "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id,
      "pad_token_id": tokenizer.pad_id,
  }
  if kind == "llama":
    out.update(attention_bias=False, mlp_bias=False)
  return out


def merged_tensors(model) -> dict[str, np.ndarray]:
  """HF-named float32 tensors with every LoRA folded in: W = W0 + scale * B A."""
  deltas = {f"{path}.base.kernel": np.asarray(layer.delta_kernel())
            for path, layer in lora.lora_layers(model) if not layer.merged}
  tensors = {}
  for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    name = ".".join(map(str, path))
    if name.endswith((".lora_a", ".lora_b")):
      continue
    value = np.asarray(variable.get_value(), np.float32)
    if name in deltas:
      value = value + deltas[name]
    hf_name, how = hf_names.path_to_hf(name.replace(".base.", "."))
    tensors[hf_name] = np.ascontiguousarray(value.T if how == "T" else value)
  return tensors


def adapter_tensors(model) -> dict[str, np.ndarray]:
  """PEFT's keys: base_model.model.<module>.lora_A.weight (r x in), lora_B.weight (out x r)."""
  tensors = {}
  for path, layer in lora.lora_layers(model):
    module = hf_names.module_to_hf(path)
    tensors[f"base_model.model.{module}.lora_A.weight"] = np.asarray(layer.lora_a[...])
    tensors[f"base_model.model.{module}.lora_B.weight"] = np.asarray(layer.lora_b[...])
  return tensors


def adapter_config(model, base_model: str, dropout: float = 0.0, rslora: bool = False) -> dict:
  layers = [layer for _, layer in lora.lora_layers(model)]
  rank = layers[0].rank
  alpha = layers[0].scale * (np.sqrt(rank) if rslora else rank)
  targets = sorted({hf_names.module_to_hf(p).rsplit(".", 1)[-1]
                    for p, _ in lora.lora_layers(model)})
  return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank,
          "lora_alpha": float(alpha), "lora_dropout": dropout, "target_modules": targets,
          "bias": "none", "fan_in_fan_out": False, "use_rslora": rslora,
          "base_model_name_or_path": base_model, "inference_mode": True}


def write_tokenizer(tokenizer, directory: Path) -> None:
  tokenizer.tokenizer.save(str(directory / "tokenizer.json"))
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
            "clean_up_tokenization_spaces": False}
  if tokenizer.template:
    config["chat_template"] = tokenizer.template
  files.write_json(directory / "tokenizer_config.json", config)


def write_adapter(model, directory, base_model: str, dropout: float = 0.0,
                  rslora: bool = False) -> Path:
  """adapter_model.safetensors and adapter_config.json (PEFT's layout) in `directory`."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  with files.atomic_path(directory / "adapter_model.safetensors") as path:
    save_file(adapter_tensors(model), str(path), metadata={"format": "pt"})
  files.write_json(directory / "adapter_config.json",
                   adapter_config(model, base_model, dropout, rslora))
  return directory


def gguf_name(kind: str) -> str:
  return f"model.{kind}.gguf"


def export(lm, export_dir, *, lora_dropout: float = 0.0, rslora: bool = False,
           gguf_types=("f32",)) -> Path:
  """Writes the merged HF directory, the PEFT adapter under adapter/ when there is one, and
  for each of `gguf_types` ("f32", "f16", "q8_0"; empty for none; LLaMA-Factory has no such
  setting) the merged model as model.<type>.gguf with an Ollama Modelfile FROM the first.

  Everything is written into a temporary folder beside `export_dir`, then renamed into
  place; an export already there is replaced only once the new one is complete.
  """
  export_dir = Path(export_dir)
  export_dir.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=export_dir.parent, prefix=f".{export_dir.name}."))
  try:
    try:
      hf_checkpoint.write(tmp, merged_tensors(lm.model), hf_config(lm.config, lm.tokenizer))
      write_tokenizer(lm.tokenizer, tmp)
      files.write_json(tmp / "bookforai.json", {"source": lm.source,
                                                "config": dataclasses.asdict(lm.config)})
      if lora.lora_layers(lm.model):
        write_adapter(lm.model, tmp / "adapter", lm.source, lora_dropout, rslora)
      write_gguf(lm, tmp, gguf_types)
    except OSError as e:  # a full disk, a quota: name the export, not a temporary file
      reason = (e.strerror or str(e)).rstrip(".")
      kept = ("the previous export there is unchanged" if export_dir.exists()
              else "no part of it was left there")
      raise OSError(e.errno, f"{reason} while writing the export; {kept}",
                    str(export_dir)) from e
    if export_dir.exists():
      old = export_dir.with_name(f".{export_dir.name}.old")
      shutil.rmtree(old, ignore_errors=True)
      export_dir.rename(old)
      tmp.rename(export_dir)
      shutil.rmtree(old)
    else:
      tmp.rename(export_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return export_dir


def write_gguf(lm, directory: Path, gguf_types) -> None:
  """model.<type>.gguf for each type, and the Modelfile naming the first."""
  gguf_types = list(dict.fromkeys(gguf_types))
  for kind in gguf_types:
    if kind not in gguf_write.TYPES:
      raise ValueError(f"GGUF type {kind!r} is not one of {', '.join(gguf_write.TYPES)}.")
  if not gguf_types:
    return
  tensors, config = merged_tensors(lm.model), hf_config(lm.config, lm.tokenizer)
  for kind in gguf_types:
    gguf_write.write(directory / gguf_name(kind), tensors, config, lm.tokenizer, kind)
  files.write_text(directory / "Modelfile", gguf_write.modelfile(gguf_name(gguf_types[0]),
                                                                 lm.tokenizer))


def gguf_types(setting: str) -> tuple[str, ...]:
  """The types of the export_gguf setting: "f32,f16" -> ("f32", "f16"); "" -> ()."""
  return tuple(t.strip().lower() for t in setting.split(",") if t.strip())


def merge_adapter(model_source: str, adapter, export_dir, gguf=("f32",)) -> Path:
  """LLaMA-Factory's merge (its examples/merge_lora): `model_source` with the PEFT adapter
  folder folded in, written by `export` (the merged HF directory, the adapter under
  adapter/, and the GGUF files of `gguf`)."""
  lm = pretrained.load_model(model_source, adapter=adapter or None, quantized=False)
  rslora = bool(adapter) and bool(read_adapter_config(adapter).get("use_rslora", False))
  return export(lm, export_dir, rslora=rslora, gguf_types=gguf)


def read_adapter_config(directory) -> dict:
  """A PEFT adapter_config.json: a JSON object with at least r and lora_alpha."""
  return peft_adapter.read_config(directory)
