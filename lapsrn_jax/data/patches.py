"""Training patches as in the official MS-LapSRN `getBatch_MSLapSRN.m` (docs/architecture.md), on Y.

Per image: Y channel (`luma`), a random scale ratio `randi([5, 10]) * 0.1` raised to
`patch / short_side + 1e-3` when the resized image would be smaller than the patch
(`scale_ratio`), MATLAB bicubic `imresize` by that ratio and a uniform random crop
(`resized_crop`, computed only where the crop needs it). Per batch: rot90 by k in {0..3}
(probability 1/4 each) and a left-right flip with probability 1/2 (`rot_flip`). Then the LR
input and the intermediate targets of every scale by `imresize` of the HR patch
(`pyramid`). Everything is float64 until the float32 outputs.
"""

import functools
import math

import numpy as np

from lapsrn_jax.color import RGB_TO_YCBCR, YCBCR_OFFSET
from lapsrn_jax.imresize import contributions, output_size, resize_matrix

__all__ = ["EPS_RATIO", "luma", "luma_u8", "pyramid", "resized_crop", "rot_flip",
           "rot_flip_params", "sample_patch", "scale_ratio"]

EPS_RATIO = 1e-3  # the official `eps` added to a ratio forced up to the patch size

# Y of MATLAB rgb2ycbcr on uint8 as integers: Y8 = round((OFFSET + COEFFS . rgb) / DEN).
_Y_NUM_COEFFS = np.rint(RGB_TO_YCBCR[0] * 1000).astype(np.int64)  # 65481, 128553, 24966
_Y_DEN = 255 * 1000
_Y_NUM_OFFSET = int(round(YCBCR_OFFSET[0])) * _Y_DEN
assert np.array_equal(_Y_NUM_COEFFS / 1000, RGB_TO_YCBCR[0])


