"""make gpu-check's runner: a step stopped at its share takes its whole process group with it,
the shares spend the whole budget, and a machine without a GPU gets one sentence."""

import os
import subprocess
import sys
import time
from pathlib import Path

from experiments import gpu_check


def _alive(pid: int) -> bool:
  status = Path(f"/proc/{pid}/status")
  return status.exists() and "State:\tZ" not in status.read_text()


def test_a_step_past_its_share_is_stopped_with_its_children(tmp_path):
  pid_file = tmp_path / "grandchild.pid"
  spawn = ("import subprocess, time; "
           f"p = subprocess.Popen(['sleep', '60']); open({str(pid_file)!r}, 'w').write(str(p.pid)); "
           "time.sleep(60)")
  step = gpu_check.Step("sleeper", [sys.executable, "-c", spawn], share=1.0)
  start = time.time()
  row = gpu_check.run_step(step, 2.0, tmp_path / "sleeper.log")
  assert row["status"].startswith("stopped") and time.time() - start < 20
  time.sleep(0.2)
  assert not _alive(int(pid_file.read_text()))


def test_the_shares_spend_the_budget_once(tmp_path):
  assert abs(sum(step.share for step in gpu_check.steps(tmp_path)) - 1.0) < 1e-9


def test_without_a_gpu_it_says_so_and_exits_2(tmp_path):
  done = subprocess.run([sys.executable, "-m", "experiments.gpu_check", f"--out={tmp_path}"],
                        capture_output=True, text=True,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert done.returncode == 2 and "finds no GPU" in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1
