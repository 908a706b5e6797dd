"""The accelerator check (`make gpu-check`): on whatever GPU JAX finds, runs the part of the
suite that does not need fake CPU devices or a browser, the tour in quick mode, the GPT
step and LoRA SFT benchmarks in bf16 and the init sweep's vmapped-vs-loop timing, and writes
their figures to runs/gpu_check/figures.md (and .json).

  python -m experiments.gpu_check [--out=runs/gpu_check] [--budget_s=570]

Each step runs in its own process under its share of the budget (with what earlier steps left
unused), so one slow or failing step is written down as such and the rest still run; the whole
check ends inside ten minutes.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

from experiments import script

_OUT = flags.DEFINE_string("out", "runs/gpu_check", "Folder for the logs and figures.")
_BUDGET = flags.DEFINE_integer("budget_s", 570, "Seconds for all steps together.")
_ALLOW_CPU = flags.DEFINE_bool("allow_cpu", False, "Run even when JAX finds no GPU (a dry run).")

# The numerical core of the suite: no 4-fake-CPU-device tests, no browser, no servers.
DEVICE_INDEPENDENT_TESTS = ["tests/nn", "tests/optim", "tests/autodiff", "tests/train",
                            "tests/generate", "tests/text", "tests/classify"]


@dataclasses.dataclass
class Step:
  name: str
  argv: list[str]
  share: float                 # of the budget
  env: dict = dataclasses.field(default_factory=dict)
  figure_lines: int = 6        # the last lines of output that hold the step's figures


def steps(out: Path) -> list[Step]:
  py = sys.executable
  return [
      # Float32 matmuls on a GPU default to TF32; the suite's tolerances are float32's.
      Step("tests", [py, "-m", "pytest", "-q", "-n", "4", "-p", "no:cacheprovider",
                     *DEVICE_INDEPENDENT_TESTS],
           0.30, {"JAX_DEFAULT_MATMUL_PRECISION": "highest"}, figure_lines=3),
      Step("tour_quick", [py, "-m", "experiments.tour", "--quick", f"--out={out / 'tour'}"],
           0.35, figure_lines=3),
      Step("gpt_bf16", [py, "-m", "experiments.bench_gpt", "--steps=200", "--rounds=4",
                        "--config.dtype=bfloat16"], 0.12),
      Step("lora_bf16", [py, "-m", "experiments.bench_finetune", "--what=sft_child",
                         "--mode=lora", "--compute_type=bf16", "--steps=20", "--batch=8",
                         "--length=256"], 0.11, figure_lines=2),
      Step("init_sweep_vmap", [py, "-m", "experiments.init_sweep",
                               "--config=experiments/configs/init_sweep.py:benchmark,depths=8",
                               f"--workdir={out / 'init_sweep'}"], 0.12, figure_lines=3),
  ]


def device_name() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  return f"{device.platform}: {device.device_kind} x{jax.device_count()}"


def run_step(step: Step, seconds: float, log: Path) -> dict:
  env = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env}
  env.pop("JAX_PLATFORMS", None)  # the tests' conftest would pin the CPU otherwise
  start = time.time()
  with open(log, "w") as f:
    # Its own process group, so a stopped step takes its workers (pytest -n) with it.
    child = subprocess.Popen(step.argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
    try:
      rc = child.wait(timeout=seconds)
      status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
      os.killpg(child.pid, signal.SIGKILL)
      child.wait()
      status = f"stopped at its {seconds:.0f} s share"
  lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
  return {"step": step.name, "status": status, "wall_s": round(time.time() - start, 1),
          "figures": lines[-step.figure_lines:], "log": str(log)}


def write_figures(out: Path, device: str, rows: list[dict]) -> Path:
  md = [f"# gpu-check on {device}", "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        ""]
  for row in rows:
    md += [f"## {row['step']}: {row['status']}, {row['wall_s']} s", "", "```",
           *row["figures"], "```", ""]
  path = out / "figures.md"
  for name, text in (("figures.md", "\n".join(md)),
                     ("figures.json", json.dumps({"device": device, "steps": rows}, indent=1))):
    tmp = out / (name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out / name)
  return path


def main(argv):
  del argv
  device = device_name()
  if not device.startswith(("gpu", "cuda", "rocm")) and not _ALLOW_CPU.value:
    print(f"gpu-check: JAX finds no GPU here ({device}); install the gpu extra on a machine "
          "with one (make gpu-check does), or pass --allow_cpu for a dry run.", file=sys.stderr)
    return 2
  out = Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  print(f"gpu-check on {device}, {_BUDGET.value} s budget", flush=True)
  rows, deadline, planned = [], time.time() + _BUDGET.value, steps(out)
  for i, step in enumerate(planned):
    # What an earlier step left unused goes to the later ones, in proportion to their shares.
    left = max(deadline - time.time(), 1.0)
    seconds = left * step.share / sum(s.share for s in planned[i:])
    row = run_step(step, seconds, out / f"{step.name}.log")
    print(f"  {row['step']}: {row['status']}, {row['wall_s']} s", flush=True)
    rows.append(row)
  print(f"gpu-check: figures in {write_figures(out, device, rows)}")
  return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
  script.run(main)
