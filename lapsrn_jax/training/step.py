"""The jitted training step: loss over all scales and levels, gradients, optimiser update."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from lapsrn_jax.training import losses, sharding
from lapsrn_jax.training.state import TrainState


def _all_finite(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def shared_factor(model: nn.Module, params):
  """The model's image-independent factor, computed once per step for every scale and level.

  CMS-LapSRN's local solve factor depends on the tied kernel and theta only (not on the grid
  sizes), so one `factor` call serves every chunk of the batch. Computed inside the
  differentiated loss, so gradients reach the tied kernel and theta through it. None for models
  without one (LapSRN, MS-LapSRN, CMS-LapSRN with `fixed_rho=inf`).
  """
  return model.apply({"params": params}, method="factor")


def make_loss_fn(model: nn.Module, batch_size: int, eps: float) -> Callable:
  """`loss_fn(params, batch) -> (loss, {"loss_x2": ..., ...})`.

  `batch` is `{"x<s>": {"lr", "targets", "weight"}}` (see `sharding.shard_batch`); the per-scale
  entries are each scale's share of the loss (they sum to `loss`). CMS-LapSRN factorises once
  per step (`shared_factor`).
  """
  def loss_fn(params, batch):
    per_scale = {}
    factor = shared_factor(model, params)
    for key in sorted(batch, key=lambda k: int(k[1:])):
      chunk = batch[key]
      outputs = model.apply({"params": params}, chunk["lr"], scale=int(key[1:]), factor=factor)
      per_image = losses.pyramid_loss_per_image(outputs, chunk["targets"], eps)
      per_scale[f"loss_{key}"] = losses.batch_loss([per_image], [chunk["weight"]], batch_size)
    return sum(per_scale.values()), per_scale
  return loss_fn


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, *,
                    batch_size: int, eps: float) -> Callable:
  """`train_step(state, batch) -> (state, metrics)`, jitted over `mesh`, `state` donated.

  metrics: `loss` (the objective), `loss_x<s>`, `grad_norm` (global L2), `finite` (bool: loss,
  gradients and the updated params are all finite; when False the returned state must be dropped).
  """
  loss_fn = make_loss_fn(model, batch_size, eps)

  def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
    (loss, per_scale), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & _all_finite(grads) & _all_finite(params)
    metrics = {"loss": loss, **per_scale, "grad_norm": optax.tree.norm(grads), "finite": finite}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  repl = sharding.replicated(mesh)
  return jax.jit(train_step, in_shardings=(repl, sharding.batch_sharded(mesh)),
                 out_shardings=(repl, repl), donate_argnums=(0,))
