"""Stage-1 fit of CMS-LapSRN's tied upsampler to official MS-LapSRN weights (a CLI).

    python -m lapsrn_jax.fit_upsampler --tie-to 3 --steps 200 --output workdirs/cms3_fit \
        [--train-kernel] [--patches 16 --patch-size 64]   # needs LAPSRN_DATA_DIR, LAPSRN_WEIGHTS_DIR

Converts the MS-LapSRN weights (`weights.cms_params_from_ms`), takes the LR features the MS trunk
produces on one batch of real training patches (`data.make_train_iterator`, T91 + BSDS200), fits
`theta`, `bias` (and with `--train-kernel` the tied conv kernel, which the trunk shares) with
`training.upsampler_fit`, scores Set5 (centre crops, `training.validation.Validator`) before and
after, and writes `--output` as a training workdir (config.json + an orbax checkpoint) that
`python -m lapsrn_jax.evaluate --model <DIR>` scores and that fine-tuning starts from with
`python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv3.py --config.init_from=<DIR>`.
Also writes `<DIR>/fit.json` (losses, scores, times).
"""

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from lapsrn_jax import images as images_lib
from lapsrn_jax.data.pipeline import make_train_iterator
from lapsrn_jax.models import create_model
from lapsrn_jax.training import checkpointing
from lapsrn_jax.training import upsampler_fit as uf
from lapsrn_jax.training.config import base_config
from lapsrn_jax.training.validation import Validator
from lapsrn_jax.weights import cms_params_from_ms, load_official


def _ints(text: str) -> tuple[int, ...]:
  return tuple(int(t) for t in text.split(",") if t.strip())


def _parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default=None,
                 help="MS-LapSRN .mat (default: $LAPSRN_WEIGHTS_DIR/MSLapSRN_D5R8.mat)")
  p.add_argument("--data-dir", default=os.environ.get("LAPSRN_DATA_DIR"),
                 help="folder holding T91, BSDS200 and Set5 (default: $LAPSRN_DATA_DIR)")
  p.add_argument("--tie-to", type=int, default=3, help="conv of the block the upsampler ties to")
  p.add_argument("--steps", type=int, default=200, help="Adam steps (full batch)")
  p.add_argument("--patches", type=int, default=16, help="training patches (split over scales)")
  p.add_argument("--patch-size", type=int, default=64, help="HR patch side")
  p.add_argument("--scales", type=_ints, default=(2, 4), help="patch scales, e.g. 2,4")
  p.add_argument("--lr", type=float, default=3e-2, help="Adam learning rate of theta and bias")
  p.add_argument("--train-kernel", action="store_true",
                 help="also fit the tied conv kernel (changes the trunk too)")
  p.add_argument("--kernel-lr", type=float, default=1e-4, help="Adam learning rate of the kernel")
  p.add_argument("--rho-init", type=float, default=1.0, help="rho before the fit")
  p.add_argument("--eval-scales", type=_ints, default=(2, 4), help="Set5 scales scored")
  p.add_argument("--eval-crop", type=int, default=224, help="Set5 centre crop (HR pixels)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--output", required=True, help="workdir to write (must not hold a checkpoint)")
  return p.parse_args(argv)


def _score(validator: Validator, params) -> dict:
  start = time.perf_counter()
  result = validator(params)
  out = {k.split("/")[-1]: round(v, 4) for k, v in result.items() if "bicubic" not in k}
  out["seconds"] = round(time.perf_counter() - start, 1)
  return out


def write_workdir(workdir: pathlib.Path, model_name: str, init_from: str, params,
                  val_psnr: float) -> None:
  """A training workdir of ours holding `params` as step 0 (readable by `load_trained`)."""
  config = base_config()
  config.model.name = model_name
  config.init_from = init_from
  workdir.mkdir(parents=True, exist_ok=True)
  checkpointing.write_config(workdir, config)
  manager = checkpointing.make_manager(workdir, keep=1, async_save=False)
  try:
    manager.save(0, args=ocp.args.Composite(**{checkpointing.STATE: ocp.args.StandardSave(
        {"step": np.int32(0), "params": params})}), metrics={checkpointing.BEST_METRIC: val_psnr})
    manager.wait_until_finished()
  finally:
    manager.close()


