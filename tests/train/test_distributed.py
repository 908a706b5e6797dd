import pytest

from research.train import distributed


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"SLURM_NTASKS": "1"}, False),
    ({"SLURM_NTASKS": "8"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, False),
    ({"TPU_WORKER_HOSTNAMES": "h0,h1,h2,h3"}, True),
])
def test_multiprocess_launch_detection(environ, expected):
  assert distributed.is_multiprocess_launch(environ) is expected


def test_single_host_initialisation_is_a_no_op():
  assert distributed.initialize_if_multihost({}) is False


def test_hand_launch_layout_is_read_from_the_environment():
  assert distributed.explicit_process_layout({}) == {}
  assert distributed.explicit_process_layout(
      {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}) == {"num_processes": 2, "process_id": 1}
  with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
    distributed.explicit_process_layout({"JAX_PROCESS_ID": "one"})


_WORKER = """
import jax
from research.train import distributed
assert distributed.initialize_if_multihost()
print(f"process {jax.process_index()} of {jax.process_count()}, {jax.device_count()} devices")
"""


def test_two_processes_on_loopback_join_one_job():
  import os
  import socket
  import subprocess
  import sys
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = []
  for rank in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(rank),
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  outputs = [p.communicate(timeout=120) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-2000:]
  assert sorted(out.strip() for out, _ in outputs) == [
      "process 0 of 2, 4 devices", "process 1 of 2, 4 devices"]
