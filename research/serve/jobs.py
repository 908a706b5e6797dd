"""Fine-tune jobs started from the web page: each one a background process of its own.

  jobs = Jobs(settings.work_dir / "jobs", settings.model, settings.data_dir)
  job = jobs.start({"dataset": "persona", "lora_rank": 8, ...})   # ValueError names a bad field
  job = jobs.start({"stage": "dpo", "dataset": "persona_prefs", "pref_beta": 0.1, ...})
  jobs.status(job.id)    # state, loss points from metrics.jsonl, the last line of stderr
  jobs.stop(job.id); jobs.resume(job.id); jobs.export(job.id); jobs.delete(job.id)
  jobs.predict(job.id, {"eval_dataset": "persona", "max_samples": 20, "max_new_tokens": 64})

A job's folder work_dir/jobs/<id>/ holds config.json (what it trains), train/ (the trainer's
metrics.jsonl, checkpoints/), stderr.log, and export/ once exported. The process is
`python -m research.serve.jobs train <folder>`: a separate process, so a long or crashing
training run never blocks or takes down the server, and Stop can end it with its children.
Export is a second process that restores the newest checkpoint and writes the merged HF model
and the PEFT adapter (research.finetune.export). Predict is a third: LLaMA-Factory's evaluate &
predict (research.finetune.predict) with the job's export, or its newest checkpoint when it
has none, greedy answers to an eval dataset scored by BLEU-4 and ROUGE, written to predict/.

Each process locks its job folder for its whole life (an flock on <folder>/lock) and records
its pid and start time in process.json, so a process outlives the server that started it
without being lost: a later server sees it running, can stop it, counts it against
max_running, and starts nothing beside it in that folder. Resume restarts a job's trainer,
which continues from its newest checkpoint. Paths in a status are relative to the folder
above the jobs' root (the server's work_dir), so no response shows where the server lives.
"""

import dataclasses
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from research import files

# A job's process: `python -m research.serve.jobs <command> <job folder>` (tests stand in another).
CHILD = [sys.executable, "-m", "research.serve.jobs"]
SOURCE = Path(__file__).resolve().parents[2]  # the child imports the server's own research/
VERBS = {"train": "training", "resume": "training", "export": "exporting",
         "predict": "predicting"}
RESUMABLE = ("interrupted", "stopped", "failed")
LOCK, RECORD = "lock", "process.json"  # in a job's folder: the flock, who holds it
_FRAME = re.compile(r'\s*File ".*", line \d+')  # a traceback's frame line

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


def message(path) -> str:
  """What a log says last, for the page: its last line, except that a traceback gives its
  exception's sentence, never a frame (which names the server's files)."""
  lines = [s.rstrip() for s in _tail(path).replace("\r", "\n").split("\n") if s.strip()]
  starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
  frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
  start = starts[-1] if starts else frames[0] if frames else None  # (the tail may begin
  if start is not None:                                              # inside the frames)
    # the first unindented line after the last traceback's frames is its exception
    after = [line for line in lines[start + 1:] if not line[:1].isspace()]
    if after:
      return after[0]
    lines = lines[:start]  # cut off in its frames: what came before it
  return lines[-1].strip() if lines else ""


def loss_points(train_dir) -> list[dict]:
  """(step, loss) rows of the trainer's metrics.jsonl; a half-written last line is skipped,
  and a step logged twice (a resumed run repeats the steps after its checkpoint) keeps its
  newest row."""
  path = Path(train_dir) / "metrics.jsonl"
  if not path.is_file():
    return []
  points = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if "loss" in row:
      point = {"step": row["step"], "loss": row["loss"]}
      if "eval_loss" in row:
        point["eval_loss"] = row["eval_loss"]
      points[row["step"]] = point
  return [points[step] for step in sorted(points)]


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

  def own(self):
    """(verb, process) of each process this server started for the job."""
    return (("training", self.process), ("exporting", self.export_process),
            ("predicting", self.predict_process))


