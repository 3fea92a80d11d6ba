"""End-to-end training with configs/debug.py (training/loop.py, checkpointing.py, lapsrn_jax.train).

The expensive part is one module fixture: an uninterrupted CLI run and, in parallel, a run that is
SIGKILLed as soon as its first checkpoint after step 0 is on disk and then restarted in the same
workdir.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from lapsrn_jax import workdir as workdir_lib
from lapsrn_jax.models import MSLapSRN
from lapsrn_jax.training import checkpointing, loop, metric_writer, sharding, validation

REPO = pathlib.Path(__file__).parents[1]
DEBUG = REPO / "configs" / "debug.py"
NUM_STEPS = 12


def debug_config():
  import importlib.util
  spec = importlib.util.spec_from_file_location("debug_config", DEBUG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def cli(workdir, *overrides):
  return [sys.executable, "-m", "lapsrn_jax.train", f"--config={DEBUG}", f"--workdir={workdir}",
          *overrides]


def env(cache_dir=None):
  """Subprocess environment: CPU, one device, and optionally a persistent compilation cache (the
  restarted run then loads the reference run's executables instead of compiling them again)."""
  e = dict(os.environ, JAX_PLATFORMS="cpu")
  e.pop("XLA_FLAGS", None)
  if cache_dir is not None:
    e.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return e


def steps_on_disk(workdir):
  folder = pathlib.Path(workdir) / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def flat_params(params):
  import jax
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("train")
  ref_dir, killed_dir = root / "reference", root / "killed"
  logs = {name: open(root / f"{name}.log", "w") for name in ("reference", "killed", "restart")}
  cache = root / "jax_cache"
  ref = subprocess.Popen(cli(ref_dir), cwd=REPO, env=env(cache), stdout=logs["reference"],
                         stderr=subprocess.STDOUT)
  killed = subprocess.Popen(cli(killed_dir), cwd=REPO, env=env(cache), stdout=logs["killed"],
                            stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 300
  while (max(steps_on_disk(killed_dir), default=0) == 0 and killed.poll() is None  # past step 0
         and time.monotonic() < deadline):
    time.sleep(0.01)
  killed.send_signal(signal.SIGKILL)
  killed_rc = killed.wait()
  steps_at_kill = steps_on_disk(killed_dir)
  restart = subprocess.run(cli(killed_dir), cwd=REPO, env=env(cache), stdout=logs["restart"],
                           stderr=subprocess.STDOUT, timeout=300)
  ref_rc = ref.wait(timeout=300)
  for f in logs.values():
    f.close()
  log = lambda name: (root / f"{name}.log").read_text()[-3000:]
  assert ref_rc == 0, log("reference")
  assert restart.returncode == 0, log("restart")
  print(f"killed run: checkpoints {steps_at_kill} on disk at SIGKILL")
  return types.SimpleNamespace(ref=ref_dir, killed=killed_dir, killed_rc=killed_rc,
                               steps_at_kill=steps_at_kill, log=log)


def test_killed_run_restarts_from_its_checkpoint_and_ends_with_the_same_params(runs):
  assert runs.killed_rc == -signal.SIGKILL, "the run ended before it could be killed"
  assert 0 < max(runs.steps_at_kill, default=0) < NUM_STEPS, runs.steps_at_kill
  _, resumed = workdir_lib.load_trained(runs.killed, prefer="latest")
  _, reference = workdir_lib.load_trained(runs.ref, prefer="latest")
  resumed, reference = flat_params(resumed), flat_params(reference)
  assert resumed.keys() == reference.keys()
  for key in reference:  # same programs, same data order: bitwise equal on one CPU device
    np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)
  # the restart did not redo the steps of the checkpoint it resumed from
  records = [r for r in metric_writer.read_metrics(runs.killed) if "train/loss" in r]
  assert max(r["step"] for r in records) == NUM_STEPS
  assert "resumed from" in runs.log("restart")


def test_run_writes_config_metrics_tensorboard_and_checkpoints(runs):
  saved = workdir_lib.read_config(runs.ref)
  assert saved.to_dict() == json.loads(debug_config().to_json())
  records = metric_writer.read_metrics(runs.ref)
  train = [r for r in records if "train/loss" in r]
  val = [r for r in records if "val/psnr" in r]
  assert [r["step"] for r in train] == list(range(2, NUM_STEPS + 1, 2))
  assert all(np.isfinite(r["train/loss"]) and r["train/steps_per_sec"] > 0 for r in train)
  assert [r["step"] for r in val] == [6, 12]
  for r in val:
    for s in (2, 4):
      assert 10 < r[f"val/psnr_x{s}"] < 60 and 0 < r[f"val/ssim_x{s}"] <= 1
      assert r[f"val/bicubic_psnr_x{s}"] == val[0][f"val/bicubic_psnr_x{s}"]
  assert list((runs.ref / "tensorboard").glob("events.out.tfevents.*"))


def test_keeps_the_latest_checkpoints_and_the_best_by_validation_psnr(runs):
  val = {r["step"]: r["val/psnr"] for r in metric_writer.read_metrics(runs.ref) if "val/psnr" in r}
  best = max(val, key=val.get)
  saved = [4, 6, 8, 12]  # checkpoint.every=4, plus every validation (6, 12)
  assert steps_on_disk(runs.ref) == sorted(set(saved[-2:]) | {best})  # keep=2


def test_load_trained_gives_the_model_and_the_best_params(runs):
  model, params = workdir_lib.load_trained(runs.ref)
  assert isinstance(model, MSLapSRN)
  assert (model.depth, model.recursions, model.features) == (1, 1, 8)
  val = {r["step"]: r["val/psnr"] for r in metric_writer.read_metrics(runs.ref) if "val/psnr" in r}
  best = max(val, key=val.get)
  _, from_step = workdir_lib.load_trained(runs.ref / "checkpoints" / str(best))
  a, b = flat_params(params), flat_params(from_step)
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  with pytest.raises(FileNotFoundError, match="not a training workdir"):
    workdir_lib.load_trained(runs.ref / "tensorboard")


def test_checkpoints_of_older_versions_with_a_grain_data_item_still_restore(tmp_path):
  """Older versions also saved the grain iterator state as a `data` item; it is ignored."""
  import grain
  import jax
  import orbax.checkpoint as ocp
  from grain import checkpoint as grain_checkpoint
  state = {"step": np.int32(5), "w": np.arange(6, dtype=np.float32).reshape(2, 3)}
  it = iter(grain.MapDataset.range(10).to_iter_dataset())
  next(it)
  old = ocp.CheckpointManager(tmp_path / "checkpoints", item_handlers={
      "state": ocp.StandardCheckpointHandler(), "data": grain_checkpoint.CheckpointHandler()})
  old.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      data=grain_checkpoint.CheckpointSave(it)))
  old.wait_until_finished()
  old.close()
  manager = checkpointing.make_manager(tmp_path, keep=1, async_save=False)
  restored = checkpointing.restore(manager, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))
  manager.close()
  assert int(restored["step"]) == 5
  np.testing.assert_array_equal(restored["w"], state["w"])


