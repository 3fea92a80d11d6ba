"""The repo's `scripts/`: RESULTS.md's table is what the documented command prints, the curve plot
is drawn from the committed metrics, and the rho scan's param edit."""

import importlib.util
import json
import os
import pathlib
import re

import jax
import numpy as np
import pytest
from conftest import save_image, smooth_image

from lapsrn_jax.training.config import base_config
from lapsrn_jax.training.loop import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script(name: str):
  spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_results_md_tables_are_what_their_documented_commands_print_from_the_committed_json(
    capsys):
  results_md = (ROOT / "RESULTS.md").read_text()
  commands = re.findall(r"`python scripts/results_table\.py ([^`]+)`", results_md)
  assert len([c for c in commands if "--gaps" not in c]) == 1, \
      "RESULTS.md should document one command for Table 1"
  for command in commands:
    args = command.split()
    assert "--update" not in args  # the documented commands only print
    for option, value in zip(args[::2], args[1::2]):
      if option == "--gaps":
        continue
      for path in value.split(","):
        exists = (ROOT / path).is_dir() if option == "--from-dir" else (ROOT / path).is_file()
        assert exists, f"{path} (named in RESULTS.md) is not committed"
    _script("results_table").main([a if a.startswith("--") or a.startswith("cms") else ",".join(
        str(ROOT / p) for p in a.split(",")) for a in args])
    printed = capsys.readouterr().out.strip()
    # Table 1: header, rule, 18 rows; gaps: header, rule, 2 x 3 rows
    assert printed.count("\n") == (7 if "--gaps" in args else 19)
    assert printed in results_md, f"RESULTS.md lacks what `{command}` prints"


def test_results_table_gaps_are_differences_of_the_shown_two_decimal_values():
  rt = _script("results_table")
  measured = {"cms3": {("Set5", 2): (36.884, .95), ("Set14", 2): (32.6049, .9),
                       ("Set5", 4): (31.4951, .9)},
              "ms_lapsrn": {("Set5", 2): (37.776, .96), ("Set5", 4): (31.4949, .9)}}
  lines = rt.gaps(measured, "cms3").splitlines()
  assert lines[0].startswith("| CMS-LapSRN (3rd conv), ours, minus | Scale | Set5 |")
  assert lines[2] == ("| the poster's row | 2x | ✔ +0.00 | ✘ −0.01 | not run | not run "
                      "| not run |")  # 36.88 - 36.88; 32.60 - 32.61
  assert lines[3].startswith("| the poster's row | 4x | ✘ −0.01 |")  # 31.50 - 31.51
  assert lines[5].startswith("| MS-LapSRN D5R8 (official weights) | 2x | −0.90 | not run |")
  assert lines[6].startswith("| MS-LapSRN D5R8 (official weights) | 4x | +0.01 |")  # 31.50 - 31.49


def test_results_table_takes_rows_from_a_folder_and_updates_a_file_in_place(tmp_path, capsys):
  rt = _script("results_table")
  def result(set_name, psnr, model="ours:conv3"):
    return {"results": [{"model": model, "set": set_name, "scale": 2, "psnr": psnr, "ssim": 0.9}]}
  (tmp_path / "bicubic_urban100.json").write_text(json.dumps(result("Urban100", 26.0)))
  (tmp_path / "cms_conv3.json").write_text(json.dumps(result("Set5", 37.0)))  # GPU-era row
  found = rt.files_in(tmp_path)
  assert found["bicubic"].endswith("bicubic_urban100.json") and found["cms3"].endswith(
      "cms_conv3.json") and found["cms1"] == ""
  (tmp_path / "cms_cpu_conv3_set14.json").write_text(
      json.dumps(result("Set14", 33.0, "ours:cms_conv3_cpu@6000")))
  assert rt.files_in(tmp_path)["cms3"].endswith("cms_cpu_conv3_set14.json")  # the CPU rows win
  md = tmp_path / "R.md"
  md.write_text("intro\n\n| Model | Scale | Set5 | Set14 | BSDS100 | Urban100 | Manga109 |\n"
                "| old |\n\nafter\n")
  rt.main(["--from-dir", str(tmp_path), "--update", str(md)])
  printed = capsys.readouterr().out.strip()
  text = md.read_text()
  assert text.startswith("intro\n\n" + printed + "\n\nafter") and "| old |" not in text
  assert "**33.00** / 0.9000" in printed and "**37.00**" not in printed and "**26.00**" in printed
  assert "| CMS-LapSRN (3rd conv), ours: cms_conv3_cpu@6000 | 2x |" in printed  # which checkpoint


