"""`train_and_evaluate(config, workdir)`: the training loop behind `python -m lapsrn_jax.train`.

A library function (notebooks call it too). It validates the config and the workdir before any work,
resumes from the latest intact checkpoint in `workdir` when there is one (a damaged newer one is
skipped with a warning and moved to `workdir/damaged_checkpoints/`), and otherwise starts from the
initial params (`config.init_from`), checkpointed as step 0 before the first step. Each step: this
host's share of the global batch (grain) -> padded, sharded global arrays -> the jitted step; the
loss, gradients and new params are checked to be finite (otherwise the run stops with
`FloatingPointError`, keeping the last good checkpoint). Metrics go to tqdm, `workdir/metrics.jsonl`
and TensorBoard (`workdir/tensorboard`).
"""

import json
import os
import pathlib
import shutil
import socket
import tempfile
import time

import jax
import ml_collections
from absl import logging

from lapsrn_jax.training import (checkpointing, initialization, metric_writer, optimizer,
                                 sharding, step as step_lib, validation)
from lapsrn_jax.training.config import validate_config
from lapsrn_jax.training.state import create_train_state

# Fields that must match the saved config to resume in the same workdir.
_RESUME_FIELDS = ("seed", "model", "data.train", "data.scale_augmentation",
                  "data.data_augmentation", "train.batch_size", "train.patch_size", "train.scales",
                  "optim.name")


def _first_missing(path: pathlib.Path) -> pathlib.Path | None:
  """The top-most folder of `path` (itself or an ancestor) that does not exist yet, or None."""
  missing = None
  for folder in (path, *path.parents):
    if folder.exists():
      break
    missing = folder
  return missing


def prepare_workdir(workdir) -> pathlib.Path:
  """Creates `workdir` and checks that files can be written there; clear errors otherwise (and
  no folder left behind by a failed attempt)."""
  if not workdir:
    raise ValueError("a workdir is required (--workdir DIR)")
  path = pathlib.Path(os.path.expanduser(str(workdir))).absolute()
  created = _first_missing(path)
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test"):
      pass
  except OSError as err:
    if created is not None:
      shutil.rmtree(created, ignore_errors=True)
    raise PermissionError(f"workdir {path} cannot be created or written: {err}") from err
  return path


class WorkdirInUseError(RuntimeError):
  """Another training run holds the workdir's lock."""


class WorkdirLock:
  """This process's lock on a workdir: `workdir/.lock` (`.lock.<i>` for process i > 0), an OS file
  lock (`filelock`) that the OS releases when the process ends, even by SIGKILL. The holder (pid,
  host, start time) is recorded in `<lock>.owner` so that a second run can name it.

  Raises:
    WorkdirInUseError: at once (no waiting) when another process holds the lock.
  """

  def __init__(self, workdir: pathlib.Path):
    import filelock  # pylint: disable=import-outside-toplevel

    index = jax.process_index()
    self.path = pathlib.Path(workdir) / (".lock" if index == 0 else f".lock.{index}")
    self.owner = self.path.with_name(self.path.name + ".owner")
    self._lock = filelock.FileLock(self.path, timeout=0)
    try:
      self._lock.acquire()
    except filelock.Timeout:
      raise WorkdirInUseError(
          f"workdir {workdir} is in use by another training run ({self._holder()}); wait for it "
          "to end or use another --workdir") from None
    self.owner.write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "process_index": index,
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}))

  def _holder(self) -> str:
    try:
      owner = json.loads(self.owner.read_text())
      return f"pid {owner['pid']} on host {owner['host']}, since {owner['since']}"
    except (OSError, ValueError, KeyError):
      return f"holder not recorded in {self.owner}"

  def release(self) -> None:
    self.owner.unlink(missing_ok=True)  # before the lock: a next holder's record stays
    try:
      self._lock.release()
    except OSError:  # the workdir was removed (a failed fresh run): the OS lock is gone with it
      pass


def _get(config: ml_collections.ConfigDict, dotted: str):
  value = config
  for key in dotted.split("."):
    value = value.get(key) if hasattr(value, "get") else None
  return value.to_dict() if hasattr(value, "to_dict") else value


def _normalize(value):
  return list(value) if isinstance(value, tuple) else value


