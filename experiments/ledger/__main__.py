"""Prints the equivalence ledger; exits 1 when a row does not hold or fails to run.

  python -m experiments.ledger                  # every row
  python -m experiments.ledger --row=adam,minilm --quick
  python -m experiments.ledger --list
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the references must never reach for a hub

import sys  # pylint: disable=g-import-not-at-top,wrong-import-position
import time  # pylint: disable=wrong-import-position
from pathlib import Path  # pylint: disable=wrong-import-position

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from experiments import ledger  # pylint: disable=wrong-import-position

_ROW = flags.DEFINE_list("row", [], "Measure only these rows (by name).")
_QUICK = flags.DEFINE_bool("quick", False, "Fewer optimizer steps, as in the tour's quick mode.")
_CACHE = flags.DEFINE_string(
    "reference_cache", str(ledger.default_cache()),
    "Folder for reference outputs that are slow to make (SmolLM2's transformers logits), keyed "
    "by model file, inputs and package versions; empty: recompute every time.")
_LIST = flags.DEFINE_bool("list", False, "List the rows and exit.")


def main(argv):
  del argv
  if _LIST.value:
    for r in ledger.rows():
      print(f"{r.name:24s} {r.component}  vs  {r.reference}")
    return 0
  start = time.time()
  results = ledger.run(_ROW.value or None, quick=_QUICK.value,
                       reference_cache=Path(_CACHE.value) if _CACHE.value else None)
  print()
  print("\n".join(ledger.table(results).markdown()))
  print(f"\nledger: {ledger.claim(results).measured}, {time.time() - start:.0f} s")
  return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
