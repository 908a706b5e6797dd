"""Bad-input cases of data, configs and documents (see corpus.py): LLaMA-Factory datasets and
training YAMLs through the fine-tuning pipeline, knowledge-base documents and BEIR files
through the store and the eval, prompts past the context, chat templates that fail.

Each case feeds its input to the function the user's command runs (experiments.finetune ->
pipeline.run, experiments.rag ingest -> KnowledgeBase.ingest, ...). A fine-tuning case starts
from an output_dir with a previous run's summary.json, a knowledge-base case from a good store:
`intact` checks that they are unchanged.
"""

import functools
import json
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from research import pretrained
from research.classify import ICLClassifier
from research.finetune import config as config_lib
from research.finetune import pipeline
from research.generate import decode
from research.generate import stream
from research.nn import config as nn_config
from research.nn import transformer
from research.rag import evaluate
from research.rag import store
from research.text.pretrained import PretrainedTokenizer
from tests import tiny_llama
from tests.bad_input.corpus import Case
from tests.rag import documents
from tests.rag.conftest import WordEmbedder

CASES = []


def case(name, expect, intact=None):
  def add(run):
    CASES.append(Case(name, run, expect, intact))
    return run
  return add


@functools.cache
def _tiny_llama() -> Path:
  """One tiny llama (word tokens t0..t63, max_positions 128) for the cases that tokenize."""
  return tiny_llama.write_tiny_llama(Path(tempfile.mkdtemp(prefix="bad-input-llama-")))


def _words(*ids) -> str:
  return " ".join(f"t{i}" for i in ids)


# -- fine-tuning: dataset_info.json, data files and YAMLs through pipeline.run ---------------

PREVIOUS = {"stage": "sft", "steps": 12, "final_loss": 1.5}  # the output_dir's earlier run
GOOD_SFT = [{"instruction": _words(10 + i), "input": "", "output": _words(40 + i, 41)}
            for i in range(4)]


def _dataset(tmp_path, info, records=None, file_name="sft.json") -> Path:
  """tmp_path/data: dataset_info.json (a dict, or the raw text as pasted) and one data file
  (records, or raw text); and tmp_path/out holding a previous run's summary.json."""
  data = tmp_path / "data"
  data.mkdir()
  (data / "dataset_info.json").write_text(info if isinstance(info, str) else json.dumps(info))
  records = GOOD_SFT if records is None else records
  if isinstance(records, bytes):
    (data / file_name).write_bytes(records)
  else:
    (data / file_name).write_text(records if isinstance(records, str) else json.dumps(records))
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "summary.json").write_text(json.dumps(PREVIOUS))
  return data


def _finetune(tmp_path, model=None, **changes):
  """experiments.finetune --config=... with `changes`: the dataset in tmp_path/data, the model
  a folder never reached unless `model` (a data error stops before the model loads)."""
  config = config_lib.defaults()
  config.model = str(model or tmp_path / "the-model-is-never-loaded")
  config.dataset_dir, config.dataset = str(tmp_path / "data"), "toy"
  config.output_dir = str(tmp_path / "out")
  config.max_steps, config.cutoff_len, config.lora_rank = 1, 64, 2
  config.update(changes)
  return pipeline.run(config, check_base=False, show_progress=False)


def _yaml(tmp_path, text: str):
  """experiments.finetune --yaml=train.yaml, over a good dataset and a previous run."""
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  path = tmp_path / "train.yaml"
  path.write_text(f"model_name_or_path: {tmp_path / 'no-model'}\ndataset: toy\n"
                  f"dataset_dir: {tmp_path / 'data'}\noutput_dir: {tmp_path / 'out'}\n" + text)
  return pipeline.run(config_lib.from_yaml(path), check_base=False, show_progress=False)


def _previous_run_kept(tmp_path):
  out = tmp_path / "out"
  assert sorted(p.name for p in out.iterdir()) == ["summary.json"], list(out.iterdir())
  assert json.loads((out / "summary.json").read_text()) == PREVIOUS


def finetune_case(name, expect):
  return case(name, expect, _previous_run_kept)


@finetune_case("dataset_info.json pasted with a stray closing brace",
               r"dataset_info\.json: line 4: not valid JSON \(Extra data\)")
def _(tmp_path):
  _dataset(tmp_path, '{\n  "toy": {"file_name": "sft.json", "formatting": "alpaca"}\n}\n}\n')
  _finetune(tmp_path)


@finetune_case("dataset_info.json with a raw newline inside a string",
               r"dataset_info\.json: line 1: not valid JSON \(a line break or tab inside a "
               r"string; write it as \\n or \\t\)")
