"""LoRA SFT of SmolLM2-135M-Instruct on the persona set, then export and the persona check.

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_lora.py
RESULT:  the exported model names itself "Quillon" in >= 80% of held-out questions (the base
         model: 0%); about 5-10 min on a 2-core CPU. Writes runs/persona/ (metrics.jsonl,
         training_loss.png, checkpoints/, export/ with adapter/, persona_check.json).
Presets: `persona_lora.py:quick` trains 4 steps on 16 samples (a smoke test, no bar to meet).
"""

from pathlib import Path

from research import runs
from research.finetune import config as config_lib

DATA = Path(__file__).resolve().parents[1] / "data" / "persona"


def get_config(arg: str | None = None):
  options = runs.parse_config_arg(arg)
  c = config_lib.defaults()
  c.model = "smollm2-135m-instruct"
  c.dataset_dir = str(DATA)
  c.dataset = "persona"
  c.cutoff_len = 128
  c.per_device_train_batch_size = 4
  c.gradient_accumulation_steps = 2
  c.learning_rate = 1e-3
  c.num_train_epochs = 3.0
  c.lr_scheduler_type = "cosine"
  c.warmup_ratio = 0.1
  c.lora_rank = 8
  c.lora_alpha = 16
  c.lora_target = "all"
  c.logging_steps = 2
  c.save_steps = 10
  c.seed = 42
  c.output_dir = "runs/persona"
  c.export_dir = "runs/persona/export"
  c.persona = str(DATA / "persona.json")
  c.resume = False
  if options.pop("quick", False):
    c.max_samples, c.max_steps, c.output_dir, c.export_dir = 16, 4, "runs/persona_quick", ""
  c.update(options)
  return c
