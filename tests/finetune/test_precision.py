"""bf16/fp16 asked for on a CPU without fast bf16 matmuls computes in float32, and says so."""

import re
import types

import pytest

from research.finetune import sft
from research.train import precision

EPYC = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
        "flags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
SAPPHIRE = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
CPU, GPU, TPU = (types.SimpleNamespace(platform=p) for p in ("cpu", "gpu", "tpu"))


@pytest.fixture(autouse=True)
def _no_force(monkeypatch):
  monkeypatch.delenv(precision.FORCE_ENV, raising=False)


def test_cpu_flags_decide():
  assert precision.cpu_info(EPYC) == ("AMD EPYC 7B13", {"fpu", "avx2", "avx512f", "avx512_bf16"})
  dtype, note = precision.effective_dtype("bfloat16", CPU, cpuinfo=EPYC)
  assert dtype == "float32"
  assert "AMD EPYC 7B13" in note and "AMX bf16" in note and "\n" not in note
  # AMX runs bf16 dots natively; AVX512_BF16 alone (EPYC above) measured slower than float32
  assert precision.effective_dtype("bfloat16", CPU, cpuinfo=SAPPHIRE) == ("bfloat16", "")
  # no CPU here runs float16 dots natively, AMX or not
  assert precision.effective_dtype("float16", CPU, cpuinfo=SAPPHIRE)[0] == "float32"
  assert precision.effective_dtype("float32", CPU, cpuinfo=EPYC) == ("float32", "")


def test_accelerators_keep_what_was_asked():
  for device in (GPU, TPU):
    for dtype in ("bfloat16", "float16", "float32"):
      assert precision.effective_dtype(dtype, device, cpuinfo=EPYC) == (dtype, "")


def test_the_environment_forces_either_way(monkeypatch):
  monkeypatch.setenv(precision.FORCE_ENV, "1")
  assert precision.effective_dtype("bfloat16", CPU, cpuinfo=EPYC) == ("bfloat16", "")
  monkeypatch.setenv(precision.FORCE_ENV, "0")
  assert precision.effective_dtype("bfloat16", CPU, cpuinfo=SAPPHIRE)[0] == "float32"


def test_bf16_sft_on_this_cpu_trains_in_float32(finetune_config, monkeypatch, capsys):
  monkeypatch.setattr(precision, "_this_cpu", lambda: ("Test CPU", frozenset({"avx2"})))
  config = finetune_config(compute_type="bf16", max_steps=3)
  captured = {}
  real = sft.trainer.loop.train

  def spy(*args, **kwargs):
    captured["dtype"] = args[3].dtype
    return real(*args, **kwargs)

  monkeypatch.setattr(sft.trainer.loop, "train", spy)
  _, result = sft.run(config, show_progress=True)
  assert captured["dtype"] == "float32" and len(result.history) == 3
  out = capsys.readouterr()
  lines = [l for l in out.out.splitlines() if "computing in float32" in l]
  assert len(lines) == 1 and "Test CPU" in lines[0]
  # the bar shows the steps' real tokens/s, never a rounded 0; the first step (it compiles)
  # its seconds instead
  assert all(r["tokens_per_s"] > 0 for r in result.history)
  shown = re.findall(r"tok_s=([0-9.e+-]+)", out.err)
  assert shown and all(float(s) > 0 for s in shown)
  first = [d for d in re.split(r"[\r\n]", out.err) if " 1/3 " in d]  # drawn after step 1
  assert first and all("first_step=" in d for d in first)
