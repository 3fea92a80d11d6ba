"""Regularised inverse of the periodic stride-2 convolution, in the Fourier domain.

    C⁺_λ y = Cᵀ (C Cᵀ + λ I)⁻¹ y        (minimum-norm Tikhonov inverse, λ > 0 absolute)

`C Cᵀ` is a stride-1 convolution on the LR grid with `C_out × C_out` matrix taps
`A_s = Σ_t W_tᵀ W_{t-2s}` (`W_t = kernel[t]`, `s ∈ {-1, 0, 1}²` for 3×3 and 4×4 kernels), so
its transfer function `G(m) = Σ_s A_s e^{2πi m·s / (H, W)}` is block-diagonal over the rfft2
frequencies `m`. `factorize` stores the explicit inverse `(G(m) + λI)⁻¹` per frequency and
`apply` computes

    z = irfft2((G + λI)⁻¹ rfft2(y)),    x = Cᵀ z

with one batched complex matmul (frequencies as the batch, images as rows) and an ordinary
transposed convolution. Measured alternatives (real 2C×2C form, images as columns, polyphase
`Cᵀ`) were no faster on XLA-CPU; the complex form needs half the memory of the real one.
The maths, the measurements and the checks: `docs/inverse_convolution.md`.

Boundary handling: `"periodic"` is the exact operator on the torus; `"symmetric"` pads the LR
input by `pad` pixels (numpy `'symmetric'`), solves on the padded torus and crops `2 pad` HR pixels.

The per-frequency inverse is computed with matmuls only (`hermitian_inverse`: no LAPACK, no
triangular solves, which can hang XLA-CPU when independent; jax 0.10.2). Still factorise all grid
sizes of one program with ONE `factorize_many` call: one batched inversion, one compilation.
"""

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lapsrn_jax.ops.hermitian_inverse import hermitian_inverse
from lapsrn_jax.ops.stride2 import check_features, check_kernel, transpose_conv_window

# Full float32 matmuls in the solve: GPUs default to TF32 (10-bit mantissa) and TPUs to bf16
# passes, too coarse for (G + lam I)^-1 when lam is small. No effect on CPU.
_EXACT = lax.Precision.HIGHEST

BOUNDARIES = ("periodic", "symmetric")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("kernel", "inverse", "lam"),
    meta_fields=("lr_shape", "boundary", "pad"),
)
@dataclasses.dataclass(frozen=True)
class InverseConvFactor:
  """The image-independent part of `C⁺_λ` for one LR grid size (a pytree).

  Attributes:
    kernel: `[kh, kw, C_in, C_out]`, the kernel of `C`.
    inverse: `[F, C_out, C_out]` complex, `(G(m) + λI)⁻ᵀ` (the transpose, i.e. the complex
      conjugate, of the Hermitian inverse) at the `F = Hp (Wp // 2 + 1)` rfft2 frequencies of the
      padded grid `(Hp, Wp)`, row-major in `(m1, m2)`.
    lam: scalar `λ`.
    lr_shape: static unpadded LR size `(H, W)` that `apply` accepts.
    boundary: static, `"periodic"` or `"symmetric"`.
    pad: static LR padding per side (0 for `"periodic"`).
  """

  kernel: jax.Array
  inverse: jax.Array
  lam: jax.Array
  lr_shape: tuple[int, int]
  boundary: str
  pad: int

  @property
  def grid_shape(self) -> tuple[int, int]:
    """The padded LR grid `(H + 2 pad, W + 2 pad)` on which the Fourier solve runs."""
    return (self.lr_shape[0] + 2 * self.pad, self.lr_shape[1] + 2 * self.pad)


def gram_scale(kernel: jax.Array) -> jax.Array:
  """`τ = ‖kernel‖²_F / C_out`, the mean eigenvalue of `C Cᵀ` (a scalar)."""
  check_kernel(kernel)
  return jnp.sum(jnp.square(kernel)) / kernel.shape[3]


# ----------------------------------------------------------------------------- validation


def _check_lam(lam) -> None:
  if jnp.ndim(lam) != 0:
    raise ValueError(f"lam must be a scalar, got shape {jnp.shape(lam)}")
  if isinstance(lam, jax.core.Tracer):
    return  # traced: cannot be checked, must stay differentiable
  if not float(lam) > 0:
    raise ValueError(f"lam must be > 0 (an absolute regulariser, e.g. rho * gram_scale(kernel)), "
                     f"got {float(lam)}")


def _check_geometry(boundary, pad) -> int:
  if boundary not in BOUNDARIES:
    raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
  if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
    raise ValueError(f"pad must be an integer >= 0 (LR pixels per side), got {pad!r}")
  return int(pad) if boundary == "symmetric" else 0


def _check_lr_shape(lr_shape) -> tuple[int, int]:
  shape = tuple(lr_shape)
  if len(shape) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
    raise ValueError(f"lr_shape must be (H, W) with positive integers, got {lr_shape!r}")
  return (int(shape[0]), int(shape[1]))