def test_running_a_finished_run_again_reports_its_last_validation(runs):
  """What re-running the Colab notebook does: the summary has the validation metrics."""
  before = (runs.ref / "metrics.jsonl").read_text()
  summary = loop.train_and_evaluate(debug_config(), runs.ref)
  assert (runs.ref / "metrics.jsonl").read_text() == before  # no step, nothing written
  last = [r for r in metric_writer.read_metrics(runs.ref) if "val/psnr" in r][-1]
  assert summary["step"] == NUM_STEPS == last["step"]
  for s in (2, 4):
    assert summary[f"val/psnr_x{s}"] == last[f"val/psnr_x{s}"]
    assert summary[f"val/bicubic_psnr_x{s}"] == last[f"val/bicubic_psnr_x{s}"]


def test_resuming_with_a_different_model_is_refused(runs):
  config = debug_config()
  config.model.overrides.features = 16
  with pytest.raises(ValueError, match="different run"):
    loop.check_resumable(runs.ref, config)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  """A NaN in the 3rd batch: the step is rejected, checkpoints 1 and 2 stay, 3 is never written."""
  real_shard = sharding.shard_batch
  calls = []

  def poisoned(local_batch, mesh, sizes):
    calls.append(1)
    if len(calls) == 3:
      local_batch["x2"]["lr"][0, 0, 0, 0] = np.nan
    return real_shard(local_batch, mesh, sizes)

  monkeypatch.setattr(sharding, "shard_batch", poisoned)
  config = debug_config()
  config.checkpoint.every = 1
  config.eval.every = 0
  with pytest.raises(FloatingPointError,
                     match="non-finite training step 3.*last good checkpoint is step 2"):
    loop.train_and_evaluate(config, tmp_path)
  assert steps_on_disk(tmp_path) == [1, 2]
  _, params = workdir_lib.load_trained(tmp_path, prefer="latest")
  assert all(np.all(np.isfinite(v)) for v in flat_params(params).values())


