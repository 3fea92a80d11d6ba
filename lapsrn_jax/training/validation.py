"""Periodic validation: jitted Y-PSNR / SSIM of the model and of bicubic at each scale.

Every validation image is centre-cropped to `crop x crop` HR pixels (one shape: one compile per
scale). For scale s: `LR = imresize(Y(HR), 1/s)` (MATLAB bicubic, float64; equal to the Y of the
resized RGB image because both maps are affine), the network's last output is clipped to [0, 1] and
quantised like `im2uint8`, and PSNR (peak 1) / SSIM (MATLAB `ssim`) are taken on Y with `s` pixels
shaved per border against the float Y of the uint8 HR image. This follows the paper protocol
(docs/evaluation_protocol.md) except that the SR image is quantised in Y rather than after
conversion to RGB; the bicubic baseline is scored the same way.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import metrics
from lapsrn_jax.color import rgb_to_ycbcr
from lapsrn_jax.imresize import imresize


def hr_luma(hr: np.ndarray) -> np.ndarray:
  """uint8 `[H, W]` or `[H, W, 3]` -> float64 Y `[H, W]` in [0, 1] (MATLAB `rgb2ycbcr` Y)."""
  x = np.asarray(hr, np.float64) / 255.0
  return rgb_to_ycbcr(x)[..., 0] if x.ndim == 3 else x


def center_crop(img: np.ndarray, size: int, name: str = "") -> np.ndarray:
  """The central `size x size` window of `img` `[H, W, ...]`; ValueError if the image is smaller."""
  h, w = img.shape[:2]
  if h < size or w < size:
    raise ValueError(f"validation image {name or ''} is {h}x{w}, smaller than eval.crop={size}; "
                     "lower eval.crop")
  top, left = (h - size) // 2, (w - size) // 2
  return img[top:top + size, left:left + size]


def _quantize(x: jax.Array) -> jax.Array:
  return metrics.im2uint8(x) / 255.0


class Validator:
  """`validator(params) -> {"val/psnr_x2": dB, "val/ssim_x2": ..., "val/psnr": mean dB, ...}`.

  The bicubic scores (`val/bicubic_psnr_x<s>`, `val/bicubic_ssim_x<s>`) are computed once, at
  construction, and are included in every result.

  Args:
    model: the network (`apply(..., lr [N, h, w, 1], scale=s)` -> tuple, last = SR).
    images: `(name, HR uint8 [H, W] or [H, W, 3])` pairs; each is centre-cropped to `crop`.
    scales: validated scales.
    crop: HR crop side, divisible by every scale.
    batch_size: images per forward pass (the last batch is zero-padded: no recompile).
  """

  def __init__(self, model: nn.Module, images: Sequence[tuple[str, np.ndarray]],
               scales: Sequence[int], crop: int, batch_size: int = 8):
    if not images:
      raise ValueError("no validation images")
    self.scales = tuple(scales)
    self.num_images = len(images)
    self.batch_size = min(batch_size, len(images))
    hr = np.stack([center_crop(hr_luma(img), crop, name) for name, img in images])
    self._hr = hr[..., None].astype(np.float32)  # [N, crop, crop, 1]
    self._lr = {s: np.stack([imresize(y, 1.0 / s) for y in hr])[..., None].astype(np.float32)
                for s in self.scales}
    self._forward = {s: jax.jit(lambda params, lr, s=s: _quantize(
        model.apply({"params": params}, lr, scale=s)[-1])) for s in self.scales}
    self.bicubic = {}
    for s in self.scales:
      up = np.stack([imresize(lr[..., 0].astype(np.float64), s) for lr in self._lr[s]])[..., None]
      p, q = self._score(_quantize(jnp.asarray(up, jnp.float32)), s)
      self.bicubic[f"val/bicubic_psnr_x{s}"] = p
      self.bicubic[f"val/bicubic_ssim_x{s}"] = q

  def _score(self, sr: jax.Array, scale: int) -> tuple[float, float]:
    p = metrics.psnr(sr, self._hr, shave=scale)
    q = metrics.ssim(sr, self._hr, shave=scale)
    return float(jnp.mean(p)), float(jnp.mean(q))

  def _super_resolve(self, params, scale: int) -> jax.Array:
    lr, b = self._lr[scale], self.batch_size
    n = lr.shape[0]
    pad = -n % b
    lr = np.concatenate([lr, np.zeros((pad,) + lr.shape[1:], lr.dtype)]) if pad else lr
    out = [self._forward[scale](params, lr[i:i + b]) for i in range(0, n + pad, b)]
    return jnp.concatenate(out)[:n]

  def __call__(self, params) -> dict[str, float]:
    # One local copy of the (replicated) params: every host validates on its own first device.
    params = jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x,
                          params)
    result = dict(self.bicubic)
    for s in self.scales:
      p, q = self._score(self._super_resolve(params, s), s)
      result[f"val/psnr_x{s}"] = p
      result[f"val/ssim_x{s}"] = q
    result["val/psnr"] = float(np.mean([result[f"val/psnr_x{s}"] for s in self.scales]))
    result["val/bicubic_psnr"] = float(np.mean([result[f"val/bicubic_psnr_x{s}"]
                                                for s in self.scales]))
    return result

