"""Fine-tune jobs started from the web page: each one a background process of its own.

  jobs = Jobs(settings.work_dir / "jobs", settings.model, settings.data_dir)
  job = jobs.start({"dataset": "persona", "lora_rank": 8, ...})   # ValueError names a bad field
  job = jobs.start({"stage": "dpo", "dataset": "persona_prefs", "pref_beta": 0.1, ...})
  jobs.status(job.id)    # state, loss points from metrics.jsonl, the last line of stderr
  jobs.stop(job.id); jobs.export(job.id)
  jobs.predict(job.id, {"eval_dataset": "persona", "max_samples": 20, "max_new_tokens": 64})

A job's folder work_dir/jobs/<id>/ holds config.json (what it trains), train/ (the trainer's
metrics.jsonl, checkpoints/), stderr.log, and export/ once exported. The process is
`python -m research.serve.jobs train <folder>`: a separate process, so a long or crashing
training run never blocks or takes down the server, and Stop can end it with its children.
Export is a second process that restores the newest checkpoint and writes the merged HF model
and the PEFT adapter (research.finetune.export). Predict is a third: LLaMA-Factory's evaluate &
predict (research.finetune.predict) with the job's export, or its newest checkpoint when it
has none, greedy answers to an eval dataset scored by BLEU-4 and ROUGE, written to predict/.
"""

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from research import files

# The knobs of the form: LLaMA-Factory's names, the type each must parse as, and its bounds.
INTS = {"lora_rank": (1, 1024), "lora_alpha": (0, 4096), "cutoff_len": (8, 32768),
        "per_device_train_batch_size": (1, 1024), "gradient_accumulation_steps": (1, 1024),
        "max_steps": (0, 10**6), "max_samples": (0, 10**9), "logging_steps": (1, 10**6),
        "save_steps": (1, 10**6), "seed": (0, 2**31 - 1)}
FLOATS = {"learning_rate": (0.0, 1.0), "num_train_epochs": (0.0, 1000.0),
          "warmup_ratio": (0.0, 1.0), "lora_dropout": (0.0, 1.0), "pref_beta": (0.0, 100.0)}
_BAR = re.compile(r"\| *\d+/(\d+) \[")  # tqdm's "sft:  40%|####      | 4/10 [00:02<..."
POSITIVE = ("learning_rate", "num_train_epochs", "pref_beta")  # their lower bound is excluded
CHOICES = {"stage": ("sft", "dpo"), "lr_scheduler_type": ("cosine", "linear", "constant"),
           "compute_type": ("fp32", "bf16", "fp16"), "finetuning_type": ("lora", "full")}
# The Evaluate & Predict panel's knobs, bounds and defaults (max_samples 0: all).
PREDICT_INTS = {"max_samples": (0, 10**9), "max_new_tokens": (1, 4096)}
PREDICT_DEFAULTS = {"max_samples": 50, "max_new_tokens": 64}
PREDICT_SAMPLE = 10  # predictions shown beside their labels
# What the page shows before the user changes anything (LLaMA-Factory's web UI defaults,
# except a logging step of 1 so the live curve gets a point per optimizer step).
FORM_DEFAULTS = {"stage": "sft", "lora_rank": 8, "lora_alpha": 16, "learning_rate": 5e-5,
                 "num_train_epochs": 3.0, "cutoff_len": 1024,
                 "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
                 "lr_scheduler_type": "cosine", "compute_type": "fp32", "max_steps": 0,
                 "max_samples": 0, "logging_steps": 1, "save_steps": 100, "seed": 42,
                 "warmup_ratio": 0.0, "lora_dropout": 0.0, "finetuning_type": "lora",
                 "pref_beta": 0.1}


def datasets_for(data_dir, stage: str = "sft") -> list[str]:
  """The datasets of data_dir/dataset_info.json a stage trains on: plain sets for SFT,
  preference sets ("ranking": true, chosen and rejected) for DPO."""
  path = Path(data_dir) / "dataset_info.json"
  if not path.is_file():
    return []
  info = json.loads(path.read_text(encoding="utf-8"))
  ranking = stage == "dpo"
  return sorted(name for name, entry in info.items() if entry.get("ranking", False) == ranking)


def _number(field, value, cast, low, high):
  if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
    raise ValueError(f"field {field}: expected a number, got {value!r}.")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"field {field}: expected a number, got {value!r}.") from None
  if not math.isfinite(number):
    raise ValueError(f"field {field}: expected a finite number, got {value!r}.")
  if cast is int:
    if number != int(number):
      raise ValueError(f"field {field}: expected a whole number, got {value!r}.")
    number = int(number)
  positive = field in POSITIVE
  if number > high or number < low or (positive and number <= low):
    least = f"more than {low}" if positive else f"at least {low}"
    raise ValueError(f"field {field}: expected {least} and at most {high}, got {value!r}.")
  return number