# ----------------------------------------------------------------------------- factorisation


def _gram_taps(kernel: jax.Array) -> tuple[list[tuple[int, int]], jax.Array, jax.Array]:
  """Taps of `C Cᵀ` as a stride-1 LR correlation: `(C Cᵀ y)[i] = Σ_s A_s y[i + s]`.

  Returns `(offsets, A_0, A)`: `A_0 = Σ_t W_tᵀ W_t` `[C_out, C_out]` and the taps `A[k] = A_s`
  `[S, C_out, C_out]` for the half set of offsets `s > 0` (lexicographic); `A_{-s} = A_sᵀ`.
  """
  kh, kw = kernel.shape[:2]
  offsets, taps = [], []
  for s1 in range(0, (kh - 1) // 2 + 1):
    for s2 in range(-((kw - 1) // 2), (kw - 1) // 2 + 1):
      if s1 == 0 and s2 <= 0:
        continue
      d1, d2 = 2 * s1, 2 * s2  # A_s = Σ_t W_tᵀ W_{t - 2s}
      w_t = kernel[d1:, max(d2, 0):kw + min(d2, 0)]
      w_shift = kernel[:kh - d1, max(-d2, 0):kw - max(d2, 0)]
      offsets.append((s1, s2))
      taps.append(jnp.einsum("abco,abcp->op", w_t, w_shift, precision=_EXACT))
  a0 = jnp.einsum("abco,abcp->op", kernel, kernel, precision=_EXACT)
  taps = jnp.stack(taps) if taps else jnp.zeros((0,) + a0.shape, a0.dtype)
  return offsets, a0, taps


def _phase_tables(offsets, grid, dtype) -> tuple[np.ndarray, np.ndarray]:
  """cos/sin of `2π (m1 s1 / Hp + m2 s2 / Wp)` over the rfft2 frequencies `m`: `[F, S]` each."""
  hp, wp = grid
  s = np.asarray(offsets, np.float64).reshape(-1, 2)
  m1, m2 = np.meshgrid(np.arange(hp), np.arange(wp // 2 + 1), indexing="ij")
  theta = 2 * np.pi * (m1.reshape(-1, 1) * s[:, 0] / hp + m2.reshape(-1, 1) * s[:, 1] / wp)
  return np.cos(theta).astype(dtype), np.sin(theta).astype(dtype)


def _gram_spectrum(a0, taps, offsets, grids):
  """`G(m) = Gr + i Gi` per frequency of every grid (concatenated), `[F_total, C, C]` each.

  Gr is symmetric and Gi antisymmetric. One 2-D GEMM `[F, S] @ [S, C²]` per grid and part:
  the kernel gradient is then a GEMM on the cotangent as laid out (an elementwise form
  materialised `[F, C, C]` tables, an einsum form transposed the cotangent, 10× slower), and
  each grid's values do not depend on the other grids.
  """
  gr, gi = [], []
  for grid in grids:
    cos, sin = _phase_tables(offsets, grid, a0.dtype)
    r, i = _spectrum_at(a0, taps, cos, sin)
    gr.append(r)
    gi.append(i)
  return jnp.concatenate(gr), jnp.concatenate(gi)


def _spectrum_at(a0, taps, cos, sin):
  """`(Gr, Gi)` `[F, C, C]` at the frequencies of the phase tables `cos`, `sin` `[F, S]`."""
  c = a0.shape[-1]
  sym = (taps + jnp.swapaxes(taps, 1, 2)).reshape(-1, c * c)
  anti = (taps - jnp.swapaxes(taps, 1, 2)).reshape(-1, c * c)
  return (a0 + jnp.dot(cos, sym, precision=_EXACT).reshape(-1, c, c),
          jnp.dot(sin, anti, precision=_EXACT).reshape(-1, c, c))


def factorize_many(kernel: jax.Array, lam, lr_shapes: Sequence[tuple[int, int]], *,
                   boundary: str = "periodic", pad: int = 8) -> tuple[InverseConvFactor, ...]:
  """Factorises `C Cᵀ + λI` for several LR grid sizes in ONE batched inversion.

  Results are identical to separate `factorize` calls; use this when one jitted program needs
  several sizes (it avoids independent batched solves, see the module docstring). Repeated
  shapes are factorised once.

  Args:
    kernel: `[kh, kw, C_in, C_out]`.
    lam: scalar `λ > 0` (absolute; e.g. `ρ · gram_scale(kernel)`). Traceable.
    lr_shapes: unpadded LR sizes `(H, W)`.
    boundary: `"periodic"` (exact) or `"symmetric"` (pad, solve, crop).
    pad: LR pixels per side for `"symmetric"`; ignored for `"periodic"`.

  Returns:
    One `InverseConvFactor` per entry of `lr_shapes`.
  """
  check_kernel(kernel)
  _check_lam(lam)
  pad = _check_geometry(boundary, pad)
  shapes = [_check_lr_shape(s) for s in lr_shapes]
  unique = list(dict.fromkeys(shapes))
  grids = [(h + 2 * pad, w + 2 * pad) for h, w in unique]

  dtype = jnp.result_type(kernel.dtype, jnp.float32)
  kernel = jnp.asarray(kernel, dtype)
  lam = jnp.asarray(lam, dtype)
  inverses = _factorize_grids(kernel, lam, tuple(grids))
  factors = {shape: InverseConvFactor(kernel, inverse, lam, shape, boundary, pad)
             for shape, inverse in zip(unique, inverses)}
  return tuple(factors[s] for s in shapes)


@functools.partial(jax.jit, static_argnames="grids")
def _factorize_grids(kernel, lam, grids):
  """`(G + λI)⁻ᵀ` for every grid, `[Hp (Wp // 2 + 1), C_out, C_out]` each, in one inversion."""
  offsets, a0, taps = _gram_taps(kernel)
  gr, gi = _gram_spectrum(a0, taps, offsets, grids)
  gr = gr + lam * jnp.eye(gr.shape[-1], dtype=kernel.dtype)
  p, q = hermitian_inverse(gr, gi)
  inverse = lax.complex(p, -q)  # (G + λI)⁻ᵀ = conj((G + λI)⁻¹), [F_total, C_out, C_out]
  sizes = np.cumsum([hp * (wp // 2 + 1) for hp, wp in grids])[:-1]
  return tuple(jnp.split(inverse, sizes))


def factorize(kernel: jax.Array, lam, lr_shape: tuple[int, int], *,
              boundary: str = "periodic", pad: int = 8) -> InverseConvFactor:
  """Factorises `C Cᵀ + λI` for one LR grid size; see `factorize_many` for the arguments."""
  return factorize_many(kernel, lam, [lr_shape], boundary=boundary, pad=pad)[0]


# ----------------------------------------------------------------------------- application


def _precondition(y: jax.Array, inverse: jax.Array) -> jax.Array:
  """`z = (C Cᵀ + λI)⁻¹ y` on the torus: `[N, Hp, Wp, C]` -> same shape.

  Images are the rows of one batched complex matmul per frequency: `Ẑ(m)ᵀ = Ŷ(m)ᵀ (G + λI)⁻ᵀ`.
  """
  n, hp, wp, c = y.shape
  wf = wp // 2 + 1
  spec = jnp.fft.rfft2(jnp.transpose(y, (0, 3, 1, 2)))  # [N, C, Hp, Wf]
  rows = spec.transpose(2, 3, 0, 1).reshape(hp * wf, n, c)  # [F, N, C]
  spec_z = jnp.matmul(rows, inverse, precision=_EXACT).reshape(hp, wf, n, c).transpose(2, 3, 0, 1)
  return jnp.fft.irfft2(spec_z, s=(hp, wp)).transpose(0, 2, 3, 1)


def apply(factor: InverseConvFactor, y: jax.Array) -> jax.Array:
  """`C⁺_λ y = Cᵀ (C Cᵀ + λI)⁻¹ y` with a precomputed factor.

  Args:
    factor: from `factorize` / `factorize_many` (any batch size, same LR size).
    y: LR features `[N, H, W, C_out]`, `(H, W) == factor.lr_shape`.

  Returns:
    HR features `[N, 2H, 2W, C_in]`.
  """
  check_features(y, "y", factor.kernel.shape[3], "C_out")
  if tuple(y.shape[1:3]) != factor.lr_shape:
    raise ValueError(f"y has LR size {tuple(y.shape[1:3])} but the factor was built for "
                     f"{factor.lr_shape}; factorize for this size (factorize_many for several)")
  return _apply(factor.kernel, factor.inverse, y.astype(factor.kernel.dtype), factor.pad)


@functools.partial(jax.jit, static_argnames="pad")
def _apply(kernel, inverse, y, pad):
  lr_shape = y.shape[1:3]
  if pad:
    y = jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
  z = _precondition(y, inverse)
  return transpose_conv_window(z, kernel, (pad, pad), lr_shape)


def inverse_conv(y: jax.Array, kernel: jax.Array, lam, *, boundary: str = "periodic",
                 pad: int = 8) -> jax.Array:
  """One-shot `C⁺_λ y = Cᵀ (C Cᵀ + λI)⁻¹ y`: `[N, H, W, C_out]` -> `[N, 2H, 2W, C_in]`.

  Equals `apply(factorize(kernel, lam, y.shape[1:3], boundary=..., pad=...), y)`. `lam > 0` is
  absolute (e.g. `ρ · gram_scale(kernel)`); `boundary="symmetric"` pads `y` by `pad` LR pixels
  (numpy `'symmetric'`), solves and crops `2 pad` HR pixels.
  """
  check_kernel(kernel)
  check_features(y, "y", kernel.shape[3], "C_out")
  return apply(factorize(kernel, lam, y.shape[1:3], boundary=boundary, pad=pad), y)
