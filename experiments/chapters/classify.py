"""In-context classification chapter: the notebook's first snippet (text -> token ids -> last
hidden state), then a class list with one demonstration per class classified by SmolLM2-135M,
label scoring against generate-then-match; last, the notebook's Chinese example through every
decoder, its predictions printed beside the truth (reported as they come: a 135M English-first
model is not claimed to read Chinese well)."""

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

import research
from experiments.configs import classify as classify_config
from research import files
from research import tour
from research.classify import evaluate
from research.classify import hidden
from research.classify import prompt as prompt_lib
from research.classify import scoring

REPO = Path(__file__).resolve().parents[2]
MODEL_NAMES = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct"}


def load_fixture(path) -> tuple[dict, list[str], list[str]]:
  """(class -> demonstration, texts, labels) from a topics.json-style file."""
  path = Path(path)
  if not path.is_absolute() and not path.exists():
    path = REPO / path
  data = json.loads(path.read_text())
  demos = data["demonstrations"]
  for i, row in enumerate(data["test"]):
    if row["label"] not in demos:
      raise ValueError(f"{path}: test[{i}] has label {row['label']!r}; expected one of "
                       f"{sorted(demos)}.")
  return demos, [r["text"] for r in data["test"]], [r["label"] for r in data["test"]]


def subset(texts, labels, per_class: int):
  """The first `per_class` sentences of each class (all when per_class is 0)."""
  if not per_class:
    return list(texts), list(labels)
  seen, keep = {}, []
  for i, label in enumerate(labels):
    seen[label] = seen.get(label, 0) + 1
    if seen[label] <= per_class:
      keep.append(i)
  return [texts[i] for i in keep], [labels[i] for i in keep]


def hidden_state_snippet(lm, text: str) -> tuple[list[str], tuple, float]:
  """The notebook's first snippet, printed with shapes; also how far the tied head's reading
  of the hidden state, log softmax(h E^T), is from the model's own next-token log-probs (taken
  through the classifier's compiled step, so no extra compile)."""
  ids, h_1xLxD, lines = hidden.describe(lm.tokenizer, lm.model, text)
  cached = scoring.CachedLM(lm.model, pad_id=lm.tokenizer.pad_id or 0)
  _, logp_LxV = cached.run(cached.empty(), ids)
  table_VxD = lm.model.embed.embedding[...]
  head_logp_LxV = jax.nn.log_softmax(h_1xLxD[0] @ table_VxD.T, axis=-1)  # logits = h E^T
  return lines, tuple(h_1xLxD.shape), float(jnp.max(jnp.abs(head_logp_LxV - logp_LxV)))


def run_experiment(config, out_dir, show_progress: bool = True,
                   add_table=None) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  start = time.time()
  lm = research.load_model(config.model, adapter=config.get("adapter") or None)
  claims = []
  if config.hidden_text and lm.config.tied_head:
    lines, shape, head_error = hidden_state_snippet(lm, config.hidden_text)
    print("\n".join(lines), flush=True)
    files.write_text(out_dir / "hidden_state.txt", "\n".join(lines) + "\n")
    claims.append(tour.Claim.at_most(
        "text -> token ids -> last hidden state B x L x D = "
        f"{' x '.join(map(str, shape))}; the tied head reads it: log softmax(h E^T) = the "
        "model's next-token log-probs", "max |difference|", head_error, 1e-3))

  demos, texts, labels = load_fixture(config.data)
  texts, labels = subset(texts, labels, config.per_class)
  results = evaluate.evaluate(lm, demos, texts, labels, list(config.decoders),
                              config.orderings, config.seed, show_progress,
                              config.max_new_tokens)
  seconds = time.time() - start
  table = evaluate.table(results, len(texts))
  print(table, flush=True)
  files.write_text(out_dir / "results.md", f"{config.model}, {len(texts)} sentences, "
                   f"{config.orderings} demonstration order(s), {seconds:.0f} s\n\n{table}\n")
  files.write_json(out_dir / "results.json", {"config": config.to_dict(), "results": results,
                                              "seconds": seconds})
  name = MODEL_NAMES.get(config.model, Path(config.model).name)
  _figure(results, name, len(texts), config.orderings, out_dir / "classify_accuracy.png")

  acc = {d: r["accuracy_mean"] for d, r in results.items()}
  png = "classify_accuracy.png"
  if "score" in acc and "generate" in acc:
    claims.append(tour.Claim(
        f"label scoring beats generate-then-match on {name}",
        f"accuracy {acc['score']:.3f} vs {acc['generate']:.3f}", acc["score"] > acc["generate"],
        png))
  if "score" in acc and "score+calibrate" in acc:
    claims.append(tour.Claim(
        "contextual calibration (divide by p(class | 'N/A', '', '[MASK]')) improves scoring",
        f"accuracy {acc['score+calibrate']:.3f} vs {acc['score']:.3f} uncalibrated",
        acc["score+calibrate"] > acc["score"], png))
  if "generate" in results:
    named = 1.0 - results["generate"]["not_a_class_mean"]
    claims.append(tour.Claim.at_least(
        "with a strict output format in the system prompt, greedy answers name a class "
        "(>= 90% of them)", "share naming a class", named, 0.9, fmt="{:.1%}", figure=png))
  if config.orderings > 1 and "score" in results:
    spread = max(r["accuracy_std"] for r in results.values())
    claims.append(tour.Claim.at_least(
        "the order of the demonstrations moves accuracy (std over orders >= 0.01 for some "
        "decoder)", "largest std", spread, 0.01, fmt="{:.3f}", figure=png))
  if config.notebook_data:
    claims += notebook_example(lm, config, out_dir, name, add_table, show_progress)
  return claims


