"""The periodic stride-2 convolution `C` and its exact adjoint `Cᵀ`.

For HR features `x: [N, 2H, 2W, C_in]` and a kernel `[kh, kw, C_in, C_out]` (HWIO,
cross-correlation, anchor (0, 0)):

    (C x)[n, i, j, o] = Σ_{u, v, c} kernel[u, v, c, o] · x[n, (2i + u) mod 2H, (2j + v) mod 2W, c]

`Cᵀ` is the matching transposed convolution with wrap-around. Away from HR row/column 0 it equals
MatConvNet's `ConvTranspose(upsample 2, crop [0 1 0 1])` (the MS-LapSRN feature upsampler).
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

_DN = ("NHWC", "HWIO", "NHWC")


def check_kernel(kernel) -> None:
  """Raises ValueError unless `kernel` is a 4-D HWIO conv kernel."""
  if jnp.ndim(kernel) != 4:
    raise ValueError(
        f"kernel must be 4-D [kh, kw, C_in, C_out] (HWIO), got shape {jnp.shape(kernel)}")
  if min(jnp.shape(kernel)) < 1:
    raise ValueError(f"kernel has an empty dimension: shape {jnp.shape(kernel)}")


def check_features(x, name: str, channels: int, channel_name: str) -> None:
  """Raises ValueError unless `x` is `[N, H, W, channels]` with H, W >= 1."""
  if jnp.ndim(x) != 4:
    raise ValueError(f"{name} must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
  if x.shape[-1] != channels:
    raise ValueError(
        f"{name} has {x.shape[-1]} channels but the kernel's {channel_name} is {channels} "
        f"(kernel layout is [kh, kw, C_in, C_out])")
  if min(x.shape[1:3]) < 1:
    raise ValueError(f"{name} has an empty spatial grid: shape {x.shape}")


def stride2_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Periodic stride-2 convolution `C x`.

  Args:
    x: HR features `[N, 2H, 2W, C_in]` (even height and width).
    kernel: `[kh, kw, C_in, C_out]`.

  Returns:
    LR features `[N, H, W, C_out]`.
  """
  check_kernel(kernel)
  check_features(x, "x", kernel.shape[2], "C_in")
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f"x must have an even height and width (the HR grid), got shape {x.shape}")
  return _stride2_conv(x, kernel)


@jax.jit
def _stride2_conv(x, kernel):
  kh, kw = kernel.shape[:2]
  xp = jnp.pad(x, ((0, 0), (0, kh - 1), (0, kw - 1), (0, 0)), mode="wrap")
  return _valid_stride2_conv(xp, kernel.astype(x.dtype))


def transpose_conv_window(z: jax.Array, kernel: jax.Array, start: tuple[int, int],
                          size: tuple[int, int]) -> jax.Array:
  """A window of the periodic `Cᵀ z`: HR rows `[2 i0, 2 (i0 + H))`, cols `[2 j0, 2 (j0 + W))`.

  An ordinary transposed convolution (`lhs_dilation=2`, flipped kernel) of the LR rows/cols
  `[i0 - a, i0 + H)` (`a = ceil(kh / 2) - 1`), wrapping around only where the window needs it.

  Args:
    z: LR features `[N, h, w, C_out]` (periodic).
    kernel: `[kh, kw, C_in, C_out]`.
    start: first LR cell `(i0, j0)` of the window.
    size: window size `(H, W)` in LR cells, `i0 + H <= h`, `j0 + W <= w`.

  Returns:
    `[N, 2H, 2W, C_in]`.
  """
  kh, kw = kernel.shape[:2]
  ah, aw = (kh + 1) // 2 - 1, (kw + 1) // 2 - 1  # LR rows/cols before the window that reach it
  (i0, j0), (hh, ww) = start, size
  if i0 < ah or j0 < aw:  # the window needs wrapped-around LR rows/cols
    z = jnp.pad(z, ((0, 0), (ah, 0), (aw, 0), (0, 0)), mode="wrap")
    i0, j0 = i0 + ah, j0 + aw
  zs = z[:, i0 - ah:i0 + hh, j0 - aw:j0 + ww]
  padding = ((kh - 1 - 2 * ah, 1), (kw - 1 - 2 * aw, 1))  # drop 2a HR rows/cols before the window
  return dilated_transpose_conv(zs, kernel.astype(z.dtype), padding)


# The strided convolution below carries a custom JVP whose kernel tangent is a sum of per-tap
# matmuls: its transpose (the kernel gradient) is then strided slices + GEMMs. XLA-CPU's own kernel
# gradient of a strided convolution is an rhs-dilated convolution, which is extremely slow there.
# Symbolic-zero tangents skip the unused half (e.g. no per-tap matmuls when only `x` is
# differentiated). The transposed convolution (`dilated_transpose_conv`, above) needs no custom
# rule: its polyphase form is a stride-1 convolution.


def _is_zero(tangent) -> bool:
  return isinstance(tangent, SymbolicZero)


@jax.custom_jvp
def _valid_stride2_conv(xp, kernel):
  """`y[i] = Σ_u kernel[u]ᵀ xp[2i + u]` (VALID, stride 2): `[N, Hp, Wp, Ci]` -> `[N, H, W, Co]`."""
  return lax.conv_general_dilated(xp, kernel, (2, 2), "VALID", dimension_numbers=_DN)


def _stride2_taps(xp, dkernel, out_hw):
  """`Σ_u dkernel[u]ᵀ xp[2i + u]` as one matmul per tap (linear in `dkernel`)."""
  (kh, kw), (h, w) = dkernel.shape[:2], out_hw
  out = 0
  for u in range(kh):
    for v in range(kw):
      patch = lax.slice(xp, (0, u, v, 0), (xp.shape[0], u + 2 * h - 1, v + 2 * w - 1, xp.shape[3]),
                        (1, 2, 2, 1))
      out = out + jnp.einsum("nhwc,co->nhwo", patch, dkernel[u, v])
  return out


