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
level, shared by the whole batch): see the XLA-CPU hang pitfall in the design notes.
"""

import math

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


def make_upsamplers(kernel: jax.Array, theta: jax.Array, bias: jax.Array, grids, *, pad: int = 8,
                    tau_grad: bool = False, fixed_rho: float = 0.0) -> list:
  """The tied upsampler of each LR grid in `grids` (`[(h, w), ...]`): callables `y -> up(y)`.

  `y` `[N, h, w, F]` -> `[N, 2h, 2w, F]`. One `ops.factorize_many` call for all grids (the
  XLA-CPU hang pitfall, inverse_conv.md). `fixed_rho`: 0 = `softplus(theta)` (learned); > 0 =
  that constant; `inf` = the tied MatConvNet transposed conv (the `rho -> inf` limit; no solve).
  """
  if fixed_rho == math.inf:
    up = lambda y: layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP, bias)
    return [up] * len(grids)
  rho, tau = rho_tau(kernel, theta, tau_grad)
  if fixed_rho:
    rho = jnp.asarray(fixed_rho, rho.dtype)
  factors = ops.factorize_many(kernel, rho * tau, list(grids), boundary="symmetric", pad=pad)
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

  def __call__(self, lr: jax.Array, *, scale: int) -> tuple[jax.Array, ...]:
    layers.check_input(lr)
    n = layers.num_levels(scale)
    h, w = lr.shape[1:3]
    kernel = self.tied_kernel()
    if not self.upsampler_kernel_grad:
      kernel = jax.lax.stop_gradient(kernel)
    # One factorisation call for every grid size of this call (one per level, whole batch).
    ups = make_upsamplers(kernel, self.upconv.theta, self.upconv.bias,
                          [(h << l, w << l) for l in range(n)], pad=self.pad,
                          tau_grad=self.tau_grad, fixed_rho=self.fixed_rho)
    upsample = lambda level, y: ups[level](y)

    return pyramid(lr, n, self.input_conv, self.block, upsample, self.residual_conv, self.img_up)
