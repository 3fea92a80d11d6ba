"""Trains for a CPU budget, in resumable segments, and reports validation PSNR per CPU-hour.

    python scripts/cpu_budget_train.py --config configs/cms_lapsrn_d5r8_conv3.py:cpu \\
        --workdir workdirs/cms_conv3_cpu --budget-hours 3 --cores 2
    python scripts/cpu_budget_train.py --workdir workdirs/cms_conv3_cpu --report  # the curve

Arguments after the known ones (e.g. `--config.train.progress_bar=False`) go to the train CLI.

Runs `python -m lapsrn_jax.train --config CONFIG --workdir WORKDIR
--config.train.max_cpu_seconds=LEFT` (the budget left, less a reserve for the validation the run
ends with), resuming from the workdir's last checkpoint, and again after a stop (or a
`--segment-minutes` wall limit). After each segment it appends to `WORKDIR/cpu_budget.jsonl` the
child's CPU time (user + system, all threads, seconds), its wall time and the step reached. The
budget is `budget_hours x cores x 3600` CPU-seconds (a machine with `cores` cores fully used for
`budget_hours`: counting CPU time rather than wall time keeps the budget honest on a shared
machine); it stops when less than the reserve is left, or when training ends. Killed at any
moment, running the same command again goes on from the last checkpoint: while a segment runs,
its CPU time so far is written to `WORKDIR/cpu_budget.open.json` every 30 s (Linux: read from
`/proc`), and the next run books a killed segment from that file (`"killed": true`, at most 30 s
of CPU uncounted).

`--report` prints, for each validation in `WORKDIR/metrics.jsonl`, the step, the CPU-hours spent
to reach it (interpolated by step within its segment) and the validation PSNR per scale, as a
Markdown table, and with `--json OUT` writes the same rows.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

LEDGER = "cpu_budget.jsonl"
OPEN = "cpu_budget.open.json"  # the running segment's CPU so far; left behind when killed
POLL_SECONDS = 30.0


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float | None:
  """CPU seconds (user + system, all threads, plus its waited-for children) of a live process, from
  `/proc/<pid>/stat`; None where there is no `/proc` (the killed-segment record is then skipped)."""
  try:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
  except OSError:
    return None
  ticks = os.sysconf("SC_CLK_TCK")
  return sum(int(f) for f in fields[11:15]) / ticks  # utime, stime, cutime, cstime


def _write_json(path: pathlib.Path, value: dict) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value))
  os.replace(tmp, path)


def _append(workdir: pathlib.Path, row: dict) -> None:
  with open(workdir / LEDGER, "a", encoding="utf-8") as f:
    f.write(json.dumps(row) + "\n")


def _book_killed_segment(workdir: pathlib.Path) -> None:
  """Turns a killed segment's `OPEN` record into a ledger row (its CPU up to the last poll)."""
  path = workdir / OPEN
  if not path.is_file():
    return
  try:
    row = json.loads(path.read_text())
  except ValueError:  # killed while writing it: the previous poll is lost, count nothing
    row = None
  if row:
    row.update(end_step=_last_step(workdir), killed=True)
    _append(workdir, row)
    print(f"booked a killed segment: steps {row['start_step']} -> {row['end_step']}, "
          f"{row['cpu_seconds'] / 3600:.2f} CPU-hours", flush=True)
  path.unlink()


def _ledger(workdir: pathlib.Path) -> list[dict]:
  path = workdir / LEDGER
  if not path.is_file():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _last_step(workdir: pathlib.Path) -> int:
  folder = workdir / "checkpoints"
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(steps, default=0)


def _train_command(config: str, workdir: pathlib.Path, wall_seconds: float, cpu_seconds: float,
                   extra: list[str]) -> list[str]:
  return [sys.executable, "-m", "lapsrn_jax.train", "--config", config, "--workdir", str(workdir),
          f"--config.train.max_seconds={wall_seconds:.0f}",
          f"--config.train.max_cpu_seconds={cpu_seconds:.0f}", *extra]


