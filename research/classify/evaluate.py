"""Accuracy and macro-F1 of each decoder over several orderings of the demonstrations.

  results = evaluate(lm, demos, texts, labels, ["score", "score+calibrate", "generate"])
  results["score"]["accuracy_mean"]

Each prompt runs once per ordering: its cache serves every score decoder (raw, calibrated,
length-normalised) and the greedy answer.
"""

import numpy as np

from research.classify import metrics
from research.classify import prompt as prompt_lib
from research.classify import scoring
from research.classify.classifier import ICLClassifier

DECODERS = ("score", "score+calibrate", "score+length", "score+length+calibrate", "generate")


def orderings(classes: list[str], n: int, seed: int = 0) -> list[list[str]]:
  """The given order first, then distinct random permutations (as many as exist, up to n)."""
  rng = np.random.default_rng(seed)
  out, seen = [list(classes)], {tuple(classes)}
  for _ in range(1000):
    if len(out) >= n:
      break
    order = [classes[i] for i in rng.permutation(len(classes))]
    if tuple(order) not in seen:
      seen.add(tuple(order))
      out.append(order)
  return out[:n]


def evaluate(lm, class_examples: dict[str, str], texts, labels, decoders=DECODERS,
             num_orderings: int = 3, seed: int = 0, show_progress: bool = True,
             max_new_tokens: int = 8) -> dict:
  unknown = sorted(set(decoders) - set(DECODERS))
  if unknown:
    raise ValueError(f"evaluate: unknown decoders {unknown}; expected some of {DECODERS}.")
  classes = list(class_examples)
  runs = {d: [] for d in decoders}
  for order in orderings(classes, num_orderings, seed):
    clf = ICLClassifier(lm, {c: class_examples[c] for c in order}, show_progress=show_progress,
                        max_new_tokens=max_new_tokens)
    scored = [d for d in decoders if d.startswith("score")]
    logp, answers = clf.decode(texts, score=bool(scored), generate="generate" in decoders)
    if scored:
      cf = clf.content_free_logprobs() if any("calibrate" in d for d in scored) else None
      lengths = [len(ids) for ids in clf.label_ids]
      for d in scored:
        s = scoring.combine(logp, lengths, "length" in d, cf if "calibrate" in d else None)
        runs[d].append(_row(labels, [order[i] for i in np.argmax(s, axis=1)], classes, order))
    if answers is not None:
      predicted = [prompt_lib.match(a, classes) or a for a in answers]
      row = _row(labels, predicted, classes, order)
      row["not_a_class"] = float(np.mean([p not in classes for p in predicted]))
      row["answers"] = answers
      runs["generate"].append(row)
  return {d: _summary(rows) for d, rows in runs.items()}


def _row(labels, predicted, classes, order) -> dict:
  return {"order": list(order), "accuracy": metrics.accuracy(labels, predicted),
          "macro_f1": metrics.macro_f1(labels, predicted, classes), "predicted": predicted}


def _summary(rows: list[dict]) -> dict:
  """Mean and (population) std over the orderings, plus each ordering's row."""
  out = {"orderings": rows}
  for key in ("accuracy", "macro_f1", "not_a_class"):
    if rows and key in rows[0]:
      values = [r[key] for r in rows]
      out[f"{key}_mean"], out[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
  return out


def table(results: dict, n_texts: int) -> str:
  """A markdown table: decoder, accuracy and macro-F1 as mean ± std, answers naming no class."""
  lines = [f"| decoder | accuracy (n={n_texts}) | macro-F1 | answers naming no class |",
           "|---|---|---|---|"]
  for d, r in results.items():
    rate = f"{r['not_a_class_mean']:.1%}" if "not_a_class_mean" in r else "0% (by design)"
    lines.append(f"| {d} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | "
                 f"{r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f} | {rate} |")
  return "\n".join(lines)
