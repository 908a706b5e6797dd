"""Merge a LoRA adapter into its base model, from LLaMA-Factory's merge file.

  python -m experiments.export --yaml=examples/merge_lora/llama3_lora_sft.yaml

The file is LLaMA-Factory's own (model_name_or_path, adapter_name_or_path, export_dir,
template, export_size, ...); export_dir gets the merged HF model and, under adapter/, the
PEFT adapter (research.finetune.export). Settings that change nothing here are named once.
"""

from absl import flags

from experiments import script
from research.finetune import config as config_lib
from research.finetune import export

_YAML = flags.DEFINE_string("yaml", None, "LLaMA-Factory's merge YAML.", required=True)


def main(argv):
  del argv
  config = config_lib.merge_from_yaml(_YAML.value)
  out = export.merge_adapter(config.model, config.adapter_name_or_path, config.export_dir)
  what = f"{config.model} + {config.adapter_name_or_path}" if config.adapter_name_or_path \
      else config.model
  print(f"export: {what} merged into {out}")


if __name__ == "__main__":
  script.run(main)
