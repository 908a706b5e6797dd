"""Fine-tune jobs: the form's checks, the datasets each stage offers, the loss curve's points,
and their processes (a stand-in trainer): one outliving its server, the folder lock, resume,
the bounds, what a status shows. (Jobs that train and export run through the web page in
test_web.py.)"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research.serve import jobs


@pytest.fixture
def data_dir(tmp_path):
  (tmp_path / "dataset_info.json").write_text(json.dumps({
      "persona": {"file_name": "p.json"}, "notes": {"file_name": "n.json"},
      "persona_prefs": {"file_name": "pp.json", "ranking": True}}))
  return tmp_path


def test_each_stage_offers_its_own_datasets(data_dir, tmp_path):
  assert jobs.datasets_for(data_dir) == ["notes", "persona"]
  assert jobs.datasets_for(data_dir, "dpo") == ["persona_prefs"]
  assert jobs.datasets_for(tmp_path / "nowhere") == []


@pytest.mark.parametrize("field, value, says", [
    ("lora_rank", True, "expected a number"),
    ("lora_rank", "2.5", "expected a whole number"),
    ("learning_rate", "inf", "expected a finite number"),
    ("learning_rate", 0, "expected more than 0.0"),
    ("warmup_ratio", 0, None),  # its lower bound is allowed
    ("lora_rank", 0, "expected at least 1 and at most 1024"),
    ("lr_scheduler_type", "step", "expected one of ['cosine', 'linear', 'constant']"),
    ("bogus", 1, "not a fine-tuning knob"),
])
def test_bad_fields_are_named(data_dir, field, value, says):
  form = {"dataset": "persona", field: value}
  if says is None:
    assert jobs.parse_form(form, data_dir)[field] == value
  else:
    with pytest.raises(ValueError, match=re.escape(f"field {field}: {says}")):
      jobs.parse_form(form, data_dir)


def test_dataset_and_stage_must_agree(data_dir):
  with pytest.raises(ValueError, match=r"field dataset: missing; expected one of \['notes'"):
    jobs.parse_form({}, data_dir)
  with pytest.raises(ValueError, match="expected one of the preference datasets"):
    jobs.parse_form({"stage": "dpo", "dataset": "persona"}, data_dir)
  assert jobs.parse_form({"stage": "dpo", "dataset": "persona_prefs"}, data_dir)["stage"] == "dpo"
  with pytest.raises(ValueError, match="expected a JSON object"):
    jobs.parse_form(["persona"], data_dir)


def test_loss_points_skip_a_half_written_line_and_keep_eval_loss(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      '{"step": 1, "loss": 2.5}\n{"step": 1, "learning_rate": 0.1}\n'
      '{"step": 2, "loss": 2.0, "eval_loss": 2.2}\n{"step": 3, "lo')
  assert jobs.loss_points(tmp_path) == [{"step": 1, "loss": 2.5},
                                        {"step": 2, "loss": 2.0, "eval_loss": 2.2}]


def test_a_resumed_run_s_repeated_steps_show_once(tmp_path):
  # killed after step 3 with its checkpoint at step 2: the resumed run logs step 3 again
  (tmp_path / "metrics.jsonl").write_text("".join(
      json.dumps({"step": step, "loss": loss}) + "\n"
      for step, loss in [(1, 3.0), (2, 2.5), (3, 2.25), (3, 2.0), (4, 1.5)]))
  assert [p["loss"] for p in jobs.loss_points(tmp_path)] == [3.0, 2.5, 2.0, 1.5]
  assert jobs.loss_points(tmp_path / "not-yet") == []


def test_predict_uses_the_export_else_the_newest_checkpoint(tmp_path):
  assert jobs.tuned_source(tmp_path) is None
  (tmp_path / "train" / "checkpoints" / "3").mkdir(parents=True)
  assert jobs.tuned_source(tmp_path) == "checkpoint"
  (tmp_path / "export").mkdir()
  assert jobs.tuned_source(tmp_path) == "checkpoint"  # a folder without a model is no export
  (tmp_path / "export" / "config.json").write_text("{}")
  assert jobs.tuned_source(tmp_path) == "export"


def test_predict_fields_default_and_are_named(data_dir):
  assert jobs.eval_datasets(data_dir) == ["notes", "persona", "persona_prefs"]
  assert jobs.parse_predict_form({"eval_dataset": "persona_prefs"}, data_dir) == {
      "eval_dataset": "persona_prefs", **jobs.PREDICT_DEFAULTS}
  with pytest.raises(ValueError, match=r"field eval_dataset: missing; expected one of"):
    jobs.parse_predict_form({"max_samples": 3}, data_dir)
  with pytest.raises(ValueError, match=r"field max_samples: expected a whole number"):
    jobs.parse_predict_form({"eval_dataset": "notes", "max_samples": 2.5}, data_dir)


# -- processes: orphans, the folder lock, resume, bounds ------------------------------------
# The job's process as jobs.CHILD starts it, with a stand-in trainer: the real main (lock,
# record, one sentence for a bad input) around a pipeline.run that notes its config's resume
# and trains until the test writes <job>/release, then leaves a summary as a finished run does.
FAKE_TRAINER = """
import json, sys, time, types
from pathlib import Path

