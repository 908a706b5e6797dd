"""The tour: runs every registered chapter and writes runs/tour/report.md and .html.

  python -m experiments.tour            # full tour (about 25 min on a 2-core CPU, the
                                        # magic_conch LoRA run about 4 of them)
  python -m experiments.tour --quick    # every chapter in quick mode (post-training alone ~11 min)
  python -m experiments.tour --only=warmup,optimizers
"""

import sys
import time

from absl import flags

from experiments import script
from experiments import chapters
from research import tour

_QUICK = flags.DEFINE_bool("quick", False, "Run each chapter in its quick mode.")
_OUT = flags.DEFINE_string("out", "runs/tour", "Folder for the report and figures.")
_ONLY = flags.DEFINE_list("only", [], "Run only these chapters (by name).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed handed to every chapter.")


def main(argv):
  del argv
  chapters.import_all()
  selected = tour.registered(_ONLY.value)
  start = time.time()
  results = tour.run_chapters(selected, _OUT.value, quick=_QUICK.value, seed=_SEED.value)
  md_path, html_path = tour.write_report(results, _OUT.value, quick=_QUICK.value)
  failed = [r.chapter.name for r in results if r.failed]
  held = sum(c.holds for r in results for c in r.claims)
  total = sum(len(r.claims) for r in results)
  print(f"tour: {len(results)} chapters, {held}/{total} claims hold, "
        f"{len(failed)} failed, {time.time() - start:.0f} s -> {md_path} and {html_path}")
  print("serve the models to Ollama/OpenAI clients and a web UI: python -m experiments.serve "
        "(then open http://127.0.0.1:11434/; --model, --kb, --port, --api_key)")
  if failed:
    print(f"tour: failed chapters: {', '.join(failed)}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  script.run(lambda argv: sys.exit(main(argv)))
