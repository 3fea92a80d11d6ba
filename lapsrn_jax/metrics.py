"""Image quality metrics on device: Y conversion, PSNR, SSIM and the papers' protocol.

All metrics are jitted and batched. Layout: `[H, W]`, `[H, W, C]` (one image, scalar result)
or `[N, H, W, C]` (a batch, `[N]` result). Values are floats on a `data_range` scale
(1.0 for [0, 1] images) or uint8 (read as `x / 255`, `data_range` 1).

- `psnr` = 10 log10(data_range^2 / MSE) over H, W and C (MATLAB `psnr`); identical images
  give `inf` (MSE = 0), as MATLAB does.
- `ssim` = MATLAB's built-in `ssim`: 11x11 Gaussian window sigma = 1.5, local statistics by
  `imfilter(..., 'replicate')` (same-size map, replicate padding at the image border, after
  the shave), K1 = 0.01, K2 = 0.03, mean of the map (per channel, then averaged over C).
- `shave` removes that many pixels on every border before scoring (it is a traced argument:
  changing it does not recompile).
- `paper_protocol(sr, hr, scale)` is the LapSRN evaluation (see docs/evaluation_protocol.md): uint8
  quantisation, Y of BT.601 for colour / raw values for gray, shave = scale, PSNR peak 1, SSIM.

Computation is in float32 (float64 when JAX x64 is on and the input is float64); local
statistics are computed on mean-shifted images to limit float32 cancellation.
"""


import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import images

__all__ = ["im2uint8", "paper_protocol", "psnr", "rgb_to_y", "ssim", "SSIM_RADIUS", "SSIM_SIGMA"]

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # MATLAB: ceil(3 * sigma) -> an 11 x 11 window
_K1, _K2 = 0.01, 0.03
_BUCKET = 256  # paper_protocol pads numpy images to multiples of this (fewer compilations)

# BT.601 luma of MATLAB's rgb2ycbcr for [0, 1] input:
# Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0


def _gaussian_taps() -> tuple[float, ...]:
  """1-D factor of MATLAB's fspecial('gaussian', 11, 1.5) (the 2-D window is its outer product)."""
  x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
  g = np.exp(-(x * x) / (2.0 * SSIM_SIGMA**2))
  return tuple(float(v) for v in g / g.sum())


_TAPS = _gaussian_taps()


def _float(x):
  """uint8 -> [0, 1] float32; floats keep their dtype (at least float32)."""
  x = jnp.asarray(x)
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 255.0
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"metrics need uint8 or float images, got dtype {x.dtype}")
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _rgb_to_y(img):
  x = _float(img)
  if x.shape[-1:] != (3,):
    raise ValueError(f"rgb_to_y needs 3 channels on the last axis, got shape {tuple(x.shape)}")
  wr, wg, wb = _Y_WEIGHTS
  return (wr * x[..., 0:1] + wg * x[..., 1:2] + wb * x[..., 2:3]) + _Y_OFFSET


@jax.jit
def rgb_to_y(img):
  """Y of MATLAB `rgb2ycbcr`: RGB `[..., 3]` in [0, 1] (or uint8) -> `[..., 1]` in [16, 235]/255."""
  return _rgb_to_y(img)


@jax.jit
def _im2uint8_jit(x):
  return jnp.clip(jnp.floor(x * 255.0 + 0.5), 0, 255).astype(jnp.uint8)


def im2uint8(x):
  """MATLAB `im2uint8` for float images in [0, 1]: round(x * 255) half away from zero, saturated.

  numpy in -> numpy uint8 (computed in float64); JAX in -> JAX uint8; uint8 passes through.
  """
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return images.from_float(x, np.uint8)
  x = jnp.asarray(x)
  return x if x.dtype == jnp.uint8 else _im2uint8_jit(x)


def _as_batch(x) -> tuple[jax.Array, bool]:
  """[H, W] | [H, W, C] | [N, H, W, C] -> ([N, H, W, C], was_batched)."""
  ndim = np.ndim(x)
  if ndim == 2:
    return x[None, :, :, None], False
  if ndim == 3:
    return x[None], False
  if ndim == 4:
    return x, True
  raise ValueError("metrics need [H, W], [H, W, C] or [N, H, W, C] images, "
                   f"got shape {np.shape(x)}")


