"""LLaMA-Factory's predict: BLEU-4 and ROUGE as it computes them (checked by hand and by a
float64 transcription of BLEU), its two files on the tiny llama, and predict-only YAMLs."""

import collections
import json
import math
import types

import jax
import pytest
from nltk.translate import bleu_score
from rouge_chinese import Rouge

from research import pretrained
from research.finetune import config as config_lib
from research.finetune import pipeline
from research.finetune import predict
from research.finetune import rollout
from research.generate import stream
from research.train import loop

METRIC_KEYS = ["predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"]


def bleu4_method3(reference: str, hypothesis: str) -> float:
  """Papineni et al.'s BLEU-4 over characters in float64: brevity penalty times the geometric
  mean of the clipped n-gram precisions; a precision of 0 becomes 1 / (2^k * total), k
  counting the zeros so far (Chen & Cherry's smoothing 3, NIST's)."""
  ref, hyp = list(reference), list(hypothesis)
  if not hyp:
    return 0.0
  logs, zeros = [], 0
  for n in range(1, 5):
    grams = lambda s: collections.Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))
    h, r = grams(hyp), grams(ref)
    total = max(sum(h.values()), 1)
    hits = sum(min(c, r[g]) for g, c in h.items())
    if hits == 0:
      zeros += 1
      hits = 1 / 2**zeros
    logs.append(math.log(hits / total))
  bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
  return bp * math.exp(sum(logs) / 4)


def test_an_exact_answer_scores_100_on_all_four():
  scores = predict.similarity("the model answers well", "the model answers well")
  assert scores == {"bleu-4": 100.0, "rouge-1": 100.0, "rouge-2": 100.0, "rouge-l": 100.0}


def test_an_english_pair_by_hand():
  # words: the cat sat on a mat | the cat sat on the mat. ROUGE-N counts distinct n-grams
  # (rouge-chinese's sets); F = 2PR / (P + R)
  # rouge-1: 5 shared of 6 distinct words | of 5: P = 5/6, R = 1, F = 10/11
  # rouge-2: the-cat cat-sat sat-on shared of 5 bigrams each side, F = 3/5
  # rouge-l: LCS "the cat sat on mat" = 5 of 6 words each side, F = 5/6
  pred, label = "the cat sat on a mat", "the cat sat on the mat"
  scores = predict.similarity(pred, label)
  assert scores["rouge-1"] == pytest.approx(100 * 10 / 11, abs=1e-4)
  assert scores["rouge-2"] == pytest.approx(100 * 3 / 5, abs=1e-4)
  assert scores["rouge-l"] == pytest.approx(100 * 5 / 6, abs=1e-4)
  assert scores["bleu-4"] == pytest.approx(100 * bleu4_method3(label, pred), abs=1e-4)


@pytest.mark.parametrize("pred,label", [("abce", "abcd"),      # p4 = 0: smoothed
                                        ("ab", "abcdefgh"),    # short: brevity penalty
                                        ("答案是四十二", "答案是四十二。")])
def test_bleu_against_a_float64_transcription_and_nltk(pred, label):
  ours = predict.similarity(pred, label)["bleu-4"]
  assert ours == pytest.approx(100 * bleu4_method3(label, pred), abs=1e-4)
  nltk = bleu_score.sentence_bleu([list(label)], list(pred),
                                  smoothing_function=bleu_score.SmoothingFunction().method3)
  assert ours == round(100 * nltk, 4)


def test_chinese_rouge_counts_words_not_characters():
  pred, label = "我爱北京", "我爱天安门"
  assert predict.segment(pred) == ["我", "爱", "北京"]
  assert predict.segment(label) == ["我", "爱", "天安门"]
  scores = predict.similarity(pred, label)
  # words: 2 of 3 shared each side; characters would give 2/4 and 2/5, F = 4/9
  assert scores["rouge-1"] == pytest.approx(100 * 2 / 3, abs=1e-4)
  assert scores["rouge-2"] == pytest.approx(100 * 1 / 2, abs=1e-4)  # 我-爱 of 2 bigrams
  assert scores["rouge-l"] == pytest.approx(100 * 2 / 3, abs=1e-4)
  direct = Rouge().get_scores("我 爱 北京", "我 爱 天安门")[0]
  assert scores["rouge-1"] == round(100 * direct["rouge-1"]["f"], 4)


