"""Building blocks shared by LapSRN, MS-LapSRN and CMS-LapSRN (MatConvNet geometry).

Layouts: features `[N, H, W, C]`; conv kernels HWIO `[kh, kw, C_in, C_out]` (cross-correlation,
zero padding 1, stride 1, exactly MatConvNet's `vl_nnconv` filters).

Transposed convolutions store the kernel of the stride-2 convolution they are the adjoint of:
`[kh, kw, C_hr, C_lr]` (I = the HR channels = the layer's *output*, O = the LR channels = its
*input*). This is MatConvNet's `vl_nnconvt` layout `F[h, w, out, in]` as stored in the official
`.mat` files, and it is the layout of an ordinary conv kernel, which is what lets CMS-LapSRN's
upsampler use a conv kernel of the recursive block in place of the transposed-conv kernel.
"""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lapsrn_jax.ops.stride2 import dilated_transpose_conv

LEAK = 0.2  # LeakyReLU slope of every LapSRN model.
_DIMS = ("NHWC", "HWIO", "NHWC")

Initializer = Callable[..., jax.Array]


def leaky_relu(x: jax.Array) -> jax.Array:
  """MatConvNet `vl_nnrelu(x, 'leak', 0.2)`."""
  return jnp.where(x >= 0, x, LEAK * x)


def conv3x3(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """Stride-1 cross-correlation, zero padding `(k - 1) / 2`: `[N, H, W, I]` -> `[N, H, W, O]`."""
  kh, kw = kernel.shape[:2]
  pad = ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2))
  y = lax.conv_general_dilated(x, kernel.astype(x.dtype), (1, 1), pad, dimension_numbers=_DIMS)
  return y if bias is None else y + bias.astype(x.dtype)


def conv_transpose2x(y: jax.Array, kernel: jax.Array, crop: tuple[int, int, int, int],
                     bias: jax.Array | None = None) -> jax.Array:
  """MatConvNet `vl_nnconvt(y, F, bias, 'upsample', 2, 'crop', crop)`.

  Args:
    y: `[N, H, W, C_lr]`.
    kernel: `F` of shape `[kh, kw, C_hr, C_lr]` (see the module docstring).
    crop: `(top, bottom, left, right)` rows/columns removed from the full `2(H-1)+kh` output.
    bias: `[C_hr]` or None.

  Returns:
    `[N, 2(H-1) + kh - top - bottom, 2(W-1) + kw - left - right, C_hr]`: the adjoint of the
    stride-2 cross-correlation with `F` on an input zero-padded by `crop`.
  """
  kh, kw = kernel.shape[:2]
  top, bottom, left, right = crop
  # Adjoint of a strided correlation = correlation of the 2x zero-dilated input with the
  # spatially flipped kernel whose I/O axes are swapped; cropping = removing padding.
  # `dilated_transpose_conv` computes it polyphase (a stride-1 conv: fast, also its gradient).
  pad = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  x = dilated_transpose_conv(y, kernel, pad)
  return x if bias is None else x + bias.astype(y.dtype)


# Feature upsampler (3x3) and image upsampler (4x4) crops of the official models.
FEATURE_UP_CROP = (0, 1, 0, 1)
IMAGE_UP_CROP = (1, 1, 1, 1)


def bilinear_kernel(size: int = 4) -> np.ndarray:
  """LapSRN's `bilinear_kernel(size, 1, 1)` (upsampling by `ceil(size / 2)`): `[size, size]`."""
  f = int(np.ceil(size / 2))
  c = (2 * f - 1 - f % 2) / (2 * f)
  t = 1 - np.abs(np.arange(size) / f - c)
  return np.outer(t, t).astype(np.float32)


def bilinear_init(key, shape, dtype=jnp.float32):
  """Initializer for `[k, k, 1, 1]` image-upsampling kernels (sums to 4 for k = 4)."""
  del key
  if shape[2:] != (1, 1) or shape[0] != shape[1]:
    raise ValueError(f"bilinear_init expects a [k, k, 1, 1] kernel, got {shape}")
  return jnp.asarray(bilinear_kernel(shape[0]), dtype)[:, :, None, None]


def he_normal(key, shape, dtype=jnp.float32):
  """N(0, 2 / (kh * kw * shape[2])): `init_MSLapSRN_model.m`'s He init, 2 / (3 * 3 * 64)."""
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (shape[0] * shape[1] * shape[2]))


def input_normal(key, shape, dtype=jnp.float32):
  """N(0, 0.001^2): the official init of `input_conv`."""
  return jax.random.normal(key, shape, dtype) * 1e-3


class Conv(nn.Module):
  """3x3 conv with bias; `kernel` `[3, 3, in_features, features]` and `bias` `[features]`.

  Parameters are created in `setup`, so a parent can read `conv.kernel` (the parameter itself,
  not a copy) without calling the layer.
  """
  in_features: int
  features: int
  kernel_init: Initializer = he_normal

  def setup(self):
    self.kernel = self.param("kernel", self.kernel_init, (3, 3, self.in_features, self.features))
    self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

  def __call__(self, x: jax.Array) -> jax.Array:
    return conv3x3(x, self.kernel, self.bias)