def test_bad_config_fails_before_creating_the_workdir(tmp_path):
  config = debug_config()
  config.train.scales = (3,)
  with pytest.raises(ValueError, match="train.scales"):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_empty_data_folder_is_a_clear_error_and_leaves_no_workdir(tmp_path):
  (tmp_path / "empty").mkdir()
  config = debug_config()
  config.data.train = f"folder:{tmp_path / 'empty'}"
  with pytest.raises(ValueError, match="empty"):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()  # no half-made workdir left behind


def test_a_second_run_on_a_locked_workdir_stops_at_once_naming_the_first(tmp_path):
  first = loop.WorkdirLock(tmp_path)  # what a running train_and_evaluate holds
  try:
    start = time.monotonic()
    with pytest.raises(loop.WorkdirInUseError, match=f"in use by another training run \\(pid "
                       f"{os.getpid()} on host "):
      loop.train_and_evaluate(debug_config(), tmp_path)
    assert time.monotonic() - start < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".lock.owner"]  # nothing written
  finally:
    first.release()
  second = loop.WorkdirLock(tmp_path)  # released: the next run gets it
  second.release()


def test_unwritable_workdir_is_a_clear_error(tmp_path):
  (tmp_path / "a_file").write_text("")
  with pytest.raises(PermissionError, match="cannot be created or written"):
    loop.train_and_evaluate(debug_config(), tmp_path / "a_file" / "run")