def test_results_table_refuses_a_row_whose_files_scored_different_weights_under_one_name(
    tmp_path):
  rt = _script("results_table")
  def write(name, set_name, weights=None):
    result = {"model": "ours:cms_conv3_cpu@5000", "set": set_name, "scale": 2, "psnr": 37.0,
              "ssim": 0.9, **({"weights": weights} if weights else {})}
    (tmp_path / name).write_text(json.dumps({"results": [result]}))
    return str(tmp_path / name)
  old = write("cms_cpu_conv3_set5.json", "Set5")  # written before fingerprints: not compared
  a = write("cms_cpu_conv3_set14.json", "Set14", "sha256:aaaaaaaaaaaaaaaa")
  b = write("cms_cpu_conv3_urban100.json", "Urban100", "sha256:aaaaaaaaaaaaaaaa")
  assert rt.model_names(",".join([old, a, b])) == ["ours:cms_conv3_cpu@5000"]
  c = write("cms_cpu_conv3_manga109.json", "Manga109", "sha256:bbbbbbbbbbbbbbbb")
  with pytest.raises(ValueError, match="sha256:aaaaaaaaaaaaaaaa in .*set14.json but "
                                       "sha256:bbbbbbbbbbbbbbbb in .*manga109.json"):
    rt.model_names(",".join([old, a, b, c]))
  with pytest.raises(SystemExit, match="one row must come from one checkpoint"):
    rt.main(["--from-dir", str(tmp_path)])


def test_results_table_shows_not_run_for_a_row_without_json():
  table = _script("results_table").table({"bicubic": {("Set5", 2): (33.69, 0.9307)}})
  row = next(line for line in table.splitlines() if line.startswith("| Bicubic | 2x"))
  assert "**33.69** / 0.9307 (33.69 / 0.931)" in row and "not run (30.25 / 0.870)" in row


def test_curves_keep_the_last_record_of_a_step_and_drop_steps_below_min_step():
  curves = _script("plot_training_curves").curves
  records = [{"step": 0, "x": 1.0}, {"step": 250, "x": 2.0}, {"step": 250, "x": 3.0},
             {"step": 500, "y": 9.0}, {"step": 750, "x": 4.0}]
  assert curves(records, "x") == ([0, 250, 750], [1.0, 3.0, 4.0])
  assert curves(records, "x", min_step=250) == ([250, 750], [3.0, 4.0])


def test_training_curve_figure_is_drawn_from_the_committed_metrics(tmp_path):
  runs = ROOT / "results" / "cms_runs"
  for name in ("conv3", "conv3_long"):
    first = json.loads((runs / name / "metrics.jsonl").read_text().splitlines()[0])
    assert "step" in first
  out = tmp_path / "curves.png"
  _script("plot_training_curves").main([str(runs), "--out", str(out), "--runs-only",
                                        "conv3,conv3_long", "--min-step", "1000"])
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rho_scan_sets_rho_through_theta_and_leaves_the_checkpoint_params_alone():
  rho_scan = _script("rho_scan")
  theta = np.float32(-0.5)
  params = {"upconv": {"bias": np.zeros(4, np.float32), "theta": theta},
            "conv": {"kernel": np.ones((3, 3, 1, 1), np.float32)}}
  for rho in (1e-2, 0.453, 10.0):
    edited = rho_scan.with_rho(params, rho)
    np.testing.assert_allclose(jax.nn.softplus(edited["upconv"]["theta"]), rho, rtol=1e-5)
    assert edited["conv"] is params["conv"] and edited["upconv"]["bias"] is params["upconv"]["bias"]
  assert params["upconv"]["theta"] == theta


