"""Per-image PSNR of one evaluation minus another's: where model B gains or loses against model A.

    python scripts/per_image_gains.py results/evaluate/ms_d5r8_urban100.json \
        results/evaluate/cms_cpu_conv3_urban100.json --scale 4 --top 5

A and B are `python -m lapsrn_jax.evaluate --output` files: the finished JSON or, for a run still
going, its `.journal.jsonl` (the images scored so far). Only images scored in both are compared,
per (set, scale). Prints, per set and scale, how many images B beats A on, the mean and median of
B - A (dB), and the `--top` images with the largest gain and the largest loss: the candidates for
a crops figure (`scripts/make_crops_figure.py`).

`--same` asks instead whether B reproduces A: exit status 0 when B scores every image of A with the
bit-identical PSNR (a checkpoint trained again, or the same one scored again), else 1, naming the
differences (`scripts/cpu_table1.sh` uses it on a tie whose run folder was lost and retrained).
"""

import argparse
import json
import pathlib

import numpy as np


def per_image(path) -> dict:
  """{(set, scale): {image name: PSNR dB}} of one evaluate JSON or journal."""
  path = pathlib.Path(path)
  out = {}
  if path.name.endswith(".jsonl"):
    for line in path.read_text(encoding="utf-8").splitlines():
      rec = json.loads(line) if line.strip() else {}
      if "psnr" in rec and "name" in rec:
        out.setdefault((rec["set"], int(rec["scale"])), {})[rec["name"]] = float(rec["psnr"])
    return out
  for row in json.loads(path.read_text(encoding="utf-8"))["results"]:
    cell = out.setdefault((row["set"], int(row["scale"])), {})
    for im in row.get("images", []):
      cell[im["name"]] = float(im["psnr"])
  return out


def gains(a: dict, b: dict, scale: int | None = None, top: int = 5) -> str:
  """Text report of `b - a` per (set, scale) both score (images scored by both only)."""
  lines = []
  for key in sorted(set(a) & set(b)):
    if scale is not None and key[1] != scale:
      continue
    names = sorted(set(a[key]) & set(b[key]))
    if not names:
      continue
    d = np.array([b[key][n] - a[key][n] for n in names])
    order = np.argsort(-d)
    lines.append(f"{key[0]} x{key[1]}: {len(names)} images, B above A on {int((d > 0).sum())}, "
                 f"B - A mean {d.mean():+.3f} dB, median {np.median(d):+.3f} dB")
    lines.append("  largest gains:  " + ", ".join(f"{names[i]} {d[i]:+.2f}" for i in order[:top]))
    lines.append("  largest losses: " + ", ".join(
        f"{names[i]} {d[i]:+.2f}" for i in order[::-1][:top]))
  return "\n".join(lines) if lines else "no image is scored in both at that scale"


def differences(a: dict, b: dict) -> list:
  """Lines naming every image of `a` that `b` does not score, or scores with another PSNR."""
  out = []
  for key in sorted(a):
    for name, psnr in sorted(a[key].items()):
      other = b.get(key, {}).get(name)
      if other != psnr:
        out.append(f"{key[0]} x{key[1]} {name}: {psnr!r} in A, "
                   + ("not scored in B" if other is None else f"{other!r} in B"))
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("a", help="evaluate JSON (or .journal.jsonl) of model A, the reference")
  p.add_argument("b", help="evaluate JSON (or .journal.jsonl) of model B")
  p.add_argument("--scale", type=int, help="only this scale (default: every scale)")
  p.add_argument("--top", type=int, default=5, help="images listed per direction")
  p.add_argument("--same", action="store_true",
                 help="exit 1 unless B scores every image of A with the identical PSNR")
  args = p.parse_args(argv)
  a, b = per_image(args.a), per_image(args.b)
  if args.same:
    diff = differences(a, b)
    count = sum(len(v) for v in a.values())
    print(f"B reproduces A: {count} images, every PSNR identical" if not diff else
          f"B differs from A on {len(diff)} of {count} images:\n  " + "\n  ".join(diff[:10]))
    return 1 if diff else 0
  print(gains(a, b, args.scale, args.top))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