def parse_form(form: dict, data_dir) -> dict:
  """The form's values, typed and checked; ValueError names the first bad field."""
  if not isinstance(form, dict):
    raise ValueError("expected a JSON object of fine-tuning fields.")
  stage = form.get("stage", FORM_DEFAULTS["stage"])
  if stage not in CHOICES["stage"]:
    raise ValueError(f"field stage: expected one of {list(CHOICES['stage'])}, got {stage!r}.")
  datasets = datasets_for(data_dir, stage)
  kind = "preference " if stage == "dpo" else ""
  out = dict(FORM_DEFAULTS)
  for field, value in form.items():
    if field == "dataset":
      out[field] = _one_of_datasets(field, value, datasets, data_dir, kind)
    elif field in INTS:
      out[field] = _number(field, value, int, *INTS[field])
    elif field in FLOATS:
      out[field] = _number(field, value, float, *FLOATS[field])
    elif field in CHOICES:
      if value not in CHOICES[field]:
        raise ValueError(f"field {field}: expected one of {list(CHOICES[field])}, got {value!r}.")
      out[field] = value
    else:
      raise ValueError(f"field {field}: not a fine-tuning knob of this page.")
  if "dataset" not in out:
    raise ValueError(f"field dataset: missing; expected one of {datasets}.")
  if stage == "dpo" and out["finetuning_type"] != "lora":
    raise ValueError("field finetuning_type: DPO needs 'lora' (its reference model is the "
                     "same weights with the adapters off).")
  return out


def _one_of_datasets(field, value, datasets, data_dir, kind: str = ""):
  if value not in datasets:
    raise ValueError(f"field {field}: expected one of the {kind}datasets {datasets} from "
                     f"{Path(data_dir) / 'dataset_info.json'}, got {value!r}.")
  return value


def eval_datasets(data_dir) -> list[str]:
  """Every dataset of data_dir a tuned model can answer: plain sets, and preference sets
  (their chosen answer is the label)."""
  return sorted(datasets_for(data_dir, "sft") + datasets_for(data_dir, "dpo"))


def parse_predict_form(form: dict, data_dir) -> dict:
  """The Evaluate & Predict panel's values, typed and checked; ValueError names the field."""
  if not isinstance(form, dict):
    raise ValueError("expected a JSON object of predict fields.")
  datasets = eval_datasets(data_dir)
  out = dict(PREDICT_DEFAULTS)
  for field, value in form.items():
    if field == "eval_dataset":
      out[field] = _one_of_datasets(field, value, datasets, data_dir)
    elif field in PREDICT_INTS:
      out[field] = _number(field, value, int, *PREDICT_INTS[field])
    else:
      raise ValueError(f"field {field}: not a predict knob of this page.")
  if "eval_dataset" not in out:
    raise ValueError(f"field eval_dataset: missing; expected one of {datasets}.")
  return out


def make_config(fields: dict, model: str, data_dir, job_dir):
  """The research.finetune config of one job, checked by its own validate()."""
  from research.finetune import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.defaults()
  config.model = str(model)
  config.dataset_dir = str(Path(data_dir).resolve())
  config.output_dir = str(Path(job_dir).resolve() / "train")
  config.export_dir = ""
  config.resume = False
  config.update(fields)
  config_lib.validate(config)
  return config


def _tail(path, limit: int = 64 << 10) -> str:
  path = Path(path)
  if not path.is_file():
    return ""
  with open(path, "rb") as f:
    f.seek(max(0, path.stat().st_size - limit))
    return f.read().decode("utf-8", "replace")


def last_line(path) -> str:
  """The last non-blank line of a log; a progress bar's \\r-separated updates count as lines."""
  lines = [s.strip() for s in _tail(path).replace("\r", "\n").split("\n") if s.strip()]
  return lines[-1] if lines else ""


def loss_points(train_dir) -> list[dict]:
  """(step, loss) rows of the trainer's metrics.jsonl; a half-written last line is skipped."""
  path = Path(train_dir) / "metrics.jsonl"
  if not path.is_file():
    return []
  points = []
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if "loss" in row:
      point = {"step": row["step"], "loss": row["loss"]}
      if "eval_loss" in row:
        point["eval_loss"] = row["eval_loss"]
      points.append(point)
  return points


@dataclasses.dataclass
class Job:
  id: str
  dir: Path
  fields: dict
  created: float
  process: subprocess.Popen | None = None       # None: started by an earlier server
  export_process: subprocess.Popen | None = None
  predict_process: subprocess.Popen | None = None
  stopped: bool = False