def _valid_stride2_conv_jvp(primals, tangents):
  xp, kernel = primals
  dxp, dkernel = tangents
  y = _valid_stride2_conv(xp, kernel)
  dy = jnp.zeros_like(y)
  if not _is_zero(dxp):
    dy = dy + lax.conv_general_dilated(dxp, kernel, (2, 2), "VALID", dimension_numbers=_DN)
  if not _is_zero(dkernel):
    dy = dy + _stride2_taps(xp, dkernel, y.shape[1:3])
  return y, dy


_valid_stride2_conv.defjvp(_valid_stride2_conv_jvp, symbolic_zeros=True)


def dilated_transpose_conv(y: jax.Array, kernel: jax.Array,
                           padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """The transposed stride-2 convolution, computed polyphase: one stride-1 conv on the LR grid.

  `x[q] = Σ_u kernel[u] y[(q + kh - 1 - lo - u) / 2]` (terms with a non-integer or out-of-range
  index are zero), per spatial axis with `padding = (lo, hi)`: the full scatter
  `full[2i + u] += kernel[u] y[i]` (length `2(H - 1) + kh`) with `kh - 1 - lo` leading and
  `kh - 1 - hi` trailing entries removed (negative: zeros added). This is what
  `lax.conv_general_dilated(y, flipped kernel, padding, lhs_dilation=2)` computes.

  The even and odd outputs of each axis are two small correlations of `y` with the even and odd
  taps of `kernel` (`ceil(kh / 2)` taps each). All four phases are one stride-1 convolution with
  `4 C_in` outputs, then interleaved (depth-to-space) and cropped. XLA-CPU runs the
  `lhs_dilation` form over the 4x larger zero-dilated input, and differentiates its kernel as an
  rhs-dilated convolution (9.7 s against 0.16 s forward at batch 8, LR 64); the polyphase form
  and its autodiff gradient are ordinary stride-1 convolutions (`benchmarks/convt_grad.py`).

  Args:
    y: LR features `[N, H, W, C_out]`.
    kernel: `[kh, kw, C_in, C_out]` (the kernel of the strided conv this is the adjoint of).
    padding: static `((lo_h, hi_h), (lo_w, hi_w))` of the dilated convolution.

  Returns:
    `[N, 2H + lo_h + hi_h - kh, 2W + lo_w + hi_w - kw, C_in]`.
  """
  (lo_h, hi_h), (lo_w, hi_w) = ((int(lo), int(hi)) for lo, hi in padding)
  n, h, w, c_out = y.shape
  kh, kw, c_in, _ = kernel.shape
  sh, sw = (kh + 1) // 2, (kw + 1) // 2  # taps per phase
  # kernel[2s + a] -> phase a, tap s; the correlation window y[q - S + 1 .. q] meets tap s at
  # position d = S - 1 - s, hence the flip.
  k = jnp.pad(kernel.astype(y.dtype), ((0, 2 * sh - kh), (0, 2 * sw - kw), (0, 0), (0, 0)))
  k = jnp.flip(k.reshape(sh, 2, sw, 2, c_in, c_out), (0, 2))        # [d_h, a, d_w, b, C_in, C_out]
  k = k.transpose(0, 2, 5, 1, 3, 4).reshape(sh, sw, c_out, 4 * c_in)  # HWIO, outputs (a, b, C_in)
  # Explicit zero padding + VALID: with the padding inside the conv, XLA-CPU's kernel gradient
  # was 80x slower (21.5 s against 0.27 s at batch 8, LR 128).
  y = jnp.pad(y, ((0, 0), (sh - 1, sh - 1), (sw - 1, sw - 1), (0, 0)))
  phases = lax.conv_general_dilated(y, k, (1, 1), "VALID", dimension_numbers=_DN)
  qh, qw = h + sh - 1, w + sw - 1  # phases: [N, qh, qw, (a, b, C_in)] -> rows 2q + a, cols 2q + b
  full = phases.reshape(n, qh, qw, 2, 2, c_in).transpose(0, 1, 3, 2, 4, 5)
  full = full.reshape(n, 2 * qh, 2 * qw, c_in)
  return _crop_or_pad(full, (kh - 1 - lo_h, 2 * h + lo_h + hi_h - kh),
                      (kw - 1 - lo_w, 2 * w + lo_w + hi_w - kw))


def _crop_or_pad(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
  """`x[:, start : start + size]` per spatial axis `(start, size)`, zeros where out of range."""
  config = [(0, 0, 0)]
  for (start, size), length in ((rows, x.shape[1]), (cols, x.shape[2])):
    config.append((-start, start + size - length, 0))  # lax.pad: negative = crop
  config.append((0, 0, 0))
  return lax.pad(x, jnp.zeros((), x.dtype), config)


def stride2_conv_transpose(y: jax.Array, kernel: jax.Array) -> jax.Array:
  """The exact adjoint `Cᵀ y` of `stride2_conv`.

  Args:
    y: LR features `[N, H, W, C_out]`.
    kernel: `[kh, kw, C_in, C_out]`.

  Returns:
    HR features `[N, 2H, 2W, C_in]`.
  """
  check_kernel(kernel)
  check_features(y, "y", kernel.shape[3], "C_out")
  return _stride2_conv_transpose(y, kernel)


@jax.jit
def _stride2_conv_transpose(y, kernel):
  return transpose_conv_window(y, kernel, (0, 0), y.shape[1:3])