def train(config: str, workdir: pathlib.Path, budget_hours: float, cores: int,
          segment_seconds: float, extra: list[str], reserve_seconds: float = 300.0) -> None:
  """Trains in segments until `budget_hours x cores` CPU-hours (less `reserve_seconds`) are used.

  `segment_seconds`: wall limit per segment (0 = none); `reserve_seconds`: CPU time kept for the
  validation and checkpoint a segment ends with (a segment stops once its process has used the
  budget left less this), and the least budget worth starting a segment for."""
  budget = budget_hours * cores * 3600.0
  workdir.mkdir(parents=True, exist_ok=True)
  _book_killed_segment(workdir)
  while True:
    spent = sum(row["cpu_seconds"] for row in _ledger(workdir))
    left = budget - spent - reserve_seconds
    if left <= reserve_seconds:  # start-up alone (init, compilation) costs minutes of CPU
      print(f"budget spent: {spent / 3600:.2f} CPU-hours of {budget / 3600:.2f}")
      return
    start_step, cpu0, wall0 = _last_step(workdir), _children_cpu(), time.time()
    cmd = _train_command(config, workdir, segment_seconds, left, extra)
    print("running:", " ".join(cmd), flush=True)
    child = subprocess.Popen(cmd)
    while True:
      try:
        status = child.wait(timeout=POLL_SECONDS)
        break
      except subprocess.TimeoutExpired:
        cpu = _process_cpu(child.pid)
        if cpu is not None:
          _write_json(workdir / OPEN, {"start_step": start_step, "cpu_seconds": round(cpu, 1),
                                       "wall_seconds": round(time.time() - wall0, 1),
                                       "finished": _now()})
    row = {"start_step": start_step, "end_step": _last_step(workdir),
           "cpu_seconds": round(_children_cpu() - cpu0, 1),
           "wall_seconds": round(time.time() - wall0, 1), "finished": _now()}
    _append(workdir, row)
    (workdir / OPEN).unlink(missing_ok=True)
    if status:
      raise SystemExit(f"training exited with status {status} (its CPU time is booked); fix it "
                       "and run this again")
    print(f"segment: steps {row['start_step']} -> {row['end_step']}, "
          f"{row['cpu_seconds'] / 3600:.2f} CPU-hours", flush=True)
    if row["end_step"] == row["start_step"]:  # nothing left to train (num_steps reached)
      return


def _now() -> str:
  return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _cpu_hours_at(step: int, ledger: list[dict]) -> float | None:
  """CPU-hours spent when `step` was reached (linear in steps within its segment)."""
  spent = 0.0
  for row in ledger:
    a, b = row["start_step"], row["end_step"]
    if step <= b:
      frac = 0.0 if b == a else (step - a) / (b - a)
      return (spent + max(frac, 0.0) * row["cpu_seconds"]) / 3600
    spent += row["cpu_seconds"]
  return None


def report(workdir: pathlib.Path, out: pathlib.Path | None) -> None:
  ledger = _ledger(workdir)
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if line.strip()]
  rows, seen = [], set()
  for r in records:
    keys = sorted((k for k in r if k.startswith("val/psnr_x")),
                  key=lambda k: int(k[len("val/psnr_x"):]))
    if not keys or r["step"] in seen:
      continue
    seen.add(r["step"])
    hours = _cpu_hours_at(r["step"], ledger)
    rows.append({"step": r["step"], "cpu_hours": None if hours is None else round(hours, 3),
                 **{k.split("/")[1]: round(r[k], 3) for k in keys}})
  scales = [k for k in rows[0] if k.startswith("psnr_x")] if rows else []
  print("| step | CPU-hours | " + " | ".join(scales) + " |")
  print("|---|---|" + "---|" * len(scales))
  for row in rows:
    hours = "—" if row["cpu_hours"] is None else f"{row['cpu_hours']:.2f}"
    print(f"| {row['step']} | {hours} | " + " | ".join(f"{row[s]:.2f}" for s in scales) + " |")
  if out:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workdir": workdir.name, "segments": ledger, "validations": rows},
                              indent=1))


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", help="config file[:arg] (required unless --report)")
  p.add_argument("--workdir", type=pathlib.Path, required=True)
  p.add_argument("--budget-hours", type=float, default=3.0, help="hours of the whole machine")
  p.add_argument("--cores", type=int, default=2, help="cores of the machine the budget is for")
  p.add_argument("--segment-minutes", type=float, default=0.0,
                 help="wall minutes per segment (0 = one segment until the budget is used; each "
                      "ends with a validation; a killed one is booked anyway)")
  p.add_argument("--reserve-cpu-minutes", type=float, default=5.0,
                 help="CPU minutes kept for the final validation (one validation on BSDS100 crops "
                      "costs ~4 on this recipe)")
  p.add_argument("--report", action="store_true", help="print the PSNR / CPU-hour curve")
  p.add_argument("--json", type=pathlib.Path, help="with --report: also write it as JSON")
  args, extra = p.parse_known_args(argv)
  extra = [a for a in extra if a != "--"]  # the rest goes to lapsrn_jax.train
  if args.report:
    report(args.workdir, args.json)
  elif not args.config:
    p.error("--config is required to train")
  else:
    train(args.config, args.workdir, args.budget_hours, args.cores, 60 * args.segment_minutes,
          extra, reserve_seconds=60 * args.reserve_cpu_minutes)


if __name__ == "__main__":
  main()
