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
