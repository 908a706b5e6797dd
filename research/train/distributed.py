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
  if not is_multiprocess_launch(environ):
    return False
  jax.distributed.initialize()  # reads the coordinator and process ids from the launcher
  return True
