"""Checkpoints (orbax): the train state, the latest N plus the best.

Layout of a workdir:

    workdir/config.json               the run's config (written at start, read by `load_trained`)
    workdir/checkpoints/<step>/state  TrainState (step, params, optimiser state + schedule count)
    workdir/checkpoints/<step>/metrics  {"val_psnr": ...} when saved right after a validation

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
`load_trained` loads the best (or latest) intact one.
"""

import gc
import json
import os
import pathlib
import sys
from typing import Any

import jax
import ml_collections
from absl import logging
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

STATE = "state"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
BEST_METRIC = "val_psnr"  # mean Y-PSNR over the validated scales, dB


def _best_value(metrics) -> float:
  return float(metrics[BEST_METRIC])


def make_manager(workdir: str | os.PathLike, *, keep: int, async_save: bool = True,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager over `workdir/checkpoints` keeping the `keep` latest and the best step."""
  policy = policies.AnyPreservationPolicy([
      policies.LatestN(n=keep),
      policies.BestN(get_metric_fn=_best_value, reverse=False, n=1,
                     keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      best_fn=_best_value, best_mode="max", preservation_policy=None if read_only else policy,
      enable_async_checkpointing=async_save, create=not read_only, read_only=read_only,
      save_interval_steps=0 if read_only else 1, cleanup_tmp_directories=not read_only)
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


def _reason(err: BaseException) -> str:
  """One line about `err` (orbax / tensorstore errors can span hundreds of lines)."""
  lines = [line.strip() for line in str(err).split(". See full")[0].splitlines() if line.strip()]
  text = f"{type(err).__name__}: {lines[0] if lines else ''}"
  return text if len(text) <= 160 else text[:157] + "..."


# What orbax's abandoned reads of a damaged checkpoint report after the restore has failed.
_ABANDONED_READ_ERRORS = ("Encountered error while reading array", "Event loop is closed")


def _quiet_abandoned_reads() -> None:
  """Drops the tracebacks of the reads orbax abandons when a damaged checkpoint fails to restore.

  Orbax stops at the first array that fails; the reads still in flight then report through
  `sys.unraisablehook`, one traceback (with the whole TensorStore spec) each, also after the
  restore has raised: orbax turns the GeneratorExit of its abandoned coroutines into an
  Exception, and TensorStore reads that finish after orbax closed its event loop cannot schedule
  their callbacks. Installed before restoring, for the rest of the process, the hook drops exactly
  these two messages; everything else passes on to the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_abandoned_reads", False):
    return

  def hook(unraisable):
    if not any(text in str(unraisable.exc_value) for text in _ABANDONED_READ_ERRORS):
      previous(unraisable)

  hook.drops_abandoned_reads = True
  sys.unraisablehook = hook


def _first_intact(manager: ocp.CheckpointManager, steps, load) -> tuple[int, Any, list]:
  """`(step, load(step), [(skipped step, reason)])` for the first of `steps` that `load`s.

  Raises:
    ValueError: none of `steps` loads (the reasons named), or there are no steps.
  """
  skipped = []
  _quiet_abandoned_reads()
  for step in steps:
    try:
      return step, load(step), skipped
    except Exception as err:  # pylint: disable=broad-except  (orbax/tensorstore raise many kinds)
      skipped.append((step, _reason(err)))
      del err
      gc.collect()  # closes orbax's abandoned read coroutines now, quietly
  if not skipped:
    raise FileNotFoundError(f"{manager.directory} holds no complete checkpoint")
  raise ValueError(f"no intact checkpoint in {manager.directory}: "
                   + "; ".join(f"step {s}: {r}" for s, r in skipped))


def _warn_skipped(manager: ocp.CheckpointManager, skipped, step: int, action: str) -> None:
  """The one-line warning naming the damaged checkpoints skipped in favour of `step`."""
  if skipped:
    logging.warning("skipped damaged checkpoint%s %s (%s); %s step %d",
                    "s" if len(skipped) > 1 else "",
                    ", ".join(str(pathlib.Path(manager.directory) / str(s)) for s, _ in skipped),
                    "; ".join(r for _, r in skipped), action, step)


def restore_intact(manager: ocp.CheckpointManager, abstract_state: Any) -> tuple[Any, list[int]]:
  """The state of the newest checkpoint that restores, and the damaged steps skipped on the way.

  The skipped steps are named in one warning line; the caller moves them away (`move_damaged`)
  before saving those steps again. Raises ValueError (naming every step's reason) when no
  checkpoint restores: an error common to all of them (e.g. another model) moves nothing.
  """
  step, state, skipped = _first_intact(manager, sorted(manager.all_steps(), reverse=True),
                                       lambda step: restore(manager, abstract_state, step))
  _warn_skipped(manager, skipped, step, f"moving {'them' if len(skipped) > 1 else 'it'} to "
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


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config saved by a training run in `workdir`."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: not a lapsrn_jax training workdir")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def resolve_run(path: str | os.PathLike) -> tuple[pathlib.Path, int | None]:
  """`(workdir, step or None)` for a workdir, its checkpoints/ folder or one checkpoints/<step>."""
  path = pathlib.Path(path).absolute()
  if (path / CONFIG_FILE).is_file():
    return path, None
  if path.name == CHECKPOINT_DIR and (path.parent / CONFIG_FILE).is_file():
    return path.parent, None
  if path.name.isdigit() and path.parent.name == CHECKPOINT_DIR \
      and (path.parent.parent / CONFIG_FILE).is_file():
    return path.parent.parent, int(path.name)
  raise FileNotFoundError(
      f"{path} is not a training workdir of lapsrn_jax (no {CONFIG_FILE}) nor one of its "
      f"{CHECKPOINT_DIR}/<step> folders")


def load_trained(workdir_or_checkpoint: str | os.PathLike, *, prefer: str = "best"):
  """`(model, params)` from a training workdir (its best, else latest, checkpoint) or a checkpoint.

  Args:
    workdir_or_checkpoint: `workdir`, `workdir/checkpoints` or `workdir/checkpoints/<step>`.
    prefer: "best" (highest validation PSNR; latest when none was validated) or "latest".

  Returns:
    The module built from the saved config and its params (numpy arrays, host memory).
  """
  from lapsrn_jax.models import create_model  # deferred: keeps this module light to import

  if prefer not in ("best", "latest"):
    raise ValueError(f"prefer must be 'best' or 'latest', got {prefer!r}")
  workdir, step = resolve_run(workdir_or_checkpoint)
  config = read_config(workdir)
  model = create_model(config.model.name, **config.model.overrides.to_dict())
  manager = make_manager(workdir, keep=1, async_save=False, read_only=True)

  def load(step):
    meta = manager.item_metadata(step)[STATE]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # whatever it was saved on
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
    return manager.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(target)}))[STATE]

  try:
    if step is not None:  # an explicit checkpoint: no fallback
      _quiet_abandoned_reads()
      try:
        restored = load(step)
      except Exception as err:  # pylint: disable=broad-except
        reason = _reason(err)
        del err
        gc.collect()
        raise ValueError(f"checkpoint {workdir / CHECKPOINT_DIR / str(step)} cannot be restored "
                         f"({reason})") from None
    else:
      steps = sorted(manager.all_steps(), reverse=True)
      if prefer == "best":  # by validation PSNR, best first, then the unvalidated, latest first
        scores = {}
        for s in steps:
          try:
            metrics = manager.metrics(s)
            scores[s] = _best_value(metrics) if metrics else None
          except Exception:  # pylint: disable=broad-except  (a damaged metrics file)
            scores[s] = None
        steps = (sorted((s for s in steps if scores[s] is not None), key=scores.get, reverse=True)
                 + [s for s in steps if scores[s] is None])
      step, restored, skipped = _first_intact(manager, steps, load)
      _warn_skipped(manager, skipped, step, "loading")
  finally:
    manager.close()
  params = restored["params"]
  return model, jax.tree.map(np.asarray, params)
