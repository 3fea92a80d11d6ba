"""Wall time of the evaluation (`lapsrn_jax.evaluate.evaluate_model`): MS-LapSRN vs CMS-LapSRN.

    python benchmarks/evaluate_time.py --sets Set5,Set14,BSDS100     # needs the data and weights

Each model runs in its own fresh process (its compilations and, for CMS-LapSRN, its factorisation
included, as a user's `python -m lapsrn_jax.evaluate` run would pay them) over every image of the
sets at 2x, 4x and 8x, one after another in this run: MS-LapSRN D5R8 (official weights) and
CMS-LapSRN D5R8 tied to conv 3, built from the same official weights
(`weights.cms_params_from_ms`, rho = 1: the same cost as a trained one). Reports seconds, the
ratio CMS / MS, peak RSS and the mean PSNR per set and scale (a sanity check, not a result).
"""

import argparse
import datetime
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from inference import machine_info, rss_mb, run_in_subprocess  # noqa: E402  pylint: disable=wrong-import-position
from model_times import cms_model  # noqa: E402  pylint: disable=wrong-import-position

MODELS = ("ms", "cms3")


def worker(spec: dict) -> dict:
  from lapsrn_jax import evaluate  # pylint: disable=import-outside-toplevel

  if spec["model"] == "ms":
    model = evaluate.model_from_spec("official:MSLapSRN_D5R8", weights_dir=spec["weights"])
  else:
    model = cms_model(3, spec["weights"])
  sets = evaluate.resolve_sets(data_dir=spec["data"], set_names=spec["sets"])
  start = time.perf_counter()
  out = evaluate.evaluate_model(model, sets, (2, 4, 8), progress=False)
  seconds = time.perf_counter() - start
  return {**spec, "seconds": seconds, "peak_rss_mb": rss_mb(),
          "psnr": {f"{r['set']} x{r['scale']}": r["psnr"] for r in out["results"]},
          "failed_images": out["failed_images"]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--sets", default="Set5,Set14,BSDS100")
  parser.add_argument("--weights", default=os.environ.get("LAPSRN_WEIGHTS_DIR", ""))
  parser.add_argument("--data", default=os.environ.get("LAPSRN_DATA_DIR", ""))
  parser.add_argument("--json", default="", help="also write the records here")
  args = parser.parse_args(argv)
  if args.worker:
    print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0
  if not args.weights or not args.data:
    parser.error("set LAPSRN_WEIGHTS_DIR and LAPSRN_DATA_DIR (or pass --weights / --data)")
  info = machine_info()
  start = datetime.datetime.now(datetime.timezone.utc)
  rows = []
  for name in MODELS:
    spec = {"model": name, "sets": args.sets.split(","), "weights": os.path.abspath(args.weights),
            "data": os.path.abspath(args.data)}
    rows.append(run_in_subprocess(spec, __file__))
    r = rows[-1]
    print(f"{name}: " + (f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
                         if "error" not in r else r["error"]), flush=True)
  end = datetime.datetime.now(datetime.timezone.utc)
  if any("error" in r for r in rows):
    return 1
  ms, cms = rows
  print(f"\n{info['cpu']}, {info['cpu_count']} cores, {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC, load "
        f"at start {info['loadavg'][0]:.1f}, at end {os.getloadavg()[0]:.1f}; sets {args.sets}, "
        "scales 2/4/8\n")
  print("| model | evaluate wall s | vs MS | peak RSS MB |")
  print("|---|---|---|---|")
  for label, r in (("MS-LapSRN D5R8 (official)", ms), ("CMS-LapSRN conv3 (converted)", cms)):
    print(f"| {label} | {r['seconds']:.0f} | {r['seconds'] / ms['seconds']:.2f} | "
          f"{r['peak_rss_mb']:.0f} |")
  print("\nmean PSNR (MS / CMS): " + ", ".join(
      f"{k} {ms['psnr'][k]:.2f} / {cms['psnr'][k]:.2f}" for k in ms["psnr"]))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "start": start.isoformat(), "end": end.isoformat(),
                 "rows": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
