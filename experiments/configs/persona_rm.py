"""A reward model with LoRA on the demo preference set: a value head scores prompt + answer at
its last token, trained so the chosen answer scores above the rejected one.

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_rm.py
RESULT:  12 steps: loss 0.686 at step 1 (near ln 2) to 0.140 at step 12; accuracy
         (r_chosen > r_rejected over a step's 4 pairs) 0.75 to 1.0 from step 7 on; about 3.5
         min on a 2-core CPU, most of it compiling. Writes runs/persona_rm/ (metrics.jsonl,
         checkpoints/, and the reward model PPO loads: adapter_model.safetensors,
         value_head.safetensors, reward_model.json).
Presets: `persona_rm.py:quick` runs 3 steps into runs/persona_rm_quick.
"""

from experiments.configs import persona_dpo
from research import runs


def get_config(arg: str | None = None):
  """The persona DPO run's config (same pairs, same LoRA), turned to a reward model."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_dpo.get_config()
  c.stage = "rm"                      # value head + pairwise loss -log sigmoid(r_w - r_l)
  c.learning_rate = 1e-3              # the head and the adapters start from scratch
  c.num_train_epochs = 3.0            # passes over the 16 pairs
  c.output_dir = "runs/persona_rm"    # metrics, checkpoints and the reward model folder
  if quick:
    c.max_steps, c.output_dir = 3, "runs/persona_rm_quick"
  return runs.override(c, options)
