"""The fine-tuning chapter of the tour: LoRA's size, its no-op start, merge, DPO's start and a
short LoRA SFT, on a small random llama (fast) plus SmolLM2's shapes for the counts.

COMMAND: python -m experiments.tour --only=finetune [--quick]
RESULT:  LoRA r=8 on all linears of SmolLM2-135M trains 1.816% of its parameters; a fresh
         adapter changes no logit; merging changes logits by < 1e-5; DPO starts at ln 2;
         LoRA SFT lowers the training loss below half its start. About 40 s on 2 CPUs.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.ranks = [1, 2, 4, 8, 16, 32, 64]
  c.sft_steps = 25 if options.get("quick") else 60
  c.width = 64
  c.layers = 2
  c.update({k: v for k, v in options.items() if k != "quick"})
  return c
