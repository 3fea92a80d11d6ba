"""CMS-LapSRN: MS-LapSRN whose feature upsampler is the regularised inverse of a *tied* conv.

Identical to MS-LapSRN except the feature upsampler, which owns no kernel:

    up(y) = (1 + rho) tau * C^T (C C^T + rho tau I)^-1 y + b

where `C` is the periodic stride-2 convolution with the kernel of conv `tie_to` of the recursive
block (the same parameter the block uses, so both uses send it gradients), `rho = softplus(theta)`
is one learned scalar, `tau = gram_scale(kernel)` (the mean eigenvalue of `C C^T`; gradient
stopped unless `tau_grad`), and the solve uses a symmetric boundary of `pad` LR pixels
(`lapsrn_jax.ops`). As `rho -> inf` the upsampler tends to the transposed conv with the tied
kernel (MS-LapSRN with `upconv.kernel := conv{tie_to}.kernel`); as `rho -> 0`, to `tau C^+`.

Ablation switches (fields of `CMSLapSRN`, passed on by `make_upsamplers`): `fixed_rho > 0` uses
that constant instead of the learned rho (`inf`: the tied transposed conv itself, the limit), and
`upsampler_kernel_grad=False` stops the upsampler's gradient to the tied kernel (it then learns
from the recursive block alone).

All grid sizes of one call are factorised in ONE `ops.factorize_many` call (one factor per
level, shared by the whole batch): see the XLA-CPU hang pitfall in the design notes. The factors
depend only on the tied kernel, theta and the grid sizes: inference computes them once with
`apply(..., grids, method="factors")` and passes them back as `apply(..., factors=...)`
(`lapsrn_jax.inference` caches them). CMS-LapSRN is not size-bucketed like LapSRN / MS-LapSRN:
its Fourier solve couples the whole grid, so padding the input would change every output pixel.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops
from lapsrn_jax.models import layers
from lapsrn_jax.models.ms_lapsrn import check_config, pyramid, recursive_block


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


def apply_tied_inverse(factor, y: jax.Array, rho: jax.Array, tau: jax.Array,
                       bias: jax.Array) -> jax.Array:
  """`(1 + rho) tau C^+_{rho tau} y + b`, `factor` from `C C^T + rho tau I`.

  `y` `[N, H, W, F]` -> `[N, 2H, 2W, F]`.
  """
  x = ops.apply(factor, y)
  return ((1 + rho) * tau).astype(x.dtype) * x + bias.astype(x.dtype)


def fixed_rho_tau(kernel: jax.Array, theta: jax.Array, tau_grad: bool = False,
                  fixed_rho: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """`rho_tau`, with rho replaced by the constant `fixed_rho` when it is > 0 (finite)."""
  rho, tau = rho_tau(kernel, theta, tau_grad)
  return (jnp.asarray(fixed_rho, rho.dtype) if fixed_rho else rho), tau


def tied_factors(kernel: jax.Array, theta: jax.Array, grids, *, pad: int = 8,
                 tau_grad: bool = False, fixed_rho: float = 0.0) -> tuple:
  """Factors of `C C^T + rho tau I` for each LR grid in `grids`, in ONE `ops.factorize_many` call
  (the XLA-CPU hang pitfall, inverse_conv.md); `()` for `fixed_rho = inf` (no solve)."""
  if fixed_rho == math.inf:
    return ()
  rho, tau = fixed_rho_tau(kernel, theta, tau_grad, fixed_rho)
  return ops.factorize_many(kernel, rho * tau, list(grids), boundary="symmetric", pad=pad)


def make_upsamplers(kernel: jax.Array, theta: jax.Array, bias: jax.Array, grids, *, pad: int = 8,
                    tau_grad: bool = False, fixed_rho: float = 0.0, factors=None) -> list:
  """The tied upsampler of each LR grid in `grids` (`[(h, w), ...]`): callables `y -> up(y)`.

  `y` `[N, h, w, F]` -> `[N, 2h, 2w, F]`. `fixed_rho`: 0 = `softplus(theta)` (learned); > 0 =
  that constant; `inf` = the tied MatConvNet transposed conv (the `rho -> inf` limit; no solve).
  `factors`: precomputed `tied_factors` for `grids` (None: computed here).
  """
  if fixed_rho == math.inf:
    up = lambda y: layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP, bias)
    return [up] * len(grids)
  rho, tau = fixed_rho_tau(kernel, theta, tau_grad, fixed_rho)
  if factors is None:
    factors = tied_factors(kernel, theta, grids, pad=pad, tau_grad=tau_grad, fixed_rho=fixed_rho)
  return [lambda y, f=f: apply_tied_inverse(f, y, rho, tau, bias) for f in factors]


def tied_inverse_upsample(y: jax.Array, kernel: jax.Array, bias: jax.Array, theta: jax.Array, *,
                          pad: int = 8, tau_grad: bool = False) -> jax.Array:
  """The CMS-LapSRN feature upsampler on its own (factorises for `y`'s grid).

  Args:
    y: LR features `[N, H, W, F]` (after the LReLU).
    kernel: the tied conv kernel `[3, 3, F, F]` (HWIO; `C` maps `2H x 2W` to `H x W`).
    bias: `[F]`. theta: scalar, `rho = softplus(theta)`.
  Returns:
    `[N, 2H, 2W, F]`, the MatConvNet ConvTranspose(3x3, crop [0 1 0 1]) geometry.
  """
  rho, tau = rho_tau(kernel, theta, tau_grad)
  factor = ops.factorize(kernel, rho * tau, y.shape[1:3], boundary="symmetric", pad=pad)
  return apply_tied_inverse(factor, y, rho, tau, bias)


def level_grids(lr_hw: tuple[int, int], num_levels: int) -> tuple[tuple[int, int], ...]:
  """The LR grid of each level's upsampler: `(H 2^l, W 2^l)`, l = 0 .. num_levels - 1."""
  h, w = lr_hw
  return tuple((h << l, w << l) for l in range(num_levels))


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
  Inputs smaller than `pad` work too: the symmetric padding then repeats the mirror (numpy's
  `'symmetric'` mode).
  """
  depth: int = 5
  recursions: int = 8
  tie_to: int = 3
  skip: str = "SS"
  pad: int = 8
  rho_init: float = 1.0
  tau_grad: bool = False
  features: int = 64
  fixed_rho: float = 0.0  # ablation: > 0 = this rho instead of the learned one; inf = tied convT
  upsampler_kernel_grad: bool = True  # ablation: False = no gradient from the upsampler to the kernel

  def setup(self):
    check_config(self.depth, self.recursions, self.skip)
    if not 1 <= self.tie_to <= self.depth:
      raise ValueError(f"tie_to must name a conv of the block (1 .. {self.depth}), "
                       f"got {self.tie_to}")
    if self.pad < 0:
      raise ValueError(f"pad must be >= 0, got {self.pad}")
    if not self.fixed_rho >= 0:
      raise ValueError(f"fixed_rho must be 0 (learned rho), > 0 or inf, got {self.fixed_rho}")
    f = self.features
    self.input_conv = layers.Conv(1, f, kernel_init=layers.input_normal)
    self.convs = [layers.Conv(f, f, name=f"conv{i + 1}") for i in range(self.depth)]
    self.upconv = TiedUpsamplerParams(f, self.rho_init)
    self.residual_conv = layers.Conv(f, 1)
    self.img_up = layers.image_upsampler()

  def tied_kernel(self) -> jax.Array:
    """The kernel of conv `tie_to` of the block: the parameter itself, not a copy."""
    return self.convs[self.tie_to - 1].kernel

  def block(self, x: jax.Array) -> jax.Array:
    convs = [(c.kernel, c.bias) for c in self.convs]
    return recursive_block(x, convs, self.recursions, self.skip)

  def factor_inputs(self) -> tuple[jax.Array, jax.Array]:
    """What the factors depend on besides the grid sizes: `(tied kernel, theta)`."""
    return self.tied_kernel(), self.upconv.theta

  def factors(self, grids) -> tuple[ops.InverseConvFactor, ...]:
    """The upsampler's factors of `C C^T + rho tau I`, one per LR grid `(H, W)` in `grids`.

    One `ops.factorize_many` call; `apply(..., grids, method="factors")`.
    """
    return tied_factors(self.upsampler_kernel(), self.upconv.theta, grids, pad=self.pad,
                        tau_grad=self.tau_grad, fixed_rho=self.fixed_rho)

  def upsampler_kernel(self) -> jax.Array:
    """The tied kernel as the upsampler sees it (gradient stopped unless upsampler_kernel_grad)."""
    kernel = self.tied_kernel()
    return kernel if self.upsampler_kernel_grad else jax.lax.stop_gradient(kernel)

  def __call__(self, lr: jax.Array, *, scale: int,
               factors: Sequence[ops.InverseConvFactor] | None = None) -> tuple[jax.Array, ...]:
    """`lr [N, H, W, 1]` -> the SR image of every level.

    `factors`: precomputed `self.factors(level_grids((H, W), log2(scale)))`, e.g. cached across
    calls at inference (gradients reach the tied kernel and theta through the solve only if they
    were computed inside the differentiated function). None: factorise here.
    """
    layers.check_input(lr)
    n = layers.num_levels(scale)
    grids = level_grids(lr.shape[1:3], n)
    if self.fixed_rho == math.inf:
      factors = None
    elif factors is not None and tuple(f.lr_shape for f in factors) != grids:
      raise ValueError(f"factors are for the grids {tuple(f.lr_shape for f in factors)}, this "
                       f"input and scale need {grids}")
    ups = make_upsamplers(self.upsampler_kernel(), self.upconv.theta, self.upconv.bias, grids,
                          pad=self.pad, tau_grad=self.tau_grad, fixed_rho=self.fixed_rho,
                          factors=factors)
    upsample = lambda level, y: ups[level](y)

    return pyramid(lr, n, self.input_conv, self.block, upsample, self.residual_conv, self.img_up)
