"""In-context classification with SmolLM2-135M-Instruct on the four-topic fixture: label scoring
(raw, calibrated, length-normalised) against generate-then-match, over 3 demonstration orders.

COMMAND: python -m experiments.classify --mode=all
RESULT:  see BENCHMARKS.md "In-context classification (issue 7)" for the measured table;
         about 2 to 3 min on 2 CPUs (quick preset: 16 sentences, one ordering, under 1 min);
         then the notebook's Chinese example (notebook_zh.json, 4 sentences) through each decoder.
Presets: `classify.py:quick`; overrides like `classify.py:orderings=1,per_class=4`.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = options.pop("quick", False)
  config = ml_collections.ConfigDict()
  config.seed = 0                         # picks the demonstration orders
  config.model = "smollm2-135m-instruct"  # packaged name, .gguf file or HF directory
  config.adapter = ""                     # a PEFT LoRA adapter folder put on the model
  config.data = "experiments/data/classify/topics.json"  # labels, demonstrations, test set
  config.decoders = ["score", "score+calibrate", "score+length", "score+length+calibrate",
                     "generate"]          # how a label is read from the model, each measured
  config.orderings = 1 if quick else 3    # demonstration orders averaged over
  config.per_class = 4 if quick else 0    # test sentences per label; 0: every one
  config.max_new_tokens = 8               # the answer length of "generate"
  config.hidden_text = "Large language models turn text into vectors."  # hidden-state demo
  config.notebook_data = "experiments/data/classify/notebook_zh.json"  # Chinese example; "": no
  return runs.override(config, options)