class Jobs:
  """The fine-tune jobs under one folder: at most `max_running` processes (train, export or
  predict: each holds a model in memory) at once, and at most `max_jobs` job folders."""

  def __init__(self, root, model: str, data_dir, max_running: int = 1, max_jobs: int = 100):
    self.root, self.model, self.data_dir = Path(root), model, Path(data_dir)
    self.max_running, self.max_jobs = max_running, max_jobs
    self._jobs: dict[str, Job] = {}
    self._lock = threading.Lock()
    self._load_earlier()

  def _load_earlier(self):
    if not self.root.is_dir():
      return
    for folder in sorted(self.root.iterdir()):
      record = folder / "job.json"
      if folder.name.startswith(".") or not record.is_file():
        continue
      try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        fields, created = meta["fields"], float(meta["created"])
        if meta["id"] != folder.name or not isinstance(fields, dict):
          raise ValueError("its id or fields do not match its folder")
      except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
        # a job the server cannot describe is none it can stop, resume or export: left out,
        # its folder untouched for the user to repair or delete
        logging.warning("skipping fine-tune job %s: it is not a readable job record (%s: %s).",
                        record, type(e).__name__, e)
        continue
      self._jobs[folder.name] = Job(folder.name, folder, fields, created)

  def _spawn(self, job: Job, command: str, log: str) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))
    with open(job.dir / log, "ab") as err:
      # a session of its own, so Stop can end the trainer and anything it started
      return subprocess.Popen([*CHILD, command, str(job.dir)], stdin=subprocess.DEVNULL,
                              stdout=err, stderr=err, start_new_session=True,
                              env={**os.environ, "PYTHONPATH": path})

  def _show(self, path: Path) -> str:
    """A path as a response shows it: relative to the server's work_dir."""
    return str(Path(path).relative_to(self.root.parent))

  def _earlier(self, job: Job) -> dict | None:
    """The live process recorded in the job's folder that this server did not start (an
    earlier server's, or one started by hand), else None."""
    record = read_record(job.dir)
    if record is None or any(p is not None and p.pid == record["pid"] for _, p in job.own()):
      return None
    return record if alive(record) else None

  def _busy(self, job: Job) -> str | None:
    """What runs in the job's folder now ("training", "exporting", "predicting"), or None."""
    for verb, process in job.own():
      if process is not None and process.poll() is None:
        return verb
    record = self._earlier(job)
    return VERBS[record["command"]] if record is not None else None

  def _check_room(self, job: Job | None, doing: str):
    """RuntimeError unless the job's folder is free and a process may start beside the others
    (call with self._lock held)."""
    if job is not None and (busy := self._busy(job)) is not None:
      raise RuntimeError(f"job {job.id} is still {busy}; {doing} once it has ended or stopped.")
    others = [(j, self._busy(j)) for j in self._jobs.values()]
    others = [(j, verb) for j, verb in others if verb is not None]
    if len(others) >= self.max_running:
      j, verb = others[0]
      count = "one" if self.max_running == 1 else str(self.max_running)
      raise RuntimeError(f"job {j.id} is still {verb}, and this server runs {count} fine-tune "
                         f"process{'es' if self.max_running > 1 else ''} (train, export or "
                         f"predict: each holds a model in memory) at a time; {doing} once it "
                         "has ended.")

  def start(self, form: dict) -> Job:
    fields = parse_form(form, self.data_dir)
    with self._lock:
      self._check_room(None, "start another")
      if len(self._jobs) >= self.max_jobs:
        raise RuntimeError(f"there are already {len(self._jobs)} fine-tune jobs, the most this "
                           "server keeps; delete old ones first.")
      job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
      job = Job(job_id, self.root / job_id, fields, time.time())
      config = make_config(fields, self.model, self.data_dir, job.dir)
      files.write_json(job.dir / "config.json", config.to_dict())
      files.write_json(job.dir / "job.json", {"id": job.id, "fields": fields,
                                              "created": job.created})
      job.process = self._spawn(job, "train", "stderr.log")
      self._jobs[job_id] = job
    return job

  def resume(self, job_id: str) -> dict:
    """Restarts an interrupted, stopped or failed job's trainer in its folder: it continues
    from its newest checkpoint (or starts afresh when it saved none)."""
    job = self.get(job_id)
    with self._lock:
      state = self._state(job)
      if state not in RESUMABLE:
        raise RuntimeError(f"job {job_id} is {state}; only an interrupted, stopped or failed "
                           "job can resume.")
      self._check_room(job, "resume it")
      job.stopped = False
      job.process = self._spawn(job, "resume", "stderr.log")
    return self.status(job_id)

  def delete(self, job_id: str) -> dict:
    """Removes a job that runs nothing, its folder with it."""
    job = self.get(job_id)
    with self._lock:
      self._check_room(job, "delete it")
      # renamed first: a half-deleted folder is never loaded (dot names are skipped)
      trash = job.dir.with_name(f".deleting-{job.id}-{uuid.uuid4().hex[:6]}")
      job.dir.rename(trash)
      del self._jobs[job_id]
    shutil.rmtree(trash, ignore_errors=True)
    return {"id": job_id, "state": "deleted"}

  def get(self, job_id: str) -> Job:
    if job_id not in self._jobs:
      raise KeyError(f"no fine-tune job {job_id!r}.")
    return self._jobs[job_id]

  def _state(self, job: Job) -> str:
    code = job.process.poll() if job.process is not None else None
    if job.process is not None and code is None:
      return "running"
    record = self._earlier(job)
    if record is not None and record["command"] in ("train", "resume"):
      return "running"  # an earlier server's trainer, still at work
    if job.stopped:
      return "stopped"
    if job.process is None:
      return "finished" if (job.dir / "train" / "summary.json").is_file() else "interrupted"
    return "finished" if code == 0 else "failed"

  def _pid(self, job: Job) -> int | None:
    if job.process is not None:
      return job.process.pid
    record = self._earlier(job)
    return record["pid"] if record is not None and VERBS[record["command"]] == "training" \
        else None

  def status(self, job_id: str) -> dict:
    job = self.get(job_id)
    state = self._state(job)
    out = {"id": job.id, "state": state, "fields": job.fields, "created": job.created,
           "pid": self._pid(job), "dir": self._show(job.dir),
           "points": loss_points(job.dir / "train"), "total_steps": self._total_steps(job),
           "export": self._export_status(job), "predict": self._predict_status(job)}
    if state != "finished":
      out["message"] = self._message(job.dir / "stderr.log")
    return out

  def _message(self, log: Path) -> str:
    """The log's last sentence, with the server's work_dir left out of any path in it."""
    return message(log).replace(f"{self.root.parent.resolve()}{os.sep}", "")

  def _total_steps(self, job: Job) -> int | None:
    """The run's step count, from the last update of the trainer's progress bar."""
    bars = _BAR.findall(_tail(job.dir / "stderr.log"))
    return int(bars[-1]) if bars else None

  def _export_status(self, job: Job) -> dict | None:
    target = job.dir / "export"
    record = self._earlier(job)
    if ((job.export_process is not None and job.export_process.poll() is None)
        or (record is not None and record["command"] == "export")):
      return {"state": "running"}
    if job.export_process is None or job.export_process.poll() == 0:
      if not target.is_dir():
        return None
      return {"state": "finished", "path": self._show(target),
              "model": export_model_name(job.id),
              "adapter": self._show(target / "adapter") if (target / "adapter").is_dir()
                         else None}
    return {"state": "failed", "message": self._message(job.dir / "export.log")}

  def _predict_status(self, job: Job) -> dict | None:
    """The last predict's request and state; once finished, its scores and a sample."""
    folder = job.dir / "predict"
    try:
      out = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
      return None
    results = folder / "predict_results.json"
    process = job.predict_process
    code = process.poll() if process is not None else None
    record = self._earlier(job)
    if (process is not None and code is None) or (record is not None
                                                  and record["command"] == "predict"):
      out["state"] = "running"
    elif code in (None, 0) and results.is_file():
      out.update(state="finished", path=self._show(folder),
                 metrics=json.loads(results.read_text(encoding="utf-8")),
                 sample=_first_rows(folder / "generated_predictions.jsonl", PREDICT_SAMPLE))
      return out
    else:  # it failed, or an earlier server was stopped while it ran
      out["state"] = "failed" if process is not None else "interrupted"
    out["message"] = self._message(job.dir / "predict.log")
    return out

  def list(self) -> list[dict]:
    return [{"id": j.id, "state": self._state(j), "created": j.created,
             "dataset": j.fields.get("dataset"), "stage": j.fields.get("stage", "sft")}
            for j in sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)]

  def stop(self, job_id: str) -> dict:
    job = self.get(job_id)
    if job.process is not None and job.process.poll() is None:
      job.stopped = True
      _end(job.process)
    elif (record := self._earlier(job)) is not None and record["command"] in ("train",
                                                                                "resume"):
      job.stopped = True
      end_recorded(record)
    return self.status(job_id)

  def export(self, job_id: str) -> dict:
    job = self.get(job_id)
    with self._lock:
      self._check_room(job, "export it")
      if not any((job.dir / "train" / "checkpoints").glob("*")):
        raise RuntimeError(f"job {job_id} saved no checkpoint, so there is nothing to export.")
      job.export_process = self._spawn(job, "export", "export.log")
    return self.status(job_id)

  def predict(self, job_id: str, form: dict) -> dict:
    """Starts predict on the job's export, or its newest checkpoint; ValueError names a bad
    field, RuntimeError says why the job cannot predict now."""
    job = self.get(job_id)
    try:
      config = json.loads((job.dir / "config.json").read_text(encoding="utf-8"))
      dataset_dir = config["dataset_dir"]
    except (OSError, ValueError, KeyError, TypeError):
      raise RuntimeError(f"job {job_id} has no readable config.json, so it cannot "
                         "predict.") from None
    fields = parse_predict_form(form, dataset_dir)
    with self._lock:
      self._check_room(job, "predict")
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
    """Ends every process still running in a job's folder (the server is shutting down),
    an earlier server's trainer among them."""
    for job in self._jobs.values():
      for _, process in job.own():
        if process is not None and process.poll() is None:
          job.stopped = True
          _end(process)
      record = self._earlier(job)
      if record is not None:
        job.stopped = True
        end_recorded(record)


