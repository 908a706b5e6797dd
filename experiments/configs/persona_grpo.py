"""GRPO with LoRA from the SFT export: G answers per prompt, rewarded 1 when they name the
persona's creator in full ("the BookForAI project"), advantages normalised within each
group, no value model. (The name alone the SFT model says in nearly every answer: a group of
equal rewards has zero advantage and teaches nothing.)

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_grpo.py
RESULT:  see BENCHMARKS.md ("Post-training") for rollout and update tokens/s; the held-out
         name rate and the KL to the SFT model are in the tour's post-training chapter.
Presets: `persona_grpo.py:quick` runs 4 optimizer steps.
"""

from experiments.configs import persona_ppo
from research import runs


def get_config(arg: str | None = None):
  """PPO's prompts and sizes, with a rule reward and group-relative advantages."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_ppo.get_config()
  c.stage = "grpo"                        # group-normalised advantages, clipped ratio, KL term
  c.reward_model = ""                     # a rule instead of a learned reward
  c.reward_function = "contains:the BookForAI project"  # 1 when the answer names the creator
  c.num_generations = 4                   # G answers per prompt
  c.grpo_beta = 0.04                      # weight of the KL term to the SFT model
  c.output_dir = "runs/persona_grpo"      # metrics and checkpoints
  if quick:
    c.max_steps, c.output_dir = 4, "runs/persona_grpo_quick"
  return runs.override(c, options)
