"""The grain training pipeline (official MS-LapSRN recipe) and the validation images.

`data_cfg` is an ml_collections ConfigDict, a dict, any object with these attributes, or a
plain spec string (taken as `train`):

  train: str               source spec of the HR training images (`sources.resolve_source`)
  val: str                 source spec of the validation images (default "skimage:val")
  tfds_data_dir: str|None  data_dir for `tfds:` specs (default: TFDS's own)
  scale_augmentation: bool random ratio in {0.5, ..., 1.0} per image (default True)
  data_augmentation: bool  random rot90 / left-right flip per batch (default True)
  min_side: int|None       skip images whose short side is below this (default patch_size // 2)
  cache_mb: float          uint8 Y planes kept in memory per process (default 256; 0: none)

Stream layout (what is guaranteed). Global element g = b * B + j is slot j of global batch b
(B = global_batch_size). Its image is element g of `range(len(source)).shuffle().repeat()`
(a new permutation every epoch) and its ratio/crop come from grain's `random_map` rng for index g;
rot/flip of batch b come from `np.random.default_rng([seed, tag, b])`. So batch b depends only on
(source, seed, B, scales, patch_size, augmentation flags) -- not on process_count, num_workers
or num_threads. So the batch index alone is the stream's position: training resumes at step k
with `make_train_iterator(..., start_batch=k)`, with any number of workers or hosts.
Slots are split over scales in contiguous chunks as the official code (`scale_batch_sizes`);
with P processes, process p gets rows [p*c/P, (p+1)*c/P) of every chunk of c rows, so
concatenating the processes' arrays in process order gives exactly the single-process batch
(each chunk size must be divisible by P). This is the layout
`jax.make_array_from_process_local_data` expects for a batch axis sharded over processes.
Each process computes only its own rows.
"""

import math
import os
import warnings
from typing import Sequence

import grain
import numpy as np

from lapsrn_jax.data import patches
from lapsrn_jax.data.sources import ImageSource, SubsetSource, resolve_source

__all__ = ["load_validation_set", "make_train_iterator", "make_train_dataset",
           "scale_batch_sizes", "train_source"]

_BATCH_RNG_TAG = 0x6C617073  # separates the per-batch rot/flip stream from other uses of seed


def _cfg(data_cfg, key: str, default=None):
  if isinstance(data_cfg, str):
    return data_cfg if key == "train" else default
  if hasattr(data_cfg, "get") and callable(data_cfg.get):
    value = data_cfg.get(key, default)
  else:
    value = getattr(data_cfg, key, default)
  return default if value is None else value


def scale_batch_sizes(global_batch_size: int, num_scales: int) -> tuple[int, ...]:
  """Rows per scale, as the official split: `ceil(B / n)` each, the last gets the rest.

  Raises ValueError when a scale would get no rows (e.g. B = 4 with 3 scales).
  """
  if global_batch_size < 1 or num_scales < 1:
    raise ValueError(f"need global_batch_size >= 1 and at least one scale, got "
                     f"{global_batch_size} and {num_scales}")
  split = math.ceil(global_batch_size / num_scales)
  sizes = tuple(max(0, min((i + 1) * split, global_batch_size) - i * split)
                for i in range(num_scales))
  if min(sizes) < 1:
    raise ValueError(f"global_batch_size={global_batch_size} split over {num_scales} scales "
                     f"as the official code (ceil(B/{num_scales}) each) gives {sizes}: a scale "
                     "gets no patch; use a larger batch (e.g. a multiple of the number of scales)")
  return sizes


