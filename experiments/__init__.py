"""absl-flag experiment scripts: python -m experiments.NAME (see README)."""

from absl import logging

# Libraries log at INFO (orbax at every save, jax at start-up) over the progress bars;
# --verbosity=0 brings those lines back.
logging.set_verbosity(logging.WARNING)
