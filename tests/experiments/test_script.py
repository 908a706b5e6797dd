"""The scripts' --config flag: a misspelled override, on the flag or after the colon, stops
with one sentence naming the key and its nearest field; good overrides still apply. A bad
input ends every script with its sentence alone on stderr and exit status 2."""

import os

import pytest
from absl import flags

from experiments import script

WARMUP = str(script.CONFIGS / "warmup.py")


def _parse(*args):
  argv = ["prog", *args]
  values = flags.FlagValues()
  holder = script.config_flag("warmup", flag_values=values, sys_argv=argv)
  values(argv)
  return holder.value


@pytest.mark.parametrize("args, named, nearest", [
    ((f"--config={WARMUP}", "--config.stepz=10"), "--config.stepz", "steps"),
    (("--config.stepz=10",), "--config.stepz", "steps"),  # on the default config
    ((f"--config={WARMUP}:stepz=10",), "config override stepz=10", "steps"),
    ((f"--config={WARMUP}:quik",), "config override quik=True", "quick"),  # a preset
    ((f"--config={WARMUP}:grid_point=11",), "grid_point=11", "grid_points"),
])
def test_a_misspelled_override_names_the_key_and_the_nearest_one(args, named, nearest):
  with pytest.raises(flags.Error) as caught:
    _parse(*args)
  message = str(caught.value)
  assert named in message and f"the nearest valid one is {nearest!r}." in message, message
  assert "Traceback" not in message and "\n" not in message, message


def test_good_overrides_apply_and_the_config_is_locked():
  config = _parse(f"--config={WARMUP}:quick,point=0.5", "--config.x_range=2.0")
  assert (config.grid_points, config.point, config.x_range) == (101, 0.5, 2.0)
  with pytest.raises(AttributeError, match="locked"):
    config.new_field = 1


def test_the_user_sees_one_sentence_and_no_traceback():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  done = subprocess.run([sys.executable, "-m", "experiments.warmup", "--config.stepz=10"],
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 1
  assert "Traceback" not in done.stderr, done.stderr
  assert ("--config.stepz: the config has no field 'stepz'; the nearest valid one is 'steps'."
          in done.stderr), done.stderr


def _bad_input(argv):
  del argv
  raise ValueError("data/dataset_info.json: line 4: not valid JSON (Extra data).")


def test_a_bad_input_ends_the_script_with_its_sentence_alone_and_exit_2(monkeypatch, capsys):
  monkeypatch.setattr("sys.argv", ["prog"])
  monkeypatch.delenv("BOOKFORAI_TRACEBACK", raising=False)
  with pytest.raises(SystemExit) as exited:
    script.run(_bad_input)
  assert exited.value.code == script.BAD_INPUT_EXIT == 2
  assert capsys.readouterr().err.splitlines() == [
      "error: data/dataset_info.json: line 4: not valid JSON (Extra data)."]


def test_the_traceback_when_asked_for(monkeypatch):
  monkeypatch.setattr("sys.argv", ["prog"])
  monkeypatch.setenv("BOOKFORAI_TRACEBACK", "1")
  with pytest.raises(ValueError, match="line 4"):
    script.run(_bad_input)


def test_every_script_ends_a_bad_input_with_one_sentence():
  scripts = [p for p in script.CONFIGS.parent.glob("*.py") if p.name != "script.py"]
  bare = [p.name for p in scripts if "app.run(" in p.read_text()]
  assert not bare, f"{bare} call app.run; script.run prints a bad input's sentence alone"


def test_the_notebooks_pasted_dataset_info_is_one_line_from_finetune(tmp_path):
  """The notebook's dataset_info.json as people paste it, with the stray closing brace."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  (tmp_path / "dataset_info.json").write_text(
      '{\n  "persona": {"file_name": "persona_sft.json", "formatting": "alpaca"}\n}\n}\n')
  (tmp_path / "train.yaml").write_text(
      f"model_name_or_path: smollm2-135m-instruct\nstage: sft\nfinetuning_type: lora\n"
      f"dataset: persona\ndataset_dir: {tmp_path}\noutput_dir: {tmp_path / 'out'}\n")
  done = subprocess.run([sys.executable, "-m", "experiments.finetune",
                         f"--yaml={tmp_path / 'train.yaml'}"],
                        capture_output=True, text=True, timeout=120, check=False,
                        env={k: v for k, v in os.environ.items() if k != "BOOKFORAI_TRACEBACK"})
  assert done.returncode == 2, done.stderr
  assert done.stderr.splitlines() == [
      f"error: {tmp_path / 'dataset_info.json'}: line 4: not valid JSON (Extra data)."], \
      done.stderr
  assert not (tmp_path / "out").exists()


# A script that jits one small function and says how many compiled programs it found in the
# persistent cache (JAX records an event for each hit).
_JIT_SCRIPT = """
import jax, jax.numpy as jnp
from experiments import script
hits = []
jax.monitoring.register_event_listener(
    lambda name, **_: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
def main(argv):
  jax.jit(lambda x: jnp.tanh(x) * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
  print("hits", len(hits))
script.run(main)
"""


def _run_jit_script(*args, env=None):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  done = subprocess.run([sys.executable, "-c", _JIT_SCRIPT, *args], capture_output=True,
                        text=True, timeout=120, check=False, env=env)
  assert done.returncode == 0, done.stderr
  return int(done.stdout.split()[-1])


def test_a_second_run_finds_the_first_ones_compiled_program(tmp_path):
  folder = tmp_path / "jax"
  assert _run_jit_script(f"--compilation_cache={folder}") == 0
  assert any(folder.iterdir())  # small CPU programs are kept too
  assert _run_jit_script(f"--compilation_cache={folder}") >= 1


def test_the_cache_can_be_turned_off_and_defaults_to_the_users_cache(tmp_path):
  env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "home-cache")}
  for name in ("BOOKFORAI_CACHE_DIR", "BOOKFORAI_COMPILATION_CACHE"):
    env.pop(name, None)
  assert _run_jit_script("--compilation_cache=off", env=env) == 0
  assert not (tmp_path / "home-cache").exists()
  env["BOOKFORAI_COMPILATION_CACHE"] = "off"
  assert _run_jit_script(env=env) == 0
  assert not (tmp_path / "home-cache").exists()
  del env["BOOKFORAI_COMPILATION_CACHE"]
  _run_jit_script(env=env)
  assert any((tmp_path / "home-cache" / "bookforai" / "jax").iterdir())
