"""How local is the regularised inverse `(C Cᵀ + ρτI)⁻¹` of a trained block conv?

    python scripts/inverse_taps.py --weights $LAPSRN_WEIGHTS_DIR/MSLapSRN_D5R8.mat \
        --out results/inverse_taps.json

`C Cᵀ` is a convolution on the LR grid, so its regularised inverse is one too: a filter whose
taps are `C × C` matrices. This script factorises `C Cᵀ + ρτI` on a 96 × 96 periodic LR grid
(`ops.factorize`), takes the inverse's spatial taps (inverse rfft2 of the per-frequency
matrices) and reports, for every distance r, the largest tap (Frobenius norm) farther than r LR
pixels (Chebyshev) relative to the largest tap: conv 1, 3 and 5 of the official MS-LapSRN D5R8
at each rho of `--rhos`. The local solve's halo (8 LR pixels by default) is chosen from these
numbers (`docs/inverse_convolution.md`). A few seconds on 2 CPU cores.
"""

import argparse
import json
import pathlib

import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops
from lapsrn_jax.weights import load_official

GRID = 96
DISTANCES = (1, 2, 4, 6, 8, 10, 12, 16)


def tail_profile(kernel: jnp.ndarray, lam: float, grid: int = GRID) -> dict[int, float]:
  """`{r: max_{|d|_inf > r} ||tap(d)|| / max_d ||tap(d)||}` of `(C Cᵀ + λI)⁻¹` on a periodic
  grid."""
  factor = ops.factorize(kernel, lam, (grid, grid), boundary="periodic")
  c = kernel.shape[3]
  inverse = np.asarray(factor.inverse).reshape(grid, grid // 2 + 1, c, c)
  taps = np.fft.irfft2(inverse, s=(grid, grid), axes=(0, 1))
  norms = np.sqrt(np.sum(np.abs(taps) ** 2, axis=(2, 3)))
  d = np.minimum(np.arange(grid), grid - np.arange(grid))
  dist = np.maximum(d[:, None], d[None, :])
  return {r: float(norms[dist > r].max() / norms.max()) for r in DISTANCES}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--weights", required=True, help="MSLapSRN_D5R8.mat")
  parser.add_argument("--rhos", default="1,0.45,0.1,0.01")
  parser.add_argument("--out", help="write the table as JSON here")
  args = parser.parse_args(argv)
  _, params = load_official(args.weights)
  rows = []
  print("| conv | rho | " + " | ".join(f"> {r} px" for r in DISTANCES) + " |")
  print("|---|---|" + "---|" * len(DISTANCES))
  for conv in ("conv1", "conv3", "conv5"):
    kernel = jnp.asarray(params[conv]["kernel"], jnp.float32)
    tau = float(ops.gram_scale(kernel))
    for rho in (float(r) for r in args.rhos.split(",")):
      tail = tail_profile(kernel, rho * tau)
      rows.append({"conv": conv, "rho": rho, "tail": tail})
      print(f"| {conv} | {rho:g} | " + " | ".join(f"{tail[r]:.1e}" for r in DISTANCES) + " |")
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps({"grid": GRID, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
  main()
