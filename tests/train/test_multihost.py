"""Training across two real processes (2 fake CPU devices each, joined by jax.distributed over
loopback), each feeding only its own shard of every batch, gives the losses of one process
training on the whole batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from research.train import lm
from tests.train import test_loop

# Each process: its rows of every batch (Windows shard), a data x fsdp mesh over all 4
# devices, 12 steps with an eval; process 0 prints the losses.
_WORKER = """
import json, jax
from research.train import distributed, lm
from research.data import windows as windows_lib
from tests.train import test_loop
assert distributed.initialize_if_multihost()
shard = dict(shard_index=jax.process_index(), shard_count=jax.process_count())
make = lambda seed: windows_lib.Windows(test_loop.tokens(), 16, 8, 8, seed=seed, **shard)
config = test_loop.train_config(steps=12, eval_every=6, mesh_data=2, mesh_fsdp=2)
result = lm.pretrain(test_loop.tiny_model(), config, make(0), make(1), show_progress=False)
full_eval_loss = lm.full_validation_loss(result, make(1))  # every host takes part
if jax.process_index() == 0:
  print(json.dumps({"loss": [r["loss"] for r in result.history],
                    "eval_loss": [e["eval_loss"] for e in result.evals],
                    "full_eval_loss": full_eval_loss}))
"""


def test_two_hosts_with_sharded_batches_train_like_one():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  procs = []
  for rank in range(2):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(rank), PYTHONPATH=repo,
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, text=True, cwd=repo,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  two_hosts = json.loads(outputs[0][0].strip().splitlines()[-1])

  config = test_loop.train_config(steps=12, eval_every=6, mesh_data=2, mesh_fsdp=2)
  make = lambda seed: test_loop.windows(batch_size=8, context_length=16, seed=seed)
  one_host = lm.pretrain(test_loop.tiny_model(), config, make(0), make(1), show_progress=False)
  assert len(two_hosts["loss"]) == 12
  np.testing.assert_allclose(two_hosts["loss"], [r["loss"] for r in one_host.history],
                             rtol=0, atol=1e-5)
  np.testing.assert_allclose(two_hosts["eval_loss"], [e["eval_loss"] for e in one_host.evals],
                             rtol=0, atol=1e-5)
  np.testing.assert_allclose(two_hosts["full_eval_loss"],
                             lm.full_validation_loss(one_host, make(1)), rtol=0, atol=1e-5)
