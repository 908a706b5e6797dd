"""The post-training chapter: from one SFT checkpoint, DPO, reward model + PPO, and GRPO with a
rule reward, each measured on held-out questions (reward, name rate, KL to the SFT model).

COMMAND: python -m experiments.tour --only=posttrain [--quick]
RESULT:  see BENCHMARKS.md ("Post-training") and the tour report; every run is one of
         experiments/configs/persona_{lora,dpo,rm,ppo,grpo}.py with fewer steps.
"""

import ml_collections

from experiments.configs import persona_lora
from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = ml_collections.ConfigDict()
  c.seed = 0                                    # sampling keys derive from it
  c.model = "smollm2-135m-instruct"             # the base the SFT run starts from
  c.dataset_dir = str(persona_lora.DATA)        # the persona set and its preference pairs
  c.sft_dataset = "persona"                     # SFT examples (and PPO/GRPO's prompts)
  c.pref_dataset = "persona_prefs"              # DPO's and the reward model's pairs
  c.persona = str(persona_lora.DATA / "persona.json")  # the name and the held-out questions
  c.sft_steps = 30 if quick else 60             # LoRA SFT steps (batch 8)
  c.dpo_steps = 8 if quick else 16              # DPO steps (batch 4 pairs)
  c.rm_steps = 8 if quick else 16               # reward model steps
  c.ppo_steps = 8 if quick else 16              # PPO optimizer steps (2 per round)
  c.grpo_steps = 8 if quick else 16             # GRPO optimizer steps (2 per round)
  c.max_new_tokens = 24                         # answer tokens of rollouts and of the check
  c.samples = 4                                 # sampled answers per held-out question
  c.cutoff_len = 96                             # tokens per example
  return runs.override(c, options)