def test_rho_scan_of_a_tiny_trained_cms_run_finds_its_learned_rho_and_reports_every_rho(tmp_path):
  config = base_config()
  config.model.name = "cms_lapsrn"
  config.model.overrides = {"depth": 1, "recursions": 1, "tie_to": 1, "pad": 2, "features": 4}
  config.data.train, config.data.val = "skimage:train", "skimage:val"
  config.train.update(num_steps=2, batch_size=2, patch_size=16, scales=(2, 4), progress_bar=False)
  config.eval.update(every=2, scales=(2, 4), crop=32)
  config.checkpoint.update(every=2, async_save=False)
  train_and_evaluate(config, tmp_path / "run")
  out = tmp_path / "scan.json"
  _script("rho_scan").main(["--model", str(tmp_path / "run"), "--rhos", "0.1,10",
                            "--max-images", "1", "--train-batches", "2", "--first-batch", "7",
                            "--out", str(out)])
  result = json.loads(out.read_text())
  rows = result["rows"]
  assert [r["rho"] for r in rows][0] == 0.1 and rows[-1]["rho"] == 10.0 and len(rows) == 3
  learned = [r for r in rows if r["learned"]]
  assert len(learned) == 1 and learned[0]["rho"] == result["learned_rho"]
  assert 0.1 < result["learned_rho"] < 10  # rho_init = 1, two small steps
  assert len(result["dloss_dtheta"]) == 2 and all(np.isfinite(result["dloss_dtheta"]))
  assert result["train_batches"] == [7, 8] and result["validation_images"] == 1
  losses = [r["train_loss"] for r in rows]
  assert all(np.isfinite(losses)) and len(set(losses)) == 3  # rho changes the network
  assert all(np.isfinite(r["val/psnr_x2"]) and np.isfinite(r["val/psnr_x4"]) for r in rows)


def test_train_loss_of_a_checkpoint_equals_the_loss_the_training_loop_logged_for_it(tmp_path):
  """Oracle: the loop's own log. Step 2 trains the step-1 params on batch 1, so with log_every=1
  the loss it logs is what train_loss must report for checkpoint 1 on batch 1."""
  config = base_config()
  config.model.name = "ms_lapsrn"
  config.model.overrides = {"depth": 1, "recursions": 1, "features": 4}
  config.data.train, config.data.val = "skimage:train", "skimage:val"
  config.train.update(num_steps=2, batch_size=2, patch_size=16, scales=(2, 4), progress_bar=False,
                      log_every=1)
  config.eval.update(every=0, scales=(2,), crop=32, max_images=1)
  config.checkpoint.update(every=1, keep=3, async_save=False)
  run = tmp_path / "run"
  train_and_evaluate(config, run)
  logged = {r["step"]: r["train/loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text(
      ).splitlines()) if "train/loss" in r}
  out = tmp_path / "loss.json"
  _script("train_loss").main(["--run", str(run), "--model", str(run / "checkpoints" / "1"),
                              "--model", str(run / "checkpoints" / "2"), "--first-batch", "1",
                              "--out", str(out)])
  result = json.loads(out.read_text())
  assert result["train_batches"] == [1]
  step1, step2 = result["rows"]
  np.testing.assert_allclose(step1["train_loss"], logged[2], rtol=1e-5)
  np.testing.assert_allclose(step1["loss_x2"] + step1["loss_x4"], step1["train_loss"], rtol=1e-6)
  assert step2["train_loss"] != step1["train_loss"]  # a step later, other params


_FAKE_TRAINER = """
import pathlib, sys, time
workdir = pathlib.Path(sys.argv[1])
step = max([int(p.name) for p in (workdir / "checkpoints").glob("[0-9]*")] + [0]) + 10
(workdir / "checkpoints" / str(step)).mkdir(parents=True)
end = time.process_time() + float(sys.argv[2])
while time.process_time() < end:  # burn CPU, as training would
  pass
time.sleep(float(sys.argv[3]))
"""


