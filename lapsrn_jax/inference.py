"""Super-resolve images: the network on Y, MATLAB bicubic on Cb/Cr and alpha.

`super_resolve(model, params, image, scale)` is the project's one path from an image to its
super-resolved image (`upscale` and `evaluate` use it): gray, gray + alpha, RGB or RGBA; uint8,
uint16 or float in [0, 1]; whole or in tiles of bounded memory (`tile=`), optionally with the x8
self-ensemble. `downscale(hr, scale)` makes the evaluation protocol's LR input (MATLAB bicubic,
float64).

Compilations: every model compiles once per size bucket (`bucket_size`), with outputs equal to
the exact-size run. A model's image-independent factor (CMS-LapSRN's local solve; one for all
sizes) is cached across calls by a fingerprint of the params (`cached_factor`).
"""

import collections
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import tiling
from lapsrn_jax.color import rgb_to_ycbcr, ycbcr_to_rgb
from lapsrn_jax.images import from_float
from lapsrn_jax.imresize import imresize

# Factors kept across calls (one per weights, ~69 MB each for CMS-LapSRN's default 64^2 window
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
  return model.apply({"params": params}, lr, scale=scale, valid_hw=valid_hw, factor=factor)[-1]


@functools.lru_cache(maxsize=32)
def _jitted_apply(model):
  """`_forward` jitted once per model (and, by jit, once per canvas shape and scale)."""
  return jax.jit(lambda params, lr, scale, valid_hw, factor: _forward(
      model, params, lr, scale, valid_hw, factor), static_argnums=2)


@functools.lru_cache(maxsize=32)
def _jitted_factor(model):
  """The model's `factor` method jitted once per model."""
  return jax.jit(lambda params: model.apply({"params": params}, method="factor"))


@functools.lru_cache(maxsize=32)
def _has_factor_cached(model, treedef, leaves) -> bool:
  shapes = jax.tree_util.tree_unflatten(treedef, leaves)
  return jax.eval_shape(lambda p: model.apply({"params": p}, method="factor"), shapes) is not None


def _has_factor(model, shapes) -> bool:
  """Whether `model.factor()` returns anything, for params of these shapes (traced once)."""
  leaves, treedef = jax.tree_util.tree_flatten(shapes)
  return _has_factor_cached(model, treedef, tuple(leaves))


def _compute_factor(model, params):
  return _jitted_factor(model)(params)


def params_fingerprint(params) -> str:
  """`"sha256:<16 hex>"` of a params pytree: every leaf's path, dtype, shape and bytes (C order,
  little-endian), in sorted path order (~1 ms per MB). Equal exactly when the trees are
  bit-identical (up to a hash collision), however they were loaded (numpy or jax arrays, dict
  order): the key of the factor cache, and what an evaluation records to name the weights it
  scored (two checkpoints of one run name, e.g. a run trained again, differ in it)."""
  digest = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  for path, leaf in sorted(((jax.tree_util.keystr(p), v) for p, v in leaves), key=lambda e: e[0]):
    array = np.ascontiguousarray(np.asarray(leaf))
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    digest.update(f"{path}|{array.dtype.str}|{array.shape}\n".encode())
    digest.update(array.tobytes())
  return "sha256:" + digest.hexdigest()[:16]


def cached_factor(model, params):
  """The model's image-independent factor (`method="factor"`; None for LapSRN and MS-LapSRN),
  from a small LRU cache: computed once per model and weights, reused for every image size and
  scale.

  Keyed by the model and a fingerprint of the params (not their identity, so new values are
  never served a stale factor); `FACTOR_CACHE_SIZE` entries. Models without a factor skip the
  fingerprint (known once per model by abstract evaluation).
  """
  if not _has_factor(model, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                         params)):
    return None
  key = (model, params_fingerprint(params))
  if key in _factor_cache:
    _factor_cache.move_to_end(key)
    return _factor_cache[key]
  factor = _compute_factor(model, params)
  _factor_cache[key] = factor
  while len(_factor_cache) > FACTOR_CACHE_SIZE:
    _factor_cache.popitem(last=False)
  return factor


def clear_factor_cache() -> None:
  """Drops every cached factor (frees their memory)."""
  _factor_cache.clear()


def network_scale(model, scale: int) -> int:
  """The power-of-two scale to run the network at: `scale` itself, or the next one up."""
  if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
    raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
  net_scale = 1 << (int(scale) - 1).bit_length()
  if model.max_scale is not None and net_scale > model.max_scale:
    raise ValueError(f"this model reaches scales up to {model.max_scale}, got {scale}")
  return net_scale