class ConvTranspose2x(nn.Module):
  """MatConvNet ConvTranspose with upsample 2: `[N, H, W, in_features]` -> `[N, 2H, 2W, features]`.

  `kernel` is `[k, k, features, in_features]` (MatConvNet convt layout, see the module docstring).
  """
  in_features: int
  features: int
  size: int = 3
  crop: tuple[int, int, int, int] = FEATURE_UP_CROP
  use_bias: bool = True
  kernel_init: Initializer = he_normal

  def setup(self):
    self.kernel = self.param("kernel", self.kernel_init,
                             (self.size, self.size, self.features, self.in_features))
    if self.use_bias:
      self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

  def __call__(self, y: jax.Array) -> jax.Array:
    return conv_transpose2x(y, self.kernel, self.crop, self.bias if self.use_bias else None)


def image_upsampler(name: str | None = None) -> ConvTranspose2x:
  """The 4x4, crop-1, bias-free, bilinear-initialised image upsampler (1 -> 1 channel)."""
  return ConvTranspose2x(1, 1, size=4, crop=IMAGE_UP_CROP, use_bias=False,
                         kernel_init=bilinear_init, name=name)


def num_levels(scale: int, max_levels: int | None = None) -> int:
  """`log2(scale)` for a power-of-two `scale >= 2` (at most `max_levels`), else a ValueError."""
  is_int = isinstance(scale, (int, np.integer)) and not isinstance(scale, bool)
  if not is_int or scale < 2 or scale & (scale - 1):
    raise ValueError(f"scale must be a power of two >= 2 (2, 4, 8, ...), got {scale!r}")
  levels = int(scale).bit_length() - 1
  if max_levels is not None and levels > max_levels:
    raise ValueError(f"scale {scale} needs {levels} pyramid levels but this model has "
                     f"{max_levels} (largest scale {2 ** max_levels})")
  return levels


def keep_all(x: jax.Array) -> jax.Array:
  """The identity: `valid_region` of a canvas that is all image."""
  return x


def valid_region(lr_hw: tuple[int, int],
                 valid_hw: jax.Array | None) -> Callable[[jax.Array], jax.Array]:
  """`keep(x)`: `x` `[N, h, w, C]` with zeros outside its valid top-left region.

  For running a model on a canvas larger than the image (size buckets): the image occupies the
  top-left `valid_hw` pixels of the LR canvas `lr_hw`, hence the top-left `f valid_hw` pixels of
  a grid `f` times as large (`f = h // lr_hw[0]`). A 3x3 conv or a MatConvNet convT of a canvas
  that is zero outside the valid region gives, inside it, exactly the values of the same layer on
  the image alone (the zeros play the part of the zero padding), so zeroing every layer's output
  outside the region keeps the whole network exact there.

  Args:
    lr_hw: static LR canvas size `(H, W)`.
    valid_hw: int `[2]` (every image) or `[N, 2]` (per image) LR `(h, w)`, traced is fine; None:
      the whole canvas (`keep_all`).
  """
  if valid_hw is None:
    return keep_all
  valid = jnp.asarray(valid_hw, jnp.int32).reshape(-1, 2)[:, None, None, None, :]  # [N|1,1,1,1,2]

  def keep(x):
    f = x.shape[1] // lr_hw[0]
    rows = jnp.arange(x.shape[1])[:, None, None] < f * valid[..., 0]
    cols = jnp.arange(x.shape[2])[None, :, None] < f * valid[..., 1]
    return jnp.where(rows & cols, x, jnp.zeros((), x.dtype))

  return keep


def check_input(lr: jax.Array) -> None:
  """ValueError unless `lr` is `[N, H, W, 1]`."""
  if lr.ndim != 4 or lr.shape[-1] != 1:
    raise ValueError(f"expected the LR Y channel as [N, H, W, 1], got shape {tuple(lr.shape)}")


# Receptive radii, in pixels of the layer's input grid, of the ops of the family: 3x3 conv, 1
# pixel; the 2x transposed convs (3x3 crop [0 1 0 1] and 4x4 crop 1): an output pixel reads input
# pixels whose centres lie within 0.75 input pixels of its own.
_CONV_RADIUS, _UPCONV_RADIUS, _IMAGE_UP_RADIUS = 1.0, 0.75, 0.75


def pyramid_receptive_radius(levels: int, convs: int, extra: float = 0.0) -> int:
  """Input pixels of context per side that determine an output pixel of a Laplacian pyramid.

  The input conv, then per level l (grid 2^l times the input) `convs` 3x3 convs, the 2x feature
  upsampler (plus `extra` pixels of its own grid, e.g. a local solve's halo), in parallel the 2x
  image upsampler, and the residual conv that joins the two paths. Output pixels of an input
  pixel `p` depend only on input pixels within the returned (Chebyshev) distance of `p`.

  Returns:
    `ceil` of the radius in input pixels.
  """
  feats, image = _CONV_RADIUS, 0.0  # after the input conv; the level-0 image is the input itself
  for level in range(levels):
    feats += (convs * _CONV_RADIUS + _UPCONV_RADIUS + extra) / 2 ** level
    image = max(image + _IMAGE_UP_RADIUS / 2 ** level,
                feats + _CONV_RADIUS / 2 ** (level + 1))  # + the residual conv
  return math.ceil(image)

