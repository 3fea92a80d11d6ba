"""Training cost of CMS-LapSRN's upsampler: the local solve vs the whole-grid solve, one process.

    python benchmarks/cms_upsampler_grad.py        # needs LAPSRN_WEIGHTS_DIR (MSLapSRN_D5R8.mat)

Times `value_and_grad` (with respect to the tied kernel and lambda) of the sum of squares of the
upsampler's output (`C⁺_λ y`, the part of a training step that the solve changes) on the level
grids of one official training batch: batch 64 of 128² patches split 22/22/20 over 2x/4x/8x, so
64 maps on the 64² LR grid, 42 on 32², 20 on 16², 64 channels. Rows: the whole-grid solve
(`ops.factorize` + `ops.apply`, symmetric pad 8, one factorisation per grid size, as the model
did before its solve became local) and the local solve (`ops.factorize_local` + `ops.apply_local`,
one factor) for several tile sizes (halo 10; 44 is the model's default). Best of 3 after a
warm-up; conv3 kernel, rho 0.45.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops
from lapsrn_jax.weights import load_official

GRIDS = ((64, 64), (42, 32), (20, 16))  # (maps, LR side) of one official batch
TILES = (44, 20, 108)  # with halo 10: windows 64², 40², 128²


def main() -> int:
  weights = os.environ.get("LAPSRN_WEIGHTS_DIR")
  if not weights:
    sys.exit("set LAPSRN_WEIGHTS_DIR (the folder of MSLapSRN_D5R8.mat)")
  _, params = load_official(os.path.join(weights, "MSLapSRN_D5R8.mat"))
  kernel = jnp.asarray(params["conv3"]["kernel"])
  lam = jnp.float32(0.45 * float(ops.gram_scale(kernel)))
  rng = np.random.default_rng(0)
  ys = [jnp.asarray(rng.standard_normal((n, g, g, 64)), jnp.float32) for n, g in GRIDS]

  def whole_grid(k, l):
    return sum(jnp.sum(ops.apply(ops.factorize(k, l, y.shape[1:3], boundary="symmetric", pad=8),
                                 y) ** 2) for y in ys)

  def local(k, l, tile):
    factor = ops.factorize_local(k, l, tile=tile, halo=10)
    return sum(jnp.sum(ops.apply_local(factor, y, pad=8) ** 2) for y in ys)

  rows = [("whole grid", whole_grid)] + [
      (f"local, tile {t} (window {t + 20}²)", lambda k, l, t=t: local(k, l, t)) for t in TILES]
  print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  base = None
  for name, fn in rows:
    step = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
    jax.block_until_ready(step(kernel, lam))
    times = []
    for _ in range(3):
      t = time.perf_counter()
      jax.block_until_ready(step(kernel, lam))
      times.append(time.perf_counter() - t)
    base = base or min(times)
    print(f"| {name} | {min(times):.2f} s | {min(times) / base:.2f} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