def export_model_name(job_id: str) -> str:
  """The name a job's export is served under (research.serve.registry)."""
  return f"ft-{job_id}"


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


def started_at(pid: int) -> int | None:
  """When process `pid` started (field 22 of /proc/<pid>/stat, clock ticks after boot), so a
  recorded pid that the system has since given to another process is not taken for it; None
  when it has ended (a zombie has ended too)."""
  try:
    stat = Path(f"/proc/{pid}/stat").read_text()
  except OSError:
    return None
  fields = stat[stat.rindex(")") + 2:].split()  # from field 3 on: the name may hold spaces
  return None if fields[0] in ("Z", "X") else int(fields[19])


def read_record(job_dir) -> dict | None:
  """The process.json of a job's folder: the last process that held its lock."""
  try:
    record = json.loads((Path(job_dir) / RECORD).read_text(encoding="utf-8"))
    if (record["command"] in VERBS and isinstance(record["pid"], int)
        and isinstance(record["start"], (int, type(None)))):
      return record
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return None


def alive(record: dict) -> bool:
  """Whether the recorded process still runs: its pid, started when it was."""
  return started_at(record["pid"]) == record["start"] and record["start"] is not None


def end_recorded(record: dict, grace_s: float = 5.0):
  """Ends a recorded process that is not our child (its group too when it leads one), as
  _end does ours: SIGTERM, and SIGKILL after the grace period; RuntimeError when it is not
  ours to end."""
  pid = record["pid"]
  kill = os.killpg if record.get("group") == pid else os.kill
  for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
    if not alive(record):
      return
    try:
      kill(pid, sig)
    except ProcessLookupError:
      return
    except PermissionError:
      raise RuntimeError(f"process {pid} belongs to another user, so this server cannot stop "
                         "it.") from None
    deadline = time.monotonic() + wait_s
    while alive(record) and time.monotonic() < deadline:
      time.sleep(0.05)


