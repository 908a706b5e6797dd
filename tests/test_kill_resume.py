"""Kill and resume for every long job: a real run killed with SIGKILL at a seeded step (the
kill lands while a checkpoint is being written, or between two), then the same command again,
ends with the final training state of an uninterrupted run, bit for bit.

Each test starts the uninterrupted run and, once it has compiled, the one to kill beside it;
it kills the second as soon as its metrics.jsonl logs the chosen step, reruns it, checks that
the rerun continued from the newest checkpoint the killed run left (instead of starting over,
which would also end equal), and compares every leaf of the two final checkpoints (parameters,
optimizer moments, RNG streams, step) with np.array_equal, and the two metrics.jsonl logs
(each step once, the same losses). BOOKFORAI_KILL_SEED picks other kill steps.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests import tiny_llama

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("BOOKFORAI_KILL_SEED", "0"))
STEPS = 8        # optimizer steps of every run
TIMEOUT_S = 300  # one run, on a loaded 2-core machine


def kill_step(name: str) -> int:
  """The step after whose metrics row the run is killed: in [1, STEPS - 1], so the kill always
  leaves work to resume."""
  return random.Random(f"{SEED}:{name}").randint(1, STEPS - 1)


def extra_environment() -> dict:
  """What a run adds to the test's environment: no network for the tiny llama. (The test
  run's compilation cache, so a second run of a program compiles nothing, is inherited:
  every script uses BOOKFORAI_COMPILATION_CACHE.)"""
  return dict(HF_HUB_OFFLINE="1")


def start(command: list[str], log: Path) -> subprocess.Popen:
  """`python -m <command>` in a session of its own (its group is what the kill ends)."""
  log.parent.mkdir(parents=True, exist_ok=True)
  with open(log, "ab") as out:
    return subprocess.Popen([sys.executable, "-m", *command], cwd=REPO,
                            env=dict(os.environ, **extra_environment()),
                            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                            start_new_session=True)


def finish(process: subprocess.Popen, log: Path) -> None:
  code = process.wait(TIMEOUT_S)
  assert code == 0, f"exit {code}:\n{log.read_text(errors='replace')[-3000:]}"


def logged_rows(run_dir: Path) -> list[dict]:
  """metrics.jsonl's rows, in file order; a half-written last line is skipped."""
  path = run_dir / "metrics.jsonl"
  if not path.is_file():
    return []
  rows = []
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      pass
  return rows


def wait_logged(process: subprocess.Popen, run_dir: Path, step: int, log: Path) -> None:
  """Returns once the run's metrics.jsonl has a row for `step`."""
  deadline, size = time.monotonic() + TIMEOUT_S, -1
  metrics = run_dir / "metrics.jsonl"
  while True:
    now = metrics.stat().st_size if metrics.is_file() else -1
    if now != size:  # parsed only when it grew: the poll stays cheap and fast
      size = now
      if any(row["step"] == step for row in logged_rows(run_dir)):
        return
    code = process.poll()
    assert code is None, (f"the run ended (exit {code}) before logging step {step}:\n"
                          f"{log.read_text(errors='replace')[-3000:]}")
    assert time.monotonic() < deadline, f"step {step} was not logged in {TIMEOUT_S} s"
    time.sleep(0.002)


def kill_when_logged(process: subprocess.Popen, run_dir: Path, step: int, log: Path) -> None:
  """SIGKILL to the run's process group once metrics.jsonl has a row for `step`."""
  wait_logged(process, run_dir, step, log)
  os.killpg(process.pid, signal.SIGKILL)
  assert process.wait(TIMEOUT_S) == -signal.SIGKILL
  # a few more steps may have run by now; what matters is that some work was left to resume
  assert STEPS not in saved_steps(run_dir), (
      f"the kill after step {step} came only once the last checkpoint was written")


def saved_steps(run_dir: Path) -> list[int]:
  """The complete checkpoints (orbax renames a step's folder into place once written)."""
  last = run_dir / "checkpoints" / "last"
  return sorted(int(p.name) for p in last.iterdir() if p.name.isdigit()) if last.is_dir() else []