def run(config, check_base):
  job = Path(config.output_dir).parent
  with open(job / "runs.jsonl", "a") as f:
    f.write(json.dumps({"resume": config.resume}) + "\\n")
  deadline = time.monotonic() + 60
  while not (job / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
  (job / "train").mkdir(exist_ok=True)
  (job / "train" / "summary.json").write_text("{}")

sys.modules["research.finetune.pipeline"] = types.SimpleNamespace(run=run)
from research.serve import jobs
sys.exit(jobs.main(sys.argv[1:]))
"""
FORM = {"dataset": "persona"}
REPO = Path(jobs.__file__).resolve().parents[2]


@pytest.fixture
def fake_trainer(monkeypatch):
  monkeypatch.setattr(jobs, "CHILD", [sys.executable, "-c", FAKE_TRAINER])


@pytest.fixture
def root(tmp_path):
  return tmp_path / "work" / "jobs"


def wait_for(condition, timeout_s=30.0):
  deadline = time.monotonic() + timeout_s
  while not condition():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.02)


def started(jobs_, form=FORM) -> jobs.Job:
  """A job whose (stand-in) trainer holds its folder's lock and trains."""
  job = jobs_.start(form)
  wait_for(lambda: len(runs(job)) == 1)
  return job


def runs(job) -> list[dict]:
  """What each start of the stand-in trainer was told (its config's resume)."""
  path = job.dir / "runs.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_job(root, job_id, record=None, contents=None) -> Path:
  """A job folder as an earlier server left it: job.json (`record` in its place), and
  `contents` {path in the folder: text}."""
  folder = Path(root) / job_id
  folder.mkdir(parents=True)
  text = record if record is not None else json.dumps(
      {"id": job_id, "fields": {"dataset": "persona"}, "created": 1.0})
  (folder / "job.json").write_text(text)
  for name, content in (contents or {}).items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)
  return folder


FINISHED = {"train/summary.json": "{}"}


def test_a_trainer_that_outlived_its_server_runs_on_and_can_be_stopped(root, data_dir,
                                                                       fake_trainer):
  first = jobs.Jobs(root, "m", data_dir)
  job = started(first)
  # the server is killed with -9: no close(), its trainer trains on; the next server starts
  again = jobs.Jobs(root, "m", data_dir)
  status = again.status(job.id)
  assert (status["state"], status["pid"]) == ("running", job.process.pid)
  assert again.list()[0]["state"] == "running"
  for refused in (lambda: again.start(FORM), lambda: again.export(job.id),
                  lambda: again.predict(job.id, {"eval_dataset": "persona"}),
                  lambda: again.delete(job.id), lambda: again.resume(job.id)):
    with pytest.raises(RuntimeError, match=f"job {job.id} is still training|is running"):
      refused()
  assert again.stop(job.id)["state"] == "stopped"
  assert job.process.wait(10) == -signal.SIGTERM  # the new server ended the old one's trainer
  # a later server finds its process gone: interrupted, and now it can resume
  assert jobs.Jobs(root, "m", data_dir).status(job.id)["state"] == "interrupted"


