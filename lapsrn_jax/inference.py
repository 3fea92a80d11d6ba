"""Super-resolve whole images: the network on Y, bicubic Cb/Cr (as the official `SR_MSLapSRN.m`).

`super_resolve(model, params, image, scale)` takes RGB `[H, W, 3]` or gray `[H, W]` images, uint8
or float in [0, 1] (others raise ValueError), of any size >= 1x1, and returns the `scale`x image in the input dtype.
`downscale(hr, scale)` makes the evaluation protocol's LR input (MATLAB bicubic, float64).

Compilations: every model compiles once per size bucket (`bucket_size`), with outputs equal to
the exact-size run. CMS-LapSRN's image-independent factor (one for all sizes) is cached across
calls by a fingerprint of the weights it depends on (`cms_factor`).
"""

import collections
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax.color import rgb_to_ycbcr, ycbcr_to_rgb
from lapsrn_jax.imresize import imresize
from lapsrn_jax.models import CMSLapSRN, LapSRN

# CMS-LapSRN factors kept across calls (one per weights, ~69 MB each for the default 64^2 window
# and 64 channels), least recently used dropped first.
FACTOR_CACHE_SIZE = 4
_factor_cache: collections.OrderedDict = collections.OrderedDict()
# Float inputs may leave [0, 1] by this much (bicubic overshoot of an LR image; at most ~0.3).
FLOAT_TOLERANCE = 0.5


