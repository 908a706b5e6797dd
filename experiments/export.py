"""Merge a LoRA adapter into its base model, from LLaMA-Factory's merge file.

  python -m experiments.export --yaml=examples/merge_lora/llama3_lora_sft.yaml

The file is LLaMA-Factory's own (model_name_or_path, adapter_name_or_path, export_dir,
template, export_size, ...); export_dir gets the merged HF model, under adapter/ the PEFT
adapter, and model.<type>.gguf files with an Ollama Modelfile (research.finetune.export).
Settings that change nothing here are named once.

  python -m experiments.export --yaml=merge.yaml --gguf=f16,q8_0   # "" writes no GGUF
"""

from absl import flags

from experiments import script
from research.finetune import config as config_lib
from research.finetune import export

_YAML = flags.DEFINE_string("yaml", None, "LLaMA-Factory's merge YAML.", required=True)
_GGUF = flags.DEFINE_string("gguf", None, "GGUF types written beside the export, comma-"
                            "separated f32,f16,q8_0 ('': none); default: the YAML's "
                            "export_gguf, else f32.")


def main(argv):
  del argv
  config = config_lib.merge_from_yaml(_YAML.value)
  setting = config.export_gguf if _GGUF.value is None else _GGUF.value
  out = export.merge_adapter(config.model, config.adapter_name_or_path, config.export_dir,
                             export.gguf_types(setting))
  what = f"{config.model} + {config.adapter_name_or_path}" if config.adapter_name_or_path \
      else config.model
  print(f"export: {what} merged into {out}")


if __name__ == "__main__":
  script.run(main)