def luma_u8(img: np.ndarray) -> np.ndarray:
  """uint8 `[H, W]` (gray) or `[H, W, 3]` (RGB) -> uint8 Y `[H, W]`.

  As the official `batch_imread`: RGB goes through MATLAB `rgb2ycbcr` on uint8, so Y is
  rounded (half away from zero) to uint8, in [16, 235]; gray images are kept as they are.
  """
  img = np.asarray(img)
  if img.dtype != np.uint8:
    raise ValueError(f"luma needs a uint8 image, got dtype {img.dtype}")
  if img.ndim == 2:
    return img
  if img.ndim != 3 or img.shape[2] != 3:
    raise ValueError(f"luma needs an [H, W] or [H, W, 3] image, got shape {img.shape}")
  # 255000 * Y (0..255 units) = 255000 * 16 + 65481 R + 128553 G + 24966 B exactly in
  # integers, so the rounding to uint8 (half away from zero) has no float ties to get wrong.
  y = _Y_NUM_OFFSET + img.astype(np.int64) @ _Y_NUM_COEFFS
  return ((y + _Y_DEN // 2) // _Y_DEN).astype(np.uint8)


def luma(img: np.ndarray) -> np.ndarray:
  """float64 Y `[H, W]` in [0, 1]: `luma_u8(img) / 255` (the official `im2single`)."""
  return luma_u8(img).astype(np.float64) / 255.0


def scale_ratio(tenths: int, shape: tuple[int, int], patch_size: int) -> float:
  """The official augmentation ratio `tenths * 0.1`, forced up so the short side fits the patch."""
  ratio = tenths * 0.1  # same float as MATLAB's randi([5, 10]) * 0.1
  short = min(int(shape[0]), int(shape[1]))
  if short * ratio < patch_size:
    ratio = patch_size / short + EPS_RATIO
  return ratio


@functools.lru_cache(maxsize=1024)
def _band(in_length: int, out_length: int, scale: float, start: int, size: int):
  """Rows start..start+size of the 1-D resize matrix, restricted to their non-zero columns."""
  weights, indices = contributions(in_length, out_length, scale)
  weights, indices = weights[start:start + size], indices[start:start + size]
  lo, hi = int(indices.min()), int(indices.max()) + 1
  matrix = np.zeros((size, hi - lo))
  rows = np.broadcast_to(np.arange(size)[:, None], indices.shape)
  np.add.at(matrix, (rows, indices - lo), weights)  # mirrored borders add up, as in imresize
  matrix.setflags(write=False)
  return matrix, lo, hi


def _as_unit(block: np.ndarray) -> np.ndarray:
  """float64 copy of a Y block; uint8 Y means value / 255 (as `luma`)."""
  if block.dtype == np.uint8:
    return block.astype(np.float64) / 255.0
  return np.array(block, dtype=np.float64)


def resized_crop(y: np.ndarray, ratio: float, top: int, left: int, size: int) -> np.ndarray:
  """`imresize(y, ratio)[top:top+size, left:left+size]` (float64 `[size, size]`), fast.

  `y` is float `[H, W]` in [0, 1], or uint8 `[H, W]` standing for `y / 255`. Only the input
  rows/columns that the crop depends on are touched; equal to the full resize up to float64
  rounding (the same weights, summed in another order).
  """
  (out_h, out_w), _ = output_size(y.shape, scale=ratio)
  if not (0 <= top <= out_h - size and 0 <= left <= out_w - size):
    raise ValueError(f"crop {size}x{size} at ({top}, {left}) is outside the {out_h}x{out_w} "
                     "resized image")
  if ratio == 1.0:
    return _as_unit(y[top:top + size, left:left + size])
  mh, h0, h1 = _band(y.shape[0], out_h, ratio, top, size)
  mw, w0, w1 = _band(y.shape[1], out_w, ratio, left, size)
  return mh @ _as_unit(y[h0:h1, w0:w1]) @ mw.T


def sample_patch(y: np.ndarray, rng: np.random.Generator, patch_size: int,
                 scale_augmentation: bool = True) -> np.ndarray:
  """One random HR patch `[P, P]` float64 from a Y image (as `resized_crop`), drawing the
  ratio then the crop position from `rng`."""
  tenths = int(rng.integers(5, 11)) if scale_augmentation else 10
  ratio = scale_ratio(tenths, y.shape, patch_size)
  (out_h, out_w), _ = output_size(y.shape, scale=ratio)
  top = int(rng.integers(0, out_h - patch_size + 1))
  left = int(rng.integers(0, out_w - patch_size + 1))
  return resized_crop(y, ratio, top, left, patch_size)


def rot_flip_params(rng: np.random.Generator) -> tuple[int, bool]:
  """(k, flip) as the official code draws them: rot90 k times w.p. 1/4 each, flip w.p. 1/2."""
  u = rng.random()
  k = 1 if u < 0.25 else 2 if u < 0.5 else 3 if u < 0.75 else 0
  return k, bool(rng.random() > 0.5)


def rot_flip(batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
  """MATLAB `rot90(HR, k)` (counter-clockwise) then `fliplr` on `[N, H, W]` patches."""
  out = np.rot90(batch, k, axes=(1, 2))
  if flip:
    out = out[:, :, ::-1]
  return np.ascontiguousarray(out)


def _levels(scale: int) -> int:
  levels = int(round(math.log2(scale)))
  if scale < 2 or 2 ** levels != scale:
    raise ValueError(f"scales must be powers of two >= 2, got {scale}")
  return levels


def _down(hr: np.ndarray, factor: int) -> np.ndarray:
  """`imresize(hr, 1/factor)` for a batch `[N, P, P]` (float64), as two matrix products."""
  if factor == 1:
    return hr
  p = hr.shape[1]
  d = resize_matrix(p, p // factor, 1.0 / factor)
  return d @ hr @ d.T


def pyramid(hr: np.ndarray, scale: int) -> dict:
  """LR input and per-level targets of `[N, P, P]` float64 HR patches for one scale.

  Returns `{"lr": [N, P/s, P/s, 1], "targets": ([N, 2P/s, 2P/s, 1], ..., [N, P, P, 1])}`,
  float32, with `lr = imresize(HR, 1/s)` and target l (0-based, L = log2 s levels) =
  `imresize(HR, 1/2^(L-1-l))`, each computed from the HR patch in float64.
  """
  levels = _levels(scale)
  if hr.ndim != 3 or hr.shape[1] != hr.shape[2] or hr.shape[1] % scale:
    raise ValueError(f"pyramid needs square [N, P, P] patches with P divisible by {scale}, "
                     f"got shape {hr.shape}")
  as_out = lambda a: np.ascontiguousarray(a[..., None], dtype=np.float32)  # noqa: E731
  targets = tuple(as_out(_down(hr, 2 ** (levels - 1 - l))) for l in range(levels))
  return {"lr": as_out(_down(hr, scale)), "targets": targets}