def _check_pair(x, y, shave, h=None, w=None):
  if np.shape(x) != np.shape(y):
    raise ValueError(f"the two images differ in shape: {np.shape(x)} vs {np.shape(y)}")
  shape = np.shape(x)
  hw = shape[:2] if len(shape) < 4 else shape[1:3]
  h = hw[0] if h is None else h
  w = hw[1] if w is None else w
  if isinstance(shave, bool) or int(shave) != shave or shave < 0:
    raise ValueError(f"shave must be a non-negative integer, got {shave!r}")
  if 2 * shave >= min(h, w):
    raise ValueError(f"shave={shave} leaves nothing of a {h}x{w} image")


def _gather(x, hh, ww, shave, pad):
  """Rows/cols [shave, shave + hh) of x [N, Hb, Wb, C] with `pad` replicated pixels on each side.

  Output [N, Hb + 2 pad, Wb + 2 pad, C]; positions beyond hh / ww repeat the last valid
  row / column (they are masked out by the callers).
  """
  hb, wb = x.shape[1], x.shape[2]
  rows = shave + jnp.clip(jnp.arange(hb + 2 * pad) - pad, 0, hh - 1)
  cols = shave + jnp.clip(jnp.arange(wb + 2 * pad) - pad, 0, ww - 1)
  return jnp.take(jnp.take(x, rows, axis=1), cols, axis=2)


def _mask(shape, hh, ww, dtype):
  hb, wb = shape[1], shape[2]
  m = (jnp.arange(hb) < hh)[:, None] & (jnp.arange(wb) < ww)[None, :]
  return m[None, :, :, None].astype(dtype)


def _gaussian_filter_valid(x):
  """Separable 11x11 Gaussian, 'valid' part: [..., H + 10, W + 10, C] -> [..., H, W, C]."""
  h, w = x.shape[-3] - 2 * SSIM_RADIUS, x.shape[-2] - 2 * SSIM_RADIUS
  t = sum(g * x[..., i:i + h, :, :] for i, g in enumerate(_TAPS))
  return sum(g * t[..., :, j:j + w, :] for j, g in enumerate(_TAPS))


def _psnr_impl(x, y, hh, ww, shave, data_range):
  xs = _gather(x, hh, ww, shave, 0)
  ys = _gather(y, hh, ww, shave, 0)
  mask = _mask(xs.shape, hh, ww, xs.dtype)
  count = (hh * ww * x.shape[-1]).astype(xs.dtype)
  mse = jnp.sum(mask * (xs - ys) ** 2, axis=(1, 2, 3)) / count
  return 10.0 * jnp.log10(data_range**2 / mse)


def _ssim_impl(x, y, hh, ww, shave, data_range):
  n = x.shape[0]
  xp = _gather(x, hh, ww, shave, SSIM_RADIUS)
  yp = _gather(y, hh, ww, shave, SSIM_RADIUS)
  mask = _mask(x.shape, hh, ww, xp.dtype)
  count = (hh * ww * x.shape[-1]).astype(xp.dtype)
  centre = (slice(None), slice(SSIM_RADIUS, -SSIM_RADIUS), slice(SSIM_RADIUS, -SSIM_RADIUS))
  # Subtract each image's mean (restored below): (co)variances are unchanged and the
  # cancellation in E[x^2] - E[x]^2 is much smaller in float32.
  shift_x = jnp.sum(mask * xp[centre], axis=(1, 2, 3), keepdims=True) / count
  shift_y = jnp.sum(mask * yp[centre], axis=(1, 2, 3), keepdims=True) / count
  xp, yp = xp - shift_x, yp - shift_y
  stats = _gaussian_filter_valid(jnp.concatenate([xp, yp, xp * xp, yp * yp, xp * yp], axis=0))
  mu_x, mu_y, e_xx, e_yy, e_xy = (stats[k * n:(k + 1) * n] for k in range(5))
  var_x = e_xx - mu_x * mu_x
  var_y = e_yy - mu_y * mu_y
  cov = e_xy - mu_x * mu_y
  mu_x, mu_y = mu_x + shift_x, mu_y + shift_y
  c1 = (_K1 * data_range) ** 2
  c2 = (_K2 * data_range) ** 2
  num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
  den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
  return jnp.sum(mask * (num / den), axis=(1, 2, 3)) / count


@jax.jit
def _psnr_jit(x, y, hh, ww, shave, data_range):
  return _psnr_impl(_float(x), _float(y), hh, ww, shave, data_range)