class Jobs:
  """The fine-tune jobs under one folder; at most `max_running` train at once."""

  def __init__(self, root, model: str, data_dir, max_running: int = 1):
    self.root, self.model, self.data_dir = Path(root), model, Path(data_dir)
    self.max_running = max_running
    self._jobs: dict[str, Job] = {}
    self._lock = threading.Lock()
    self._load_earlier()

  def _load_earlier(self):
    if not self.root.is_dir():
      return
    for folder in sorted(self.root.iterdir()):
      record = folder / "job.json"
      if record.is_file():
        meta = json.loads(record.read_text())
        self._jobs[meta["id"]] = Job(meta["id"], folder, meta["fields"], meta["created"])

  def _spawn(self, job: Job, command: str, log: str) -> subprocess.Popen:
    with open(job.dir / log, "ab") as err:
      # a session of its own, so Stop can end the trainer and anything it started
      return subprocess.Popen([sys.executable, "-m", "research.serve.jobs", command,
                               str(job.dir)], stdin=subprocess.DEVNULL,
                              stdout=err, stderr=err, start_new_session=True)

  def start(self, form: dict) -> Job:
    fields = parse_form(form, self.data_dir)
    with self._lock:
      running = [j for j in self._jobs.values() if self._state(j) == "running"]
      if len(running) >= self.max_running:
        raise RuntimeError(f"job {running[0].id} is still training; stop it or wait for it.")
      job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
      job = Job(job_id, self.root / job_id, fields, time.time())
      config = make_config(fields, self.model, self.data_dir, job.dir)
      files.write_json(job.dir / "config.json", config.to_dict())
      files.write_json(job.dir / "job.json", {"id": job.id, "fields": fields,
                                              "created": job.created})
      job.process = self._spawn(job, "train", "stderr.log")
      self._jobs[job_id] = job
    return job

  def get(self, job_id: str) -> Job:
    if job_id not in self._jobs:
      raise KeyError(f"no fine-tune job {job_id!r}.")
    return self._jobs[job_id]

  def _state(self, job: Job) -> str:
    if job.process is None:
      return "finished" if (job.dir / "train" / "summary.json").is_file() else "interrupted"
    code = job.process.poll()
    if code is None:
      return "running"
    if job.stopped:
      return "stopped"
    return "finished" if code == 0 else "failed"

  def status(self, job_id: str) -> dict:
    job = self.get(job_id)
    state = self._state(job)
    out = {"id": job.id, "state": state, "fields": job.fields, "created": job.created,
           "pid": job.process.pid if job.process is not None else None,
           "dir": str(job.dir), "points": loss_points(job.dir / "train"),
           "total_steps": self._total_steps(job), "export": self._export_status(job),
           "predict": self._predict_status(job)}
    if state != "finished":
      out["message"] = last_line(job.dir / "stderr.log")
    return out

  def _total_steps(self, job: Job) -> int | None:
    """The run's step count, from the last update of the trainer's progress bar."""
    bars = _BAR.findall(_tail(job.dir / "stderr.log"))
    return int(bars[-1]) if bars else None

  def _export_status(self, job: Job) -> dict | None:
    target = job.dir / "export"
    if job.export_process is None:
      return {"state": "finished", "path": str(target)} if target.is_dir() else None
    code = job.export_process.poll()
    if code is None:
      return {"state": "running"}
    if code == 0:
      return {"state": "finished", "path": str(target),
              "adapter": str(target / "adapter") if (target / "adapter").is_dir() else None}
    return {"state": "failed", "message": last_line(job.dir / "export.log")}

  def _predict_status(self, job: Job) -> dict | None:
    """The last predict's request and state; once finished, its scores and a sample."""
    folder = job.dir / "predict"
    if not (folder / "request.json").is_file():
      return None
    out = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    results = folder / "predict_results.json"
    process = job.predict_process
    code = process.poll() if process is not None else None
    if process is not None and code is None:
      out["state"] = "running"
    elif code in (None, 0) and results.is_file():
      out.update(state="finished", path=str(folder),
                 metrics=json.loads(results.read_text(encoding="utf-8")),
                 sample=_first_rows(folder / "generated_predictions.jsonl", PREDICT_SAMPLE))
      return out
    else:  # it failed, or an earlier server was stopped while it ran
      out["state"] = "failed" if process is not None else "interrupted"
    out["message"] = last_line(job.dir / "predict.log")
    return out

  def list(self) -> list[dict]:
    return [{"id": j.id, "state": self._state(j), "created": j.created,
             "dataset": j.fields.get("dataset"), "stage": j.fields.get("stage", "sft")}
            for j in sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)]

  def stop(self, job_id: str) -> dict:
    job = self.get(job_id)
    if self._state(job) == "running":
      job.stopped = True
      _end(job.process)
    return self.status(job_id)

  def export(self, job_id: str) -> dict:
    job = self.get(job_id)
    with self._lock:
      if self._state(job) == "running":
        raise RuntimeError(f"job {job_id} is still training; export it once it has stopped.")
      if job.export_process is not None and job.export_process.poll() is None:
        raise RuntimeError(f"job {job_id} is already exporting.")
      if not any((job.dir / "train" / "checkpoints").glob("*")):
        raise RuntimeError(f"job {job_id} saved no checkpoint, so there is nothing to export.")
      job.export_process = self._spawn(job, "export", "export.log")
    return self.status(job_id)

  def predict(self, job_id: str, form: dict) -> dict:
    """Starts predict on the job's export, or its newest checkpoint; ValueError names a bad
    field, RuntimeError says why the job cannot predict now."""
    job = self.get(job_id)
    config = json.loads((job.dir / "config.json").read_text(encoding="utf-8"))
    fields = parse_predict_form(form, config["dataset_dir"])
    with self._lock:
      if self._state(job) == "running":
        raise RuntimeError(f"job {job_id} is still training; predict once it has stopped.")
      if job.predict_process is not None and job.predict_process.poll() is None:
        raise RuntimeError(f"job {job_id} is already predicting.")
      source = tuned_source(job.dir)
      if source is None:
        raise RuntimeError(f"job {job_id} has neither an export nor a checkpoint, so there is "
                           "no tuned model to predict with.")
      folder = job.dir / "predict"
      for name in ("predict_results.json", "generated_predictions.jsonl"):
        (folder / name).unlink(missing_ok=True)  # a result shown is always this run's
      files.write_json(folder / "request.json", {**fields, "source": source})
      job.predict_process = self._spawn(job, "predict", "predict.log")
    return self.status(job_id)

  def close(self):
    """Ends every process still running (the server is shutting down)."""
    for job in self._jobs.values():
      for process in (job.process, job.export_process, job.predict_process):
        if process is not None and process.poll() is None:
          job.stopped = True
          _end(process)