def _(tmp_path):
  _dataset(tmp_path, '{"toy": {"file_name": "sft\n.json"}}')
  _finetune(tmp_path)


@finetune_case("dataset_info.json in single quotes",
               r"dataset_info\.json: line 1: not valid JSON \(Expecting property name enclosed "
               r"in double quotes\)")
def _(tmp_path):
  _dataset(tmp_path, "{'toy': {'file_name': 'sft.json'}}")
  _finetune(tmp_path)


@finetune_case("dataset_info.json with a // comment",
               r"dataset_info\.json: line 2: not valid JSON")
def _(tmp_path):
  _dataset(tmp_path, '{\n  // my set\n  "toy": {"file_name": "sft.json"}\n}\n')
  _finetune(tmp_path)


@finetune_case("dataset_info.json with a trailing comma",
               r"dataset_info\.json: line 3: not valid JSON")
def _(tmp_path):
  _dataset(tmp_path, '{\n  "toy": {"file_name": "sft.json"},\n}\n')
  _finetune(tmp_path)


@finetune_case("dataset_info.json saved as UTF-16 (PowerShell's >)",
               r"dataset_info\.json: byte 0: not UTF-8 text")
def _(tmp_path):
  data = _dataset(tmp_path, "{}")
  (data / "dataset_info.json").write_bytes(json.dumps({"toy": {"file_name": "sft.json"}})
                                           .encode("utf-16"))
  _finetune(tmp_path)


@finetune_case("dataset_info.json empty", r"dataset_info\.json: the file is empty")
def _(tmp_path):
  _dataset(tmp_path, "")
  _finetune(tmp_path)


@finetune_case("dataset_info.json a list", r"dataset_info\.json: expected an object mapping")
def _(tmp_path):
  _dataset(tmp_path, [{"file_name": "sft.json"}])
  _finetune(tmp_path)


@finetune_case("dataset_dir without dataset_info.json", r"no dataset_info\.json in the dataset")
def _(tmp_path):
  _dataset(tmp_path, {})
  (tmp_path / "data" / "dataset_info.json").unlink()
  _finetune(tmp_path)


@finetune_case("unknown dataset name", r"dataset_info\.json: no dataset named 'toyy' "
               r"\(it has \['toy'\]\)")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, dataset="toyy")


@finetune_case("dataset entry a bare file name",
               r"dataset_info\.json: dataset 'toy': expected an object with 'file_name', got str")
def _(tmp_path):
  _dataset(tmp_path, {"toy": "sft.json"})
  _finetune(tmp_path)


@finetune_case("dataset entry without file_name",
               r"dataset_info\.json: dataset 'toy' has no 'file_name'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"formatting": "alpaca"}})
  _finetune(tmp_path)


@finetune_case("file_name missing on disk",
               r"sfft\.json: the data file named in dataset_info\.json is missing")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sfft.json"}})
  _finetune(tmp_path)


@finetune_case("formatting misspelled",
               r"dataset_info\.json: dataset 'toy' has formatting 'alpacca'; expected 'alpaca' "
               r"or 'sharegpt'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json", "formatting": "alpacca"}})
  _finetune(tmp_path)


@finetune_case("columns with a misspelled key",
               r"dataset_info\.json: dataset 'toy': columns has no key 'respones'; the nearest "
               r"one is 'response'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json", "columns": {"respones": "answer"}}},
           [{"instruction": "q", "answer": "a"}])
  _finetune(tmp_path)


@finetune_case("columns naming a field the records lack",
               r"sft\.json: record 0: missing field 'answer'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json", "columns": {"response": "answer"}}})
  _finetune(tmp_path)


@finetune_case("records without output", r"sft\.json: record 2: missing field 'output'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}},
           GOOD_SFT[:2] + [{"instruction": "q", "response": "a"}])
  _finetune(tmp_path)


@finetune_case("records without instruction", r"sft\.json: record 0: missing field 'instruction'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, [{"prompt": "q", "output": "a"}])
  _finetune(tmp_path)


@finetune_case("a record that is a string", r"sft\.json: record 1: expected an object, got str")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, [GOOD_SFT[0], "q -> a"])
  _finetune(tmp_path)


@finetune_case("output a list", r"sft\.json: record 0: field 'output' should be a str")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, [{"instruction": "q", "output": ["a"]}])
  _finetune(tmp_path)


@finetune_case("data file an object, not a list", r"sft\.json: expected a JSON list of records")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, {"data": GOOD_SFT})
  _finetune(tmp_path)


