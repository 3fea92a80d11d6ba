"""MATLAB `imresize(img, scale)` with its default bicubic kernel, in numpy and in JAX.

Reproduces MATLAB's algorithm (Image Processing Toolbox, R2017a) step by step:

- cubic convolution kernel with a = -0.5 (Keys), support [-2, 2];
- when shrinking (scale < 1) the kernel is widened by 1/scale and scaled by `scale`
  (antialiasing);
- output size `ceil(in * scale)` for a scale factor; for an `output_shape` the per-axis
  scale is `out / in`;
- input coordinate of output pixel x (1-based): u = x / scale + 0.5 * (1 - 1 / scale);
  weights are normalised to sum to 1 per output pixel; out-of-range indices are mirrored
  symmetrically (`aux = [1:n, n:-1:1]`, i.e. ... 2 1 | 1 2 ... n | n n-1 ...);
- separable passes, the axis with the smaller scale first (MATLAB sorts the scales with a
  stable sort, so for equal scales the height axis goes first);
- uint8 images are rounded (half away from zero) and saturated to uint8 after every pass,
  as MATLAB's `imresizemex` does; float images are computed in float64 (numpy).

Array layout (both versions): a 2-D array is `[H, W]`; with 3 or more dimensions the
layout is channels-last `[..., H, W, C]` (so `[H, W, C]` and `[N, H, W, C]` batches).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

__all__ = ["contributions", "imresize", "imresize_jax", "output_size", "resize_matrix"]

_KERNEL_WIDTH = 4.0  # support of the cubic kernel


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`), float64."""
  ax = np.abs(x)
  ax2 = ax * ax
  ax3 = ax2 * ax
  return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
          + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=256)
def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """MATLAB's `contributions()`: per-output-pixel weights and 0-based input indices.

  Returns `(weights, indices)`, both `[out_length, P]` (float64, int64), with the all-zero
  columns removed as MATLAB does. The arrays are cached and read-only.
  """
  if scale < 1 and antialiasing:
    kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
    width = _KERNEL_WIDTH / scale
  else:
    kernel = cubic
    width = _KERNEL_WIDTH
  x = np.arange(1, out_length + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = np.floor(u - width / 2.0)
  taps = int(math.ceil(width)) + 2
  indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
  weights = kernel(u[:, None] - indices)
  weights = weights / np.sum(weights, axis=1, keepdims=True)
  aux = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])  # 0-based mirror
  indices = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
  keep = np.any(weights != 0, axis=0)
  weights, indices = weights[:, keep], indices[:, keep]
  weights.setflags(write=False)
  indices.setflags(write=False)
  return weights, indices


@functools.lru_cache(maxsize=64)
def _sparse_matrix(in_length: int, out_length: int, scale: float) -> scipy.sparse.csr_matrix:
  weights, indices = contributions(in_length, out_length, scale)
  rows = np.broadcast_to(np.arange(out_length)[:, None], weights.shape)
  # Duplicate (row, col) pairs (mirrored borders) are summed, as in the MATLAB loop.
  return scipy.sparse.csr_matrix((weights.ravel(), (rows.ravel(), indices.ravel())),
                                 shape=(out_length, in_length))


@functools.lru_cache(maxsize=64)
def _dense_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
  matrix = _sparse_matrix(in_length, out_length, scale).toarray()
  matrix.setflags(write=False)
  return matrix


def resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
  """The dense `[out_length, in_length]` float64 matrix of one 1-D resize pass."""
  return _dense_matrix(int(in_length), int(out_length), float(scale))


def output_size(in_shape: tuple[int, int], scale=None, output_shape=None
                ) -> tuple[tuple[int, int], tuple[float, float]]:
  """MATLAB's size/scale rule: returns `((out_h, out_w), (scale_h, scale_w))`.

  Exactly one of `scale` (a positive number; out = ceil(in * scale)) or `output_shape`
  (`(out_h, out_w)` positive ints; scale = out / in per axis) must be given.
  """
  in_h, in_w = (int(s) for s in in_shape)
  if in_h < 1 or in_w < 1:
    raise ValueError(f"imresize needs an image of at least 1x1 pixels, got {in_h}x{in_w}")
  if (scale is None) == (output_shape is None):
    raise ValueError("imresize needs exactly one of `scale` or `output_shape`")
  if scale is not None:
    if np.ndim(scale) != 0:
      raise ValueError(f"scale must be a single positive number, got {scale!r}; "
                       "use output_shape=(h, w) for different per-axis sizes")
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
      raise ValueError(f"scale must be a finite positive number, got {scale!r}")
    out = (int(math.ceil(scale * in_h)), int(math.ceil(scale * in_w)))
    return out, (scale, scale)
  if len(output_shape) != 2:
    raise ValueError(f"output_shape must be (height, width), got {output_shape!r}")
  out = tuple(int(s) for s in output_shape)
  if any(o != s for o, s in zip(out, output_shape)) or min(out) < 1:
    raise ValueError(f"output_shape must be two positive integers, got {output_shape!r}")
  return out, (out[0] / in_h, out[1] / in_w)


