"""CMS-LapSRN: MS-LapSRN whose feature upsampler is the regularised inverse of a *tied* conv.

Identical to MS-LapSRN except the feature upsampler, which owns no kernel:

    up(y) = (1 + rho) tau * C^T (C C^T + rho tau I)^-1 y + b

where `C` is the stride-2 convolution with the kernel of conv `tie_to` of the recursive block (the
same parameter the block uses, so both uses send it gradients), `rho = softplus(theta)` is one
learned scalar and `tau = gram_scale(kernel)` (the mean eigenvalue of `C C^T`; gradient stopped
unless `tau_grad`). As `rho -> inf` the upsampler tends to the transposed conv with the tied
kernel (MS-LapSRN with `upconv.kernel := conv{tie_to}.kernel`); as `rho -> 0`, to `tau C^+`.

The solve is local (`ops.apply_local`): overlap-save windows of `solve_tile + 2 solve_halo` LR
pixels, each solved with ONE factor that depends on the tied kernel and theta only, so one factor
serves every image size, level and scale, and the model has a finite receptive radius. At the
image edge the feature map is extended symmetrically by `pad` LR pixels, then periodically (the
boundary of the global solve `ops.apply(..., boundary="symmetric")`, which the local solve
reproduces to ~1e-7; `docs/inverse_convolution.md`). Like MS-LapSRN it runs on size buckets
(`valid_hw`), and inference caches the factor (`apply(..., method="factor")`, passed back as
`apply(..., factor=...)`; `lapsrn_jax.inference`).

Ablation switches (fields of `CMSLapSRN`, passed on by `make_upsampler`): `fixed_rho > 0` uses
that constant instead of the learned rho (`inf`: the tied transposed conv itself, the limit), and
`upsampler_kernel_grad=False` stops the upsampler's gradient to the tied kernel (it then learns
from the recursive block alone).
"""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops
from lapsrn_jax.models import layers
from lapsrn_jax.models.ms_lapsrn import check_config, pyramid, recursive_block
from lapsrn_jax.ops.local_inverse import DEFAULT_HALO, DEFAULT_TILE


def softplus_inverse(rho: float) -> float:
  """theta with softplus(theta) = rho > 0."""
  if not rho > 0:
    raise ValueError(f"rho must be > 0, got {rho}")
  return float(rho + np.log(-np.expm1(-rho)))


def rho_tau(kernel: jax.Array, theta: jax.Array,
            tau_grad: bool = False) -> tuple[jax.Array, jax.Array]:
  """`rho = softplus(theta)`, `tau = gram_scale(kernel)` (gradient stopped unless `tau_grad`)."""
  tau = ops.gram_scale(kernel)
  return jax.nn.softplus(theta), tau if tau_grad else jax.lax.stop_gradient(tau)


def apply_tied_inverse(factor, y: jax.Array, rho: jax.Array, tau: jax.Array, bias: jax.Array, *,
                       pad: int = 8, valid_hw=None) -> jax.Array:
  """`(1 + rho) tau C^+_{rho tau} y + b` (the local solve), `factor` from `C C^T + rho tau I`.

  `y` `[N, H, W, F]` -> `[N, 2H, 2W, F]`; `pad`, `valid_hw`: `ops.apply_local`.
  """
  x = ops.apply_local(factor, y, pad=pad, valid_hw=valid_hw)
  return ((1 + rho) * tau).astype(x.dtype) * x + bias.astype(x.dtype)


