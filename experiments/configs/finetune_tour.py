"""The fine-tuning chapter of the tour: LoRA's size, its no-op start, merge, DPO's start and a
short LoRA SFT, on a small random llama (fast) plus SmolLM2's shapes for the counts.

COMMAND: python -m experiments.tour --only=finetune [--quick]
RESULT:  LoRA r=8 on all linears of SmolLM2-135M trains 1.816% of its parameters; a fresh
         adapter changes no logit; merging changes logits by < 1e-5; DPO starts at ln 2;
         LoRA SFT lowers the training loss below half its start. About 40 s on 2 CPUs.
         Full mode then runs LoRA SFT of SmolLM2 on magic_conch.json (30 steps) and asks the
         export "你是谁？": it answers as 神奇海螺, about 4 min more (BENCHMARKS.md, "The
         notebook's own examples in the tour"); quick mode skips it.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  c = ml_collections.ConfigDict()
  c.seed = 0                           # the key every random choice derives from
  c.ranks = [1, 2, 4, 8, 16, 32, 64]   # LoRA ranks whose share of SmolLM2's size is drawn
  c.sft_steps = 25 if quick else 60    # LoRA SFT steps on the small llama
  c.width = 64                         # D of the small random llama
  c.layers = 2                         # its blocks
  c.conch_steps = 0 if quick else 30   # SmolLM2 LoRA steps on magic_conch.json (0: skipped)
  c.conch_model = "smollm2-135m-instruct"  # the base model of that run
  c.conch_question = "你是谁？"        # the notebook's question to the export ("who are you?")
  c.conch_name = "神奇海螺"            # the persona's name its answer should give
  c.conch_max_new_tokens = 64          # greedy answer tokens
  return runs.override(c, options)