def _hw_axes(ndim: int) -> tuple[int, int]:
  if ndim == 2:
    return 0, 1
  if ndim >= 3:
    return ndim - 3, ndim - 2
  raise ValueError(f"imresize needs an [H, W] or [..., H, W, C] array, got {ndim} dimension(s)")


def _pass_order(scales: tuple[float, float]) -> tuple[int, int]:
  """MATLAB's `[~, order] = sort(scale)`: smaller scale first, height first on ties."""
  return (1, 0) if scales[1] < scales[0] else (0, 1)


def _round_uint8(x):
  """MATLAB's double -> uint8 conversion: round half away from zero, saturate."""
  xp = np if isinstance(x, np.ndarray) else jnp
  return xp.clip(xp.floor(x + 0.5), 0, 255)


def imresize(img: np.ndarray, scale=None, *, output_shape=None) -> np.ndarray:
  """MATLAB `imresize(img, scale)` / `imresize(img, [h w])`, bicubic, antialiased; numpy.

  Args:
    img: `[H, W]` or `[..., H, W, C]`, uint8 or float (any range; [0, 1] for images).
    scale: resize factor (> 0, may be non-integer); output is `ceil(in * scale)`.
    output_shape: `(out_h, out_w)` instead of `scale`.

  Returns:
    The resized array, same dtype as `img` (uint8 in -> uint8 out, rounded and saturated
    after each pass; float in -> computed in float64, returned in the input float dtype).
  """
  img = np.asarray(img)
  if img.dtype == np.uint8:
    is_uint8 = True
  elif np.issubdtype(img.dtype, np.floating):
    is_uint8 = False
  else:
    raise ValueError(f"imresize supports uint8 or float images, got dtype {img.dtype}")
  axes = _hw_axes(img.ndim)
  in_shape = (img.shape[axes[0]], img.shape[axes[1]])
  out_shape, scales = output_size(in_shape, scale, output_shape)
  x = img.astype(np.float64)
  for k in _pass_order(scales):
    if in_shape[k] == out_shape[k] and scales[k] == 1.0:
      continue  # identity pass (MATLAB's nearest-neighbour shortcut gives the same)
    matrix = _sparse_matrix(in_shape[k], out_shape[k], scales[k])
    moved = np.moveaxis(x, axes[k], 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = np.asarray(matrix @ flat).reshape((out_shape[k],) + moved.shape[1:])
    x = np.moveaxis(out, 0, axes[k])
    if is_uint8:
      x = _round_uint8(x)
  return x.astype(img.dtype)


def imresize_jax(img, scale=None, *, output_shape=None) -> jax.Array:
  """JAX version of `imresize` (usable inside `jit`; shapes are static).

  Two dense matrix products with weight matrices built in numpy at trace time (float64,
  cast to the compute dtype), at `Precision.HIGHEST`.

  Args:
    img: `[H, W]` or `[..., H, W, C]` (e.g. `[N, H, W, C]`), uint8 or float.
    scale / output_shape: as in `imresize`.

  Returns:
    Same dtype as `img`. uint8 is computed in float32 and rounded/saturated after each
    pass; float16/bfloat16 are computed in float32.
  """
  img = jnp.asarray(img)
  is_uint8 = img.dtype == jnp.uint8
  if not (is_uint8 or jnp.issubdtype(img.dtype, jnp.floating)):
    raise ValueError(f"imresize_jax supports uint8 or float images, got dtype {img.dtype}")
  compute = jnp.promote_types(jnp.float32, img.dtype) if not is_uint8 else jnp.float32
  axes = _hw_axes(img.ndim)
  in_shape = (img.shape[axes[0]], img.shape[axes[1]])
  out_shape, scales = output_size(in_shape, scale, output_shape)
  x = img.astype(compute)
  for k in _pass_order(scales):
    if in_shape[k] == out_shape[k] and scales[k] == 1.0:
      continue
    matrix = jnp.asarray(_dense_matrix(in_shape[k], out_shape[k], scales[k]), dtype=compute)
    x = jnp.moveaxis(x, axes[k], -1)
    x = jnp.matmul(x, matrix.T, precision=jax.lax.Precision.HIGHEST)
    x = jnp.moveaxis(x, -1, axes[k])
    if is_uint8:
      x = _round_uint8(x)
  return x.astype(img.dtype)
