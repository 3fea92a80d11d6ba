"""MATLAB `rgb2ycbcr` / `ycbcr2rgb` (ITU-R BT.601, studio range) on float images in [0, 1].

Y is in [16, 235] / 255 and Cb, Cr in [16, 240] / 255 for RGB in [0, 1]. Works on numpy arrays
(computed in the input float dtype, float64 for non-float input) and on JAX arrays (inside
`jit` too); the last axis holds the 3 channels: `[..., 3]`.
"""

import jax.numpy as jnp
import numpy as np

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "RGB_TO_YCBCR", "YCBCR_OFFSET"]

# MATLAB's matrix: ycbcr (0..255 units) = RGB_TO_YCBCR @ rgb (0..1 units) + YCBCR_OFFSET.
RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966],
                         [-37.797, -74.203, 112.0],
                         [112.0, -93.786, -18.214]])
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])

_FWD = RGB_TO_YCBCR / 255.0          # [0, 1] -> [0, 1] units, as MATLAB for double input
_FWD_OFFSET = YCBCR_OFFSET / 255.0
_INV = 255.0 * np.linalg.inv(RGB_TO_YCBCR)   # MATLAB: T = 255 * inv(T), offset = inv(T) * off
_INV_OFFSET = np.linalg.inv(RGB_TO_YCBCR) @ YCBCR_OFFSET


def _backend(img):
  if isinstance(img, (np.ndarray, np.generic, list, tuple, float, int)):
    arr = np.asarray(img)
    if not np.issubdtype(arr.dtype, np.floating):
      arr = arr.astype(np.float64)
    return np, arr
  arr = jnp.asarray(img)
  if not jnp.issubdtype(arr.dtype, jnp.floating):
    arr = arr.astype(jnp.float32)
  return jnp, arr


def _affine(img, matrix, offset, name):
  xp, x = _backend(img)
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"{name} needs an array with 3 channels on the last axis [..., 3], "
                     f"got shape {tuple(x.shape)}")
  c0, c1, c2 = x[..., 0], x[..., 1], x[..., 2]
  # Explicit linear combinations (exact in every dtype and on every backend; MATLAB's
  # imlincomb does the same per channel).
  m = [[float(v) for v in row] for row in matrix]
  out = [m[p][0] * c0 + m[p][1] * c1 + m[p][2] * c2 + float(offset[p]) for p in range(3)]
  return xp, xp.stack(out, axis=-1).astype(x.dtype)


def rgb_to_ycbcr(img):
  """RGB `[..., 3]` in [0, 1] -> YCbCr `[..., 3]`, Y in [16, 235]/255 (MATLAB `rgb2ycbcr`)."""
  return _affine(img, _FWD, _FWD_OFFSET, "rgb_to_ycbcr")[1]


def ycbcr_to_rgb(img, *, clip: bool = True):
  """YCbCr `[..., 3]` (MATLAB units /255) -> RGB `[..., 3]` (MATLAB `ycbcr2rgb`).

  MATLAB clips float results to [0, 1]; `clip=False` returns the unclipped affine map.
  """
  xp, out = _affine(img, _INV, -_INV_OFFSET, "ycbcr_to_rgb")
  return xp.clip(out, 0.0, 1.0) if clip else out
