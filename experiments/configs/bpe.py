"""BPE tokenizer: train sentencepiece BPE on a corpus, measure how much it compresses text.

COMMAND: python -m experiments.bpe --config=experiments/configs/bpe.py [--data=PATH]
RESULT:  on the stdlib docstrings (1.64 M chars, CPython 3.11.7), vocab 4096: 3.44 chars/token on
         the training 90%, 3.39 on the held-out 10%; the sweep gives 1.75 / 2.42 / 2.96 / 3.39 /
         3.67 held-out chars/token at 512 / 1024 / 2048 / 4096 / 8192; about 8 s on 2 CPUs.
Presets: `bpe.py:quick` trains one small vocabulary and skips the sweep;
`bpe.py:vocab_size=8192` (any field) overrides.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = options.pop("quick", False)
  config = ml_collections.ConfigDict()
  config.seed = 0             # sentencepiece's training seed
  config.data = ""  # a text file or folder of .txt/.md files; "" = standard-library docstrings
  config.vocab_size = 1024 if quick else 4096  # pieces, special tokens and bytes included
  config.character_coverage = 1.0  # share of characters kept as pieces; the rest as bytes
  config.val_fraction = 0.1  # compression is also measured on this held-out tail
  config.sweep = [] if quick else [512, 1024, 2048, 4096, 8192]  # chars/token vs vocab size
  config.examples = [  # sentences whose split into pieces is printed
      "Return the number of items in the dictionary.",
      "Zorblaxifunctionality is not a word.",
      "    def __init__(self, maxsize=0):",
      "你好，世界",
  ]
  return runs.override(config, options)