@jax.jit
def _ssim_jit(x, y, hh, ww, shave, data_range):
  return _ssim_impl(_float(x), _float(y), hh, ww, shave, data_range)


@jax.jit
def _protocol_jit(sr, hr, hh, ww, shave, to_y):
  """sr, hr: uint8 [N, Hb, Wb, 3] -> (psnr [N], ssim [N]) on Y (to_y) or on channel 0 (gray)."""
  x, y = _float(sr), _float(hr)
  x = jnp.where(to_y, _rgb_to_y(x), x[..., :1])
  y = jnp.where(to_y, _rgb_to_y(y), y[..., :1])
  return (_psnr_impl(x, y, hh, ww, shave, 1.0), _ssim_impl(x, y, hh, ww, shave, 1.0))


def _run_metric(fn, x, y, shave, data_range):
  xb, batched = _as_batch(x)
  yb, _ = _as_batch(y)
  _check_pair(xb, yb, shave)
  h, w = np.shape(xb)[1:3]
  out = fn(xb, yb, np.int32(h - 2 * shave), np.int32(w - 2 * shave), np.int32(shave),
           np.float32(data_range))
  return out if batched else out[0]


def psnr(x, y, *, shave: int = 0, data_range: float = 1.0):
  """PSNR in dB: `[H, W]` / `[H, W, C]` -> scalar, `[N, H, W, C]` -> `[N]`; inf when x == y."""
  return _run_metric(_psnr_jit, x, y, shave, data_range)


def ssim(x, y, *, shave: int = 0, data_range: float = 1.0):
  """MATLAB-`ssim` mean SSIM: `[H, W]` / `[H, W, C]` -> scalar, `[N, H, W, C]` -> `[N]`."""
  return _run_metric(_ssim_jit, x, y, shave, data_range)


def _bucket(n: int) -> int:
  return -(-n // _BUCKET) * _BUCKET


def paper_protocol(sr, hr, scale: int):
  """The LapSRN / MS-LapSRN score of a super-resolved image: `(psnr, ssim)`.

  Args:
    sr, hr: the same shape, `[H, W]` (gray), `[H, W, 1]`, `[H, W, 3]` (RGB) or batches
      `[N, H, W, C]`; uint8, or float in [0, 1] (quantised with `im2uint8` first, on the
      host in float64 for numpy input).
    scale: the upscaling factor; also the border shave.

  Returns:
    `(psnr, ssim)` as JAX scalars (or `[N]` for a batch): Y channel (BT.601, [16, 235]/255)
    for RGB and raw values for gray, `scale` pixels shaved on every border, PSNR with
    peak 1 (inf for identical images), MATLAB `ssim`. numpy input is transposed to landscape
    and zero-padded to a multiple of 256 pixels (masked out), so images of different sizes
    share few compilations (gray and RGB share them too); JAX input is scored at its own shape.
  """
  if isinstance(scale, bool) or int(scale) != scale or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  scale = int(scale)
  on_host = isinstance(sr, np.ndarray) and isinstance(hr, np.ndarray)
  sr, hr = im2uint8(sr), im2uint8(hr)
  sr, batched = _as_batch(sr)
  hr, _ = _as_batch(hr)
  _check_pair(sr, hr, scale)
  channels = sr.shape[-1]
  if channels not in (1, 3):
    raise ValueError(f"paper_protocol needs gray (1 channel) or RGB (3 channels), got {channels}")
  h, w = sr.shape[1:3]
  if on_host:
    if h > w:  # PSNR and SSIM (symmetric window, replicate border) are transpose invariant
      sr, hr = sr.transpose(0, 2, 1, 3), hr.transpose(0, 2, 1, 3)
      h, w = w, h
    pads = ((0, 0), (0, _bucket(h) - h), (0, _bucket(w) - w), (0, 0))
    sr, hr = np.pad(sr, pads), np.pad(hr, pads)
  if channels == 1:  # one compiled program for gray and RGB: gray rides in channel 0
    sr = jnp.repeat(sr, 3, axis=-1) if not on_host else np.repeat(sr, 3, axis=-1)
    hr = jnp.repeat(hr, 3, axis=-1) if not on_host else np.repeat(hr, 3, axis=-1)
  p, s = _protocol_jit(sr, hr, np.int32(h - 2 * scale), np.int32(w - 2 * scale), np.int32(scale),
                       np.bool_(channels == 3))
  return (p, s) if batched else (p[0], s[0])