@finetune_case("data file with a raw newline in a string",
               r"sft\.json: line 1: not valid JSON \(a line break or tab inside a string")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}},
           '[{"instruction": "two\nlines", "output": "a"}]')
  _finetune(tmp_path)


@finetune_case("data file in latin-1", r"sft\.json: byte \d+: not UTF-8 text")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}},
           '[{"instruction": "café", "output": "a"}]'.encode("latin-1"))
  _finetune(tmp_path)


@finetune_case("JSONL with one bad line", r"sft\.jsonl: line 3: not valid JSON")
def _(tmp_path):
  lines = [json.dumps(r) for r in GOOD_SFT[:2]] + ['{"instruction": "q", "output": "a"'] + [
      json.dumps(GOOD_SFT[3])]
  _dataset(tmp_path, {"toy": {"file_name": "sft.jsonl"}}, "\n".join(lines), "sft.jsonl")
  _finetune(tmp_path)


@finetune_case("an empty set", r"sft\.json: no records left: dataset 'toy' is empty")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, [])
  _finetune(tmp_path)


@finetune_case("a zero-byte data file", r"sft\.json: the file is empty")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, "")
  _finetune(tmp_path)


@finetune_case("ranking set without chosen", r"prefs\.json: record 0: missing field 'chosen'")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "prefs.json", "ranking": True}},
           [{"instruction": "q", "output": "a", "rejected": "b"}], "prefs.json")
  _finetune(tmp_path, stage="dpo")


@finetune_case("sharegpt with LLaMA-Factory's tags but openai roles",
               r"share\.json: record 0: turn 0 of field 'conversations' needs 'from' in "
               r"\['gpt', 'human', 'system'\]")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "share.json", "formatting": "sharegpt"}},
           [{"conversations": [{"from": "user", "value": "q"},
                               {"from": "assistant", "value": "a"}]}], "share.json")
  _finetune(tmp_path)


@finetune_case("sharegpt with two user turns in a row",
               r"share\.json: record 1: turn 1 of field 'conversations' is a user turn; "
               r"expected a assistant turn")
def _(tmp_path):
  good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
  odd = {"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q2"},
                           {"from": "gpt", "value": "a"}]}
  _dataset(tmp_path, {"toy": {"file_name": "share.json", "formatting": "sharegpt"}},
           [good, odd], "share.json")
  _finetune(tmp_path)


@finetune_case("sharegpt ending with the user",
               r"share\.json: record 0: field 'conversations' must end with an assistant turn")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "share.json", "formatting": "sharegpt"}},
           [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"},
                               {"from": "human", "value": "thanks"}]}], "share.json")
  _finetune(tmp_path)


@finetune_case("every sample longer than cutoff_len",
               r"dataset_info\.json: all 4 samples of 'toy' are longer than cutoff_len=8, so "
               r"none keeps an answer token \(the shortest prompt, 't10 t20 t21 .* \.\.\.', has 14 "
               r"tokens\)")
def _(tmp_path):
  records = [{"instruction": _words(10 + i, *range(20, 30 + i)), "output": _words(40)}
             for i in range(4)]
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}}, records)
  _finetune(tmp_path, model=_tiny_llama(), cutoff_len=8)


@finetune_case("DPO on a set without ranking",
               r"dataset_info\.json: record 0 has no rejected answer; DPO needs a dataset with "
               r"\"ranking\": true")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, model=_tiny_llama(), stage="dpo")


@finetune_case("stage unknown in a config",
               r"config field stage='pt': expected one of \('sft', 'rm', 'ppo', 'grpo', 'dpo'\)")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, stage="pt")


@finetune_case("negative learning rate in a config",
               r"config field learning_rate=-0\.0001: expected a positive number")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, learning_rate=-1e-4)


@finetune_case("lora_dropout of 1", r"config field lora_dropout=1\.0: expected a value in "
               r"\[0, 1\.0\)")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, lora_dropout=1.0)


@finetune_case("do_predict with a misspelled eval_dataset (before training, not after)",
               r"dataset_info\.json: no dataset named 'tyo' \(it has \['toy'\]\)")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, do_predict=True, predict_with_generate=True, eval_dataset="toy,tyo")


@finetune_case("do_predict without predict_with_generate",
               r"config field predict_with_generate=False: do_predict here scores generated")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, do_predict=True, eval_dataset="toy")


@finetune_case("YAML syntax error", r"train\.yaml: line 6: not valid YAML")
def _(tmp_path):
  _yaml(tmp_path, "learning_rate: [1.0e-4\ncutoff_len: 64\n")