def test_an_empty_answer_scores_0():
  assert predict.similarity("", "the cat sat") == {"bleu-4": 0.0, "rouge-1": 0.0,
                                                   "rouge-2": 0.0, "rouge-l": 0.0}


def test_the_mean_is_of_the_rounded_per_example_scores():
  pairs = [("the model answers well", "the model answers well"), ("", "the cat sat")]
  means = predict.mean_similarity([p for p, _ in pairs], [l for _, l in pairs])
  assert means == {"bleu-4": 50.0, "rouge-1": 50.0, "rouge-2": 50.0, "rouge-l": 50.0}


def test_the_prompt_is_the_conversation_up_to_the_answer_turn(tiny_model_dir, finetune_config):
  tok = pretrained.load_model(str(tiny_model_dir)).tokenizer
  examples = predict.load_examples(finetune_config(eval_dataset="share,toy", max_samples=2))
  rows = predict.prompts(tok, examples, cutoff_len=64)
  assert [r["prompt"] for r in rows] == ["t3 t11 t1 t4 ", "t3 t10 t20 t1 t4 ",
                                         "t3 t11 t20\nt30 t1 t4 "]
  assert [r["label"] for r in rows] == ["t43", "t40 t41 t42", "t41 t41 t42"]
  assert rows[0]["ids"] == [3, 11, 1, 4]
  cut = predict.prompts(tok, examples[:1], cutoff_len=2)[0]
  assert cut["ids"] == [1, 4]  # the answer turn's opening is kept


def predict_config(finetune_config, **changes):
  return finetune_config(**{"do_train": False, "do_predict": True, "predict_with_generate": True,
                            "eval_dataset": "toy", "max_samples": 3, "max_new_tokens": 3,
                            "do_sample": False, **changes})


def test_the_two_files_on_the_tiny_llama(tiny_model_dir, finetune_config, tmp_path):
  config = predict_config(finetune_config)
  lm = pretrained.load_model(str(tiny_model_dir))
  metrics = predict.predict(lm, config, show_progress=False)
  lines = (tmp_path / "out" / "generated_predictions.jsonl").read_text().splitlines()
  rows = [json.loads(line) for line in lines]
  assert len(rows) == 3 and all(list(r) == ["prompt", "predict", "label"] for r in rows)
  assert rows[0]["prompt"] == "t3 t10 t20 t1 t4 " and rows[0]["label"] == "t40 t41 t42"
  # greedy: the first answer is what stream gives at temperature 0
  ids = list(stream.stream(lm.model, [3, 10, 20, 1, 4], 3, jax.random.key(0),
                           temperature=0.0,
                           eos_id=lm.tokenizer.eos_id))
  ids = ids[:-1] if ids[-1] == lm.tokenizer.eos_id else ids
  assert rows[0]["predict"] == lm.tokenizer.decode(ids, skip_special_tokens=True).strip()
  assert all(len(r["predict"].split()) <= 3 for r in rows)
  written = json.loads((tmp_path / "out" / "predict_results.json").read_text())
  assert written == metrics
  assert set(METRIC_KEYS) <= set(written)
  expected = predict.mean_similarity([r["predict"] for r in rows], [r["label"] for r in rows])
  assert [written[k] for k in METRIC_KEYS] == [expected[k[len("predict_"):]]
                                                for k in METRIC_KEYS]
  assert written["predict_runtime"] > 0 and written["predict_samples_per_second"] > 0
  assert written["predict_steps_per_second"] > 0
  # per_device_eval_batch_size: the prompts left-padded into one batch answer the same
  batched = predict_config(finetune_config, per_device_eval_batch_size=3,
                           output_dir=str(tmp_path / "batched"))
  predict.predict(lm, batched, show_progress=False)
  assert (tmp_path / "batched" / "generated_predictions.jsonl").read_text() == "\n".join(
      lines) + "\n"