def bucket_size(n: int) -> int:
  """The LR canvas side an image side `n >= 1` runs on.

  `n` rounded up to a multiple of `max(16, 2^(ceil(log2 n) - 4))`: at most 16 sizes per octave,
  under 1/8 extra pixels per side above 128 (16, 32, ..., 128, 144, ..., 256, 288, ...).
  """
  step = max(16, 1 << max((n - 1).bit_length() - 4, 0))
  return -(-n // step) * step


def _forward(model, params, lr, scale, valid_hw, factor):
  """The last pyramid level of `model` (traced inside `_jitted_apply`)."""
  kwargs = {"factor": factor} if isinstance(model, CMSLapSRN) else {}
  return model.apply({"params": params}, lr, scale=scale, valid_hw=valid_hw, **kwargs)[-1]


@functools.lru_cache(maxsize=32)
def _jitted_apply(model):
  """`_forward` jitted once per model (and, by jit, once per canvas shape and scale)."""
  return jax.jit(lambda params, lr, scale, valid_hw, factor: _forward(
      model, params, lr, scale, valid_hw, factor), static_argnums=2)


@functools.lru_cache(maxsize=32)
def _jitted_factor(model):
  """CMS-LapSRN's `factor` method jitted once per model."""
  return jax.jit(lambda params: model.apply({"params": params}, method="factor"))


def _compute_factor(model, params):
  return _jitted_factor(model)(params)


def _factor_fingerprint(model, params) -> str:
  """A digest of what CMS-LapSRN's factor depends on: the tied kernel and theta."""
  digest = hashlib.sha256()
  for a in model.apply({"params": params}, method="factor_inputs"):
    a = np.asarray(a)
    digest.update(f"{a.dtype}{a.shape}".encode())
    digest.update(a.tobytes())
  return digest.hexdigest()


def cms_factor(model, params):
  """CMS-LapSRN's factor (the same for every image size and scale), from a small LRU cache.

  Keyed by the model and a fingerprint of the tied kernel and theta (not the params' identity,
  so new values are never served a stale factor); `FACTOR_CACHE_SIZE` entries.
  """
  key = (model, _factor_fingerprint(model, params))
  if key in _factor_cache:
    _factor_cache.move_to_end(key)
    return _factor_cache[key]
  factor = _compute_factor(model, params)
  _factor_cache[key] = factor
  while len(_factor_cache) > FACTOR_CACHE_SIZE:
    _factor_cache.popitem(last=False)
  return factor


def clear_factor_cache() -> None:
  """Drops every cached CMS-LapSRN factor (frees their memory)."""
  _factor_cache.clear()


def _network_scale(model, scale: int) -> int:
  """The power-of-two scale to run the network at: `scale` itself, or the next one up."""
  if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
    raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
  net_scale = 1 << (int(scale) - 1).bit_length()
  if isinstance(model, LapSRN) and net_scale > 2 ** model.levels:
    raise ValueError(f"this LapSRN has {model.levels} level(s): scales up to {2 ** model.levels}, "
                     f"got {scale}")
  return net_scale


def super_resolve_y(model, params, y: np.ndarray, scale: int) -> np.ndarray:
  """The network on one channel: `[H, W]` float (Y in [0, 1]) -> `[s H, s W]` float64, s = scale.

  `scale` must be a power of two the model supports. Any size >= 1x1 works. The model runs on a
  zero canvas of `bucket_size` per side with `valid_hw` masking (outputs identical to running on
  `y` alone), so many image sizes share a few compilations; CMS-LapSRN reuses its cached factor
  (`cms_factor`), so a new size in a seen bucket needs neither a factorisation nor a compilation.
  """
  scale = int(scale)
  y = np.asarray(y, np.float32)
  h, w = y.shape
  factor = cms_factor(model, params) if isinstance(model, CMSLapSRN) else None
  canvas = np.zeros((1, bucket_size(h), bucket_size(w), 1), np.float32)
  canvas[0, :h, :w, 0] = y
  valid_hw = np.asarray([h, w], np.int32)
  sr = _jitted_apply(model)(params, jnp.asarray(canvas), scale, valid_hw, factor)
  return np.ascontiguousarray(np.asarray(sr, np.float64)[0, :scale * h, :scale * w, 0])


def super_resolve(model, params, image, scale: int) -> np.ndarray:
  """Upscales `image` `scale` times with `model` on Y and MATLAB bicubic on Cb/Cr.

  Args:
    model, params: e.g. from `lapsrn_jax.weights.load_official` or `create_model` + training.
    image: `[H, W, 3]` RGB or `[H, W]` / `[H, W, 1]` gray; uint8, or float in [0, 1] (not
      clipped on input: bicubic LR inputs may overshoot slightly, so values within
      `FLOAT_TOLERANCE` of [0, 1] are accepted; others raise ValueError, e.g. a float image in
      0..255: divide it by 255); H, W >= 1.
    scale: integer >= 2. Powers of two run the network directly; other scales run the next power
      of two and resize the result with bicubic `imresize` (as the official `SR_MSLapSRN.m`).

  Returns:
    `[scale*H, scale*W(, C)]` in the input dtype: uint8 rounded and saturated, float clipped
    to [0, 1].
  """
  image = np.asarray(image)
  if image.dtype == np.uint8:
    x = image.astype(np.float64) / 255.0
  elif np.issubdtype(image.dtype, np.floating):
    x = image.astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise ValueError("image has NaN or infinite values")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
      hint = " (0..255 values? divide by 255, or pass uint8)" if high > 2.0 else ""
      raise ValueError(f"float images must be in [0, 1], got values in [{low:.4g}, {high:.4g}]"
                       f"{hint}")
  else:
    raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3))):
    raise ValueError(f"image must be [H, W], [H, W, 1] or [H, W, 3], got shape {image.shape}")
  if image.shape[0] < 1 or image.shape[1] < 1:
    raise ValueError(f"image must be at least 1x1 pixels, got shape {image.shape}")
  net_scale = _network_scale(model, scale)
  out_shape = (scale * image.shape[0], scale * image.shape[1])

  color = image.ndim == 3 and image.shape[-1] == 3
  ycc = rgb_to_ycbcr(x) if color else None
  y = ycc[..., 0] if color else x.reshape(image.shape[:2])
  y_sr = super_resolve_y(model, params, y, net_scale)
  if net_scale != scale:
    y_sr = imresize(y_sr, output_shape=out_shape)
  if color:
    cbcr = imresize(ycc[..., 1:], output_shape=out_shape)
    out = ycbcr_to_rgb(np.concatenate([y_sr[..., None], cbcr], axis=-1))
  else:
    out = y_sr.reshape(out_shape + image.shape[2:])
  out = np.clip(out, 0.0, 1.0)
  if image.dtype == np.uint8:
    return np.floor(out * 255.0 + 0.5).astype(np.uint8)  # MATLAB im2uint8
  return out.astype(image.dtype)


def downscale(hr, scale: int) -> np.ndarray:
  """The evaluation LR input: MATLAB `imresize(im2double(hr), 1/scale, 'bicubic')` in float64.

  `hr`: `[H, W(, 3)]` uint8 or float in [0, 1], H and W multiples of `scale` (mod-crop first).
  Returns float64, not clipped (bicubic overshoots slightly, as in the official evaluation).
  """
  hr = np.asarray(hr)
  if hr.shape[0] % scale or hr.shape[1] % scale:
    raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {scale}; "
                     "mod-crop it first")
  x = hr.astype(np.float64) / 255.0 if hr.dtype == np.uint8 else hr.astype(np.float64)
  return imresize(x, output_shape=(hr.shape[0] // scale, hr.shape[1] // scale))
