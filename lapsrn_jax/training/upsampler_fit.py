"""Stage 1 of the MS -> CMS-LapSRN fine-tuning recipe: fit the tied upsampler to the old upconv.

The CMS-LapSRN converted from MS-LapSRN weights (`weights.cms_params_from_ms`) keeps the trunk
but swaps the feature upsampler `y -> ConvT(y; upconv.kernel) + b` for the tied inverse
`y -> (1 + rho) tau C^+_{rho tau} y + b` (`models.cms_lapsrn`). This module fits the upsampler's
own parameters (`theta`, `bias`, optionally the tied kernel) so that, on the LR features the
MS-LapSRN trunk produces for real patches, the new upsampler reproduces the old one's output:

    loss = mean over levels, pixels, channels of (up_CMS(y) - up_MS(y))^2

a local objective (no trunk, no image loss) that converges in a few hundred Adam steps.

Caveat: the tied kernel is also conv `tie_to` of the recursive block, so fitting it
(`train_kernel=True`) changes the trunk as well; the features stay those of the original MS trunk
(the teacher), so the full network must be re-evaluated afterwards. Measured (D5R8, conv3, Set5
224-px crops, x2/x4 dB; MS-LapSRN 38.63/32.62, bicubic 34.19/29.02): converted 23.20/17.90;
theta+bias, 200 steps 30.90/22.71 (converged by ~80 steps); + kernel at Adam 1e-4 31.73/25.57;
+ kernel at Adam 1e-3 (lower feature loss) 8.75/5.29: the trunk breaks. Stage 1 alone does not
recover the network; it is a warm start for end-to-end fine-tuning.
"""

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lapsrn_jax.models import layers
from lapsrn_jax.models.cms_lapsrn import make_upsampler
from lapsrn_jax.models.ms_lapsrn import pyramid
from lapsrn_jax.ops.local_inverse import DEFAULT_HALO, DEFAULT_TILE

Grid = tuple[int, int]
# `{(h, w): (y [M, h, w, F] LR features after the LReLU, target [M, 2h, 2w, F] MS upconv output)}`
Features = dict[Grid, tuple[jax.Array, jax.Array]]


def _collect_inputs(module, lr, scale):
  """Flax method: the feature upsampler's inputs of every level of an MS-LapSRN module."""
  inputs = []

  def upsample(level, y):
    del level
    inputs.append(y)
    return module.upconv(y)

  pyramid(lr, layers.num_levels(scale), module.input_conv, module.block, upsample,
          module.residual_conv, module.img_up)
  return tuple(inputs)


def upsampler_inputs(ms_model, ms_params, lr: jax.Array, scale: int) -> tuple[jax.Array, ...]:
  """The LR features `LReLU(block(.))` the MS-LapSRN upconv sees at each level.

  Args:
    ms_model: an `MSLapSRN`; ms_params: its params.
    lr: `[N, H, W, 1]` Y in [0, 1].
  Returns:
    `log2(scale)` arrays `[N, 2^l H, 2^l W, F]`, l = 0 .. log2(scale) - 1.
  """
  return ms_model.apply({"params": ms_params}, lr, scale, method=_collect_inputs)


def ms_upconv(ms_params, y: jax.Array) -> jax.Array:
  """MS-LapSRN's feature upsampler on `y` `[N, H, W, F]` -> `[N, 2H, 2W, F]` (the teacher)."""
  up = ms_params["upconv"]
  return layers.conv_transpose2x(y, up["kernel"], layers.FEATURE_UP_CROP, up["bias"])


def collect_features(ms_model, ms_params, lr_batches: Mapping[int, np.ndarray]) -> Features:
  """Teacher features and targets of every level, grouped by LR grid size.

  Args:
    lr_batches: `{scale: lr [N_s, H_s, W_s, 1]}` (e.g. a batch of `data.make_train_iterator`:
      `{s: batch[f"x{s}"]["lr"]}`).
  Returns:
    `{(h, w): (y [M, h, w, F], ms_upconv(y) [M, 2h, 2w, F])}` over all scales and levels.
  """
  if not lr_batches:
    raise ValueError("lr_batches is empty: give at least one {scale: lr [N, H, W, 1]}")
  grouped: dict[Grid, list[jax.Array]] = {}
  for scale, lr in sorted(lr_batches.items()):
    fn = jax.jit(lambda p, x, s=scale: upsampler_inputs(ms_model, p, x, s))
    for y in fn(ms_params, jnp.asarray(lr, jnp.float32)):
      grouped.setdefault(tuple(y.shape[1:3]), []).append(y)
  teacher = jax.jit(ms_upconv)
  out = {}
  for grid, ys in sorted(grouped.items()):
    y = jnp.concatenate(ys)
    out[grid] = (y, teacher(ms_params, y))
  return out