def test_cli_errors_are_one_line_with_the_documented_exit_status(tmp_path):
  """Unknown config key, non-finite value: exit 2 before any work; a locked workdir: exit 3,
  naming the holder; --debug shows the traceback."""
  def run(workdir, *args):
    proc = subprocess.run(cli(workdir, *args), cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stderr.strip().splitlines()

  rc, err = run(tmp_path / "run", "--config.train.num_stpes=5")
  assert rc == 2 and len(err) == 1 and "num_stpes" in err[0], err
  rc, err = run(tmp_path / "run", "--config.optim.learning_rate=inf")
  assert rc == 2 and err[-1].startswith("error:") and "finite" in err[-1], err
  assert not (tmp_path / "run").exists()
  rc, err = run(tmp_path / "run", "--config.train.num_stpes=5", "--debug")
  assert rc != 0 and "Traceback" in err[0]
  holder = loop.WorkdirLock(tmp_path)
  try:
    rc, err = run(tmp_path)
  finally:
    holder.release()
  assert rc == 3 and err[-1].startswith("error:") and f"pid {os.getpid()}" in err[-1], err


def test_max_cpu_seconds_stops_once_the_process_used_that_much_cpu(tmp_path):
  """train.max_cpu_seconds counts this process's CPU time from its start: a limit already used
  (by the tests before this one) stops after the first step, with a validation and a
  checkpoint; one far above it leaves the run alone."""
  config = debug_config()
  config.train.max_cpu_seconds = 1e-3
  first = loop.train_and_evaluate(config, tmp_path)
  assert first["step"] == 1 and "val/psnr_x2" in first and steps_on_disk(tmp_path) == [0, 1]
  config.train.max_cpu_seconds = 1e9
  assert loop.train_and_evaluate(config, tmp_path)["step"] == NUM_STEPS


def test_a_run_killed_before_its_first_scheduled_checkpoint_resumes_without_initializing_again(
    tmp_path, monkeypatch, runs):
  """A fresh run checkpoints its initial params as step 0 (for CMS-LapSRN, the result of the
  stage-1 upsampler fit), so a kill before `checkpoint.every` steps costs those steps only."""
  import shutil
  from lapsrn_jax.training import initialization
  config = debug_config()
  config.train.max_cpu_seconds = 1e-3  # stops after step 1
  loop.train_and_evaluate(config, tmp_path)
  shutil.rmtree(tmp_path / "checkpoints" / "1")  # killed before step 1 was on disk
  concrete, real = [], initialization.initial_params

  def counted(model, cfg, rng):  # eval_shape's abstract call (traced key) is not an initialization
    import jax
    concrete.append(not isinstance(rng, jax.core.Tracer))
    return real(model, cfg, rng)

  monkeypatch.setattr(loop.initialization, "initial_params", counted)
  config.train.max_cpu_seconds = 0.0
  assert loop.train_and_evaluate(config, tmp_path)["step"] == NUM_STEPS
  assert concrete == [False]
  resumed = flat_params(workdir_lib.load_trained(tmp_path, prefer="latest")[1])
  reference = flat_params(workdir_lib.load_trained(runs.ref, prefer="latest")[1])
  for key in reference:
    np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_a_budget_spent_by_a_scheduled_validation_stops_at_its_step_without_a_second_one(
    tmp_path, monkeypatch):
  """A validation that uses up train.max_seconds ends the run at the validated step (checkpointed
  with its score), instead of one step later with a second validation beyond the budget."""
  config = debug_config()
  config.eval.at_start, config.eval.every, config.train.max_seconds = False, 2, 3600.0
  config.train.log_every = 4  # step 2's train record is written by the stop
  offset, real_clock = [0.0], time.monotonic
  monkeypatch.setattr(loop.time, "monotonic", lambda: real_clock() + offset[0])
  calls, validate = [], validation.Validator.__call__

  def slow_validate(self, params):  # each validation "takes" two hours of the budget
    calls.append(1)
    offset[0] += 7200.0
    return validate(self, params)

  monkeypatch.setattr(validation.Validator, "__call__", slow_validate)
  result = loop.train_and_evaluate(config, tmp_path)
  assert result["step"] == 2 and "val/psnr_x2" in result and len(calls) == 1
  assert max(steps_on_disk(tmp_path)) == 2
  records = [r for r in metric_writer.read_metrics(tmp_path) if "train/loss" in r]
  assert records and records[-1]["step"] == 2  # the train metrics up to the stop are written


def test_max_seconds_stops_with_a_checkpoint_and_the_same_command_resumes(tmp_path, runs):
  """train.max_seconds: the run validates and checkpoints the step where the budget ran out and
  returns early; a second call resumes from it and ends at num_steps. eval.at_start adds step 0.
  The second call uses a grain worker process where the first used none (a run moved to another
  machine): the data stream goes on where it stopped, so the params end as the reference run's."""
  config = debug_config()
  config.eval.at_start = True
  config.train.max_seconds = 1e-6  # spent after the first step
  first = loop.train_and_evaluate(config, tmp_path)
  assert first["step"] == 1 and "val/psnr_x2" in first
  assert steps_on_disk(tmp_path) == [0, 1]
  config.train.max_seconds = 0.0
  config.data.num_workers = 1
  second = loop.train_and_evaluate(config, tmp_path)
  assert second["step"] == NUM_STEPS
  resumed = flat_params(workdir_lib.load_trained(tmp_path, prefer="latest")[1])
  reference = flat_params(workdir_lib.load_trained(runs.ref, prefer="latest")[1])
  for key in reference:  # in-process vs the CLI's process: equal up to float reassociation
    np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-5, atol=1e-7, err_msg=key)
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  val_steps = [r["step"] for r in records if "val/psnr_x2" in r]
  assert val_steps[:2] == [0, 1] and val_steps[-1] == NUM_STEPS


