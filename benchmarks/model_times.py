"""Seconds per image of every model of RESULTS.md's table, through the evaluation's own path.

    python benchmarks/model_times.py                       # needs LAPSRN_WEIGHTS_DIR
    python benchmarks/model_times.py --cms runs/conv1,runs/conv3,runs/conv5 --repeats 5

Each model is `lapsrn_jax.evaluate.model_from_spec(spec)` and is timed on `model.upscale(lr, s)`,
the call `python -m lapsrn_jax.evaluate` makes per test image: RGB in, the network on Y, MATLAB
bicubic on Cb/Cr, RGB out. The input is one BSDS100-sized photo (HR 480x320, scikit-image's embedded
`astronaut` cropped, so no data download), downscaled by MATLAB bicubic to 240x160 / 120x80 /
60x40 for 2x / 4x / 8x. Rows: bicubic, LapSRN x2/x4/x8 (official, each at its own scale),
MS-LapSRN D5R8 (official) and CMS-LapSRN tied to conv 1/3/5. The CMS models are the official
MS-LapSRN weights converted (`weights.cms_params_from_ms`) unless `--cms` names trained workdirs:
the cost is the same (same shapes, same solve). "first" is the first call (compilation, and for
CMS the factorisation of its solve); "median" is over `--repeats` later calls, when CMS-LapSRN
reuses its cached factor (`lapsrn_jax.inference.cached_factor`, one for every image size), as the
evaluation does. Every model runs in this one process, one after another.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from inference import machine_info  # noqa: E402  pylint: disable=wrong-import-position

HR_SHAPE = (320, 480)  # BSDS100's landscape geometry, mod-8


def bsds_sized_photo() -> np.ndarray:
  """uint8 RGB `[320, 480, 3]`: scikit-image's `astronaut` (512x512), centre rows, left columns."""
  from skimage import data  # pylint: disable=import-outside-toplevel
  img = data.astronaut()
  top = (img.shape[0] - HR_SHAPE[0]) // 2
  return np.ascontiguousarray(img[top:top + HR_SHAPE[0], :HR_SHAPE[1]])


def cms_model(tie_to: int, weights_dir: str):
  """An `evaluate.Model` of CMS-LapSRN D5R8 tied to conv `tie_to`, from the converted official
  MS-LapSRN weights (same cost as a trained one)."""
  from lapsrn_jax import evaluate  # pylint: disable=import-outside-toplevel
  from lapsrn_jax.inference import super_resolve  # pylint: disable=import-outside-toplevel
  from lapsrn_jax.models import create_model  # pylint: disable=import-outside-toplevel
  from lapsrn_jax.weights import (  # pylint: disable=import-outside-toplevel
      cms_params_from_ms, load_official)
  _, ms_params = load_official(os.path.join(weights_dir, "MSLapSRN_D5R8.mat"))
  net = create_model(f"cms_lapsrn_d5r8_conv{tie_to}")
  params = cms_params_from_ms(ms_params, tie_to=tie_to)
  return evaluate.Model(f"cms_conv{tie_to} (converted)",
                        lambda lr, scale: super_resolve(net, params, lr, scale))


def models(args) -> list[tuple[str, object, tuple[int, ...]]]:
  """`(row label, evaluate.Model, scales)` in table order."""
  from lapsrn_jax import evaluate  # pylint: disable=import-outside-toplevel
  rows = [("Bicubic", evaluate.model_from_spec("bicubic"), (2, 4, 8))]
  rows += [(f"LapSRN x{s} (official)", evaluate.model_from_spec(f"official:LapSRN_x{s}"), (s,))
           for s in (2, 4, 8)]
  rows.append(("MS-LapSRN D5R8 (official)", evaluate.model_from_spec("official:MSLapSRN_D5R8"),
               (2, 4, 8)))
  workdirs = [w for w in args.cms.split(",") if w]
  for i, k in enumerate((1, 3, 5)):
    model = (evaluate.model_from_spec(workdirs[i]) if workdirs else cms_model(k, args.weights_dir))
    rows.append((f"CMS-LapSRN conv{k}", model, (2, 4, 8)))
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--repeats", type=int, default=5, help="timed calls after the first")
  p.add_argument("--cms", default="",
                 help="three CMS workdirs (conv1,conv3,conv5), comma-separated")
  p.add_argument("--weights-dir", default=os.environ.get("LAPSRN_WEIGHTS_DIR", ""))
  p.add_argument("--json", default="", help="also write the records here")
  args = p.parse_args(argv)
  if not args.weights_dir:
    p.error("set LAPSRN_WEIGHTS_DIR or pass --weights-dir (the official .mat files)")
  if args.cms and len([w for w in args.cms.split(",") if w]) != 3:
    p.error("--cms takes three workdirs: conv1,conv3,conv5")
  os.environ["LAPSRN_WEIGHTS_DIR"] = args.weights_dir

  from lapsrn_jax.imresize import imresize  # pylint: disable=import-outside-toplevel
  info = machine_info()
  start = datetime.datetime.now(datetime.timezone.utc)
  hr = bsds_sized_photo()
  lr = {s: imresize(hr.astype(np.float64) / 255.0, 1.0 / s) for s in (2, 4, 8)}
  records = []
  for label, model, scales in models(args):
    for s in scales:
      t = time.perf_counter()
      out = model.upscale(lr[s], s)
      first = time.perf_counter() - t
      assert out.shape[:2] == HR_SHAPE, (label, s, out.shape)
      times = []
      for _ in range(args.repeats):
        t = time.perf_counter()
        model.upscale(lr[s], s)
        times.append(time.perf_counter() - t)
      records.append({"model": label, "scale": s, "first_s": first,
                      "median_s": statistics.median(times), "repeats": args.repeats})
      print(f"{label:28s} {s}x  first {first:7.2f} s  median {records[-1]['median_s']:7.3f} s",
            flush=True)
  end = datetime.datetime.now(datetime.timezone.utc)

  ms = {r["scale"]: r["median_s"] for r in records if r["model"].startswith("MS-LapSRN")}
  print(f"\n{info['cpu']}, {info['cpu_count']} cores, {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC, "
        f"load at start {info['loadavg'][0]:.1f}, at end {os.getloadavg()[0]:.1f}; HR "
        f"{HR_SHAPE[1]}x{HR_SHAPE[0]} RGB, median of {args.repeats} calls after the first\n")
  print("| model | 2x: s (vs MS) | 4x: s (vs MS) | 8x: s (vs MS) | first call 2x / 4x / 8x (s) |")
  print("|---|---|---|---|---|")
  for label in dict.fromkeys(r["model"] for r in records):
    by_scale = {r["scale"]: r for r in records if r["model"] == label}
    cells = [f"{by_scale[s]['median_s']:.3f} ({by_scale[s]['median_s'] / ms[s]:.2f})"
             if s in by_scale else "—" for s in (2, 4, 8)]
    first = " / ".join(f"{by_scale[s]['first_s']:.1f}" if s in by_scale else "—"
                       for s in (2, 4, 8))
    print(f"| {label} | " + " | ".join(cells) + f" | {first} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": info, "start": start.isoformat(), "end": end.isoformat(),
                 "hr_shape": HR_SHAPE, "records": records}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