def _host_rows(sizes: Sequence[int], process_index: int, process_count: int) -> np.ndarray:
  """Global batch slots of this process: its contiguous share of every scale chunk."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
  rows, offset = [], 0
  for c in sizes:
    if c % process_count:
      raise ValueError(f"the per-scale batch sizes {tuple(sizes)} must be divisible by "
                       f"process_count={process_count}; choose global_batch_size accordingly")
    m = c // process_count
    rows.extend(range(offset + process_index * m, offset + (process_index + 1) * m))
    offset += c
  return np.asarray(rows, dtype=np.int64)


class _HostSlots(grain.MapDataset):
  """Local element k -> global element `(k // n) * B + rows[k % n]` of the parent stream."""

  def __init__(self, parent: grain.MapDataset, global_batch_size: int, rows: np.ndarray):
    super().__init__(parent)
    self._global_batch_size = int(global_batch_size)
    self._rows = np.asarray(rows, dtype=np.int64)
    self._length = (len(parent) // self._global_batch_size) * len(self._rows)

  def __len__(self) -> int:
    return self._length

  def _global_index(self, index: int) -> int:
    b, q = divmod(int(index), len(self._rows))
    return b * self._global_batch_size + int(self._rows[q])

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._global_index(index)]

  def _getitems(self, indices):
    parent_indices = [self._global_index(i) for i in indices]
    return self._parent._getitems(parent_indices)  # pylint: disable=protected-access

  def __str__(self) -> str:
    return f"_HostSlots(global_batch_size={self._global_batch_size}, rows={len(self._rows)})"


class _SamplePatch:
  """grain random_map: image index -> float64 HR patch [P, P] on Y.

  Keeps the uint8 Y planes it has read, per process, up to `cache_mb` megabytes (decoding and
  colour conversion cost ~4x the rest of a patch).
  """

  def __init__(self, source: ImageSource, patch_size: int, scale_augmentation: bool,
               cache_mb: float):
    self.source, self.patch_size = source, patch_size
    self.scale_augmentation, self.cache_bytes = scale_augmentation, int(cache_mb * 2 ** 20)
    self._cache, self._cached_bytes = {}, 0

  def __getstate__(self):
    return {**self.__dict__, "_cache": {}, "_cached_bytes": 0}

  def _y(self, index: int) -> np.ndarray:
    y = self._cache.get(index)
    if y is None:
      y = patches.luma_u8(self.source[index])
      if self._cached_bytes + y.nbytes <= self.cache_bytes:
        self._cache[index] = y
        self._cached_bytes += y.nbytes
    return y

  def __call__(self, index, rng: np.random.Generator) -> np.ndarray:
    return patches.sample_patch(self._y(int(index)), rng, self.patch_size,
                                self.scale_augmentation)


class _MakeBatch:
  """grain map_with_index: (batch index, [n, P, P] HR patches) -> the per-scale dict."""

  def __init__(self, seed: int, scales: Sequence[int], local_sizes: Sequence[int],
               data_augmentation: bool):
    self.seed, self.scales = seed, tuple(scales)
    self.local_sizes, self.data_augmentation = tuple(local_sizes), data_augmentation

  def __call__(self, index: int, hr: np.ndarray) -> dict:
    if self.data_augmentation:
      rng = np.random.default_rng([self.seed, _BATCH_RNG_TAG, int(index)])
      hr = patches.rot_flip(hr, *patches.rot_flip_params(rng))
    out, start = {}, 0
    for s, n in zip(self.scales, self.local_sizes):
      out[f"x{s}"] = patches.pyramid(hr[start:start + n], s)
      start += n
    return out


def train_source(data_cfg, *, patch_size: int = 128) -> ImageSource:
  """The training images of `data_cfg`, without those too small to use (warning for each)."""
  source = resolve_source(_cfg(data_cfg, "train"), tfds_data_dir=_cfg(data_cfg, "tfds_data_dir"))
  min_side = int(_cfg(data_cfg, "min_side", patch_size // 2))
  sizes = source.sizes()
  keep, small = [], []
  for i, (h, w) in enumerate(sizes):
    (keep if min(h, w) >= min_side else small).append(i)
  for i in small:
    h, w = sizes[i]
    warnings.warn(f"skipping training image {source.name(i)!r} ({h}x{w}): its short side is "
                  f"below min_side={min_side}", stacklevel=2)
  if not keep:
    raise ValueError(f"no training image of {source!r} has a short side >= min_side="
                     f"{min_side} (patch_size={patch_size}); use larger images or lower "
                     "data.min_side")
  return source if not small else SubsetSource(source, keep)


def make_train_dataset(data_cfg, *, global_batch_size: int, scales: Sequence[int] = (2, 4, 8),
                       patch_size: int = 128, seed: int = 0, process_index: int = 0,
                       process_count: int = 1, source: ImageSource | None = None
                       ) -> grain.MapDataset:
  """The infinite grain MapDataset of this process's batches (see the module doc)."""
  scales = tuple(int(s) for s in scales)
  for s in scales:
    patches._levels(s)  # pylint: disable=protected-access
  if len(set(scales)) != len(scales):
    raise ValueError(f"scales must be distinct, got {scales}")
  if patch_size < 1 or patch_size % max(scales):
    raise ValueError(f"patch_size={patch_size} must be a positive multiple of the largest "
                     f"scale {max(scales)}")
  if not 0 <= int(seed) < 2 ** 32:
    raise ValueError(f"seed must be in [0, 2**32), got {seed}")
  sizes = scale_batch_sizes(global_batch_size, len(scales))
  rows = _host_rows(sizes, process_index, process_count)
  if source is None:
    source = train_source(data_cfg, patch_size=patch_size)
  sample = _SamplePatch(source, patch_size, bool(_cfg(data_cfg, "scale_augmentation", True)),
                        float(_cfg(data_cfg, "cache_mb", 256)))
  elements = (grain.MapDataset.range(len(source)).seed(int(seed)).shuffle().repeat()
              .random_map(sample))
  local = _HostSlots(elements, global_batch_size, rows)
  return (local.batch(len(rows), drop_remainder=True)
          .map_with_index(_MakeBatch(int(seed), scales, [c // process_count for c in sizes],
                                     bool(_cfg(data_cfg, "data_augmentation", True)))))


def make_train_iterator(data_cfg, *, global_batch_size: int, scales: Sequence[int] = (2, 4, 8),
                        patch_size: int = 128, seed: int = 0, num_workers: int = 0,
                        process_index: int = 0, process_count: int = 1, num_threads: int = 1,
                        prefetch: int = 2, start_batch: int = 0,
                        source: ImageSource | None = None) -> grain.DatasetIterator:
  """Infinite iterator over this process's share of global batches `start_batch`, ... (numpy).

  Yields `{"x2": {"lr": [b2, P/2, P/2, 1], "targets": ([b2, P, P, 1],)}, "x4": {"lr":
  [b4, P/4, P/4, 1], "targets": ([b4, P/2, P/2, 1], [b4, P, P, 1])}, "x8": ...}`, float32
  Y in [0, 1] up to the small overshoot of bicubic resizing (nothing is clipped, as in the
  official code), `b_s` = `scale_batch_sizes(global_batch_size, len(scales))[i] /
  process_count`.

  Args:
    data_cfg: see the module doc.
    num_workers: grain worker processes (0: in this process). With workers, the calling
      script needs an `if __name__ == "__main__":` guard, and OPENBLAS_NUM_THREADS /
      MKL_NUM_THREADS default to 1 in this process's environment (inherited by the workers;
      see `_single_threaded_blas_in_workers`). Close the iterator (`it.close()`) when done.
    num_threads / prefetch: grain ReadOptions per process (threads computing batches, and
      batches buffered).
    start_batch: the first global batch to yield (resume a run at step k with k); the same
      batches as skipping that many, without computing them.
    source: the training images, when already resolved (`train_source(data_cfg)`).

  Returns:
    A grain `DatasetIterator`. Its `get_state()` / `set_state()` also restore the position,
    but only into an iterator with the same `num_workers`; `start_batch` works with any.
  """
  if num_workers < 0 or num_threads < 0 or prefetch < 0 or start_batch < 0:
    raise ValueError(f"num_workers, num_threads, prefetch and start_batch must be >= 0, got "
                     f"{num_workers}, {num_threads}, {prefetch}, {start_batch}")
  ds = make_train_dataset(data_cfg, global_batch_size=global_batch_size, scales=scales,
                          patch_size=patch_size, seed=seed, process_index=process_index,
                          process_count=process_count, source=source)
  if start_batch:
    ds = ds[int(start_batch):]  # a view: batch i of `ds` is global batch start_batch + i
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                               prefetch_buffer_size=prefetch))
  if num_workers > 0:
    _mark_flags_parsed()
    _single_threaded_blas_in_workers()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                           per_worker_buffer_size=prefetch or 1))
    it_ds = it_ds.map(_own_arrays)  # free grain's shared memory now, not at interpreter exit
  return iter(it_ds)