def _damage(checkpoint):
  """Truncates every array data file of `checkpoint` (what a full disk or a bad copy leaves)."""
  files = [p for p in (checkpoint / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(10)


def test_a_damaged_latest_checkpoint_is_skipped_when_loading(runs, tmp_path, capsys, caplog):
  """Model loading falls back to the newest intact checkpoint with a one-line warning; a damaged
  checkpoint named explicitly is a one-line usage error (exit status 2) of evaluate and upscale."""
  import shutil
  from lapsrn_jax import evaluate, upscale
  workdir = tmp_path / "run"
  shutil.copytree(runs.ref, workdir)
  assert 8 in steps_on_disk(workdir) and max(steps_on_disk(workdir)) == 12
  _damage(workdir / "checkpoints" / "12")
  with caplog.at_level("WARNING"):
    _, params = workdir_lib.load_trained(workdir, prefer="latest")
    best_intact = workdir_lib.load_trained_checkpoint(workdir)[2]
    assert best_intact != 12
    assert evaluate.model_from_spec(str(workdir)).name == f"ours:run@{best_intact}"
  warnings = [r.getMessage() for r in caplog.records if "skipped damaged" in r.getMessage()]
  assert warnings and all("checkpoints/12 (" in w and "step 8" in w and "\n" not in w
                          for w in warnings)
  expected = flat_params(workdir_lib.load_trained(runs.ref / "checkpoints" / "8")[1])
  params = flat_params(params)
  assert all(np.array_equal(params[k], expected[k]) for k in expected)
  damaged = str(workdir / "checkpoints" / "12")
  (tmp_path / "hr").mkdir()
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "hr" / "flat.png")
  assert evaluate.main(["--model", damaged, "--hr-dir", str(tmp_path / "hr"), "--no-progress"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "cannot be restored" in err[0], err
  assert upscale.main([str(tmp_path / "hr" / "flat.png"), "--scale", "2",
                       "--output", str(tmp_path / "o"), "--model", damaged]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "cannot be restored" in err[0], err


def test_resume_skips_a_damaged_latest_checkpoint_and_saves_its_step_again(runs, tmp_path,
                                                                          caplog):
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(runs.ref, workdir)
  _damage(workdir / "checkpoints" / "12")
  with caplog.at_level("WARNING"):
    summary = loop.train_and_evaluate(debug_config(), workdir)
  warnings = [r.getMessage() for r in caplog.records if "skipped damaged" in r.getMessage()]
  assert len(warnings) == 1 and "checkpoints/12 (" in warnings[0] and "from step 8" in warnings[0]
  assert summary["step"] == NUM_STEPS
  assert (workdir / "damaged_checkpoints" / "12").is_dir()
  assert 12 in steps_on_disk(workdir)
  resumed = flat_params(workdir_lib.load_trained(workdir, prefer="latest")[1])
  reference = flat_params(workdir_lib.load_trained(runs.ref, prefer="latest")[1])
  for key in reference:  # in-process vs the CLI's process: equal up to float reassociation
    np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-5, atol=1e-7, err_msg=key)


def _free_port() -> int:
  import socket
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _start_processes(workdir, logs, cache_dir, num=2):
  port = _free_port()
  return [subprocess.Popen([sys.executable, str(REPO / "tests" / "distributed_worker.py"), str(i),
                            str(num), str(port), str(workdir)], cwd=REPO, env=env(cache_dir),
                           stdout=logs[i], stderr=subprocess.STDOUT) for i in range(num)]


def test_two_processes_train_like_one_and_resume_after_one_is_killed(runs, tmp_path):
  """configs/debug.py on two local processes (one CPU device each, gloo collectives), process 1
  SIGKILLed once the first checkpoint is on disk (process 0 then stops as a scheduler would stop
  it), both restarted: the run resumes and ends with the one-process run's params."""
  workdir, cache = tmp_path / "run", tmp_path / "jax_cache"
  log_paths = [tmp_path / f"{name}{i}.log" for name in ("first", "restart") for i in range(2)]
  logs = [open(p, "w") for p in log_paths]
  procs = []
  try:
    procs += _start_processes(workdir, logs[:2], cache)
    deadline = time.monotonic() + 300
    while not steps_on_disk(workdir) and all(p.poll() is None for p in procs) \
        and time.monotonic() < deadline:
      time.sleep(0.01)
    procs[1].send_signal(signal.SIGKILL)
    procs[0].send_signal(signal.SIGKILL)
    rcs = [p.wait(timeout=60) for p in procs]
    steps_at_kill = steps_on_disk(workdir)
    restart = _start_processes(workdir, logs[2:], cache)
    procs += restart
    restart_rcs = [p.wait(timeout=300) for p in restart]
  finally:
    for p in procs:  # none left running when the test fails
      if p.poll() is None:
        p.kill()
        p.wait()
    for f in logs:
      f.close()
  text = [p.read_text() for p in log_paths]
  assert rcs == [-signal.SIGKILL] * 2, [t[-3000:] for t in text[:2]]
  assert steps_at_kill and max(steps_at_kill) < NUM_STEPS, steps_at_kill
  assert restart_rcs == [0, 0], [t[-3000:] for t in text[2:]]
  assert "resumed from" in text[2] and "process 0 of 2 done at step 12" in text[2]
  assert "process 1 of 2 done at step 12" in text[3]
  resumed = flat_params(workdir_lib.load_trained(workdir, prefer="latest")[1])
  reference = flat_params(workdir_lib.load_trained(runs.ref, prefer="latest")[1])
  for key in reference:  # 2 devices vs 1: equal up to float reassociation
    np.testing.assert_allclose(resumed[key], reference[key], rtol=1e-5, atol=1e-5, err_msg=key)