def fit_params_of(cms_params, tie_to: int, train_kernel: bool = False) -> dict:
  """The fitted subset `{"theta", "bias"[, "kernel"]}` of CMS-LapSRN params."""
  sub = {"theta": cms_params["upconv"]["theta"], "bias": cms_params["upconv"]["bias"]}
  if train_kernel:
    sub["kernel"] = cms_params[f"conv{tie_to}"]["kernel"]
  return sub


def merge_fit_params(cms_params, fit: Mapping, tie_to: int) -> dict:
  """`cms_params` with `fit` (from `fit_params_of`) written back; the input is not modified."""
  out = dict(cms_params)
  out["upconv"] = dict(cms_params["upconv"], theta=fit["theta"], bias=fit["bias"])
  if "kernel" in fit:
    out[f"conv{tie_to}"] = dict(cms_params[f"conv{tie_to}"], kernel=fit["kernel"])
  return out


def feature_loss(fit: Mapping, kernel: jax.Array, features: Features, *, pad: int = 8,
                 border: int = 0, tau_grad: bool = False, fixed_rho: float = 0.0,
                 tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO) -> jax.Array:
  """Mean squared error between the tied upsampler and the MS upconv outputs, all grids.

  Args:
    fit: `{"theta": (), "bias": [F]}`, plus `"kernel"` `[3, 3, F, F]` to override `kernel`.
    kernel: the tied kernel (conv `tie_to` of the block) used when `fit` has none.
    features: from `collect_features`.
    pad, tau_grad, fixed_rho, tile, halo: the model's fields (`pad`, `tau_grad`, `fixed_rho`,
      `solve_tile`, `solve_halo`; `models.cms_lapsrn.make_upsampler`).
    border: HR rows/cols skipped at the top and left (at row/col 0 the symmetric boundary sees
      a mirrored LR pixel where the MatConvNet convT sees zeros; 0 = the model's real objective).
  Returns:
    scalar, averaged over every element of every grid.
  """
  kernel = fit.get("kernel", kernel)
  up = make_upsampler(kernel, fit["theta"], fit["bias"], pad=pad, tile=tile, halo=halo,
                      tau_grad=tau_grad, fixed_rho=fixed_rho)
  total, count = 0.0, 0
  for y, target in features.values():
    d = (up(y) - target)[:, border:, border:]
    total = total + jnp.sum(jnp.square(d))
    count += d.size
  return total / count


def relative_error(loss: float, features: Features) -> float:
  """sqrt(loss / mean square of the targets): the RMS error relative to the targets' RMS."""
  energy = sum(float(jnp.sum(jnp.square(t))) for _, t in features.values())
  count = sum(t.size for _, t in features.values())
  return float(np.sqrt(loss / (energy / count)))


def fit_upsampler(cms_params, features: Features, *, tie_to: int, steps: int,
                  learning_rate: float = 3e-2, kernel_learning_rate: float = 1e-4,
                  train_kernel: bool = False, pad: int = 8, tau_grad: bool = False,
                  fixed_rho: float = 0.0, tile: int = DEFAULT_TILE,
                  halo: int = DEFAULT_HALO) -> tuple[dict, np.ndarray]:
  """Adam on `feature_loss` over `theta`, `bias` (and the tied kernel if `train_kernel`).

  Full-batch: every step sees all of `features`. Returns `(cms_params with the fitted values,
  losses [steps + 1])` (losses[0] before the first step, losses[-1] of the returned params).
  """
  if steps < 0:
    raise ValueError(f"steps must be >= 0, got {steps}")
  if f"conv{tie_to}" not in cms_params:
    raise ValueError(f"tie_to={tie_to} names no conv of the params "
                     f"(have {sorted(k for k in cms_params if k.startswith('conv'))})")
  fit = fit_params_of(cms_params, tie_to, train_kernel)
  kernel = cms_params[f"conv{tie_to}"]["kernel"]
  labels = {k: "kernel" if k == "kernel" else "upsampler" for k in fit}
  opt = optax.multi_transform({"upsampler": optax.adam(learning_rate),
                               "kernel": optax.adam(kernel_learning_rate)}, labels)
  loss_fn = lambda f: feature_loss(f, kernel, features, pad=pad, tau_grad=tau_grad,
                                   fixed_rho=fixed_rho, tile=tile, halo=halo)

  @jax.jit
  def step(f, state):
    loss, grads = jax.value_and_grad(loss_fn)(f)
    updates, state = opt.update(grads, state, f)
    return optax.apply_updates(f, updates), state, loss

  state, losses = opt.init(fit), []
  for _ in range(steps):
    fit, state, loss = step(fit, state)
    losses.append(loss)
  losses.append(jax.jit(loss_fn)(fit))
  return merge_fit_params(cms_params, fit, tie_to), np.asarray(jax.device_get(losses))


__all__ = ["Features", "collect_features", "feature_loss", "fit_params_of", "fit_upsampler",
           "merge_fit_params", "ms_upconv", "relative_error", "upsampler_inputs"]
