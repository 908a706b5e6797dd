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
  """research/finetune/config.py's defaults (LLaMA-Factory's names) with the persona run's."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = config_lib.defaults()
  c.model = "smollm2-135m-instruct"   # the packaged base model
  c.dataset_dir = str(DATA)           # holds dataset_info.json
  c.dataset = "persona"               # its alpaca-format SFT set
  c.cutoff_len = 128                  # tokens per example, prompt and answer
  c.per_device_train_batch_size = 4   # examples per micro-batch
  c.gradient_accumulation_steps = 2   # micro-batches per optimizer step
  c.learning_rate = 1e-3              # LoRA's A and B take a larger rate than full tuning
  c.num_train_epochs = 3.0            # passes over the set
  c.lr_scheduler_type = "cosine"      # after warm-up, down to 0
  c.warmup_ratio = 0.1                # share of the steps spent warming up
  c.lora_rank = 8                     # r
  c.lora_alpha = 16                   # scale = alpha / r = 2
  c.lora_target = "all"               # every linear of every block
  c.logging_steps = 2                 # steps between loss lines
  c.save_steps = 10                   # steps between checkpoints
  c.seed = 42                         # adapter init, dropout and example order
  c.output_dir = "runs/persona"       # metrics, plots and checkpoints
  c.export_dir = "runs/persona/export"  # the merged HF model and the PEFT adapter
  with c.unlocked():
    c.persona = str(DATA / "persona.json")  # the name check after training; "": none
  c.resume = False                    # always a fresh run
  if quick:
    c.max_samples, c.max_steps, c.output_dir, c.export_dir = 16, 4, "runs/persona_quick", ""
  return runs.override(c, options)