def _run_budget(tmp_path, workdir, burn, sleep, budget_hours, kill_after=None):
  """Runs cpu_budget_train's `train` in a subprocess with a fake trainer that makes one checkpoint
  (10 steps) and burns `burn` CPU-seconds per segment; SIGKILLs it after `kill_after` seconds."""
  import signal
  import subprocess
  import sys
  import time
  script = str(ROOT / "scripts" / "cpu_budget_train.py")
  code = f"""
import importlib.util, pathlib, sys
spec = importlib.util.spec_from_file_location("cbt", {script!r})
cbt = importlib.util.module_from_spec(spec); spec.loader.exec_module(cbt)
cbt.POLL_SECONDS = 0.2
cbt._train_command = lambda config, workdir, wall, cpu, extra: [
    sys.executable, "-c", {_FAKE_TRAINER!r}, str(workdir), "{burn}", "{sleep}"]
cbt.train("unused", pathlib.Path({str(workdir)!r}), {budget_hours}, 1, 60.0, [],
          reserve_seconds=0.0)
"""
  proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  if kill_after is None:
    return proc.communicate(timeout=120)[0]
  time.sleep(kill_after)
  os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and its trainer, as a closed session would
  proc.communicate()
  return None


def test_cpu_budget_books_a_killed_segment_and_stops_at_the_budget(tmp_path):
  workdir = tmp_path / "run"
  cbt = _script("cpu_budget_train")
  # Killed mid-segment: the trainer made checkpoint 10 and burnt ~1 CPU-second before the kill.
  _run_budget(tmp_path, workdir, burn=1.0, sleep=30, budget_hours=1.0, kill_after=3.0)
  assert (workdir / cbt.OPEN).is_file() and not (workdir / cbt.LEDGER).exists()
  # The next run books it first, then trains segments of ~0.5 CPU-s up to the budget (2 CPU-s).
  out = _run_budget(tmp_path, workdir, burn=0.5, sleep=0, budget_hours=2.0 / 3600)
  rows = cbt._ledger(workdir)
  assert "booked a killed segment: steps 0 -> 10" in out
  assert rows[0]["killed"] and rows[0]["start_step"] == 0 and rows[0]["end_step"] == 10
  assert 0.8 <= rows[0]["cpu_seconds"] <= 1.6  # polled every 0.2 s while it burnt 1 s
  assert not (workdir / cbt.OPEN).exists()
  assert [(r["start_step"], r["end_step"]) for r in rows[1:]] == [
      (10 * i, 10 * i + 10) for i in range(1, len(rows))]
  spent = sum(r["cpu_seconds"] for r in rows)
  assert 2.0 <= spent < 2.0 + 1.0 and "budget spent" in out


def test_crops_figure_box_is_where_the_last_model_beats_the_chosen_panel(tmp_path, capsys):
  crops = _script("make_crops_figure")
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (64, 64), dtype=np.uint8)
  a = hr.copy()
  b = hr.copy()
  a[32:48, 16:32] = 0  # `a` is wrong in one window, `b` in another
  b[0:16, 48:64] = 0
  assert crops.best_box(hr, a, b, 16) == (32, 16)  # where b beats a
  assert crops.best_box(hr, b, a, 16) == (0, 48)  # where a beats b
  image = save_image(tmp_path / "photo.png", smooth_image(rng, 48, 40, 3))
  out = tmp_path / "fig" / "crops.png"
  crops.main(["--image", str(image), "--scale", "2", "--model", "bicubic", "--versus", "1",
              "--size", "16", "--out", str(out)])
  printed = capsys.readouterr().out
  assert out.is_file()
  # Each panel's PSNR on the whole image and on the crop, and where the crop is.
  assert re.search(r"bicubic \d+\.\d\d dB \(crop \d+\.\d\d dB\); crop 16 px at \(\d+, \d+\)",
                   printed), printed
  with pytest.raises(SystemExit):
    crops.main(["--image", str(image), "--model", "bicubic", "--versus", "2", "--out", str(out)])