def super_resolve_y(model, params, y: np.ndarray, scale: int) -> np.ndarray:
  """The network on one channel: `[H, W]` float (Y in [0, 1]) -> `[s H, s W]` float64, s = scale.

  `scale` must be a power of two the model supports. Any size >= 1x1 works. The model runs on a
  zero canvas of `bucket_size` per side with `valid_hw` masking (outputs identical to running on
  `y` alone), so many image sizes share a few compilations; the factor comes from
  `cached_factor`, so a new size in a seen bucket needs neither a factorisation nor a compilation.
  """
  scale = int(scale)
  y = np.asarray(y, np.float32)
  h, w = y.shape
  factor = cached_factor(model, params)
  canvas = np.zeros((1, bucket_size(h), bucket_size(w), 1), np.float32)
  canvas[0, :h, :w, 0] = y
  valid_hw = np.asarray([h, w], np.int32)
  sr = _jitted_apply(model)(params, jnp.asarray(canvas), scale, valid_hw, factor)
  return np.ascontiguousarray(np.asarray(sr, np.float64)[0, :scale * h, :scale * w, 0])


def _super_resolve_luma(model, params, y, scale, tile, overlap, ensemble, progress):
  """`super_resolve_y`, whole or on windows of `tile` pixels (`tiling.tiled_apply`)."""
  if tile is None and not ensemble:
    return super_resolve_y(model, params, y, scale)

  def windows(batch):  # [N, h, w, 1] -> [N, s h, s w, 1]
    return np.stack([super_resolve_y(model, params, x[..., 0], scale)
                     for x in np.asarray(batch)])[..., None]

  fn = tiling.self_ensemble(windows) if ensemble else windows
  tile = max(y.shape) if tile is None else tile
  overlap = model.receptive_radius(scale) if overlap is None else overlap
  out = tiling.tiled_apply(fn, y[..., None], scale=scale, tile=tile, overlap=overlap,
                           progress=progress)
  return out[..., 0].astype(np.float64)


def _as_float(image: np.ndarray) -> np.ndarray:
  """`image` as float64 in [0, 1] (integers divided by their peak); ValueError otherwise."""
  if image.dtype in (np.uint8, np.uint16):
    return image.astype(np.float64) / float(np.iinfo(image.dtype).max)
  if not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"image must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}")
  x = image.astype(np.float64)
  if not np.all(np.isfinite(x)):
    raise ValueError("image has NaN or infinite values")
  low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
  if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
    hint = " (0..255 values? divide by 255, or pass uint8)" if high > 2.0 else ""
    raise ValueError(f"float images must be in [0, 1], got values in [{low:.4g}, {high:.4g}]"
                     f"{hint}")
  return x


def super_resolve(model, params, image, scale: int, *, tile: int | None = None,
                  overlap: int | None = None, ensemble: bool = False,
                  progress=None) -> np.ndarray:
  """Upscales `image` `scale` times: `model` on Y, MATLAB bicubic on Cb/Cr and alpha.

  Args:
    model, params: e.g. from `lapsrn_jax.load_model`, or `create_model` + training.
    image: `[H, W]`, or `[H, W, C]` with C = 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA);
      uint8, uint16, or float in [0, 1] (not clipped on input: bicubic LR inputs may overshoot
      slightly, so values within `FLOAT_TOLERANCE` of [0, 1] are accepted; others raise
      ValueError, e.g. a float image in 0..255); H, W >= 1. Colour is MATLAB `rgb2ycbcr`.
    scale: integer >= 2. Powers of two run the network directly; other scales run the next power
      of two and resize the result with bicubic `imresize` (as the official `SR_MSLapSRN.m`).
    tile: run the network on windows of `tile` LR pixels (bounded memory; None = whole image).
    overlap: LR pixels of context per window side (default `model.receptive_radius`, which makes
      the tiled result equal to the whole-image one; smaller is faster and approximate).
    ensemble: average the network over the 8 rotations and flips of every window (8x the time).
    progress: optional `tqdm`-like object told of every finished window.

  Returns:
    `[scale*H, scale*W(, C)]` in the input dtype: integers rounded and saturated
    (`images.from_float`), float clipped to [0, 1].
  """
  image = np.asarray(image)
  x = _as_float(image)
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 2, 3, 4))):
    raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1..4, got shape {image.shape}")
  if image.shape[0] < 1 or image.shape[1] < 1:
    raise ValueError(f"image must be at least 1x1 pixels, got shape {image.shape}")
  net_scale = network_scale(model, scale)
  out_shape = (scale * image.shape[0], scale * image.shape[1])
  x = x.reshape(image.shape[:2] + (-1,))
  color = x.shape[2] >= 3
  ycc = rgb_to_ycbcr(x[..., :3]) if color else None
  y = ycc[..., 0] if color else x[..., 0]
  y_sr = _super_resolve_luma(model, params, y, net_scale, tile, overlap, ensemble, progress)
  if net_scale != scale:
    y_sr = imresize(y_sr, output_shape=out_shape)
  if color:
    cbcr = imresize(ycc[..., 1:], output_shape=out_shape)
    channels = [ycbcr_to_rgb(np.concatenate([y_sr[..., None], cbcr], axis=-1))]
  else:
    channels = [y_sr[..., None]]
  if x.shape[2] in (2, 4):
    channels.append(imresize(x[..., -1], output_shape=out_shape)[..., None])
  out = np.clip(np.concatenate(channels, axis=-1), 0.0, 1.0)
  out = out.reshape(out_shape + image.shape[2:])
  return from_float(out, image.dtype)


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
