"""DPO on a preference set (alpaca records with chosen and rejected, "ranking": true).

  python -m experiments.dpo --config=experiments/configs/persona_dpo.py
  python -m experiments.dpo --config.pref_beta=0.2 --config.model=runs/persona/export
"""


from experiments import script
from research.finetune import pipeline

_CONFIG = script.config_flag("persona_dpo", "DPO config.")


def main(argv):
  del argv
  pipeline.run(_CONFIG.value)


if __name__ == "__main__":
  script.run(main)
