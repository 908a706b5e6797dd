"""BookForAI: a deep-learning study notebook as JAX/Flax research code.

Importing `research` has no side effects; import the chapter you need, e.g.
`from research import optim` or `from research.nn import attention`.
"""


def load_model(source: str = "smollm2-135m-instruct", **kwargs):
  """A pretrained LM with its tokenizer and chat template (see `research.pretrained`):
  `source` is a packaged model's name, a .gguf file, or an HF / export directory."""
  from research import pretrained  # pylint: disable=g-import-not-at-top
  return pretrained.load_model(source, **kwargs)
