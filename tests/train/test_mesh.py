"""The data x fsdp mesh on the fake CPU devices: its shape, and what each device holds."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from research.train import mesh as mesh_lib


def test_the_mesh_takes_what_fsdp_leaves_and_names_a_shortfall():
  n = jax.device_count()
  assert n >= 4, "tests/conftest.py should give 4 fake CPU devices"
  assert dict(mesh_lib.make_mesh(fsdp=2).shape) == {"data": n // 2, "fsdp": 2}
  assert dict(mesh_lib.make_mesh().shape) == {"data": n, "fsdp": 1}
  with pytest.raises(ValueError, match=f"data={n} x fsdp=2 needs {2 * n} devices, {n} are"):
    mesh_lib.make_mesh(data=n, fsdp=2)


@pytest.mark.parametrize("shape, fsdp, spec", [
    ((12, 8), 4, P("fsdp", None)),   # the largest dimension
    ((10, 8), 4, P(None, "fsdp")),   # the largest that 4 divides
    ((6,), 4, P()),                  # nothing divides: replicated
    ((12, 8), 1, P()),               # no fsdp axis to split over
])
def test_a_parameter_goes_on_fsdp_along_its_largest_divisible_dimension(shape, fsdp, spec):
  assert mesh_lib.leaf_spec(shape, fsdp) == spec


def test_each_device_holds_a_quarter_of_a_sharded_tree_and_of_the_batch():
  mesh = mesh_lib.make_mesh(data=1, fsdp=4)
  tree = {"kernel": np.arange(48.0).reshape(12, 4), "bias": np.zeros(3)}
  sharded = mesh_lib.shard(tree, mesh_lib.tree_sharding(mesh, tree))
  assert {s.data.shape for s in sharded["kernel"].addressable_shards} == {(3, 4)}
  assert {s.data.shape for s in sharded["bias"].addressable_shards} == {(3,)}  # replicated
  np.testing.assert_array_equal(sharded["kernel"], tree["kernel"])
  batch_AxBxL = jax.device_put(np.zeros((2, 8, 5)), mesh_lib.batch_sharding(mesh))
  assert {s.data.shape for s in batch_AxBxL.addressable_shards} == {(2, 2, 5)}
