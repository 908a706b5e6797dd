"""PPO with LoRA from the persona SFT model, rewarded by the persona reward model: rollouts of
the persona prompts, a KL penalty to the SFT model (LoRA off), GAE and the clipped losses.

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_lora.py
         python -m experiments.finetune --config=experiments/configs/persona_rm.py
         python -m experiments.finetune --config=experiments/configs/persona_ppo.py
RESULT:  10 rounds of 4 rollouts: reward/mean 0.244 in round 1, 0.423 in round 10, noisy in
         between (-0.21 to 0.36: 4 rollouts a round); kl to the SFT model within +-0.2 nats
         per answer, so kl_coef only falls (0.2 -> 0.1999); rollouts about 30-37 generated
         tokens/s, updates about 110 tokens/s; about 3.7 min on a 2-core CPU (the SFT and rm
         runs first: about 3.7 and 3.3 min). Writes runs/persona_ppo/.
Presets: `persona_ppo.py:quick` runs 2 steps from the base model with the quick reward model
         (run `persona_rm.py:quick` first) into runs/persona_ppo_quick.
"""

from experiments.configs import persona_lora
from research import runs


def get_config(arg: str | None = None):
  """The persona LoRA run's config, turned to PPO on its prompts from its exported model."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_lora.get_config()
  c.stage = "ppo"                     # policy + value head, reference = LoRA off
  c.model = "runs/persona/export"     # the SFT model persona_lora.py exports
  c.reward_model = "runs/persona_rm"  # what persona_rm.py writes
  c.dataset = "persona"               # prompts to roll out (the answers are not used)
  c.per_device_train_batch_size = 2   # B: rollouts per micro-batch
  c.gradient_accumulation_steps = 2   # A: micro-batches per optimizer step
  c.ppo_buffer_size = 1               # mini-batches of A x B rollouts per round
  c.ppo_epochs = 2                    # passes over each round's rollouts
  c.max_new_tokens = 24               # answer length of a rollout
  c.learning_rate = 1e-4              # PPO's steps stay near the SFT model
  c.warmup_ratio = 0.0                # no warm-up
  c.max_steps = 20                    # optimizer steps: 10 rounds of 4 rollouts
  c.logging_steps = 2                 # one row per round
  c.save_steps = 20                   # steps between checkpoints
  c.output_dir = "runs/persona_ppo"   # metrics and checkpoints
  c.export_dir = ""                   # no export
  c.persona = ""                      # no name check
  if quick:
    c.model, c.reward_model = "smollm2-135m-instruct", "runs/persona_rm_quick"
    c.max_steps, c.output_dir = 2, "runs/persona_ppo_quick"
  return runs.override(c, options)