def test_the_folder_lock_refuses_a_second_trainer_started_by_hand(root, data_dir, fake_trainer):
  first = jobs.Jobs(root, "m", data_dir)
  job = started(first)
  try:
    second = subprocess.run([sys.executable, "-m", "research.serve.jobs", "train", str(job.dir)],
                            capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
  finally:
    first.close()
  assert second.returncode == 2, second.stderr
  assert second.stderr == (f"error: job folder {job.dir} is in use by process "
                           f"{job.process.pid} (train); wait for it or stop it first.\n")
  assert runs(job) == [{"resume": False}]  # the first trainer's run alone


def test_a_recorded_pid_counts_only_while_its_process_is_the_one_recorded(root, data_dir):
  me = os.getpid()  # alive (never stop or close these Jobs: it would end the tests)
  live = {"command": "train", "pid": me, "start": jobs.started_at(me), "group": None}
  reused = {**live, "start": jobs.started_at(me) - 1}  # the same pid, another process
  for name, record in (("live", live), ("reused", reused),
                       ("ended", {**live, "pid": ended_pid()})):
    write_job(root, name, contents={jobs.RECORD: json.dumps(record)})
  states = {j["id"]: j["state"] for j in jobs.Jobs(root, "m", data_dir).list()}
  assert states == {"live": "running", "reused": "interrupted", "ended": "interrupted"}


def ended_pid() -> int:
  process = subprocess.Popen([sys.executable, "-c", ""])
  process.wait()
  return process.pid


def test_a_corrupt_job_record_is_skipped_with_one_logged_sentence(root, data_dir, caplog):
  write_job(root, "half", record='{"id": "half", "fie')
  write_job(root, "missing", record='{"id": "missing"}')
  write_job(root, "moved", record='{"id": "elsewhere", "fields": {}, "created": 1}')
  write_job(root, "binary").joinpath("job.json").write_bytes(b"\xff\xfe\x00")
  write_job(root, "good")
  with caplog.at_level(logging.WARNING):
    loaded = jobs.Jobs(root, "m", data_dir)
  assert [j["id"] for j in loaded.list()] == ["good"]
  skipped = [r.getMessage() for r in caplog.records]
  assert len(skipped) == 4 and all("\n" not in s for s in skipped), skipped
  for name in ("half", "missing", "moved", "binary"):
    assert any(str(root / name / "job.json") in s for s in skipped), (name, skipped)


def test_the_number_of_jobs_is_bounded_and_a_finished_one_can_be_deleted(root, data_dir,
                                                                         fake_trainer):
  write_job(root, "a", contents=FINISHED)
  write_job(root, "b", contents=FINISHED)
  bounded = jobs.Jobs(root, "m", data_dir, max_jobs=2)
  with pytest.raises(RuntimeError, match="already 2 fine-tune jobs.*delete old ones first"):
    bounded.start(FORM)
  assert not [p for p in root.iterdir() if p.name not in ("a", "b")]
  assert bounded.delete("a") == {"id": "a", "state": "deleted"}
  assert sorted(p.name for p in root.iterdir()) == ["b"]
  with pytest.raises(KeyError):
    bounded.status("a")
  job = started(bounded)
  bounded.close()
  assert job.process.poll() is not None


def test_nothing_exports_or_predicts_beside_a_training(root, data_dir, fake_trainer):
  write_job(root, "done", contents={**FINISHED, "train/checkpoints/3/x": "",
                                    "config.json": json.dumps({"dataset_dir": str(data_dir)})})
  running = jobs.Jobs(root, "m", data_dir)
  job = started(running)
  try:
    for refused in (lambda: running.export("done"),
                    lambda: running.predict("done", {"eval_dataset": "persona"})):
      with pytest.raises(RuntimeError, match=f"job {job.id} is still training, and this server "
                                             "runs one fine-tune process"):
        refused()
    assert not (root / "done" / "export.log").exists()
  finally:
    running.close()


def test_statuses_show_paths_under_the_work_dir_and_no_traceback_frame(root, data_dir):
  trace = ('Traceback (most recent call last):\n  File "/srv/research/x.py", line 3, in f\n'
           '    g()\nValueError: bad data\n')
  write_job(root, "done", contents={**FINISHED, "export/config.json": "{}",
                                    "export/adapter/adapter_config.json": "{}",
                                    "export.log": trace})
  write_job(root, "cut", contents={"stderr.log": f"loading\n{trace.split('    g()')[0]}"})
  loaded = jobs.Jobs(root, "m", data_dir)
  done = loaded.status("done")
  assert done["dir"] == "jobs/done"
  assert done["export"] == {"state": "finished", "path": "jobs/done/export",
                            "model": "ft-done", "adapter": "jobs/done/export/adapter"}
  assert loaded.status("cut")["message"] == "loading"  # the traceback was cut in its frames
  assert jobs.message(root / "done" / "export.log") == "ValueError: bad data"
  (root / "cut" / "stderr.log").write_text(f"error: no file {root.resolve()}/cut/train/x.json\n")
  assert loaded.status("cut")["message"] == "error: no file jobs/cut/train/x.json"


@pytest.mark.parametrize("log, says", [
    ('  File "/srv/x.py", line 3, in f\n    g()\n', ""),  # the tail began inside the frames
    ("a\nTraceback (most recent call last):\n  File \"/x.py\", line 1, in <module>\n"
     "KeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\n"
     "Traceback (most recent call last):\n  File \"/x.py\", line 2, in <module>\n"
     "ValueError: field x: bad\n  continued\n", "ValueError: field x: bad"),
    ("sft:  10%|#  | 1/10 [00:01<00:09]\rsft:  20%|## | 2/10 [00:02]\r",
     "sft:  20%|## | 2/10 [00:02]"),
])
def test_the_message_is_a_sentence_not_a_frame(tmp_path, log, says):
  (tmp_path / "stderr.log").write_text(log)
  assert jobs.message(tmp_path / "stderr.log") == says


def test_resume_restarts_the_trainer_from_its_checkpoint(root, data_dir, fake_trainer):
  first = jobs.Jobs(root, "m", data_dir)
  job = first.start(FORM)
  wait_for(lambda: len(runs(job)) == 1)
  with pytest.raises(RuntimeError, match=f"job {job.id} is running; only an interrupted"):
    first.resume(job.id)
  assert first.stop(job.id)["state"] == "stopped"
  assert first.resume(job.id)["state"] == "running"
  wait_for(lambda: len(runs(job)) == 2)
  assert jobs.read_record(job.dir)["command"] == "resume"
  # the server dies, the resumed trainer is stopped by the next one: interrupted, then resumed
  again = jobs.Jobs(root, "m", data_dir)
  assert again.stop(job.id)["state"] == "stopped"
  again = jobs.Jobs(root, "m", data_dir)
  assert again.status(job.id)["state"] == "interrupted"
  assert again.resume(job.id)["state"] == "running"
  wait_for(lambda: len(runs(job)) == 3)
  (job.dir / "release").write_text("")
  wait_for(lambda: again.status(job.id)["state"] != "running")
  assert again.status(job.id)["state"] == "finished"
  assert runs(job) == [{"resume": False}, {"resume": True}, {"resume": True}]
  with pytest.raises(RuntimeError, match="is finished; only an interrupted, stopped or failed"):
    again.resume(job.id)


def test_a_job_s_process_runs_the_server_s_own_code(root, data_dir, tmp_path, monkeypatch):
  # started from another folder (an installed copy of research/ could come first there)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(jobs, "CHILD", [sys.executable, "-c", "import sys, research; "
                                      "print(research.__file__, file=sys.stderr)"])
  job = jobs.Jobs(root, "m", data_dir).start(FORM)
  assert job.process.wait(30) == 0
  assert Path(jobs.last_line(job.dir / "stderr.log")) == REPO / "research" / "__init__.py"
