"""The scripts' --config flag: a misspelled override, on the flag or after the colon, stops
with one sentence naming the key and its nearest field; good overrides still apply."""

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
