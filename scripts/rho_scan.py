"""Is a trained CMS-LapSRN's rho at its optimum? Scores the model with rho overridden, rest fixed.

    python scripts/rho_scan.py --model runs/conv3 --out results/rho_scan/conv3.json \
        --figure figures/generated/rho_scan_conv3.png

For each rho of `--rhos` (plus the learned one), theta := softplus^-1(rho) in the checkpoint's
params and nothing else changes. The script reports the validation Y-PSNR (`training.validation`,
the run's validation set and crop: BSDS100 256-px centre crops for the CMS recipe) and the
training loss (`training.step.make_loss_fn`, the run's loss) on `--train-batches` batches of the
run's data stream (batches `--first-batch`, ...; the same batches for every rho). It also writes
`d loss / d theta` at the learned rho on each of those batches. A learned rho at the peak of both
curves, with gradients of changing sign, means theta is at a stationary point of the fine-tuning:
a larger learning rate for theta would not move it. CPU time (2 cores): about 4 minutes per rho
with all 100 images (`--max-images 0`) and 4 batches; the default 20 images and 1 batch, ~1 min.
"""

import argparse
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import workdir
from lapsrn_jax.data import pipeline
from lapsrn_jax.models.cms_lapsrn import CMSLapSRN, softplus_inverse
from lapsrn_jax.training import sharding, step as step_lib, validation

DEFAULT_RHOS = "0.01,0.03,0.1,0.2,0.3,0.6,1,3,10"


def with_theta(params, theta):
  """CMS-LapSRN `params` with `upconv.theta = theta` (a new dict; traced thetas differentiate)."""
  return dict(params, upconv=dict(params["upconv"], theta=theta))


def with_rho(params, rho: float):
  """CMS-LapSRN `params` with `upconv.theta = softplus^-1(rho)`."""
  return with_theta(params, np.float32(softplus_inverse(rho)))


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", required=True, help="a CMS-LapSRN training workdir or checkpoint")
  p.add_argument("--rhos", default=DEFAULT_RHOS, help="comma-separated rho values (> 0)")
  p.add_argument("--max-images", type=int, default=20, help="validation images (0 = all)")
  p.add_argument("--train-batches", type=int, default=1, help="training batches for the loss")
  p.add_argument("--first-batch", type=int, default=100_000,
                 help="index of the first training batch (default: beyond the runs' steps)")
  p.add_argument("--out", type=pathlib.Path, required=True, help="JSON output")
  p.add_argument("--figure", type=pathlib.Path, help="PNG of PSNR and loss against rho")
  args = p.parse_args(argv)

  model, params = workdir.load_trained(args.model)
  if not isinstance(model, CMSLapSRN) or model.fixed_rho:
    raise SystemExit(f"{args.model} is not a CMS-LapSRN with a learned rho")
  config = workdir.read_config(workdir.resolve_run(args.model)[0])
  learned = float(jax.nn.softplus(params["upconv"]["theta"]))
  rhos = sorted({float(r) for r in args.rhos.split(",") if r} | {learned})
  if min(rhos) <= 0:
    raise SystemExit("every rho must be > 0")

  val_cfg = dict(config.data.to_dict(), val=os.path.expandvars(config.data.val))
  images = pipeline.load_validation_set(val_cfg, crop=config.eval.crop)
  images = images[:args.max_images] if args.max_images else images
  validator = validation.Validator(model, images, tuple(config.eval.scales), config.eval.crop)
  batches = sharding.run_batches(config, args.first_batch, args.train_batches, sharding.make_mesh())
  loss_fn = jax.jit(step_lib.make_loss_fn(model, config.train.batch_size,
                                          config.train.charbonnier_eps))

  rows = []
  for rho in rhos:
    t0 = time.perf_counter()
    p_rho = with_rho(params, rho)
    val = validator(p_rho)
    loss = float(np.mean([float(loss_fn(p_rho, b)[0]) for b in batches]))
    rows.append({"rho": rho, "learned": rho == learned, "train_loss": loss,
                 **{k: v for k, v in val.items() if not k.startswith("val/bicubic")}})
    print(f"rho {rho:9.4g}{' (learned)' if rho == learned else '          '}  loss {loss:10.3f}  "
          + "  ".join(f"x{s} {val[f'val/psnr_x{s}']:.3f}" for s in config.eval.scales)
          + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)

  grad_fn = jax.jit(jax.grad(lambda th, b: loss_fn(with_theta(params, th), b)[0]))
  theta = jnp.asarray(params["upconv"]["theta"])
  grads = [float(grad_fn(theta, b)) for b in batches]
  result = {"model": str(args.model), "learned_rho": learned, "theta": float(theta),
            "dloss_dtheta": grads, "validation_images": len(images),
            "train_batches": list(range(args.first_batch, args.first_batch + len(batches))),
            "bicubic": {k: v for k, v in validator.bicubic.items()}, "rows": rows}
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=1))
  print(f"d loss / d theta at the learned rho: {grads}; wrote {args.out}")
  if args.figure:
    plot(rows, tuple(config.eval.scales), learned, args.figure)


def plot(rows, scales, learned: float, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  rho = [r["rho"] for r in rows]
  fig, axes = plt.subplots(1, len(scales) + 1, figsize=(4 * (len(scales) + 1), 3.2))
  for ax, s in zip(axes, scales):
    ax.semilogx(rho, [r[f"val/psnr_x{s}"] for r in rows], "o-")
    ax.set_title(f"validation Y-PSNR {s}x (dB)")
  axes[-1].semilogx(rho, [r["train_loss"] for r in rows], "o-")
  axes[-1].set_title("training loss")
  for ax in axes:
    ax.axvline(learned, color="gray", ls="--", lw=1)
    ax.set_xlabel("rho (theta overridden; learned rho dashed)")
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