def hold(job_dir: Path, command: str):
  """Locks the job's folder for the life of this process and records it there; ValueError
  when another live process holds it. Returns the open lock file: keep it."""
  lock = open(job_dir / LOCK, "a+b")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    lock.close()
    record = read_record(job_dir) or {"pid": "?", "command": "?"}
    raise ValueError(f"job folder {job_dir} is in use by process {record['pid']} "
                     f"({record['command']}); wait for it or stop it first.") from None
  pid = os.getpid()
  files.write_json(job_dir / RECORD, {"command": command, "pid": pid,
                                      "start": started_at(pid), "group": os.getpgid(0)})
  return lock


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


def _train(job_dir: Path, resume: bool = False):
  from research.finetune import pipeline  # pylint: disable=g-import-not-at-top
  config = _load_config(job_dir)
  config.resume = resume  # from the newest checkpoint of train/
  pipeline.run(config, check_base=False)


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


WORK = {"train": _train, "resume": lambda job_dir: _train(job_dir, resume=True),
        "export": _export, "predict": _predict}


def main(argv: list[str]) -> int:
  """`<command> <job folder>`: the job's process. A bad input ends with its one sentence."""
  command, job_dir = argv[0], Path(argv[1])
  try:
    lock = hold(job_dir, command)
    WORK[command](job_dir)
  except (ValueError, OSError, LookupError) as e:
    if os.environ.get("BOOKFORAI_TRACEBACK"):
      raise
    print(f"error: {e}", file=sys.stderr)
    return 2
  lock.close()
  return 0


if __name__ == "__main__":
  from research import cache  # pylint: disable=g-import-not-at-top
  cache.enable_compilation_cache()  # the server's folder, which it left in the environment
  sys.exit(main(sys.argv[1:]))