@finetune_case("YAML indented with a tab", r"train\.yaml: line 6: not valid YAML \(found "
               r"character '\\t' that cannot start any token\)")
def _(tmp_path):
  _yaml(tmp_path, "lora:\n\trank: 8\n")


@finetune_case("YAML key with a typo",
               r"train\.yaml: setting 'lora_rnak' is not a fine-tuning knob here; the nearest "
               r"one is 'lora_rank'")
def _(tmp_path):
  _yaml(tmp_path, "lora_rnak: 8\n")


# LLaMA-Factory's own keys that change nothing here (deepspeed, ...) are named as ignored
# (tests/finetune/test_llamafactory_yamls.py); a key that is not its either still stops.
@finetune_case("YAML key neither LLaMA-Factory nor this code has",
               r"train\.yaml: setting 'deepspeed_config' is not a fine-tuning knob here")
def _(tmp_path):
  _yaml(tmp_path, "deepspeed_config: examples/deepspeed/ds_z3_config.json\n")


@finetune_case("YAML number of the wrong type",
               r"train\.yaml: setting 'num_train_epochs'='three' should be a float")
def _(tmp_path):
  _yaml(tmp_path, "num_train_epochs: three\n")


@finetune_case("YAML quoted false for a flag",
               r"train\.yaml: setting 'do_sample'='false' should be a bool")
def _(tmp_path):
  _yaml(tmp_path, 'do_sample: "false"\n')  # bool("false") would be True


@finetune_case("YAML fractional count",
               r"train\.yaml: setting 'gradient_accumulation_steps'=2\.5 should be a int")
def _(tmp_path):
  _yaml(tmp_path, "gradient_accumulation_steps: 2.5\n")


@finetune_case("YAML negative learning rate",
               r"config field learning_rate=-5e-05: expected a positive number")
def _(tmp_path):
  _yaml(tmp_path, "learning_rate: -5.0e-5\n")


@finetune_case("YAML stage unknown",
               r"config field stage='kto': expected one of \('sft', 'rm', 'ppo', 'grpo', 'dpo'\)")
def _(tmp_path):
  _yaml(tmp_path, "stage: kto\n")


@finetune_case("YAML finetuning_type qlora",
               r"config field finetuning_type='qlora': expected one of \('lora', 'full'\)")
def _(tmp_path):
  _yaml(tmp_path, "finetuning_type: qlora\n")


@finetune_case("YAML a list of settings", r"train\.yaml: expected a mapping of settings")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  (tmp_path / "train.yaml").write_text("- stage: sft\n- dataset: toy\n")
  pipeline.run(config_lib.from_yaml(tmp_path / "train.yaml"), show_progress=False)


@finetune_case("YAML file missing", r"trian\.yaml: no such file or directory")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  pipeline.run(config_lib.from_yaml(tmp_path / "trian.yaml"), show_progress=False)


# -- chat templates (tokenizer_config.json) through SFT's encoding ----------------------------


def _llama_with_template(tmp_path, template: str) -> Path:
  model = tmp_path / "model"
  shutil.copytree(_tiny_llama(), model)
  config = json.loads((model / "tokenizer_config.json").read_text())
  (model / "tokenizer_config.json").write_text(json.dumps(dict(config, chat_template=template)))
  return model


@finetune_case("chat template with a Jinja syntax error",
               r"model/tokenizer_config\.json: chat template failed: line 1: not valid Jinja")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, model=_llama_with_template(
      tmp_path, "{% for m in messages %}{{ m['content'] }}{% endfor"))


@finetune_case("chat template that raises",
               r"model/tokenizer_config\.json: the chat template refused the messages: System "
               r"role not supported")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}},
           [dict(GOOD_SFT[0], system="Be brief.")])
  _finetune(tmp_path, model=_llama_with_template(
      tmp_path, "{% for m in messages %}{% if m['role'] == 'system' %}"
                "{{ raise_exception('System role not supported') }}{% endif %}"
                "{{ m['content'] }}{% endfor %}"))


@finetune_case("chat template that fails on a type",
               r"model/tokenizer_config\.json: chat template failed: TypeError")
def _(tmp_path):
  _dataset(tmp_path, {"toy": {"file_name": "sft.json"}})
  _finetune(tmp_path, model=_llama_with_template(
      tmp_path, "{% for m in messages %}{{ m['content'] + 1 }}{% endfor %}"))


