"""DPO with LoRA on the demo preference set, the reference being the model with LoRA off.

COMMAND: python -m experiments.dpo --config=experiments/configs/persona_dpo.py
RESULT:  loss starts at ln 2 = 0.6931 and falls; rewards/accuracy rises towards 1 on the
         16 pairs; a few minutes on a 2-core CPU. Writes runs/persona_dpo/.
Presets: `persona_dpo.py:quick` runs 3 steps.
"""

from pathlib import Path

from research import runs
from research.finetune import config as config_lib

DATA = Path(__file__).resolve().parents[1] / "data" / "persona"


def get_config(arg: str | None = None):
  options = runs.parse_config_arg(arg)
  c = config_lib.defaults()
  c.stage = "dpo"
  c.model = "smollm2-135m-instruct"
  c.dataset_dir = str(DATA)
  c.dataset = "persona_prefs"
  c.cutoff_len = 96
  c.per_device_train_batch_size = 2
  c.gradient_accumulation_steps = 2
  c.learning_rate = 5e-4
  c.num_train_epochs = 2.0
  c.pref_beta = 0.1
  c.lora_rank = 8
  c.lora_alpha = 16
  c.logging_steps = 1
  c.save_steps = 50
  c.output_dir = "runs/persona_dpo"
  c.resume = False
  if options.pop("quick", False):
    c.max_steps, c.output_dir = 3, "runs/persona_dpo_quick"
  c.update(options)
  return c
