"""A training workdir of lapsrn_jax, read side: its layout, its config and its trained model.

    workdir/config.json                 the run's config (`read_config`)
    workdir/checkpoints/<step>/state    TrainState (step, params, optimiser state)
    workdir/checkpoints/<step>/metrics  {"val_psnr": ...} when saved right after a validation

`load_trained(path)` returns `(model, params)` from a workdir (its best checkpoint by validation
PSNR, else the latest) or one `checkpoints/<step>` folder, skipping damaged checkpoints with a
one-line warning. Writing checkpoints is the training package's job
(`lapsrn_jax.training.checkpointing`); this module is what running a trained model needs, so the
inference side never imports the training package.
"""

import gc
import json
import os
import pathlib
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

STATE = "state"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
BEST_METRIC = "val_psnr"  # mean Y-PSNR over the validated scales, dB


def best_value(metrics) -> float:
  """The score a checkpoint is ranked by (`BEST_METRIC`, dB)."""
  return float(metrics[BEST_METRIC])


def read_only_manager(workdir: str | os.PathLike) -> ocp.CheckpointManager:
  """A CheckpointManager that reads `workdir/checkpoints` (creates, deletes and saves nothing)."""
  options = ocp.CheckpointManagerOptions(
      best_fn=best_value, best_mode="max", enable_async_checkpointing=False, create=False,
      read_only=True, save_interval_steps=0, cleanup_tmp_directories=False)
  return ocp.CheckpointManager(
      pathlib.Path(workdir).absolute() / CHECKPOINT_DIR, options=options,
      item_handlers={STATE: ocp.StandardCheckpointHandler()})


def one_line_reason(err: BaseException) -> str:
  """One line about `err` (orbax / tensorstore errors can span hundreds of lines)."""
  lines = [line.strip() for line in str(err).split(". See full")[0].splitlines() if line.strip()]
  text = f"{type(err).__name__}: {lines[0] if lines else ''}"
  return text if len(text) <= 160 else text[:157] + "..."


# What orbax's abandoned reads of a damaged checkpoint report after the restore has failed.
_ABANDONED_READ_ERRORS = ("Encountered error while reading array", "Event loop is closed")


def quiet_abandoned_reads() -> None:
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


def first_intact(manager: ocp.CheckpointManager, steps, load) -> tuple[int, Any, list]:
  """`(step, load(step), [(skipped step, reason)])` for the first of `steps` that `load`s.

  Raises:
    ValueError: none of `steps` loads (the reasons named), or there are no steps.
  """
  skipped = []
  quiet_abandoned_reads()
  for step in steps:
    try:
      return step, load(step), skipped
    except Exception as err:  # pylint: disable=broad-except  (orbax/tensorstore raise many kinds)
      skipped.append((step, one_line_reason(err)))
      del err
      gc.collect()  # closes orbax's abandoned read coroutines now, quietly
  if not skipped:
    raise FileNotFoundError(f"{manager.directory} holds no complete checkpoint")
  raise ValueError(f"no intact checkpoint in {manager.directory}: "
                   + "; ".join(f"step {s}: {r}" for s, r in skipped))


def warn_skipped(manager: ocp.CheckpointManager, skipped, step: int, action: str) -> None:
  """The one-line warning naming the damaged checkpoints skipped in favour of `step`."""
  if skipped:
    logging.warning("skipped damaged checkpoint%s %s (%s); %s step %d",
                    "s" if len(skipped) > 1 else "",
                    ", ".join(str(pathlib.Path(manager.directory) / str(s)) for s, _ in skipped),
                    "; ".join(r for _, r in skipped), action, step)


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
  model, params, _ = load_trained_checkpoint(workdir_or_checkpoint, prefer=prefer)
  return model, params


def load_trained_checkpoint(workdir_or_checkpoint: str | os.PathLike, *, prefer: str = "best"):
  """`(model, params, step)`: `load_trained` and the step of the checkpoint it restored."""
  from lapsrn_jax.models import create_model  # deferred: keeps this module light to import

  if prefer not in ("best", "latest"):
    raise ValueError(f"prefer must be 'best' or 'latest', got {prefer!r}")
  workdir, step = resolve_run(workdir_or_checkpoint)
  config = read_config(workdir)
  model = create_model(config.model.name, **config.model.overrides.to_dict())
  manager = read_only_manager(workdir)

  def load(step):
    meta = manager.item_metadata(step)[STATE]
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # whatever it was saved on
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
    return manager.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(target)}))[STATE]

  try:
    if step is not None:  # an explicit checkpoint: no fallback
      quiet_abandoned_reads()
      try:
        restored = load(step)
      except Exception as err:  # pylint: disable=broad-except
        reason = one_line_reason(err)
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
            scores[s] = best_value(metrics) if metrics else None
          except Exception:  # pylint: disable=broad-except  (a damaged metrics file)
            scores[s] = None
        steps = (sorted((s for s in steps if scores[s] is not None), key=scores.get, reverse=True)
                 + [s for s in steps if scores[s] is None])
      step, restored, skipped = first_intact(manager, steps, load)
      warn_skipped(manager, skipped, step, "loading")
  finally:
    manager.close()
  params = restored["params"]
  return model, jax.tree.map(np.asarray, params), step