def check_resumable(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  """ValueError when `config` changes what the checkpoints in `workdir` were trained with."""
  saved = checkpointing.read_config(workdir)
  changed = [f"{f}: {_get(saved, f)!r} -> {_get(config, f)!r}" for f in _RESUME_FIELDS
             if _normalize(_get(saved, f)) != _normalize(_get(config, f))]
  if changed:
    raise ValueError(f"{workdir} holds checkpoints of a different run ({'; '.join(changed)}); "
                     "use a new --workdir (or the original config)")


def _data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.data` with environment variables in the source specs expanded."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.train = os.path.expandvars(data.train)
  data.val = os.path.expandvars(data.val)
  return data


class _Averager:
  """Means of the train metrics over the steps since the last record."""

  def __init__(self):
    self.reset()

  def reset(self):
    self.sums, self.count, self.start = {}, 0, time.perf_counter()

  def add(self, metrics):
    for k, v in metrics.items():
      if k != "finite":
        self.sums[k] = self.sums.get(k, 0.0) + float(v)
    self.count += 1

  def result(self) -> dict:
    out = {f"train/{k}": v / self.count for k, v in self.sums.items()}
    out["train/steps_per_sec"] = self.count / max(time.perf_counter() - self.start, 1e-9)
    return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
  """Trains `config` in `workdir` (resuming when it holds a checkpoint) and returns the last
  validation metrics (`"val/psnr_x2"`, ..., `"val/bicubic_psnr_x2"`, ...) plus `"step"`; a run
  that is already finished returns its last validation, read back from `metrics.jsonl`.

  Raises:
    ValueError: a bad config (before any work), a workdir of a different run, bad data.
    PermissionError: the workdir cannot be written.
    WorkdirInUseError: another run holds the workdir (raised at once, naming its pid and host).
    FloatingPointError: the loss, gradients or params became NaN/Inf (the checkpoints on disk are
      from earlier, finite steps).
  A run that fails before its first step removes the workdir if this call created it.
  """
  validate_config(config)
  sharding.maybe_initialize_distributed(config.train.distributed)
  path = pathlib.Path(os.path.expanduser(str(workdir or ""))).absolute()
  created = _first_missing(path) if workdir else None
  workdir = prepare_workdir(workdir)
  lock = WorkdirLock(workdir)  # before anything is written; a second run stops here
  started = []
  try:
    return _train(config, workdir, started)
  except BaseException:
    if created is not None and not started:  # failed before training: no half-made workdir
      shutil.rmtree(created, ignore_errors=True)
    raise
  finally:
    lock.release()


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path, started: list) -> dict:
  """The body of `train_and_evaluate` in a prepared, locked workdir; appends to `started` when
  the training loop begins."""
  from lapsrn_jax.data import pipeline  # deferred: keeps `import lapsrn_jax.train` light
  from lapsrn_jax.models import create_model

  mesh = sharding.make_mesh()
  validate_config(config, num_devices=mesh.size)
  t, e = config.train, config.eval
  logging.info("devices: %d (%d hosts); batch %d split %s over scales", mesh.size,
               jax.process_count(), t.batch_size,
               sharding.scale_batch_sizes(t.batch_size, tuple(t.scales)))

  model = create_model(config.model.name, **config.model.overrides.to_dict())
  tx = optimizer.make_optimizer(config.optim)
  schedule = optimizer.learning_rate_schedule(config.optim)
  data_cfg = _data_config(config)
  source = pipeline.train_source(data_cfg, patch_size=t.patch_size)  # bad data fails here, early
  val_images = pipeline.load_validation_set(data_cfg, crop=e.crop)
  if e.max_images:
    val_images = val_images[:e.max_images]
  validator = validation.Validator(model, val_images, e.scales, e.crop)

  manager = checkpointing.make_manager(workdir, keep=config.checkpoint.keep,
                                       async_save=config.checkpoint.async_save)
  repl = sharding.replicated(mesh)
  make_state = jax.jit(lambda p: create_train_state(p, tx), out_shardings=repl)
  fresh = manager.latest_step() is None
  if fresh:
    state = make_state(initialization.initial_params(model, config, jax.random.key(config.seed)))
  else:
    check_resumable(workdir, config)
    abstract = jax.eval_shape(lambda: make_state(initialization.initial_params(
        model, ml_collections.ConfigDict({**config.to_dict(), "init_from": ""}),
        jax.random.key(0))))
    state, damaged = checkpointing.restore_intact(manager,
                                                  checkpointing.abstract_like(abstract, repl))
    checkpointing.move_damaged(manager, damaged)  # so that their steps can be saved again
    logging.info("resumed from %s at step %d", manager.directory, int(state.step))
  checkpointing.write_config(workdir, config)
  step = int(state.step)
  train_iter = pipeline.make_train_iterator(  # step k consumed batches 0..k-1: go on at batch k
      data_cfg, global_batch_size=t.batch_size, scales=tuple(t.scales), patch_size=t.patch_size,
      seed=config.seed, num_workers=data_cfg.num_workers, process_index=jax.process_index(),
      process_count=jax.process_count(), start_batch=step, source=source)

  train_step = step_lib.make_train_step(model, tx, mesh, batch_size=t.batch_size,
                                        eps=t.charbonnier_eps)
  global_sizes = sharding.scale_batch_sizes(t.batch_size, tuple(t.scales))
  writer = metric_writer.MetricWriter(workdir)
  from tqdm import tqdm
  bar = tqdm(total=t.num_steps, initial=step, unit="step", dynamic_ncols=True,
             disable=not t.progress_bar or jax.process_index() != 0)
  averager, last_val = _Averager(), {}
  start = time.monotonic()

  def spent() -> bool:  # train.max_seconds (wall, this call) or max_cpu_seconds (this process)
    return ((bool(t.max_seconds) and time.monotonic() - start >= t.max_seconds)
            or (bool(t.max_cpu_seconds) and time.process_time() >= t.max_cpu_seconds))

  def log_train(step: int) -> None:  # the train metrics' means since the last record
    writer.write(step, {**averager.result(), "train/learning_rate": float(schedule(step - 1))})
    averager.reset()

  started.append(step)
  try:
    if e.at_start and step == 0:
      last_val = validator(state.params)
      writer.write(0, last_val)
    if fresh:  # step 0 = the initial params (e.g. after a long stage-1 fit): a kill before the
      # first scheduled checkpoint resumes from here instead of initializing again
      checkpointing.save(manager, 0, state, metrics={checkpointing.BEST_METRIC: last_val[
          "val/psnr"]} if last_val else None)
    while step < t.num_steps:
      batch = sharding.shard_batch(next(train_iter), mesh, global_sizes)
      new_state, metrics = train_step(state, batch)
      metrics = jax.device_get(metrics)
      if not metrics["finite"]:
        manager.wait_until_finished()
        good = manager.latest_step()
        raise FloatingPointError(
            f"non-finite training step {step + 1}: loss={float(metrics['loss'])}, "
            f"grad_norm={float(metrics['grad_norm'])} (NaN/Inf in the loss, gradients or "
            f"updated params). Stopped; the last good checkpoint is "
            f"{'step ' + str(good) if good is not None else 'none (no checkpoint yet)'} in "
            f"{manager.directory}. Lower optim.learning_rate or check the data.")
      state, step = new_state, step + 1
      averager.add(metrics)
      bar.update(1)
      bar.set_postfix(loss=f"{float(metrics['loss']):.4g}", refresh=False)
      out_of_time = spent()
      last = step == t.num_steps or out_of_time
      if step % t.log_every == 0 or last:
        log_train(step)
      do_eval = (e.every and step % e.every == 0) or last
      if do_eval:
        last_val = validator(state.params)
        writer.write(step, last_val)
        logging.info("step %d validation Y-PSNR: %s", step, ", ".join(
            f"x{s} {last_val[f'val/psnr_x{s}']:.2f} dB (bicubic "
            f"{last_val[f'val/bicubic_psnr_x{s}']:.2f})" for s in e.scales))
        if not last and spent():  # a scheduled validation spent the budget: stop at its step
          out_of_time = True  # (not one step later with a second validation)
          if step % t.log_every:
            log_train(step)
      if do_eval or step % config.checkpoint.every == 0:
        checkpointing.save(manager, step, state,
                           metrics={checkpointing.BEST_METRIC: last_val["val/psnr"]}
                           if do_eval else None)
      if out_of_time:
        logging.info("train.max_seconds=%s / max_cpu_seconds=%s spent at step %d (%.0f CPU-s "
                     "used); run again to resume", t.max_seconds, t.max_cpu_seconds, step,
                     time.process_time())
        break
  finally:
    train_iter.close()  # stops grain's worker processes, if any
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  if not last_val:  # nothing validated now (e.g. a finished run run again): the last record
    last_val = _last_validation(workdir, step)
  return {"step": step, **last_val}


def _last_validation(workdir: pathlib.Path, step: int) -> dict:
  """The val/* metrics of the last validation at or before `step` in `metrics.jsonl`, if any."""
  try:
    records = metric_writer.read_metrics(workdir)
  except (OSError, ValueError):
    return {}
  val = [r for r in records if "val/psnr" in r and r["step"] <= step]
  return {k: v for k, v in val[-1].items() if k.startswith("val/")} if val else {}
