"""The training state: everything a step updates (a pytree, checkpointed as one item)."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """`step` (int32 scalar: updates done), `params`, `opt_state` (incl. the schedule's count)."""
  step: jax.Array
  params: Any
  opt_state: optax.OptState


def create_train_state(params: Any, tx: optax.GradientTransformation) -> TrainState:
  """A fresh state at step 0 for `params`."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
