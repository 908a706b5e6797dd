"""Every test sees 4 fake CPU devices, so sharding code is exercised on one machine.

The flag must be set before JAX starts, which is why it lives here and not in a fixture.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=4".strip()
os.environ.setdefault("MPLBACKEND", "Agg")

# Hypothesis: no per-example deadline (a loaded 2-core machine is slow, not wrong); CI runs a
# fixed set of examples (.ci/run sets HYPOTHESIS_PROFILE=ci) so a landing never depends on
# the draw, while local runs keep exploring new ones.
import hypothesis  # pylint: disable=g-import-not-at-top,wrong-import-position

hypothesis.settings.register_profile("local", deadline=None)
hypothesis.settings.register_profile("ci", deadline=None, derandomize=True,
                                     print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "local"))

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# One compile per program for the whole run: tests build the same tiny models and steps again
# and again (each pretrain call jits afresh), and XLA's persistent cache hands back the
# compiled executable instead. Nothing is written to the user's cache: the project's cache
# folder (compiled programs, the measured matmul peak) is one made by the controlling process
# (xdist workers and the scripts tests start inherit its environment, so they share it), new
# for every run and removed at the end.
import shutil  # pylint: disable=g-import-not-at-top,wrong-import-position
import tempfile  # pylint: disable=g-import-not-at-top,wrong-import-position

from research import cache  # pylint: disable=g-import-not-at-top,wrong-import-position

if "PYTEST_XDIST_WORKER" not in os.environ:
  os.environ[cache.ROOT_ENV] = tempfile.mkdtemp(prefix="bookforai-test-cache-")
  os.environ.pop(cache.COMPILATION_ENV, None)  # the user's own setting is not the tests'
cache.enable_compilation_cache()


@pytest.fixture(scope="session")
def smollm2_lm():
  """SmolLM2-135M-Instruct from its packaged GGUF, loaded once for every test that reads it."""
  from research import pretrained  # pylint: disable=g-import-not-at-top
  return pretrained.load_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
  """SmolLM2's byte-level BPE tokenizer alone, from the same GGUF (no weights placed)."""
  from research import pretrained  # pylint: disable=g-import-not-at-top
  from research.text.pretrained import PretrainedTokenizer  # pylint: disable=g-import-not-at-top
  return PretrainedTokenizer.from_gguf(pretrained.packaged_path("smollm2-135m-instruct"))


def pytest_sessionfinish(session):
  if not hasattr(session.config, "workerinput"):  # the controller, after every worker is done
    shutil.rmtree(os.environ[cache.ROOT_ENV], ignore_errors=True)
