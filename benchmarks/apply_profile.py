"""Where the time of the cached inverse-conv upsampler (`ops.apply`) goes, piece by piece.

At CMS-LapSRN's shape for the forward target (2x, LR 128², batch 8, 64 channels, symmetric
boundary, pad 8): each piece of `ops.inverse_conv._apply` jitted on its own, next to the
MS-LapSRN feature upsampler it replaces (`layers.conv_transpose2x`). Medians of --repeats calls,
in ms. The pieces overlap less than the whole (`apply total` fuses across them).

  python benchmarks/apply_profile.py [--lr 128] [--batch 8] [--repeats 7]
"""

import argparse
import importlib
import time

import numpy as np

import lapsrn_jax  # noqa: F401  (the XLA-CPU flag, as everywhere in lapsrn-jax)
import jax
import jax.numpy as jnp

from lapsrn_jax import ops
from lapsrn_jax.models import layers
from lapsrn_jax.ops.stride2 import transpose_conv_window

inverse_conv = importlib.import_module("lapsrn_jax.ops.inverse_conv")  # the module, not the function


def median_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return 1e3 * float(np.median(times))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--lr", type=int, default=128)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--channels", type=int, default=64)
  p.add_argument("--pad", type=int, default=8)
  p.add_argument("--repeats", type=int, default=7)
  a = p.parse_args()
  rng = np.random.default_rng(0)
  n, h, c, pad = a.batch, a.lr, a.channels, a.pad
  kernel = jnp.asarray(rng.standard_normal((3, 3, c, c)) * 0.05, jnp.float32)
  y = jnp.asarray(rng.standard_normal((n, h, h, c)), jnp.float32)
  factor = ops.factorize(kernel, 0.1 * inverse_conv.gram_scale(kernel), (h, h), boundary="symmetric", pad=pad)
  hp = h + 2 * pad
  wf, f = hp // 2 + 1, hp * (hp // 2 + 1)
  y_pad = jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
  spec = jnp.fft.rfft2(jnp.transpose(y_pad, (0, 3, 1, 2)))
  rows = spec.transpose(2, 3, 0, 1).reshape(f, n, c)
  gflop = 8 * f * n * c * c / 1e9
  pieces = [
      ("apply total", lambda y: ops.apply(factor, y), (y,)),
      ("MS feature convT (what apply replaces)", lambda y: layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP), (y,)),
      ("pad symmetric", lambda y: jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric"), (y,)),
      ("rfft2 (+ NHWC->NCHW)", lambda y: jnp.fft.rfft2(jnp.transpose(y, (0, 3, 1, 2))), (y_pad,)),
      ("transpose to [F, N, C]", lambda s: s.transpose(2, 3, 0, 1).reshape(f, n, c), (spec,)),
      (f"complex GEMM [{f}, {n}, {c}] @ [{f}, {c}, {c}]", jnp.matmul, (rows, factor.inverse)),
      ("transpose back", lambda r: r.reshape(hp, wf, n, c).transpose(2, 3, 0, 1), (rows,)),
      ("irfft2 (+ NCHW->NHWC)", lambda s: jnp.fft.irfft2(s, s=(hp, hp)).transpose(0, 2, 3, 1), (spec,)),
      ("C^T on the window", lambda z: transpose_conv_window(z, kernel, (pad, pad), (h, h)), (y_pad,)),
  ]
  print(f"{jax.__version__=}, LR {h}², batch {n}, {c} channels, pad {pad}; median of {a.repeats}")
  print("| piece | ms |\n|---|---|")
  for name, fn, args in pieces:
    ms = median_ms(jax.jit(fn), *args, repeats=a.repeats)
    extra = f" ({gflop / ms * 1e3:.0f} GFLOP/s)" if name.startswith("complex GEMM") else ""
    print(f"| {name} | {ms:.1f}{extra} |")


if __name__ == "__main__":
  main()
