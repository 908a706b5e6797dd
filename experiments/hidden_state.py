"""The notebook's first snippet: text -> token ids -> last hidden state, printed with shapes.

  python -m experiments.hidden_state --text "Large language models turn text into vectors."
"""

from absl import flags

from experiments import script
import research
from research.classify import hidden

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct",
                             "A packaged model's name, a .gguf file or an HF directory.")
_TEXT = flags.DEFINE_string("text", "Large language models turn text into vectors.",
                            "The text to encode.")


def main(argv):
  del argv
  lm = research.load_model(_MODEL.value)
  _, _, lines = hidden.describe(lm.tokenizer, lm.model, _TEXT.value)
  print("\n".join(lines))


if __name__ == "__main__":
  script.run(main)
