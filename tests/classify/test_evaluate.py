"""Evaluation over demonstration orders, the fixture, and the scripts (on a tiny model)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.chapters import classify as chapter
from experiments.configs import classify as classify_config
from research.classify import evaluate
from research.finetune import export
from tests.classify import tiny

REPO = Path(__file__).resolve().parents[2]


def test_orderings_are_distinct_and_start_with_the_given_order():
  orders = evaluate.orderings(["a", "b", "c", "d"], 3, seed=0)
  assert orders[0] == ["a", "b", "c", "d"]
  assert len({tuple(o) for o in orders}) == 3
  assert all(sorted(o) == ["a", "b", "c", "d"] for o in orders)
  assert len(evaluate.orderings(["a", "b"], 3)) == 2  # only two orders exist


def test_fixture_has_four_balanced_classes_and_no_demonstration_in_the_test():
  demos, texts, labels = chapter.load_fixture("experiments/data/classify/topics.json")
  assert len(demos) == 4 and len(texts) >= 40
  assert {labels.count(c) for c in demos} == {len(texts) // 4}
  assert not set(demos.values()) & set(texts)
  sub_texts, sub_labels = chapter.subset(texts, labels, 2)
  assert len(sub_texts) == 8 and sorted(set(sub_labels)) == sorted(demos)


def test_evaluate_on_a_tiny_model():
  lm = tiny.tiny_lm()
  texts, labels = tiny.TEXTS, ["w10", "w11 w12", "w13 w14 w15", "w10"]
  results = evaluate.evaluate(lm, tiny.CLASS_EXAMPLES, texts, labels,
                              ["score", "score+calibrate", "generate"], num_orderings=2,
                              show_progress=False, max_new_tokens=3)
  for decoder, r in results.items():
    assert len(r["orderings"]) == 2
    accs = [o["accuracy"] for o in r["orderings"]]
    assert r["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert r["accuracy_std"] == pytest.approx(np.std(accs))
  assert 0.0 <= results["generate"]["not_a_class_mean"] <= 1.0
  assert "| generate |" in evaluate.table(results, len(texts))
  with pytest.raises(ValueError, match="unknown decoders"):
    evaluate.evaluate(lm, tiny.CLASS_EXAMPLES, texts, labels, ["vote"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """The tiny model as an HF directory, and a fixture file over its vocabulary."""
  path = tmp_path_factory.mktemp("classify")
  export.export(tiny.tiny_lm(), path / "model")
  data = {"demonstrations": tiny.CLASS_EXAMPLES,
          "test": [{"text": t, "label": c} for t, c in zip(tiny.TEXTS, tiny.CLASS_EXAMPLES)]}
  (path / "data.json").write_text(json.dumps(data))
  return path


def test_chapter_experiment_on_a_tiny_checkpoint(checkpoint, tmp_path):
  config = classify_config.get_config("orderings=2,per_class=0")
  config.model, config.data = str(checkpoint / "model"), str(checkpoint / "data.json")
  config.max_new_tokens = 3
  config.notebook_data = str(checkpoint / "data.json")  # the notebook's example, in its form
  tables = []
  claims = chapter.run_experiment(config, tmp_path, show_progress=False, add_table=tables.append)
  statements = [c.statement for c in claims]
  assert any("label scoring beats generate-then-match" in s for s in statements)
  assert any("order of the demonstrations" in s for s in statements)
  assert (tmp_path / "classify_accuracy.png").exists()
  results = json.loads((tmp_path / "results.json").read_text())["results"]
  assert sorted(results) == sorted(config.decoders)
  # the notebook's example: one row per sentence with every decoder's prediction, then accuracy
  [table] = tables
  assert table.columns == ("sentence", "truth", *config.decoders)
  assert [row[0] for row in table.rows] == [*tiny.TEXTS[:3], "accuracy (n=3)"]
  assert any("runs through every decoder" in s for s in statements)
  assert (tmp_path / "notebook_example_accuracy.png").exists()


def test_predictions_table_shows_a_matched_answer_beside_its_class():
  one = lambda predicted, accuracy, **extra: {
      "accuracy_mean": accuracy, "orderings": [{"predicted": predicted, **extra}]}
  results = {"score": one(["甲", "乙"], 0.5),
             "generate": one(["甲", "甲乙"], 0.5, answers=["甲", "甲"])}
  table = chapter.predictions_table(["t1", "t2"], ["甲", "甲乙"], results)
  assert table.rows == (("t1", "甲", "甲", "甲"), ("t2", "甲乙", "乙", "甲 -> 甲乙"),
                        ("accuracy (n=2)", "", "0.50", "0.50"))


def test_scripts_on_a_tiny_checkpoint(checkpoint):
  run = lambda *args: subprocess.run(
      [sys.executable, "-m", *args, f"--model={checkpoint / 'model'}"], cwd=REPO,
      capture_output=True, text=True, timeout=120, check=False)
  one = run("experiments.classify", f"--data={checkpoint / 'data.json'}", "--text=w20 w21",
            "--calibrate")
  assert one.returncode == 0, one.stderr
  assert one.stdout.strip().splitlines()[-1] in {f"-> {c}" for c in tiny.CLASS_EXAMPLES}
  shapes = run("experiments.hidden_state", "--text=w5 w6 w7")
  assert shapes.returncode == 0, shapes.stderr
  assert "last hidden state B x L x D: (1, 3, 32)" in shapes.stdout
