"""The LapSRN training loss (official `vllab_nn_L1_loss.m` + `vllab_dag_loss.m`).

Charbonnier penalty `sqrt(d^2 + eps^2)` (eps = 1e-3) summed over the pixels of every pyramid
level of every image, all levels weight 1; the sum is divided by the global batch size
(MatConvNet divides the gradients by the batch size).
"""

from typing import Sequence

import jax
import jax.numpy as jnp


def charbonnier(diff: jax.Array, eps: float = 1e-3) -> jax.Array:
  """Elementwise `sqrt(diff^2 + eps^2)`, same shape as `diff`."""
  return jnp.sqrt(jnp.square(diff) + eps * eps)


def pyramid_loss_per_image(outputs: Sequence[jax.Array], targets: Sequence[jax.Array],
                           eps: float = 1e-3) -> jax.Array:
  """Charbonnier loss of each image summed over its pixels and pyramid levels.

  Args:
    outputs: the model's SR images per level, `[N, H_l, W_l, 1]` (2x first).
    targets: the HR targets of the same levels and shapes.
    eps: Charbonnier epsilon.

  Returns:
    `[N]` float32 per-image sums.
  """
  if len(outputs) != len(targets):
    raise ValueError(f"the model returned {len(outputs)} pyramid levels but the batch has "
                     f"{len(targets)} targets")
  total = 0.0
  for out, tgt in zip(outputs, targets):
    if out.shape != tgt.shape:
      raise ValueError(f"output shape {out.shape} != target shape {tgt.shape}")
    total = total + jnp.sum(charbonnier(out.astype(jnp.float32) - tgt, eps), axis=(1, 2, 3))
  return total


def batch_loss(per_image: Sequence[jax.Array], weights: Sequence[jax.Array],
               batch_size: int) -> jax.Array:
  """`sum_i w_i * loss_i / batch_size` over the chunks of every scale (scalar).

  `weights` are 1 for real images and 0 for the padding that makes a chunk divisible by the device
  count, so padding never changes the loss or its gradient.
  """
  total = 0.0
  for loss, w in zip(per_image, weights):
    total = total + jnp.sum(loss * w)
  return total / batch_size