def final_state(run_dir: Path) -> dict[str, np.ndarray]:
  """Every leaf of the newest checkpoint, by its path, as NumPy (PRNG keys as their data)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = max(saved_steps(run_dir))
  assert step == STEPS, f"{run_dir}: the newest checkpoint is step {step}"
  tree = ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / "last" / str(step) /
                                            "default")
  return {jax.tree_util.keystr(path): _numpy(x)
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _numpy(x) -> np.ndarray:
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)  # a typed key compares by its bits
  return np.asarray(x)


def assert_kill_and_resume_equals_whole(name: str, start_whole, start_killed, restart):
  """The shared check. Each argument starts a run and returns (process, the folder it writes
  metrics.jsonl and checkpoints/ to, its log): the uninterrupted run, the run to kill, and the
  rerun of the killed one."""
  step = kill_step(name)
  whole, whole_dir, whole_log = start_whole()
  processes = [whole]
  try:
    # the run to kill starts once the first has compiled its step into the shared XLA cache:
    # on a busy machine a second compile costs more than the overlap saves
    wait_logged(whole, whole_dir, 1, whole_log)
    victim, killed_dir, killed_log = start_killed()
    processes.append(victim)
    kill_when_logged(victim, killed_dir, step, killed_log)
    saved = saved_steps(killed_dir)
    rerun, _, rerun_log = restart()  # beside the uninterrupted run's last steps
    processes.append(rerun)
    finish(whole, whole_log)
    finish(rerun, rerun_log)
  finally:
    for process in processes:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
  where = f"killed after step {step} (seed {SEED}), checkpoints then {saved}"
  resumed = re.findall(r"resumed from step (\d+)", rerun_log.read_text(errors="replace"))
  assert resumed == ([str(saved[-1])] if saved else []), (
      f"{where}: the rerun said it resumed from {resumed}, not from the newest checkpoint")
  a, b = final_state(whole_dir), final_state(killed_dir)
  assert a.keys() == b.keys()
  differ = [path for path in a if not np.array_equal(a[path], b[path])]
  assert not differ, f"{where}: {len(differ)} of {len(a)} leaves differ, e.g. {differ[:3]}"
  # the log reads as one run's: each step once (the interrupted run's rows past the checkpoint
  # dropped, since the rerun logs those steps again), with the uninterrupted run's losses
  a, b = logged_rows(whole_dir), logged_rows(killed_dir)
  assert [r["step"] for r in b] == [r["step"] for r in a] == list(range(1, STEPS + 1)), where
  assert [r["loss"] for r in b] == [r["loss"] for r in a], where


def assert_script_resumes(name: str, command, tmp_path: Path) -> None:
  """`command(run_dir)`: the `python -m` arguments of one run writing to run_dir; the rerun
  is the same command."""
  def starter(run_dir):
    return lambda: (start(command(run_dir), run_dir / "log.txt"), run_dir, run_dir / "log.txt")
  killed = starter(tmp_path / "killed")
  assert_kill_and_resume_equals_whole(name, starter(tmp_path / "whole"), killed, killed)


# -- train_lm: a tiny GPT on a small text file, dropout on so its keys must replay too

_TEXT = ("A checkpoint is the whole training state: parameters, optimizer moments, the step "
         "and the random streams. A run that resumes from one must see the batches and the "
         "dropout masks the uninterrupted run saw, in the same order.\n") * 40


@pytest.mark.slow
def test_train_lm_killed_and_rerun_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path):
  text = tmp_path / "text.txt"
  text.write_text(_TEXT)
  options = ",".join([
      f"data={text}", "tokenizer=bpe", "vocab_size=300", "context_length=16", "batch_size=4",
      "stride=8", "model.num_layers=1", "model.width=32", "model.num_heads=2", "model.dropout=0.1",
      f"steps={STEPS}", "warmup_steps=2", "eval_every=0", "checkpoint_every=2", "keep=2",
      "log_every=1", "samples=0"])
  command = lambda run_dir: ["experiments.train_lm",
                             f"--config=experiments/configs/train_lm.py:{options}",
                             f"--workdir={run_dir}"]
  assert_script_resumes("train_lm", command, tmp_path)


# -- fine-tuning: the tiny llama, LoRA (with dropout), a toy SFT set and a toy preference set

def _words(*ids) -> str:
  return " ".join(f"t{i}" for i in ids)


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
  return tiny_llama.write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), max_positions=64)


@pytest.fixture(scope="module")
def toy_data_dir(tmp_path_factory):
  """dataset_info.json with an alpaca set "toy" and a preference set "prefs"."""
  folder = tmp_path_factory.mktemp("toy-data")
  sft = [{"instruction": _words(10 + i % 5, 20), "input": _words(30) if i % 2 else "",
          "output": _words(40 + i % 5, 41, 42)} for i in range(10)]
  prefs = [{"instruction": _words(12 + i % 3), "chosen": _words(50, 51),
            "rejected": _words(52, 53, 54)} for i in range(6)]
  (folder / "sft.json").write_text(json.dumps(sft))
  (folder / "prefs.json").write_text(json.dumps(prefs))
  (folder / "dataset_info.json").write_text(json.dumps({
      "toy": {"file_name": "sft.json"}, "prefs": {"file_name": "prefs.json", "ranking": True}}))
  return folder


_FINETUNE_CONFIG = """
from research.finetune import config as config_lib


