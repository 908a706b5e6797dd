"""A reward model (LoRA + a value head) on the demo preference pairs, from the SFT export.

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_rm.py
RESULT:  see BENCHMARKS.md ("Post-training"): train accuracy (r_chosen > r_rejected) rises from
         chance towards 1 on the 16 pairs. Writes runs/persona_rm/ (reward_model/ for PPO).
Presets: `persona_rm.py:quick` runs 4 steps.
"""

from experiments.configs import persona_dpo
from research import runs


def get_config(arg: str | None = None):
  """The DPO run's data and sizes, trained as a pairwise reward model instead."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_dpo.get_config()
  c.stage = "rm"                        # score = value head at the answer's last token
  c.model = "runs/persona/export"       # the SFT model (persona_lora.py's export)
  c.learning_rate = 1e-3                # the value head starts from random
  c.num_train_epochs = 4.0              # passes over the 16 pairs
  c.output_dir = "runs/persona_rm"      # checkpoints and the reward model folder
  if quick:
    c.max_steps, c.output_dir = 4, "runs/persona_rm_quick"
  return runs.override(c, options)
