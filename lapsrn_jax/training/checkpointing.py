"""Checkpoints (orbax): the train state, the latest N plus the best.

The workdir's layout, and reading a trained model from it, are `lapsrn_jax.workdir`'s (the
inference side uses them without importing this package); this module writes and restores the
train state.

The data position needs no file of its own: step k consumed global batches 0..k-1, and the
pipeline restarts at batch k (`pipeline.make_train_iterator(start_batch=k)`), whatever the number
of workers or hosts of either run. (Checkpoints of older versions also hold a `data` item, the
grain iterator state; it is ignored.)

Saves are asynchronous and atomic (orbax writes a temporary directory and renames it when complete;
unfinished ones are deleted on the next start), so a run killed at any moment restarts from its last
complete checkpoint. Kept: the `keep` latest checkpoints and the one with the best validation PSNR.

A checkpoint damaged after it was written (files deleted or truncated) is skipped with a one-line
warning naming it: training resumes from the newest intact one (`restore_intact`; the damaged
folders are moved to `workdir/damaged_checkpoints/<step>` so the steps can be saved again) and
`workdir.load_trained` loads the best (or latest) intact one.
"""

import os
import pathlib
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from lapsrn_jax.workdir import (BEST_METRIC, CHECKPOINT_DIR, CONFIG_FILE, DAMAGED_DIR, STATE,
                                best_value, first_intact, read_config, warn_skipped)

__all__ = ["BEST_METRIC", "STATE", "abstract_like", "make_manager", "move_damaged", "read_config",
           "restore", "restore_intact", "save", "write_config"]


def make_manager(workdir: str | os.PathLike, *, keep: int,
                 async_save: bool = True) -> ocp.CheckpointManager:
  """A CheckpointManager over `workdir/checkpoints` keeping the `keep` latest and the best step."""
  policy = policies.AnyPreservationPolicy([
      policies.LatestN(n=keep),
      policies.BestN(get_metric_fn=best_value, reverse=False, n=1,
                     keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      best_fn=best_value, best_mode="max", preservation_policy=policy,
      enable_async_checkpointing=async_save, create=True, save_interval_steps=1,
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(
      pathlib.Path(workdir).absolute() / CHECKPOINT_DIR, options=options,
      item_handlers={STATE: ocp.StandardCheckpointHandler()})


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict | None = None) -> None:
  """Starts saving `state` at `step` (written in the background when the manager is async)."""
  manager.save(step, args=ocp.args.Composite(**{STATE: ocp.args.StandardSave(state)}),
      metrics=None if metrics is None else {BEST_METRIC: float(metrics[BEST_METRIC])})


def restore(manager: ocp.CheckpointManager, abstract_state: Any, step: int | None = None) -> Any:
  """The state of `step` (default: the latest), laid out like `abstract_state` (a pytree of
  `jax.ShapeDtypeStruct` with shardings)."""
  step = manager.latest_step() if step is None else step
  restored = manager.restore(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardRestore(abstract_state)}))
  return restored[STATE]


def restore_intact(manager: ocp.CheckpointManager, abstract_state: Any) -> tuple[Any, list[int]]:
  """The state of the newest checkpoint that restores, and the damaged steps skipped on the way.

  The skipped steps are named in one warning line; the caller moves them away (`move_damaged`)
  before saving those steps again. Raises ValueError (naming every step's reason) when no
  checkpoint restores: an error common to all of them (e.g. another model) moves nothing.
  """
  step, state, skipped = first_intact(manager, sorted(manager.all_steps(), reverse=True),
                                       lambda step: restore(manager, abstract_state, step))
  warn_skipped(manager, skipped, step, f"moving {'them' if len(skipped) > 1 else 'it'} to "
                f"{DAMAGED_DIR}/ and resuming from")
  return state, [step for step, _ in skipped]


def move_damaged(manager: ocp.CheckpointManager, steps) -> None:
  """Moves `checkpoints/<step>` folders to `damaged_checkpoints/<step>` (process 0) and reloads
  the manager's list of steps."""
  if steps and jax.process_index() == 0:
    root = pathlib.Path(manager.directory)
    target = root.parent / DAMAGED_DIR
    target.mkdir(exist_ok=True)
    for step in steps:
      dest = target / str(step)
      n = 1
      while dest.exists():
        dest, n = target / f"{step}.{n}", n + 1
      os.replace(root / str(step), dest)
  if steps and jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("lapsrn_jax.move_damaged")
  manager.reload()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """`jax.ShapeDtypeStruct`s of `tree` (arrays or shape structs), all with `sharding`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def write_config(workdir: str | os.PathLike, config: ml_collections.ConfigDict) -> None:
  """Writes `workdir/config.json` atomically (process 0 only)."""
  if jax.process_index() != 0:
    return
  path = pathlib.Path(workdir) / CONFIG_FILE
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(config.to_json(indent=2, sort_keys=True))
  os.replace(tmp, path)


