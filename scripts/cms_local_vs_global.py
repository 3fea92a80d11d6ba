"""How far is CMS-LapSRN's local solve from the global one? Max |difference| of the SR images.

    python scripts/cms_local_vs_global.py --data-dir $LAPSRN_DATA_DIR/Set5 \
        --weights $LAPSRN_WEIGHTS_DIR/MSLapSRN_D5R8.mat --out results/cms_local_vs_global/set5.json

CMS-LapSRN is built from the official MS-LapSRN D5R8 weights (`weights.cms_params_from_ms`: the
upsampler tied to conv 1, 3 or 5), with rho set to each of `--rhos`. Every image is mod-cropped,
downscaled (the evaluation's LR, Y channel) and super-resolved at 2x, 4x and 8x twice: by the
model (the local solve, `ops.apply_local`) and by the same network whose upsampler solves on the
whole symmetrically padded level grid (`ops.inverse_conv(..., boundary="symmetric")`). The JSON
holds the max absolute difference on the [0, 1] Y image per (tie, rho, scale), over the images.
`--float64` runs both in float64, leaving only the truncation of the local solve (in float32 an
untrained network can amplify rounding differences between the two FFT sizes).
About 10 minutes for Set5 on 2 CPU cores (the global solve dominates).
"""

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np

from lapsrn_jax import images as images_lib
from lapsrn_jax import ops
from lapsrn_jax.color import rgb_to_ycbcr
from lapsrn_jax.inference import downscale
from lapsrn_jax.models import layers
from lapsrn_jax.models.cms_lapsrn import CMSLapSRN, fixed_rho_tau, softplus_inverse
from lapsrn_jax.models.ms_lapsrn import pyramid
from lapsrn_jax.weights import cms_params_from_ms, load_official


class GlobalSolveCMS(CMSLapSRN):
  """CMS-LapSRN whose upsampler solves on each whole padded level grid (the reference)."""

  def __call__(self, lr, *, scale):
    kernel = self.upsampler_kernel()
    rho, tau = fixed_rho_tau(kernel, self.upconv.theta, self.tau_grad, self.fixed_rho)
    bias = self.upconv.bias

    def upsample(level, y):
      del level
      x = ops.inverse_conv(y, kernel, rho * tau, boundary="symmetric", pad=self.pad)
      return (1 + rho) * tau * x + bias

    return pyramid(lr, layers.num_levels(scale), self.input_conv, self.block, upsample,
                   self.residual_conv, self.img_up)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", required=True, help="folder of HR test images")
  parser.add_argument("--weights", required=True, help="MSLapSRN_D5R8.mat")
  parser.add_argument("--ties", default="1,3,5")
  parser.add_argument("--rhos", default="1,0.45,0.1")
  parser.add_argument("--scales", default="2,4,8")
  parser.add_argument("--float64", action="store_true",
                      help="run both in float64 (jax_enable_x64): what remains is the truncation")
  parser.add_argument("--out", required=True, help="JSON output")
  args = parser.parse_args(argv)
  args.argv = sys.argv[1:] if argv is None else list(argv)
  dtype = np.float64 if args.float64 else np.float32
  if args.float64:
    jax.config.update("jax_enable_x64", True)

  _, ms_params = load_official(args.weights)
  paths = images_lib.list_images(pathlib.Path(args.data_dir))
  rows, start = [], time.perf_counter()
  for tie in (int(t) for t in args.ties.split(",")):
    for rho in (float(r) for r in args.rhos.split(",")):
      params = cms_params_from_ms(ms_params, tie, rho)
      params["upconv"]["theta"] = softplus_inverse(rho)
      params = jax.tree.map(lambda v, d=dtype: np.asarray(v, d), params)
      local_model, global_model = CMSLapSRN(tie_to=tie), GlobalSolveCMS(tie_to=tie)
      for scale in (int(s) for s in args.scales.split(",")):
        run_local = jax.jit(lambda p, x, s=scale: local_model.apply({"params": p}, x, scale=s)[-1])
        run_global = jax.jit(lambda p, x, s=scale: global_model.apply({"params": p}, x,
                                                                      scale=s)[-1])
        worst = 0.0
        for path in paths:
          hr = images_lib.mod_crop(images_lib.read_image(path), scale)
          lr = downscale(hr, scale)
          y = (rgb_to_ycbcr(lr)[..., 0] if lr.ndim == 3 else lr).astype(dtype)
          x = y[None, :, :, None]
          diff = np.abs(np.asarray(run_local(params, x)) - np.asarray(run_global(params, x)))
          worst = max(worst, float(diff.max()))
        rows.append({"tie_to": tie, "rho": rho, "scale": scale, "max_abs_diff": worst,
                     "images": len(paths)})
        print(json.dumps(rows[-1]), flush=True)
        write(args, rows, time.perf_counter() - start)  # after every row: a killed run keeps them
  print(f"max |local - global| over everything: {max(r['max_abs_diff'] for r in rows):.2e}")


def write(args, rows, seconds) -> None:
  """The JSON so far: the command, the rows and their max."""
  out = {"command": "python scripts/cms_local_vs_global.py " + " ".join(args.argv),
         "data": pathlib.Path(args.data_dir).name, "seconds": round(seconds), "rows": rows,
         "max_abs_diff": max(r["max_abs_diff"] for r in rows)}
  pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
  main()
