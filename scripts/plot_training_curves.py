"""Training curves of lapsrn-jax runs: validation Y-PSNR (and train loss) against step.

    python scripts/plot_training_curves.py results/runs --out figures/cms_training_curves.png
    python scripts/plot_training_curves.py results/runs --out zoom.png --min-step 1000  # the end

Reads every `<RUNS>/<name>/metrics.jsonl` (written by `python -m lapsrn_jax.train`) and draws, per
validated scale, the validation PSNR of each run against its step, with the bicubic level as a
dashed line; a last panel shows the mean train loss per logged interval.
"""

import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position


def read_metrics(path: pathlib.Path) -> list[dict]:
  """The records of one metrics.jsonl (one JSON object per line; `Infinity` allowed)."""
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curves(records: list[dict], key: str, min_step: int = 0) -> tuple[list[int], list[float]]:
  """`(steps, values)` of the records holding `key` at steps >= `min_step`, in step order (last
  record per step wins)."""
  by_step = {r["step"]: r[key] for r in records if key in r and r["step"] >= min_step}
  steps = sorted(by_step)
  return steps, [by_step[s] for s in steps]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", type=pathlib.Path, help="folder of run folders with metrics.jsonl")
  parser.add_argument("--out", type=pathlib.Path, required=True, help="PNG to write")
  parser.add_argument("--runs-only", default="", help="comma-separated run names (default all)")
  parser.add_argument("--title", default="")
  parser.add_argument("--min-step", type=int, default=0,
                      help="leave out earlier steps (zooms the y axes on the end of training)")
  args = parser.parse_args(argv)
  names = [n for n in args.runs_only.split(",") if n] or sorted(
      p.parent.name for p in args.runs.glob("*/metrics.jsonl"))
  if not names:
    raise SystemExit(f"error: no <run>/metrics.jsonl under {args.runs}")
  runs = {n: read_metrics(args.runs / n / "metrics.jsonl") for n in names}
  scales = sorted({int(k.rsplit("x", 1)[1]) for r in runs.values() for rec in r for k in rec
                   if k.startswith("val/psnr_x")})
  fig, axes = plt.subplots(1, len(scales) + 1, figsize=(4.2 * (len(scales) + 1), 3.6))
  for ax, s in zip(axes, scales):
    for n, recs in runs.items():
      ax.plot(*curves(recs, f"val/psnr_x{s}", args.min_step), marker=".", label=n)
    steps, bic = curves(next(iter(runs.values())), f"val/bicubic_psnr_x{s}")
    if bic and not args.min_step:  # (zoomed: the bicubic level would unzoom the axis)
      ax.axhline(bic[0], color="gray", ls="--", lw=1, label="bicubic")
    ax.set(title=f"{s}x validation", xlabel="step", ylabel="Y-PSNR (dB)")
    ax.grid(alpha=0.3)
  for n, recs in runs.items():
    axes[-1].plot(*curves(recs, "train/loss", args.min_step), label=n)
  axes[-1].set(title="train loss (Charbonnier / batch)", xlabel="step", yscale="log")
  axes[-1].grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  if args.title:
    fig.suptitle(args.title)
  fig.tight_layout()
  args.out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(args.out, dpi=110)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