def test_answers_equal_to_the_labels_score_100(tiny_model_dir, finetune_config, monkeypatch):
  lm, config = pretrained.load_model(str(tiny_model_dir)), predict_config(finetune_config)
  rows = predict.prompts(lm.tokenizer, predict.load_examples(config), config.cutoff_len)
  labels = {tuple(r["ids"]): lm.tokenizer.encode(r["label"]) + [lm.tokenizer.eos_id]
            for r in rows}
  monkeypatch.setattr(rollout, "sample",
                      lambda model, prompts, *a, **k: [labels[tuple(ids)] for ids in prompts])
  metrics = predict.predict(lm, config, show_progress=False)
  assert [metrics[k] for k in METRIC_KEYS] == [100.0] * 4


def test_predict_needs_generation_and_an_eval_dataset(finetune_config):
  with pytest.raises(ValueError, match="predict_with_generate"):
    predict.check(predict_config(finetune_config, predict_with_generate=False))
  with pytest.raises(ValueError, match="eval_dataset is empty"):
    predict.check(predict_config(finetune_config, eval_dataset=""))


def test_a_llama_factory_predict_yaml_predicts_without_training(tiny_model_dir, dataset_dir,
                                                                tmp_path, capsys):
  (tmp_path / "predict.yaml").write_text(
      f"model_name_or_path: {tiny_model_dir}\ntrust_remote_code: true\nstage: sft\n"
      f"do_predict: true\nfinetuning_type: lora\neval_dataset: toy,share\n"
      f"dataset_dir: {dataset_dir}\ntemplate: llama3\ncutoff_len: 64\nmax_samples: 1\n"
      "overwrite_cache: true\npreprocessing_num_workers: 16\n"
      f"output_dir: {tmp_path / 'predict'}\noverwrite_output_dir: true\n"
      "per_device_eval_batch_size: 1\npredict_with_generate: true\nddp_timeout: 180000000\n"
      "max_new_tokens: 2\ndo_sample: false\n")
  config = config_lib.from_yaml(tmp_path / "predict.yaml")
  assert (config.do_train, config.do_predict, config.eval_dataset) == (False, True, "toy,share")
  summary = pipeline.run(config, show_progress=False)
  assert summary["steps"] == 0 and set(METRIC_KEYS) <= set(summary)
  assert not (tmp_path / "predict" / "checkpoints").exists()  # nothing trained
  lines = (tmp_path / "predict" / "generated_predictions.jsonl").read_text().splitlines()
  assert len(lines) == 2  # max_samples of each eval dataset
  written = json.loads((tmp_path / "predict" / "summary.json").read_text())
  assert written["predict_rouge-l"] == summary["predict_rouge-l"]
  assert "predict: bleu-4 " in capsys.readouterr().out
  # an explicit do_train keeps its value; a separate adapter is read, not ignored
  (tmp_path / "both.yaml").write_text("do_predict: true\ndo_train: true\n")
  assert config_lib.from_yaml(tmp_path / "both.yaml").do_train
  (tmp_path / "adapter.yaml").write_text("do_predict: true\nadapter_name_or_path: saves/x\n")
  assert config_lib.from_yaml(tmp_path / "adapter.yaml").adapter_name_or_path == "saves/x"


def test_train_then_predict_with_the_tuned_model(finetune_config, monkeypatch):
  tuned = types.SimpleNamespace(name="the trained model")
  result = loop.TrainResult(graphdef=None, state=types.SimpleNamespace(step=2), frozen=None,
                            history=[{"loss": 1.0}], evals=[], tokens_per_s=1.0,
                            trainable_parameters=1, frozen_parameters=2)
  monkeypatch.setattr(pipeline, "stage_runner", lambda stage: lambda c, **k: (tuned, result))
  asked = []
  scores = dict.fromkeys(METRIC_KEYS, 50.0)
  monkeypatch.setattr(predict, "predict", lambda lm, *a: asked.append(lm) or scores)
  summary = pipeline.run(predict_config(finetune_config, do_train=True), show_progress=False)
  assert asked == [tuned] and summary["steps"] == 2 and summary["predict_rouge-1"] == 50.0
