"""Multi-host start-up through JAX's own `jax.distributed`, guarded for a single host."""

import os

import jax

# Variables that launchers set when a job spans several processes.
_MULTIPROCESS_MARKERS = {
    "JAX_COORDINATOR_ADDRESS": None,   # explicit: coordinator host:port
    "SLURM_NTASKS": "1",               # SLURM srun with more than one task
    "OMPI_COMM_WORLD_SIZE": "1",       # Open MPI mpirun
    "MEGASCALE_NUM_SLICES": "1",       # multi-slice TPU
}


def is_multiprocess_launch(environ=None) -> bool:
  environ = os.environ if environ is None else environ
  for name, single in _MULTIPROCESS_MARKERS.items():
    value = environ.get(name)
    if value is not None and (single is None or value.strip() != single):
      return True
  hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
  return len([h for h in hosts.split(",") if h.strip()]) > 1  # a TPU pod slice


def initialize_if_multihost(environ=None) -> bool:
  """Calls `jax.distributed.initialize()` on a multi-host launch; a no-op on one host.

  Returns whether it initialised. Call it first thing in `main`, before any JAX array exists.
  """
  environ = os.environ if environ is None else environ
  if not is_multiprocess_launch(environ):
    return False
  jax.distributed.initialize(**explicit_process_layout(environ))
  return True


def explicit_process_layout(environ) -> dict:
  """The process count and id given by hand (JAX_NUM_PROCESSES, JAX_PROCESS_ID).

  JAX reads the coordinator address from JAX_COORDINATOR_ADDRESS and detects SLURM, Open MPI
  and TPU pods by itself, but takes the count and id of a hand launch only as arguments.
  """
  layout = {}
  for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
    if environ.get(name, "").strip():
      try:
        layout[key] = int(environ[name])
      except ValueError as e:
        raise ValueError(f"environment variable {name}={environ[name]!r}: "
                         "expected an integer.") from e
  return layout