def test_per_image_gains_compares_images_scored_by_both_from_json_and_journal(tmp_path):
  gains = _script("per_image_gains")
  a = tmp_path / "a.json"
  a.write_text(json.dumps({"results": [
      {"set": "S", "scale": 4, "psnr": 0, "images": [
          {"name": "i1", "psnr": 30.0}, {"name": "i2", "psnr": 20.0},
          {"name": "i3", "psnr": 25.0}]},
      {"set": "S", "scale": 2, "psnr": 0, "images": [{"name": "i1", "psnr": 40.0}]}]}))
  b = tmp_path / "b.json.part.journal.jsonl"  # a run still going: i3 not scored yet
  b.write_text("\n".join(json.dumps(r) for r in (
      {"evaluate_journal": 1, "models": ["m"]},
      {"set": "S", "scale": 4, "name": "i1", "psnr": 30.5},
      {"set": "S", "scale": 4, "name": "i2", "psnr": 19.0},
      {"set": "S", "scale": 2, "name": "i1", "psnr": 39.0})) + "\n")
  report = gains.gains(gains.per_image(a), gains.per_image(b), scale=4, top=1)
  assert report.splitlines() == [
      "S x4: 2 images, B above A on 1, B - A mean -0.250 dB, median -0.250 dB",
      "  largest gains:  i1 +0.50", "  largest losses: i2 -1.00"]
  assert "S x2: 1 images, B above A on 0" in gains.gains(gains.per_image(a), gains.per_image(b))
  assert gains.gains(gains.per_image(a), gains.per_image(b), scale=8).startswith("no image")


def test_per_image_gains_same_accepts_only_identical_psnrs_of_every_image(tmp_path, capsys):
  gains = _script("per_image_gains")
  def write(name, images):
    (tmp_path / name).write_text(json.dumps({"results": [
        {"set": "S", "scale": 2, "psnr": 0, "images": [
            {"name": n, "psnr": p} for n, p in images.items()]}]}))
    return str(tmp_path / name)
  a = write("a.json", {"i1": 30.123456789, "i2": 20.0})
  assert gains.main([a, write("same.json", {"i1": 30.123456789, "i2": 20.0, "i3": 1.0}),
                     "--same"]) == 0
  assert "every PSNR identical" in capsys.readouterr().out
  assert gains.main([a, write("off.json", {"i1": 30.123456788, "i2": 20.0}), "--same"]) == 1
  assert "S x2 i1: 30.123456789 in A, 30.123456788 in B" in capsys.readouterr().out
  assert gains.main([a, write("short.json", {"i1": 30.123456789}), "--same"]) == 1
  assert "i2: 20.0 in A, not scored in B" in capsys.readouterr().out


def test_evaluate_sets_writes_one_json_per_row_and_set_and_skips_finished_ones(tmp_path):
  import subprocess
  import sys
  rng = np.random.default_rng(1)
  for name in ("SetA", "SetB"):
    (tmp_path / "data" / name).mkdir(parents=True)
    save_image(tmp_path / "data" / name / "im.png", smooth_image(rng, 40, 32, 3))
  env = {**os.environ, "LAPSRN_DATA_DIR": str(tmp_path / "data"), "PYTHON": sys.executable}
  cmd = ["bash", str(ROOT / "scripts" / "evaluate_sets.sh"), "SetA,SetB", str(tmp_path / "out"),
         "bic=bicubic"]
  first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
  assert first.count("running: bicubic") == 2
  for name in ("seta", "setb"):
    results = json.loads((tmp_path / "out" / f"bic_{name}.json").read_text())["results"]
    assert [r["scale"] for r in results] == [2, 4, 8] and results[0]["num_images"] == 1
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bic_seta.json", "bic_setb.json"]
  again = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
  assert "running" not in again and again.count("done: ") == 2
  bad = subprocess.run(cmd[:-1] + ["bicubic"], env=env, capture_output=True, text=True)
  assert bad.returncode == 2 and "TAG=MODEL" in bad.stderr


