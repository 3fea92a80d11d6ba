"""Times the Fourier inverse-convolution upsampler against the transposed conv it replaces.

    python benchmarks/inverse_conv.py [--quick] [--repeats 7] [--sizes 32 64 128] [--batches 1 16]

For a 3×3 64→64 kernel, batch 1 and 16, LR 32/64/128 (float32, jit, warm-up excluded), on the
same inputs, interleaving the candidates in every round (the machine may be shared):
  convT          jax.lax.conv_transpose, stride 2, SAME (the MS-LapSRN feature upsampler)
  Cᵀ             ops.stride2_conv_transpose (our periodic transposed conv)
  factorize      ops.factorize (image-independent, once per kernel/λ/size)
  apply          ops.apply with a cached factor, periodic
  apply sym8     ops.apply with a cached factor, symmetric boundary, pad 8
  one-shot       ops.inverse_conv (factorize + apply), periodic
Prints Markdown tables of medians (ms) and ratios to convT: wall clock, and process CPU time
(the fairer measure when other jobs share the cores).
"""

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops

CHANNELS = 64


def _candidates(kernel, lam, lr):
  convt = jax.jit(lambda y, k: jax.lax.conv_transpose(
      y, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
  ct = jax.jit(ops.stride2_conv_transpose)
  fac = jax.jit(lambda k, l: ops.factorize(k, l, (lr, lr)))
  fac_sym = jax.jit(lambda k, l: ops.factorize(k, l, (lr, lr), boundary="symmetric", pad=8))
  app = jax.jit(ops.apply)
  one = jax.jit(ops.inverse_conv)
  factor = jax.block_until_ready(fac(kernel, lam))
  factor_sym = jax.block_until_ready(fac_sym(kernel, lam))
  return {
      "convT": lambda y: convt(y, kernel),
      "Cᵀ": lambda y: ct(y, kernel),
      "factorize": lambda y: fac(kernel, lam),
      "apply": lambda y: app(factor, y),
      "apply sym8": lambda y: app(factor_sym, y),
      "one-shot": lambda y: one(y, kernel, lam),
  }


def _time(fns, y, repeats):
  """Median wall-clock and process-CPU milliseconds per candidate, interleaved rounds."""
  for fn in fns.values():  # compile + warm up
    jax.block_until_ready(fn(y))
  wall = {name: [] for name in fns}
  cpu = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fn(y))
      wall[name].append(time.perf_counter() - start)
      cpu[name].append(time.process_time() - start_cpu)
  median = lambda t: {name: 1e3 * float(np.median(v)) for name, v in t.items()}
  return median(wall), median(cpu)


def _table(rows, key):
  names = list(rows[0][2][key])
  lines = ["| batch | LR | " + " | ".join(f"{n} ms (×convT)" for n in names) + " |",
           "|" + "---|" * (2 + len(names))]
  for batch, lr, med in rows:
    m = med[key]
    lines.append(f"| {batch} | {lr} | "
                 + " | ".join(f"{m[n]:.1f} ({m[n] / m['convT']:.2f})" for n in names) + " |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="batch 1 and 16 at LR 32 only, 3 repeats")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128], help="LR sizes")
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
  args = parser.parse_args()
  sizes = [32] if args.quick else args.sizes
  repeats = 3 if args.quick else args.repeats

  rng = np.random.default_rng(0)
  kernel = jnp.asarray(
      rng.standard_normal((3, 3, CHANNELS, CHANNELS)) * np.sqrt(2 / (9 * CHANNELS)), jnp.float32)
  lam = 0.1 * ops.gram_scale(kernel)
  with open("/proc/cpuinfo") as f:
    cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                     platform.processor())
  print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}; jax {jax.__version__} "
        f"({jax.devices()[0].platform}); "
        f"{os.cpu_count()} CPUs, {cpu_model}; load average {os.getloadavg()[0]:.1f}")
  print(f"3x3 {CHANNELS}->{CHANNELS}, float32, median of {repeats} interleaved rounds")
  rows = []
  for lr in sizes:
    fns = _candidates(kernel, lam, lr)
    for batch in args.batches:
      y = jnp.asarray(rng.standard_normal((batch, lr, lr, CHANNELS)), jnp.float32)
      wall, cpu = _time(fns, y, repeats)
      rows.append((batch, lr, {"wall": wall, "cpu": cpu}))
  print("\nWall clock:\n" + _table(rows, "wall"))
  print("\nProcess CPU time (all threads):\n" + _table(rows, "cpu"))


if __name__ == "__main__":
  main()
