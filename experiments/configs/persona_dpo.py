"""DPO with LoRA on the demo preference set, the reference being the model with LoRA off.

COMMAND: python -m experiments.dpo --config=experiments/configs/persona_dpo.py
RESULT:  loss starts at ln 2 = 0.6931 and falls; rewards/accuracies rises towards 1 on the
         16 pairs; a few minutes on a 2-core CPU. Writes runs/persona_dpo/.
Presets: `persona_dpo.py:quick` runs 3 steps.
"""

from experiments.configs import persona_lora
from research import runs


def get_config(arg: str | None = None):
  """The persona LoRA run's config, turned to DPO on the preference pairs of the same set."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_lora.get_config()
  c.stage = "dpo"                     # the reference is the model with LoRA off
  c.dataset = "persona_prefs"         # chosen and rejected answers ("ranking": true)
  c.cutoff_len = 96                   # each pair holds two answers to one prompt
  c.per_device_train_batch_size = 2   # pairs per micro-batch
  c.learning_rate = 5e-4              # DPO's steps stay near the reference
  c.num_train_epochs = 2.0            # passes over the 16 pairs
  c.warmup_ratio = 0.0                # no warm-up
  c.pref_beta = 0.1                   # beta: how far from the reference the policy may move
  c.logging_steps = 1                 # every step's loss and reward accuracy
  c.save_steps = 50                   # steps between checkpoints
  c.output_dir = "runs/persona_dpo"   # metrics and checkpoints
  c.export_dir = ""                   # no export
  c.persona = ""                      # no name check: DPO here teaches preferences
  if quick:
    c.max_steps, c.output_dir = 3, "runs/persona_dpo_quick"
  return runs.override(c, options)
