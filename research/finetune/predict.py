"""LLaMA-Factory's evaluate & predict (`do_predict` with `predict_with_generate`): answer each
prompt of `eval_dataset`, score the answers against the dataset's by BLEU-4 and ROUGE.

  metrics = predict.predict(lm, config)   # writes output_dir/generated_predictions.jsonl
                                          # and output_dir/predict_results.json

The scores are LLaMA-Factory's: per example, in percent, rounded to 4 places, then averaged.
ROUGE-1/2/L (F1) compare words, so both texts are first segmented by jieba (Chinese has no
spaces between words; English is split at spaces and punctuation); BLEU-4 compares characters.
"""

import json
import logging
import time
from pathlib import Path

import jax

from research import files
from research import runs
from research.data import sft as sft_data
from research.finetune import config as config_lib
from research.finetune import rollout
from research.text import detokenize

PREDICTIONS = "generated_predictions.jsonl"
RESULTS = "predict_results.json"
METRICS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")


def check(config) -> None:
  """One sentence for the first predict field that cannot work."""
  config_lib.validate(config)
  if not config.predict_with_generate:
    raise ValueError("config field predict_with_generate=False: do_predict here scores "
                     "generated answers (BLEU, ROUGE), so set predict_with_generate: true.")
  if not config.eval_dataset.strip():
    raise ValueError("config field eval_dataset is empty: name the dataset(s) of "
                     "dataset_info.json to predict on.")
  load_examples(config)  # a misspelled or malformed eval set stops here, not after training


def segment(text: str) -> list[str]:
  """jieba's words of `text` (whitespace runs come back as words of their own)."""
  import jieba  # pylint: disable=g-import-not-at-top
  jieba.setLogLevel(logging.WARNING)  # not the dictionary-loading chatter on every run
  return list(jieba.cut(text))


def similarity(predict: str, label: str) -> dict[str, float]:
  """BLEU-4 and ROUGE-1/2/L F1 of one answer, in percent, rounded to 4 places."""
  from nltk.translate import bleu_score  # pylint: disable=g-import-not-at-top
  from rouge_chinese import Rouge  # pylint: disable=g-import-not-at-top
  hypothesis, reference = " ".join(segment(predict)), " ".join(segment(label))
  out = {}
  if hypothesis.split() and reference.split():  # Rouge refuses an empty side
    scores = Rouge().get_scores(hypothesis, reference)[0]
    for name in ("rouge-1", "rouge-2", "rouge-l"):
      out[name] = round(100 * scores[name]["f"], 4)  # F1 = 2PR / (P + R)
  else:
    out.update({"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0})
  # BP * exp(mean_n log p_n), n = 1..4 over characters; method3 stands in for p_n = 0
  bleu = bleu_score.sentence_bleu([list(label)], list(predict),
                                  smoothing_function=bleu_score.SmoothingFunction().method3)
  out["bleu-4"] = round(100 * bleu, 4)
  return out


def mean_similarity(predicts: list[str], labels: list[str]) -> dict[str, float]:
  """The mean of each of METRICS over the pairs, rounded to 4 places."""
  rows = [similarity(p, l) for p, l in zip(predicts, labels, strict=True)]
  return {name: round(sum(r[name] for r in rows) / len(rows), 4) for name in METRICS}


def prompts(tokenizer, examples, cutoff_len: int) -> list[dict]:
  """Each example's conversation without its last answer, templated up to the assistant's
  turn: {"prompt": text, "ids": token ids, "label": the answer left out}."""
  out = []
  for example in examples:
    *context, answer = example.messages
    text = tokenizer.apply_chat_template(context, add_generation_prompt=True)
    ids = tokenizer.encode(text)
    if len(ids) > cutoff_len:
      ids = ids[-cutoff_len:]  # the end holds the turn the answer opens: keep it
      text = tokenizer.decode(ids)
    out.append({"prompt": text, "ids": ids, "label": answer["content"]})
  return out


def load_examples(config) -> list:
  examples = []
  for name in config.eval_dataset.split(","):
    examples += sft_data.load_dataset(config.dataset_dir, name.strip(),
                                      config.max_samples or None)
  return examples


def answer_ids(lm, rows, config, key, show_progress: bool = True) -> list[list[int]]:
  """Each row's generated ids (EOS dropped), per_device_eval_batch_size prompts per jitted
  batch (left-padded: research/finetune/rollout.sample); greedy unless do_sample."""
  tok = lm.tokenizer
  sampling = rollout.Sampling.from_config(config, tok)
  size = config.per_device_eval_batch_size
  out = []
  bar = runs.progress(total=len(rows), desc="predict", unit="prompt", disable=not show_progress)
  start, tokens = time.perf_counter(), 0
  for i in range(0, len(rows), size):
    batch = rollout.sample(lm.model, [r["ids"] for r in rows[i:i + size]], sampling,
                           jax.random.fold_in(key, i))
    for ids in batch:
      tokens += len(ids)
      out.append(ids[:-1] if ids and ids[-1] == tok.eos_id else ids)  # EOS ends, not a part
    bar.update(len(batch))
    bar.set_postfix(tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
  bar.close()
  return out


def predict(lm, config, show_progress: bool = True) -> dict:
  """Generates an answer for each prompt of config.eval_dataset, writes LLaMA-Factory's two
  files to config.output_dir, returns predict_results.json's metrics."""
  check(config)
  tok = lm.tokenizer
  rows = prompts(tok, load_examples(config), config.cutoff_len)
  start = time.perf_counter()
  answers = answer_ids(lm, rows, config, jax.random.key(config.seed), show_progress)
  tokens = 0
  for row, ids in zip(rows, answers):
    tokens += len(ids)
    row["predict"] = detokenize.text(tok, ids).strip()  # a cut answer: no half character
  seconds = time.perf_counter() - start
  scores = mean_similarity([r["predict"] for r in rows], [r["label"] for r in rows])
  steps = -(-len(rows) // config.per_device_eval_batch_size)  # one generate call per batch
  metrics = {f"predict_{name}": value for name, value in scores.items()}
  metrics.update(predict_runtime=round(seconds, 4),
                 predict_samples_per_second=round(len(rows) / seconds, 3),
                 predict_steps_per_second=round(steps / seconds, 3),
                 predict_tokens_per_second=round(tokens / seconds, 3))
  out = Path(config.output_dir)
  files.write_text(out / PREDICTIONS, "".join(
      json.dumps({"prompt": r["prompt"], "predict": r["predict"], "label": r["label"]},
                 ensure_ascii=False) + "\n" for r in rows))
  files.write_json(out / RESULTS, metrics)
  return metrics


def score_line(metrics: dict) -> str:
  return "predict: " + ", ".join(f"{name} {metrics[f'predict_{name}']:.2f}"
                                 for name in METRICS)
