"""DPO on a preference set (alpaca records with chosen and rejected, "ranking": true).

  python -m experiments.dpo --config=experiments/configs/persona_dpo.py
  python -m experiments.dpo --config.pref_beta=0.2 --config.model=runs/persona/export
"""

from pathlib import Path

from absl import app
from ml_collections import config_flags

from research.finetune import pipeline

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "persona_dpo.py"), "DPO config.")


def main(argv):
  del argv
  pipeline.run(_CONFIG.value)


if __name__ == "__main__":
  app.run(main)
