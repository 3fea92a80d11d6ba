"""Data parallelism over a `('data',)` mesh; multi-host start-up.

The global batch is split over scales in contiguous chunks (official `getBatch_MSLapSRN.m`:
`ceil(B / n_scales)` images each, the last chunk gets the rest). Every chunk is sharded over all
devices along its batch axis; params and optimiser state are replicated. A chunk whose size is not a
multiple of the device count is padded with zero images of weight 0, so the loss and gradients equal
those of the unpadded batch on any number of devices. With several hosts each host pads its own
share to the same size, `round_up(chunk / n_hosts, local_devices)`.
"""

import math
import os
from typing import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lapsrn_jax.data import pipeline

DATA_AXIS = "data"


def scale_batch_sizes(batch_size: int, scales: tuple[int, ...]) -> dict[int, int]:
  """`{scale: images in the global batch}` (the data pipeline's official split)."""
  return dict(zip(scales, pipeline.scale_batch_sizes(batch_size, len(scales))))


def maybe_initialize_distributed(enabled: bool) -> None:
  """`jax.distributed.initialize()` (auto-detects TPU pods / SLURM / env) once, when `enabled`."""
  if enabled and not jax.distributed.is_initialized():
    jax.distributed.initialize()


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D `('data',)` mesh over all devices (or the first `num_devices`), auto-sharded axes."""
  devices = jax.devices()
  if num_devices is not None:
    devices = devices[:num_devices]
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def local_chunk_size(global_chunk: int, mesh: Mesh) -> int:
  """This host's (padded) share of a chunk: a multiple of its devices, equal on all hosts."""
  local_devices = mesh.local_mesh.size
  per_host = math.ceil(global_chunk / jax.process_count())
  return math.ceil(per_host / local_devices) * local_devices


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  if x.shape[0] > size:
    raise ValueError(f"host batch chunk of {x.shape[0]} images exceeds its expected size {size}")
  return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], x.dtype)]) \
      if x.shape[0] < size else x


def shard_batch(local_batch: Mapping[str, Mapping], mesh: Mesh,
                global_sizes: Mapping[int, int]) -> dict:
  """Pads this host's chunks and assembles global arrays sharded over `data`.

  Args:
    local_batch: `{"x2": {"lr": [b, h, w, 1], "targets": ([b, ...], ...)}, ...}` (numpy, this host).
    mesh: the data mesh.
    global_sizes: images per scale in the global batch (`scale_batch_sizes`).

  Returns:
    The same structure of global `jax.Array`s plus `"weight"`: `[b_padded]` float32, 0 on padding.
  """
  sharding = batch_sharded(mesh)
  out = {}
  for key, chunk in local_batch.items():
    n_real = chunk["lr"].shape[0]
    size = local_chunk_size(global_sizes[int(key[1:])], mesh)
    weight = (np.arange(size) < n_real).astype(np.float32)
    host = {"lr": _pad(np.asarray(chunk["lr"], np.float32), size),
            "targets": tuple(_pad(np.asarray(t, np.float32), size) for t in chunk["targets"]),
            "weight": weight}
    out[key] = jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), host)
  return out


def run_batches(config, first: int, count: int, mesh: Mesh) -> list[dict]:
  """Global batches `first`, ..., `first + count - 1` of a run's training stream, as its step
  takes them (`shard_batch`): batch k is what step k + 1 of `config`'s run trains on.

  For scoring trained models outside the loop on fixed batches (`scripts/rho_scan.py`,
  `scripts/train_loss.py`). `config` is the run's config (`config.data`, `config.train`,
  `config.seed`); $VARIABLES in `config.data.train` are expanded.
  """
  data_cfg = dict(config.data.to_dict(), train=os.path.expandvars(config.data.train))
  t = config.train
  it = pipeline.make_train_iterator(
      data_cfg, global_batch_size=t.batch_size, scales=tuple(t.scales), patch_size=t.patch_size,
      seed=config.seed, process_index=jax.process_index(), process_count=jax.process_count(),
      start_batch=first)
  sizes = scale_batch_sizes(t.batch_size, tuple(t.scales))
  try:
    return [shard_batch(next(it), mesh, sizes) for _ in range(count)]
  finally:
    if hasattr(it, "close"):
      it.close()
