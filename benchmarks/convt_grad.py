"""value_and_grad time of one MS-LapSRN D5R8 Charbonnier step on CPU: lax convT vs the project's.

Batch 8 per scale, HR patch 64, scales 2/4/8 (LR 32/16/8). The "lax" variant swaps
`layers.conv_transpose2x` (polyphase: `ops.stride2.dilated_transpose_conv`) for the plain
`lhs_dilation` convolution (XLA's own kernel gradient); both run in this process on the same
inputs. The printed gradient difference is float32 round-off amplified by the 40-conv block at
initialisation (the two forms agree to 1e-12 in float64: tests/test_inverse_conv.py). Not a
test. From the repository root (so that this checkout's `lapsrn_jax` is imported):
`PYTHONPATH=. python benchmarks/convt_grad.py [repeats]`.
"""

import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lapsrn_jax.models import create_model, layers
from lapsrn_jax.training import losses


def lax_conv_transpose2x(y, kernel, crop, bias=None):
  """The original `conv_transpose2x`: one lhs-dilated convolution, autodiff gradients."""
  kh, kw = kernel.shape[:2]
  top, bottom, left, right = crop
  rhs = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2).astype(y.dtype)
  pad = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  x = lax.conv_general_dilated(y, rhs, (1, 1), pad, lhs_dilation=(2, 2),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return x if bias is None else x + bias.astype(y.dtype)


def time_step(model, params, batch, repeats):
  def loss(p):
    total = 0.0
    for s, (lr, targets) in batch.items():
      outs = model.apply({"params": p}, lr, scale=s)
      total = total + jnp.sum(losses.pyramid_loss_per_image(outs, targets))
    return total / 8

  step = jax.jit(jax.value_and_grad(loss))
  t0 = time.perf_counter()
  jax.block_until_ready(step(params))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(step(params))
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times), step(params)


def main(repeats=3):
  model = create_model("ms_lapsrn_d5r8")
  rng = np.random.default_rng(0)
  batch = {s: (jnp.asarray(rng.random((8, 64 // s, 64 // s, 1)), jnp.float32),
               [jnp.asarray(rng.random((8, 64 // s << l, 64 // s << l, 1)), jnp.float32)
                for l in range(1, s.bit_length())]) for s in (2, 4, 8)}
  params = model.init(jax.random.key(0), batch[2][0], scale=8)["params"]
  fast = layers.conv_transpose2x
  results = {}
  for name, fn in (("lax", lax_conv_transpose2x), ("project", fast)):
    layers.conv_transpose2x = fn
    first, median, (value, grads) = time_step(model, params, batch, repeats)
    results[name] = grads
    print(f"{name:8s} compile+first {first:6.2f} s   step (median of {repeats}) {median:6.3f} s"
          f"   loss {float(value):.6f}", flush=True)
  layers.conv_transpose2x = fast
  diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-30)) for a, b in zip(
      jax.tree.leaves(results["lax"]), jax.tree.leaves(results["project"])))
  print(f"max relative gradient difference: {diff:.2e}")


if __name__ == "__main__":
  main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
