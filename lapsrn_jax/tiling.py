"""Tiled inference: run an SR function on overlapping windows of one size, with bounded memory.

`tiled_apply(fn, image, scale=s, tile=T, overlap=m)` equals `fn(image)` when `m` covers the
receptive field of `fn` (`model.receptive_radius(scale)`): every output pixel is taken from a window
that holds its whole receptive field, and windows never extend past the image (the last window of a
row or column is shifted inwards instead of padded), so the zero padding that the network sees at
the image border is the same as when it runs on the whole image. All windows of an image have the
same shape, `(min(H, T), min(W, T))`, so a jitted `fn` compiles once per shape: once for every image
at least `T x T`, once per distinct smaller size otherwise.

`self_ensemble(fn)` is the x8 geometric ensemble (average over the 8 rotations/flips), applied
inside each window, so tiling it stays exact.
"""

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Span", "plan_axis", "self_ensemble", "tiled_apply"]

SRFunction = Callable[[np.ndarray], np.ndarray]  # [N, h, w, C] -> [N, s*h, s*w, C']


class Span(NamedTuple):
  """One window along an axis (input pixels): it reads `[start, start + size)` and provides the
  output of `[keep_start, keep_stop)`."""
  start: int
  keep_start: int
  keep_stop: int


def plan_axis(length: int, tile: int, overlap: int) -> tuple[Span, ...]:
  """Windows of size `min(length, tile)` covering `[0, length)`; their kept parts partition it.

  Every kept pixel is at least `overlap` pixels away from its window's borders, except where the
  window border is the image border.

  Raises:
    ValueError: for non-positive sizes, or when `tile < length` and `tile <= 2 * overlap` (no
      pixel of a window would be far enough from both borders).
  """
  if length < 1 or tile < 1 or overlap < 0:
    raise ValueError(f"need length >= 1, tile >= 1, overlap >= 0; got {length}, {tile}, {overlap}")
  if length <= tile:
    return (Span(0, 0, length),)
  core = tile - 2 * overlap
  if core < 1:
    raise ValueError(f"tile {tile} is too small for an overlap of {overlap} pixels on each side: "
                     f"use a tile of at least {2 * overlap + 1} (or a smaller overlap)")
  starts = list(range(0, length - tile, core)) + [length - tile]
  spans = []
  for k, start in enumerate(starts):
    keep_start = 0 if k == 0 else spans[-1].keep_stop
    keep_stop = length if k == len(starts) - 1 else start + tile - overlap
    spans.append(Span(start, keep_start, keep_stop))
  return tuple(spans)


def tiled_apply(fn: SRFunction, image: np.ndarray, *, scale: int, tile: int, overlap: int,
                batch_size: int = 1, progress=None) -> np.ndarray:
  """Applies `fn` to `image` in overlapping windows and stitches the outputs.

  Args:
    fn: `[N, h, w, C]` -> `[N, scale*h, scale*w, C']` (numpy or JAX arrays).
    image: `[H, W, C]` float array.
    scale: the upscaling factor of `fn`.
    tile: window size in input pixels (memory is bounded by `fn` on `batch_size` windows).
    overlap: input pixels of context kept on each side of a window's kept part; at least
      `model.receptive_radius(scale)` for a result equal to `fn(image)`.
    batch_size: windows per `fn` call (the last call is filled up with repeats, so every call
      has the same shape).
    progress: optional object with `update(n)` (e.g. `tqdm`), told of every finished window;
      its `total` is set to the number of windows when it has one.

  Returns:
    `[scale*H, scale*W, C']` float32.
  """
  image = np.asarray(image)
  if image.ndim != 3:
    raise ValueError(f"tiled_apply needs an [H, W, C] image, got shape {image.shape}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  h, w = image.shape[:2]
  rows, cols = plan_axis(h, tile, overlap), plan_axis(w, tile, overlap)
  th, tw = min(h, tile), min(w, tile)
  windows = [(r, c) for r in rows for c in cols]
  if progress is not None and hasattr(progress, "total"):
    progress.total = len(windows)
    if hasattr(progress, "refresh"):
      progress.refresh()
  out = None
  for first in range(0, len(windows), batch_size):
    group = windows[first:first + batch_size]
    batch = [image[r.start:r.start + th, c.start:c.start + tw] for r, c in group]
    batch += [batch[-1]] * (batch_size - len(batch))
    result = np.asarray(fn(np.stack(batch).astype(np.float32)))
    expected = (batch_size, scale * th, scale * tw)
    if result.ndim != 4 or result.shape[:3] != expected:
      raise ValueError(f"fn returned shape {result.shape} for input {(batch_size, th, tw)}; "
                       f"expected {expected + ('C',)}")
    if out is None:
      out = np.empty((scale * h, scale * w, result.shape[3]), np.float32)
    for (r, c), res in zip(group, result):
      out[scale * r.keep_start:scale * r.keep_stop, scale * c.keep_start:scale * c.keep_stop] = res[
          scale * (r.keep_start - r.start):scale * (r.keep_stop - r.start),
          scale * (c.keep_start - c.start):scale * (c.keep_stop - c.start)]
    if progress is not None:
      progress.update(len(group))
  return out


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
  """Rotates `[N, H, W, C]` by `k` quarter turns after an optional left-right flip."""
  return np.rot90(x[:, :, ::-1] if flip else x, k, axes=(1, 2))


def _dihedral_inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
  y = np.rot90(y, -k, axes=(1, 2))
  return y[:, :, ::-1] if flip else y


def self_ensemble(fn: SRFunction) -> SRFunction:
  """The x8 geometric self-ensemble of `fn`: mean over the 8 rotations/flips `g` of `g^-1 fn(g x)`.

  The 8 calls run one after the other (memory of one call); on non-square inputs the transposed
  shape is a second input shape for `fn`.
  """
  def ensembled(x):
    x = np.asarray(x)
    total = None
    for flip in (False, True):
      for k in range(4):
        y = _dihedral_inverse(np.asarray(fn(np.ascontiguousarray(_dihedral(x, k, flip)))), k, flip)
        total = y.astype(np.float64) if total is None else total + y
    return (total / 8).astype(np.float32)

  return ensembled
