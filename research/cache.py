"""What a run keeps between runs on this machine: JAX's compiled programs and the measured
matmul peak, under one folder of the user's cache.

  cache.folder()                          # $BOOKFORAI_CACHE_DIR, else $XDG_CACHE_HOME/bookforai
  cache.enable_compilation_cache()        # folder()/jax, or $BOOKFORAI_COMPILATION_CACHE
  cache.enable_compilation_cache("off")   # compile afresh every run

The scripts' --compilation_cache flag (experiments/script.py) passes its value here; the
choice is written back to the environment so that processes this one starts (the server's
fine-tune jobs) use the same folder.
"""

import os
from pathlib import Path

import jax

ROOT_ENV = "BOOKFORAI_CACHE_DIR"
COMPILATION_ENV = "BOOKFORAI_COMPILATION_CACHE"
OFF = "off"


def folder() -> Path:
  """The folder this project caches in (tests point BOOKFORAI_CACHE_DIR at a temporary one)."""
  if os.environ.get(ROOT_ENV):
    return Path(os.environ[ROOT_ENV])
  return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bookforai"


def compilation_folder(setting: str | None = None) -> Path | None:
  """Where compiled programs go: `setting` (a folder, or "off": None), else the environment's
  BOOKFORAI_COMPILATION_CACHE, else folder()/jax."""
  setting = setting or os.environ.get(COMPILATION_ENV) or str(folder() / "jax")
  return None if setting.strip().lower() == OFF else Path(setting).expanduser()


def enable_compilation_cache(setting: str | None = None) -> Path | None:
  """Turns JAX's persistent compilation cache on in compilation_folder(setting) (or off);
  returns the folder."""
  path = compilation_folder(setting)
  os.environ[COMPILATION_ENV] = OFF if path is None else str(path)
  if path is None:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  # JAX's defaults keep only programs that took a second to compile; on a CPU most of a
  # training run's programs are faster than that and would be compiled again every run
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
