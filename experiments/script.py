"""What the experiment scripts share: a --config flag whose overrides stop at a misspelled key,
and the whole main of a chapter's own script.

  _CONFIG = script.config_flag("train_lm")      # experiments/configs/train_lm.py by default
  script.run_chapter(warmup.run_experiment, "warmup")   # --config and --workdir, then the run

`--config.stepz=10` and `--config=experiments/configs/x.py:stepz=10` both stop before anything
runs, with one sentence naming the key and the nearest field (research/runs.py checks both).

  script.run(main)      # app.run(main), but a bad input prints its one sentence and exits 2

Every script keeps its compiled programs between runs (research/cache.py): in
~/.cache/bookforai/jax unless `--compilation_cache=<folder>` or `--compilation_cache=off` (or
the environment variable BOOKFORAI_COMPILATION_CACHE) says otherwise.

A bad input (a file, a field, a dataset the user gave) raises one of USER_ERRORS with one
sentence that names it; the script prints that sentence alone, with no traceback, unless
`--verbosity=1` or the environment variable BOOKFORAI_TRACEBACK=1 asks for it.
"""

import os
import sys
from pathlib import Path

from absl import app
from absl import flags
from ml_collections.config_flags import config_flags

from research import cache
from research import runs
from research import tour

CONFIGS = Path(__file__).parent / "configs"
USER_ERRORS = (ValueError, OSError, LookupError)
BAD_INPUT_EXIT = 2

_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None, "Where compiled programs are kept between runs, or 'off'. "
    f"Default: ${cache.COMPILATION_ENV}, else ~/.cache/bookforai/jax.")


def sentence(error: BaseException) -> str:
  """What the user reads for a bad input: the error's own sentence (an OSError as its file
  and its reason)."""
  if isinstance(error, OSError) and error.filename is not None and error.strerror:
    return f"{error.filename}: {error.strerror[:1].lower()}{error.strerror[1:]}."
  if isinstance(error, KeyError) and len(error.args) == 1:
    return str(error.args[0])  # str(KeyError) would quote it
  return str(error)


def wants_traceback() -> bool:
  if os.environ.get("BOOKFORAI_TRACEBACK"):
    return True
  return flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].value >= 1


def run(main) -> None:
  """app.run(main); a bad input ends the script with its sentence alone and exit status 2."""

  def guarded(argv):
    cache.enable_compilation_cache(_COMPILATION_CACHE.value)
    try:
      return main(argv)
    except USER_ERRORS as e:
      if wants_traceback():
        raise
      print(f"error: {sentence(e)}", file=sys.stderr)
      sys.exit(BAD_INPUT_EXIT)

  app.run(guarded)


class _CheckedConfigFlag(config_flags._ConfigFlag):  # pylint: disable=protected-access
  """config_flags' config-file flag, except that an override of a missing field is an absl flag
  error naming it and its nearest field (config_flags raises a bare KeyError there)."""

  default_error = None

  def _parse(self, argument):
    try:
      return super()._parse(argument)
    except runs.ConfigKeyError as e:  # a `config.py:key=value` override, from get_config
      raise flags.IllegalFlagValueError(str(e)) from None
    except (KeyError, AttributeError):  # a `--config.key=value` override
      config = self.parser.parse(argument)  # loaded once more to name the fields it has
      for path in self._GetOverrides(self._GetArgv()):
        try:
          runs.check_field(config, path, f"--{self.name}.{path}")
        except runs.ConfigKeyError as e:
          raise flags.IllegalFlagValueError(str(e)) from None
      raise

  def _parse_from_default(self, value):
    # The default config is parsed when the flag is defined, before absl reports errors: a
    # stand-in flag for each override raises the error when absl parses that override, and
    # the validator in config_flag reports any other error of the default config.
    try:
      return super()._parse_from_default(value)
    except flags.IllegalFlagValueError as e:
      self.default_error = e
      for path in self._GetOverrides(self._GetArgv()):
        if f"{self.name}.{path}" not in self.flag_values:
          flags.DEFINE_flag(_FailedOverride(f"{self.name}.{path}", e), self.flag_values)
      return None


class _FailedOverride(flags.Flag):
  """Stands in for an override of a config that could not be built; parsing it raises why."""

  def __init__(self, name: str, error: Exception):
    super().__init__(flags.ArgumentParser(), None, name, None, "An override that failed.")
    self.error = error

  def parse(self, argument):
    raise self.error


def config_flag(config_name: str, help_string: str = "Experiment config.",
                flag_values: flags.FlagValues = flags.FLAGS, sys_argv=None) -> flags.FlagHolder:
  """--config, by default experiments/configs/<config_name>.py, as config_flags'
  DEFINE_config_file defines it (the config locked), with misspelled overrides stopped."""
  flag = _CheckedConfigFlag(parser=config_flags.ConfigFileFlagParser(name="config"),
                            serializer=flags.ArgumentSerializer(), name="config",
                            default=str(CONFIGS / f"{config_name}.py"), help_string=help_string,
                            flag_values=flag_values, sys_argv=sys_argv)
  holder = flags.DEFINE_flag(flag, flag_values)

  def default_parsed(_):
    if flag.default_error is not None and not flag.present:
      raise flags.ValidationError(str(flag.default_error))
    return True

  flags.register_validator("config", default_parsed, flag_values=flag_values)
  return holder


def run_chapter(run_experiment, config_name: str) -> None:
  """The main of a chapter's script: --config and --workdir (runs/<config_name>), then the
  experiment with each claim logged and printed (tour.run_and_print)."""
  config = config_flag(config_name)
  workdir = flags.DEFINE_string("workdir", f"runs/{config_name}", "Where results are written.")

  def main(argv):
    del argv
    tour.run_and_print(run_experiment, config.value, workdir.value)

  run(main)