def get_config():
  c = config_lib.defaults()
  c.model, c.dataset_dir = {model!r}, {data!r}
  c.stage, c.dataset = {stage!r}, {dataset!r}
  c.per_device_train_batch_size, c.gradient_accumulation_steps = 2, 1
  c.learning_rate, c.max_steps, c.logging_steps, c.save_steps = 3e-2, {steps}, 1, 1
  c.cutoff_len, c.lora_rank, c.lora_dropout = 32, 4, 0.1
  return c
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage, dataset", [("sft", "toy"), ("dpo", "prefs")])
def test_finetune_killed_and_rerun_ends_bit_for_bit_like_an_uninterrupted_run(
    stage, dataset, tiny_llama_dir, toy_data_dir, tmp_path):
  config = tmp_path / "config.py"
  config.write_text(_FINETUNE_CONFIG.format(model=str(tiny_llama_dir), data=str(toy_data_dir),
                                            stage=stage, dataset=dataset, steps=STEPS))
  command = lambda run_dir: ["experiments.finetune", f"--config={config}",
                             f"--config.output_dir={run_dir}"]
  assert_script_resumes(f"finetune-{stage}", command, tmp_path)


# -- a server fine-tune job: Jobs starts the trainer, the kill ends its group, Jobs.resume

@pytest.mark.slow
def test_server_job_killed_and_resumed_ends_bit_for_bit_like_an_uninterrupted_job(
    tiny_llama_dir, toy_data_dir, tmp_path, monkeypatch):
  from research.serve import jobs as jobs_lib  # pylint: disable=g-import-not-at-top
  for key, value in extra_environment().items():  # the trainers Jobs starts inherit them
    monkeypatch.setenv(key, value)
  monkeypatch.chdir(REPO)
  jobs = jobs_lib.Jobs(tmp_path / "jobs", str(tiny_llama_dir), toy_data_dir, max_running=2)
  # the SFT test's config as the form says it (lora_alpha 8 = 2 x rank, its default there), so
  # these trainers find their step compiled in the XLA cache when that test ran first; a
  # checkpoint every 2 steps, so the kill can land between saves and steps are replayed
  form = {"dataset": "toy", "max_steps": STEPS, "save_steps": 2, "logging_steps": 1,
          "cutoff_len": 32, "lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.1,
          "learning_rate": 3e-2, "per_device_train_batch_size": 2,
          "gradient_accumulation_steps": 1}
  started = []

  def start_job():
    job = jobs.start(form)
    started.append(job)
    return job.process, job.dir / "train", job.dir / "stderr.log"

  def resume():
    job = started[-1]
    assert jobs.status(job.id)["state"] == "failed"  # a trainer killed by a signal
    assert jobs.resume(job.id)["state"] == "running"
    return job.process, job.dir / "train", job.dir / "stderr.log"

  try:
    assert_kill_and_resume_equals_whole("server-job", start_job, start_job, resume)
  finally:
    jobs.close()
  assert [jobs.status(job.id)["state"] for job in started] == ["finished", "finished"]