_STUB_PYTHON = '''#!{python}
"""Stands in for python in scripts/cpu_table1.sh: training only logs its arguments to $STUB_LOG,
evaluate writes a result whose every PSNR is $STUB_PSNR, anything else runs for real."""
import json, os, pathlib, sys
args = sys.argv[1:]
if args[0].endswith("cpu_budget_train.py"):
  with open(os.environ["STUB_LOG"], "a") as log:
    log.write(" ".join(args[1:]) + "\\n")
  sys.exit(0)
if args[:2] == ["-m", "lapsrn_jax.evaluate"]:
  psnr, name = float(os.environ["STUB_PSNR"]), args[args.index("--sets") + 1]
  pathlib.Path(args[args.index("--output") + 1]).write_text(json.dumps({"results": [
      {"model": "m", "set": name, "scale": 2, "psnr": psnr, "ssim": 0.9,
       "images": [{"name": "im", "psnr": psnr, "ssim": 0.9}]}]}))
  sys.exit(0)
os.execv(sys.executable, [sys.executable, *args])
'''


def test_cpu_table1_moves_aside_the_results_of_a_tie_trained_again_into_another_checkpoint(
    tmp_path):
  import subprocess
  import sys
  stub = tmp_path / "python"
  stub.write_text(_STUB_PYTHON.replace("{python}", sys.executable))
  stub.chmod(0o755)
  out = tmp_path / "results" / "evaluate"
  out.mkdir(parents=True)
  cmd = ["bash", str(ROOT / "scripts" / "cpu_table1.sh"), str(tmp_path / "runs"), str(out)]
  log = tmp_path / "train.log"
  env = {**os.environ, "PYTHON": str(stub), "TIES": "3", "LAPSRN_DATA_DIR": str(tmp_path),
         "STUB_LOG": str(log)}
  scored = lambda name: json.loads((out / name).read_text())["results"][0]["psnr"]

  subprocess.run(cmd, env={**env, "STUB_PSNR": "37.5"}, check=True, capture_output=True)
  assert scored("cms_cpu_conv3_set5.json") == scored("cms_cpu_conv3_manga109.json") == 37.5
  train, report = log.read_text().splitlines()
  assert "--workdir " + str(tmp_path / "runs" / "cms_conv3_cpu") in train
  assert "--budget-hours 3 " in train and "num_steps" not in train
  curve = tmp_path / "results" / "cpu_recipe" / "conv3.json"  # next to OUT_DIR
  assert report.endswith(f"--report --json {curve}")
  # The same checkpoint again (its run folder kept, or retrained bit for bit): nothing moves.
  flags = "--config.eval.every=0 --config.eval.at_start=False"  # TRAIN_FLAGS: word-split
  subprocess.run(cmd, env={**env, "STUB_PSNR": "37.5", "STEPS": "5000", "TRAIN_FLAGS": flags},
                 check=True, capture_output=True)
  assert log.read_text().splitlines()[2].endswith(f" --config.train.num_steps=5000 {flags}")
  assert not (out / "superseded").exists()
  # Its run folder lost, the tie trained again into other weights: every set is scored again.
  (out / "cms_cpu_conv3_manga109.json").rename(out / "cms_cpu_conv3_manga109.json.part")
  run = subprocess.run(cmd, env={**env, "STUB_PSNR": "37.4"}, check=True, capture_output=True,
                       text=True)
  assert "another checkpoint than the one scored" in run.stdout
  (moved,) = (out / "superseded").iterdir()
  assert sorted(p.name for p in moved.iterdir()) == [
      "cms_cpu_conv3_bsds100.json", "cms_cpu_conv3_manga109.json.part", "cms_cpu_conv3_set14.json",
      "cms_cpu_conv3_set5.json", "cms_cpu_conv3_urban100.json"]
  for name in ("set5", "set14", "bsds100", "urban100", "manga109"):
    assert scored(f"cms_cpu_conv3_{name}.json") == 37.4
  assert scored("ms_d5r8_urban100.json") == 37.5  # the other rows stay
