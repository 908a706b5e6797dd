import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def test_four_fake_cpu_devices():
  assert len(jax.devices()) == 4
  assert {d.platform for d in jax.devices()} == {"cpu"}


def test_a_batch_splits_across_the_mesh():
  mesh = jax.make_mesh((4,), ("data",))
  x = jax.device_put(np.arange(16.0).reshape(8, 2), NamedSharding(mesh, P("data")))
  assert len(x.addressable_shards) == 4
  assert x.addressable_shards[0].data.shape == (2, 2)
  np.testing.assert_array_equal(jax.jit(lambda a: a * 2)(x), np.arange(16.0).reshape(8, 2) * 2)
