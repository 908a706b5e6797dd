"""Fine-tune (LoRA or full SFT) in LLaMA-Factory's terms, export, and check.

  python -m experiments.finetune --config=experiments/configs/persona_lora.py
  python -m experiments.finetune --yaml=my_llamafactory_train.yaml
  python -m experiments.finetune --config=experiments/configs/persona_lora.py \
      --config.learning_rate=5e-4 --config.num_train_epochs=2

`export_dir` writes the merged HF model and the PEFT adapter; a `persona` file runs the
held-out name check on the tuned and base models. stage "dpo" runs DPO (see experiments/dpo.py).
"""

from absl import flags

from experiments import script
from research.finetune import config as config_lib
from research.finetune import pipeline

_CONFIG = script.config_flag("persona_lora", "Fine-tuning config.")
_YAML = flags.DEFINE_string("yaml", None, "A LLaMA-Factory training YAML instead of --config.")
_CHECK_BASE = flags.DEFINE_bool("check_base", True, "Also run the persona check on the base.")


def main(argv):
  del argv
  config = config_lib.from_yaml(_YAML.value) if _YAML.value else _CONFIG.value
  pipeline.run(config, check_base=_CHECK_BASE.value)


if __name__ == "__main__":
  script.run(main)
