"""PPO with LoRA from the SFT export, rewarded by persona_rm.py's reward model.

COMMAND: python -m experiments.finetune --config=experiments/configs/persona_ppo.py
RESULT:  see BENCHMARKS.md ("Post-training") for rollout and update tokens/s; the held-out
         reward and the KL to the SFT model are in the tour's post-training chapter.
Presets: `persona_ppo.py:quick` runs 4 optimizer steps (2 rounds of rollouts).
"""

from experiments.configs import persona_lora
from research import runs


def get_config(arg: str | None = None):
  """The persona set's prompts; answers sampled by the policy and scored by the reward model."""
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = persona_lora.get_config()
  c.stage = "ppo"                            # rollouts, KL-penalised rewards, GAE, clipped updates
  c.model = "runs/persona/export"            # the SFT model
  c.reward_model = "runs/persona_rm"        # persona_rm.py's output_dir (its reward model)
  c.dataset = "persona"                      # its prompts (the answers are sampled)
  c.cutoff_len = 64                          # prompt tokens kept
  c.per_device_train_batch_size = 4          # rollout rows per micro-batch
  c.gradient_accumulation_steps = 1          # micro-batches per optimizer step
  c.ppo_buffer_size = 1                      # micro-batch groups per round of rollouts
  c.ppo_epochs = 2                           # updates per round
  c.learning_rate = 1e-4                     # PPO moves the policy in small steps
  c.max_steps = 16                           # optimizer steps (8 rounds)
  c.max_new_tokens = 24                      # answer tokens per rollout
  c.warmup_ratio = 0.0                       # no warm-up
  c.logging_steps = 1                        # every step's reward, KL and losses
  c.save_steps = 50                          # steps between checkpoints
  c.output_dir = "runs/persona_ppo"          # metrics and checkpoints
  c.export_dir = ""                          # no export
  c.persona = ""                             # the tour chapter measures the result
  if quick:
    c.max_steps, c.output_dir = 4, "runs/persona_ppo_quick"
  return runs.override(c, options)