def _own_arrays(tree):
  """Copies the arrays of a nested dict/tuple into ordinary (process-owned) numpy arrays."""
  if isinstance(tree, dict):
    return {k: _own_arrays(v) for k, v in tree.items()}
  if isinstance(tree, (tuple, list)):
    return type(tree)(_own_arrays(v) for v in tree)
  return np.array(tree)


def _single_threaded_blas_in_workers() -> None:
  """One BLAS thread per worker process (like PyTorch's DataLoader workers).

  Workers are spawned with this process's environment; without this, N workers x N BLAS
  threads oversubscribe the cores and the small matrix products of `patches` slow down by
  10-100x. Values already set by the user win; this process's own BLAS is not affected.
  """
  for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


def _mark_flags_parsed() -> None:
  """grain's worker processes read absl flags; accept defaults when no absl app parsed them."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _center_crop(img: np.ndarray, crop) -> np.ndarray:
  ch, cw = (crop, crop) if np.ndim(crop) == 0 else tuple(crop)
  h, w = img.shape[:2]
  top, left = (h - ch) // 2, (w - cw) // 2
  return np.ascontiguousarray(img[top:top + ch, left:left + cw])


def load_validation_set(data_cfg, *, crop=None) -> list[tuple[str, np.ndarray]]:
  """The validation images of `data_cfg` (`val`, default "skimage:val") as (name, uint8 HR).

  Args:
    crop: None (full images), an int or (h, w): centre crop to that size, so every image has
      one shape (one compilation). Images smaller than the crop are skipped with a warning.
  """
  spec = _cfg(data_cfg, "val", "skimage:val")
  source = resolve_source(spec, tfds_data_dir=_cfg(data_cfg, "tfds_data_dir"))
  if crop is not None:
    dims = (crop, crop) if np.ndim(crop) == 0 else tuple(crop)
    if len(dims) != 2 or any(int(d) != d or d < 1 for d in dims):
      raise ValueError(f"crop must be a positive int or (h, w), got {crop!r}")
  out = []
  for i in range(len(source)):
    name, img = source.name(i), source[i]
    if crop is not None:
      if img.shape[0] < dims[0] or img.shape[1] < dims[1]:
        warnings.warn(f"skipping validation image {name!r} ({img.shape[0]}x{img.shape[1]}): "
                      f"smaller than the crop {dims}", stacklevel=2)
        continue
      img = _center_crop(img, dims)
    out.append((name, img))
  if not out:
    raise ValueError(f"no validation image of {spec!r} is at least {crop} pixels")
  return out
