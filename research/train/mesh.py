"""A `jax.sharding` mesh with a data axis and an fsdp axis.

The batch is split over both axes; each parameter (and each optimizer moment, by the same rule
on its shape) is split along its largest dimension that the fsdp axis divides, so FSDP holds
1/fsdp of every large tensor per device; anything else is replicated.
"""

import numpy as np

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(data: int | None = None, fsdp: int = 1, devices=None) -> Mesh:
  """data x fsdp devices; data=None takes every device the fsdp axis leaves."""
  devices = list(jax.devices() if devices is None else devices)
  if data is None:
    data = len(devices) // fsdp
  if data * fsdp > len(devices) or data < 1:
    raise ValueError(f"mesh data={data} x fsdp={fsdp} needs {data * fsdp} devices, "
                     f"{len(devices)} are available.")
  grid = np.asarray(devices[: data * fsdp]).reshape(data, fsdp)
  return Mesh(grid, ("data", "fsdp"))


def leaf_spec(shape, fsdp_size: int) -> P:
  """The largest dimension that fsdp divides goes on the fsdp axis; otherwise replicate."""
  if fsdp_size > 1:
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
      if shape[dim] % fsdp_size == 0 and shape[dim] >= fsdp_size:
        spec = [None] * len(shape)
        spec[dim] = "fsdp"
        return P(*spec)
  return P()


def tree_sharding(mesh: Mesh, tree):
  """NamedShardings for every array leaf of `tree` (arrays or ShapeDtypeStructs)."""
  fsdp_size = mesh.shape["fsdp"]
  return jax.tree.map(lambda x: NamedSharding(mesh, leaf_spec(x.shape, fsdp_size)), tree)


def batch_sharding(mesh: Mesh, ndim: int = 3, micro_batches: bool = True) -> NamedSharding:
  """B split over data and fsdp together: the second axis of micro-batches A x B x ...
  (micro_batches=True), the first of one batch B x ...; the rest is whole on each device."""
  spec = [None] * ndim
  spec[1 if micro_batches else 0] = ("data", "fsdp")
  return NamedSharding(mesh, P(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard(tree, shardings):
  return jax.tree.map(jax.device_put, tree, shardings)