def fixed_rho_tau(kernel: jax.Array, theta: jax.Array, tau_grad: bool = False,
                  fixed_rho: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """`rho_tau`, with rho replaced by the constant `fixed_rho` when it is > 0 (finite)."""
  rho, tau = rho_tau(kernel, theta, tau_grad)
  return (jnp.asarray(fixed_rho, rho.dtype) if fixed_rho else rho), tau


def tied_factor(kernel: jax.Array, theta: jax.Array, *, tile: int = DEFAULT_TILE,
                halo: int = DEFAULT_HALO,
                tau_grad: bool = False,
                fixed_rho: float = 0.0) -> ops.LocalInverseConvFactor | None:
  """The factor of `C C^T + rho tau I` on the solve's window grid: ONE for every image size,
  level and scale (`ops.factorize_local`); None for `fixed_rho = inf` (no solve)."""
  if fixed_rho == math.inf:
    return None
  rho, tau = fixed_rho_tau(kernel, theta, tau_grad, fixed_rho)
  return ops.factorize_local(kernel, rho * tau, tile=tile, halo=halo)


def make_upsampler(kernel: jax.Array, theta: jax.Array, bias: jax.Array, *, pad: int = 8,
                   tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO, tau_grad: bool = False,
                   fixed_rho: float = 0.0,
                   factor=None):
  """The tied upsampler `up(y, valid_hw=None)`: `[N, h, w, F]` -> `[N, 2h, 2w, F]`, any `h, w`.

  `fixed_rho`: 0 = `softplus(theta)` (learned); > 0 = that constant; `inf` = the tied MatConvNet
  transposed conv (the `rho -> inf` limit; no solve). `factor`: a precomputed `tied_factor`
  (None: computed here). `valid_hw`: `ops.apply_local` (the transposed conv needs none).
  """
  if fixed_rho == math.inf:
    return lambda y, valid_hw=None: layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP,
                                                            bias)
  rho, tau = fixed_rho_tau(kernel, theta, tau_grad, fixed_rho)
  if factor is None:
    factor = tied_factor(kernel, theta, tile=tile, halo=halo, tau_grad=tau_grad,
                         fixed_rho=fixed_rho)
  return lambda y, valid_hw=None: apply_tied_inverse(factor, y, rho, tau, bias, pad=pad,
                                                     valid_hw=valid_hw)


def tied_inverse_upsample(y: jax.Array, kernel: jax.Array, bias: jax.Array, theta: jax.Array, *,
                          pad: int = 8, tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO,
                          tau_grad: bool = False) -> jax.Array:
  """The CMS-LapSRN feature upsampler on its own.

  Args:
    y: LR features `[N, H, W, F]` (after the LReLU).
    kernel: the tied conv kernel `[3, 3, F, F]` (HWIO; `C` maps `2H x 2W` to `H x W`).
    bias: `[F]`. theta: scalar, `rho = softplus(theta)`.
  Returns:
    `[N, 2H, 2W, F]`, the MatConvNet ConvTranspose(3x3, crop [0 1 0 1]) geometry.
  """
  return make_upsampler(kernel, theta, bias, pad=pad, tile=tile, halo=halo, tau_grad=tau_grad)(y)


class TiedUpsamplerParams(nn.Module):
  """The parameters the tied upsampler owns: `bias [features]` and the scalar `theta`."""
  features: int
  rho_init: float = 1.0

  def setup(self):
    self.bias = self.param("bias", nn.initializers.zeros, (self.features,))
    self.theta = self.param("theta", nn.initializers.constant(softplus_inverse(self.rho_init)), ())