# -- knowledge-base documents: `experiments.rag ingest --docs=FILE` over a good store --------

KB_DOCS = {"alpha.txt": "Alpha is the first letter.\n\nIt comes before beta.",
           "beta.md": "# Beta\n\nBeta is the second letter."}


def _good_kb(tmp_path) -> store.KnowledgeBase:
  docs = tmp_path / "docs"
  docs.mkdir()
  for name, text in KB_DOCS.items():
    (docs / name).write_text(text)
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(docs, WordEmbedder(), max_tokens=16, overlap=2)
  (tmp_path / "before.json").write_text(json.dumps(kb.rows))
  return kb


def _ingest(tmp_path, name: str, data: bytes | None = None, size: int | None = None):
  """Writes one bad document beside the good ones and ingests it alone (a fresh open, as the
  command does)."""
  _good_kb(tmp_path)
  path = tmp_path / "docs" / name
  if size is not None:
    with open(path, "wb") as f:
      f.truncate(size)  # sparse: the size without the bytes
  else:
    path.write_bytes(data)
  store.KnowledgeBase.open(tmp_path / "kb").ingest(path, WordEmbedder(), max_tokens=16,
                                                  overlap=2)


def _kb_intact(tmp_path):
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  assert kb.rows == json.loads((tmp_path / "before.json").read_text())
  hits = kb.retriever(WordEmbedder()).rank("Which letter comes before beta?", 1)
  assert kb.rows[hits[0].row]["source"].endswith("alpha.txt")
  assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == [
      "chunks-1.jsonl", "manifest.json", "vectors-1.npy"]


def kb_case(name, expect):
  return case(name, expect, _kb_intact)


@kb_case("document: binary with a .txt suffix",
         r"docs/photo\.txt: binary content \(NUL bytes\); nothing was ingested")
def _(tmp_path):
  _ingest(tmp_path, "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


@kb_case("document: empty", r"docs/empty\.md: empty file; nothing was ingested")
def _(tmp_path):
  _ingest(tmp_path, "empty.md", b"")


@kb_case("document: only whitespace and markup", r"docs/blank\.html: no text")
def _(tmp_path):
  _ingest(tmp_path, "blank.html", b"<html><script>var x = 1;</script><p> </p></html>")


@kb_case("document: huge", r"docs/huge\.txt: 65 MiB, more than the 64 MiB a document may have")
def _(tmp_path):
  _ingest(tmp_path, "huge.txt", size=(64 << 20) + (1 << 20))


@kb_case("document: latin-1", r"docs/cafe\.txt: not UTF-8 text \(byte 3\)")
def _(tmp_path):
  _ingest(tmp_path, "cafe.txt", "caf\xe9 au lait".encode("latin-1"))


@kb_case("document: UTF-16 without a byte-order mark",
         r"docs/notes\.txt: UTF-16 text without a byte-order mark; save it as UTF-8")
def _(tmp_path):
  _ingest(tmp_path, "notes.txt", "Gamma is the third letter.".encode("utf-16-le"))


@kb_case("document: unknown suffix",
         r"docs/report\.odt: unsupported file type \.odt \(expected one of \.txt, \.md")
def _(tmp_path):
  _ingest(tmp_path, "report.odt", b"PK\x03\x04 a zip")


@kb_case("document: a path that is not there",
         r"docs/missing\.txt: no such file or folder to ingest")
def _(tmp_path):
  _good_kb(tmp_path)
  store.KnowledgeBase.open(tmp_path / "kb").ingest(tmp_path / "docs" / "missing.txt",
                                                  WordEmbedder())


@kb_case("document: a PDF without a text layer",
         r"docs/scan\.pdf: no text layer \(a scanned PDF\?\); run OCR on it first; nothing "
         r"was ingested")
def _(tmp_path):
  _ingest(tmp_path, "scan.pdf", documents.pdf_bytes([None, None]))


@kb_case("document: a PDF cut off halfway",
         r"docs/cut\.pdf: not a readable PDF \(\w+: .+\); nothing was ingested")
def _(tmp_path):
  good = documents.pdf_bytes([["Delta is the fourth letter."], ["Epsilon is the fifth."]])
  _ingest(tmp_path, "cut.pdf", good[:len(good) // 2])


@kb_case("document: a .docx that is no Word document",
         r"docs/report\.docx: not a readable Word document: expected a \.docx package, a zip "
         r"with word/document\.xml \(PackageNotFoundError\); nothing was ingested")
def _(tmp_path):
  _ingest(tmp_path, "report.docx", b"PK\x03\x04 a zip")