def notebook_example(lm, config, out_dir: Path, model_name: str, add_table=None,
                     show_progress: bool = True) -> list[tour.Claim]:
  """The notebook's Chinese example: its classes, one demonstration each in the file's order,
  and its sentences, through every decoder of the config; a table of the predictions."""
  demos, texts, labels = load_fixture(config.notebook_data)
  start = time.time()
  results = evaluate.evaluate(lm, demos, texts, labels, list(config.decoders), 1, config.seed,
                              show_progress, config.max_new_tokens)
  seconds = time.time() - start
  table = predictions_table(texts, labels, results)
  print("\n".join(table.markdown()), flush=True)
  if add_table is not None:
    add_table(table)
  files.write_text(out_dir / "notebook_example.md", f"{config.model}, {config.notebook_data}, "
                   f"{seconds:.0f} s\n\n" + "\n".join(table.markdown()) + "\n")
  files.write_json(out_dir / "notebook_example.json", {"data": config.notebook_data,
                                                       "results": results, "seconds": seconds})
  png = "notebook_example_accuracy.png"
  _figure(results, model_name, len(texts), 1, out_dir / png, "the notebook's Chinese example: ")
  if "generate" not in results:
    return []
  answers = results["generate"]["orderings"][0]["answers"]
  cut = sum(a not in demos and prompt_lib.match(a, list(demos)) is not None for a in answers)
  accuracy = ", ".join(f"{d} {r['accuracy_mean']:.2f}" for d, r in results.items())
  return [tour.Claim(
      f"the notebook's Chinese example ({len(demos)} classes, {len(texts)} sentences) runs "
      "through every decoder, and each greedy answer decodes to whole characters, also when "
      f"max_new_tokens={config.max_new_tokens} cuts it short (accuracy as it comes: no claim "
      f"that {model_name} reads Chinese well)",
      f"accuracy {accuracy}; greedy answers {answers}, {cut} of them cut short and matched "
      "to the class they begin", not any("\ufffd" in a for a in answers), png)]


def predictions_table(texts, labels, results: dict) -> tour.Table:
  """One row per sentence: its truth and each decoder's prediction (generate's as "answer ->
  class" when the answer had to be matched), then each decoder's accuracy."""
  decoders = list(results)
  rows = []
  for i, (text, label) in enumerate(zip(texts, labels)):
    cells = []
    for d in decoders:
      run = results[d]["orderings"][0]
      predicted, said = run["predicted"][i], run.get("answers", run["predicted"])[i]
      cells.append(predicted if said == predicted else f"{said} -> {predicted}")
    rows.append((text, label, *cells))
  rows.append((f"accuracy (n={len(texts)})", "",
               *(f"{results[d]['accuracy_mean']:.2f}" for d in decoders)))
  return tour.Table(("sentence", "truth", *decoders), tuple(rows),
                    caption="The notebook's Chinese example, one demonstration order.")


def _figure(results, model_name, n_texts, n_orders, path, what=""):
  names = list(results)
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(7, 3.4))
  for offset, key, label in ((-0.2, "accuracy", "accuracy"), (0.2, "macro_f1", "macro-F1")):
    ax.bar(x + offset, [results[d][f"{key}_mean"] for d in names], 0.4,
           yerr=[results[d][f"{key}_std"] for d in names], capsize=3, label=label)
  n_classes = len(next(iter(results.values()))["orderings"][0]["order"])
  ax.axhline(1 / n_classes, color="grey", ls=":", lw=1, label=f"chance ({n_classes} classes)")
  ax.set_xticks(x, [d.replace("+", "\n+") for d in names], fontsize=8)
  ax.set_ylim(0, 1.05)
  ax.set_ylabel(f"mean ± std over {n_orders} order(s)")
  ax.set_title(f"{what}{model_name}, {n_texts} sentences, {n_classes} classes", fontsize=9)
  ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3)
  files.save_figure(fig, path)


chapter = tour.experiment_chapter(
    "classify", "In-context classification", 8,
    classify_config.get_config, run_experiment, pass_table=True)