class CMSLapSRN(nn.Module):
  """CMS-LapSRN D{depth}R{recursions}, upsampler tied to conv `tie_to`; 185,938 parameters for D5.

  Parameters: those of `MSLapSRN` except `upconv`, which holds only `bias [F]` and the scalar
  `theta` (rho = softplus(theta), initialised to `rho_init`).
  `apply(..., lr [N, H, W, 1], scale=s)` -> tuple of `[N, 2^l H, 2^l W, 1]`, l = 1 .. log2(s).
  `valid_hw=(h, w)` (int `[2]` or `[N, 2]`, may be traced): size buckets, as in `MSLapSRN` (the
  outputs equal the model on the images alone in the top-left `2^l h x 2^l w`, zero elsewhere).
  Inputs smaller than `pad` work too: the symmetric extension then repeats the mirror (numpy's
  `'symmetric'` mode).
  """
  depth: int = 5
  recursions: int = 8
  tie_to: int = 3
  skip: str = "SS"
  pad: int = 8  # LR pixels of symmetric extension before the periodic wrap (0: periodic)
  rho_init: float = 1.0
  tau_grad: bool = False
  features: int = 64
  fixed_rho: float = 0.0  # ablation: > 0 = this rho instead of the learned one; inf = tied convT
  upsampler_kernel_grad: bool = True  # ablation: False = no upsampler gradient to the kernel
  solve_tile: int = DEFAULT_TILE  # LR pixels kept per window of the local solve (44)
  solve_halo: int = DEFAULT_HALO  # LR pixels of context per window side (10): window 64 x 64

  def setup(self):
    check_config(self.depth, self.recursions, self.skip)
    if not 1 <= self.tie_to <= self.depth:
      raise ValueError(f"tie_to must name a conv of the block (1 .. {self.depth}), "
                       f"got {self.tie_to}")
    if self.pad < 0:
      raise ValueError(f"pad must be >= 0, got {self.pad}")
    if self.solve_tile < 1 or self.solve_halo < 0:
      raise ValueError(f"need solve_tile >= 1 and solve_halo >= 0, got {self.solve_tile}, "
                       f"{self.solve_halo}")
    if not self.fixed_rho >= 0:
      raise ValueError(f"fixed_rho must be 0 (learned rho), > 0 or inf, got {self.fixed_rho}")
    f = self.features
    self.input_conv = layers.Conv(1, f, kernel_init=layers.input_normal)
    self.convs = [layers.Conv(f, f, name=f"conv{i + 1}") for i in range(self.depth)]
    self.upconv = TiedUpsamplerParams(f, self.rho_init)
    self.residual_conv = layers.Conv(f, 1)
    self.img_up = layers.image_upsampler()

  max_scale = None  # any power of two (the block and the upsampler are shared by all levels)

  def receptive_radius(self, scale: int) -> int:
    """LR pixels of context per side that determine an output pixel at `scale` (tiling).

    The local solve adds its halo (`solve_halo` pixels of each level's grid): the taps of the
    regularised inverse beyond it are below ~1e-6 of the largest for trained kernels, and the
    solve ignores them, so windows overlapping by this radius match the whole image to ~1e-6.
    """
    return layers.pyramid_receptive_radius(layers.num_levels(scale), self.depth * self.recursions,
                                           float(self.solve_halo))

  def tied_kernel(self) -> jax.Array:
    """The kernel of conv `tie_to` of the block: the parameter itself, not a copy."""
    return self.convs[self.tie_to - 1].kernel

  def block(self, x: jax.Array,
            keep: Callable[[jax.Array], jax.Array] = layers.keep_all) -> jax.Array:
    convs = [(c.kernel, c.bias) for c in self.convs]
    return recursive_block(x, convs, self.recursions, self.skip, keep)

  def factor(self) -> ops.LocalInverseConvFactor | None:
    """The upsampler's factor of `C C^T + rho tau I`: one for every size, level and scale
    (None for `fixed_rho = inf`); `apply(..., method="factor")`."""
    return tied_factor(self.upsampler_kernel(), self.upconv.theta, tile=self.solve_tile,
                       halo=self.solve_halo, tau_grad=self.tau_grad, fixed_rho=self.fixed_rho)

  def upsampler_kernel(self) -> jax.Array:
    """The tied kernel as the upsampler sees it (gradient stopped unless upsampler_kernel_grad)."""
    kernel = self.tied_kernel()
    return kernel if self.upsampler_kernel_grad else jax.lax.stop_gradient(kernel)

  def __call__(self, lr: jax.Array, *, scale: int, valid_hw: jax.Array | None = None,
               factor: ops.LocalInverseConvFactor | None = None) -> tuple[jax.Array, ...]:
    """`lr [N, H, W, 1]` -> the SR image of every level.

    `factor`: a precomputed `self.factor()`, e.g. cached across calls at inference or shared by
    the scales of a training step (gradients reach the tied kernel and theta through the solve
    only if it was computed inside the differentiated function). None: factorise here.
    """
    layers.check_input(lr)
    keep = layers.valid_region(lr.shape[1:3], valid_hw)
    up = make_upsampler(self.upsampler_kernel(), self.upconv.theta, self.upconv.bias,
                        pad=self.pad, tile=self.solve_tile, halo=self.solve_halo,
                        tau_grad=self.tau_grad, fixed_rho=self.fixed_rho, factor=factor)
    valid = None if valid_hw is None else jnp.asarray(valid_hw, jnp.int32)
    upsample = lambda level, y: up(y, None if valid is None else valid << level)
    return pyramid(lr, layers.num_levels(scale), self.input_conv, lambda x: self.block(x, keep),
                   upsample, self.residual_conv, self.img_up, keep)