def tuned_source(job_dir) -> str | None:
  """What predict loads: "export" (the merged model), else "checkpoint" (the newest one)."""
  job_dir = Path(job_dir)
  if (job_dir / "export" / "config.json").is_file():
    return "export"
  if any((job_dir / "train" / "checkpoints").glob("*")):
    return "checkpoint"
  return None


def _first_rows(path: Path, count: int) -> list[dict]:
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if len(rows) == count:
        break
      rows.append(json.loads(line))
  return rows


def _end(process: subprocess.Popen, grace_s: float = 5.0):
  try:
    os.killpg(process.pid, signal.SIGTERM)
  except ProcessLookupError:
    return
  try:
    process.wait(grace_s)
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _load_config(job_dir: Path):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(json.loads((job_dir / "config.json").read_text()))


def _train(job_dir: Path):
  from research.finetune import pipeline  # pylint: disable=g-import-not-at-top
  pipeline.run(_load_config(job_dir), check_base=False)


def _restore(config):
  """(the job's tuned model from its newest checkpoint, that checkpoint's step)."""
  from research.finetune import sft  # pylint: disable=g-import-not-at-top
  from research.finetune import trainer  # pylint: disable=g-import-not-at-top
  lm = sft.prepare(config)[0]  # the base model with the job's adapters (SFT and DPO alike)
  lm.model, step = trainer.restore(lm.model, config)
  return lm, step


def _export(job_dir: Path):
  from research.finetune import export  # pylint: disable=g-import-not-at-top
  config = _load_config(job_dir)
  lm, step = _restore(config)
  path = export.export(lm, job_dir / "export", lora_dropout=config.lora_dropout,
                       rslora=config.use_rslora)
  print(f"export: step {step} of {job_dir.name} -> {path}", file=sys.stderr)


def _predict(job_dir: Path):
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.finetune import predict  # pylint: disable=g-import-not-at-top
  config = _load_config(job_dir)
  request = json.loads((job_dir / "predict" / "request.json").read_text(encoding="utf-8"))
  if request["source"] == "export":
    lm = pretrained.load_model(str(job_dir / "export"))
  else:
    lm = _restore(config)[0]
  config.update(do_predict=True, predict_with_generate=True, do_sample=False,
                eval_dataset=request["eval_dataset"], max_samples=request["max_samples"],
                max_new_tokens=request["max_new_tokens"], output_dir=str(job_dir / "predict"))
  metrics = predict.predict(lm, config)
  print(predict.score_line(metrics), file=sys.stderr)


if __name__ == "__main__":
  {"train": _train, "export": _export, "predict": _predict}[sys.argv[1]](Path(sys.argv[2]))