def main(argv=None) -> int:
  args = _parse_args(argv)
  if not args.data_dir or not os.path.isdir(args.data_dir):
    raise SystemExit("error: --data-dir (or $LAPSRN_DATA_DIR) must name the data folder")
  weights = args.weights or os.path.join(os.environ.get("LAPSRN_WEIGHTS_DIR", ""),
                                         "MSLapSRN_D5R8.mat")
  output = pathlib.Path(args.output)
  if (output / checkpointing.CHECKPOINT_DIR).exists():
    raise SystemExit(f"error: {output} already holds checkpoints; choose a new --output")
  ms_model, ms_params = load_official(weights)
  name = f"cms_lapsrn_d{ms_model.depth}r{ms_model.recursions}_conv{args.tie_to}"
  cms_model = create_model(name, rho_init=args.rho_init)
  cms = cms_params_from_ms(ms_params, args.tie_to, args.rho_init)

  it = make_train_iterator(f"folder:{args.data_dir}/T91+folder:{args.data_dir}/BSDS200",
                           global_batch_size=args.patches, scales=args.scales,
                           patch_size=args.patch_size, seed=args.seed)
  batch = next(it)
  start = time.perf_counter()
  features = uf.collect_features(ms_model, ms_params,
                                 {s: batch[f"x{s}"]["lr"] for s in args.scales})
  feature_s = time.perf_counter() - start

  set5 = [(p.stem, images_lib.read_image(p))
          for p in images_lib.list_images(pathlib.Path(args.data_dir) / "Set5")]
  validator = Validator(cms_model, set5, args.eval_scales, args.eval_crop)
  report = {"args": {k: v for k, v in vars(args).items()}, "model": name,
            "grids": {f"{h}x{w}": int(y.shape[0]) for (h, w), (y, _) in features.items()},
            "feature_seconds": round(feature_s, 1),
            "set5_crop": {"bicubic": {k.split("/")[-1]: round(v, 4)
                                      for k, v in validator.bicubic.items()}}}
  report["set5_crop"]["converted"] = _score(validator, cms)
  print(json.dumps({"converted": report["set5_crop"]["converted"]}), flush=True)

  start = time.perf_counter()
  fitted, losses = uf.fit_upsampler(cms, features, tie_to=args.tie_to, steps=args.steps,
                                    learning_rate=args.lr, kernel_learning_rate=args.kernel_lr,
                                    train_kernel=args.train_kernel, pad=cms_model.pad,
                                    tile=cms_model.solve_tile, halo=cms_model.solve_halo)
  report["fit_seconds"] = round(time.perf_counter() - start, 1)
  every = max(1, args.steps // 10)
  report["losses"] = {int(i): float(losses[i]) for i in range(0, len(losses), every)}
  report["losses"][len(losses) - 1] = float(losses[-1])
  report["relative_error"] = {"before": uf.relative_error(float(losses[0]), features),
                              "after": uf.relative_error(float(losses[-1]), features)}
  report["rho"] = {"before": float(jax.nn.softplus(cms["upconv"]["theta"])),
                   "after": float(jax.nn.softplus(fitted["upconv"]["theta"]))}
  report["set5_crop"]["fitted"] = _score(validator, fitted)
  print(json.dumps({k: report[k] for k in ("fit_seconds", "relative_error", "rho")}), flush=True)
  print(json.dumps({"fitted": report["set5_crop"]["fitted"]}), flush=True)

  fitted = jax.tree.map(np.asarray, fitted)
  write_workdir(output, name, os.path.abspath(weights), fitted,
                report["set5_crop"]["fitted"]["psnr"])
  (output / "fit.json").write_text(json.dumps(report, indent=2))
  print(f"wrote {output}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
