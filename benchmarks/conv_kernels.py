"""The 3×3 convolution on this CPU: XLA-CPU's kernels and flags, reformulations, and PyTorch.

MS-LapSRN's time is its 64→64 3×3 convolutions (NHWC, float32). This times a chain of ten of
them (each followed by a leaky ReLU, as in the recursive block) in every way we know to run
one in JAX, and PyTorch's oneDNN convolution on the same shapes, each in its own subprocess:

  xla-ynn       lax.conv_general_dilated, XLA-CPU defaults (YNNPACK convolution fusion)
  xla-eigen     the same with `lapsrn_jax.xla_cpu.CONV_FLAG` (XLA's Eigen convolution): our default
  xla-onednn    YNNPACK off, `--xla_cpu_use_onednn` with its convolution fusion enabled
  shift-gemm    one GEMM `[N Hp Wp, C] @ [C, 9 O]`, then the 9 shifted slices summed
  im2col        the 9 shifted copies concatenated, one GEMM `[N H W, 9 C] @ [9 C, O]`
  winograd-2/4  Winograd F(2×2, 3×3) / F(4×4, 3×3): 2.25× / 4× fewer multiplies, as
                transforms + one batched matmul (the reformulations run with the xla-eigen flags)
  torch-nhwc    torch.nn.functional.conv2d, channels_last, `torch.set_num_threads(cpu_count)`

Every other JAX formulation is checked against `lax.conv_general_dilated` first (max |diff|
printed; "—" for the lax rows themselves).
Reported: effective GFLOP/s = 2 · 9 · C · O · N H W · 10 / median seconds (the direct
convolution's count, also for Winograd, so the numbers compare time).

  python benchmarks/conv_kernels.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from inference import machine_info, run_in_subprocess  # noqa: E402

SHAPES = ((8, 64), (8, 128), (1, 64))  # (batch, side)
CHANNELS, LAYERS = 64, 10
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
# name -> (formulation, extra XLA_FLAGS). `inference.worker_env` gives `*-ynn` variants XLA's
# defaults; every other JAX variant gets `lapsrn_jax.xla_cpu`'s flag on import, unless its own
# flags already set the YNN fusion types (xla-onednn), which `xla_cpu.tune` leaves alone.
VARIANTS = {
    "xla-ynn": ("lax", ""),
    "xla-eigen": ("lax", ""),
    "xla-onednn": ("lax", f"{YNN_OFF} --xla_cpu_use_onednn=true "
                   "--xla_cpu_experimental_onednn_fusion_type="
                   "+LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"),
    "shift-gemm": ("shift_gemm", ""),
    "im2col": ("im2col", ""),
    "winograd-2": ("winograd2", ""),
    "winograd-4": ("winograd4", ""),
    "torch-nhwc": ("torch", ""),
}


def gflop(batch: int, side: int) -> float:
  return 2 * 9 * CHANNELS * CHANNELS * batch * side * side * LAYERS / 1e9


# ------------------------------------------------------------------------------------------------
# JAX formulations of a SAME 3×3 stride-1 convolution, [N, H, W, C] x [3, 3, C, O] -> [N, H, W, O].

_WINOGRAD = {  # m -> (Bᵀ, G, Aᵀ), Lavin & Gray 2016; F(4, 3) with points 0, ±1, ±2
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def formulation(name: str):
  import jax.numpy as jnp
  from jax import lax

  def conv_lax(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def shift_gemm(x, w):
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = jnp.dot(xp.reshape(-1, c), w.transpose(2, 0, 1, 3).reshape(c, -1)).reshape(
        n, h + 2, wd + 2, 3, 3, -1)
    return sum(y[:, a:a + h, b:b + wd, a, b] for a in range(3) for b in range(3))

  def im2col(x, w):
    n, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, a:a + h, b:b + wd] for a in range(3) for b in range(3)], -1)
    return jnp.dot(cols.reshape(-1, 9 * c), w.reshape(9 * c, -1)).reshape(n, h, wd, -1)

  def winograd(m):
    bt, g, at = (np.asarray(t, np.float32) for t in _WINOGRAD[m])
    a = m + 2

    def combine(coefs, parts):  # Σ c_i parts_i, skipping zeros (the transforms are sparse)
      terms = [p if c == 1 else -p if c == -1 else float(c) * p for c, p in zip(coefs, parts)
               if c != 0]
      return sum(terms[1:], terms[0])

    def conv(x, w):
      n, h, wd, c = x.shape
      th, tw = -(-h // m), -(-wd // m)
      xp = jnp.pad(x, ((0, 0), (1, th * m - h + 1), (1, tw * m - wd + 1), (0, 0)))
      rows = [xp[:, r:r + m * (th - 1) + 1:m] for r in range(a)]  # a x [N, Th, Wp, C]
      v = jnp.stack([
          jnp.stack([combine(bt[j], [vi[:, :, s:s + m * (tw - 1) + 1:m] for s in range(a)])
                     for j in range(a)])
          for vi in (combine(bt[i], rows) for i in range(a))])
      u = jnp.einsum("ik,klco,jl->ijco", g, w, g)  # [a, a, C, O]
      prod = jnp.einsum("ijpc,ijco->ijpo", v.reshape(a, a, -1, c), u).reshape(a, a, n, th, tw, -1)
      y = jnp.einsum("pi,qj,ijnhwo->nhpwqo", at, at, prod).reshape(n, th * m, tw * m, -1)
      return y[:, :h, :wd]
    return conv

  return {"lax": conv_lax, "shift_gemm": shift_gemm, "im2col": im2col,
          "winograd2": winograd(2), "winograd4": winograd(4)}[name]


def worker(spec: dict) -> dict:
  kind, repeats = spec["formulation"], spec["repeats"]
  rng = np.random.default_rng(0)
  out = {**spec, "gflops": {}, "max_abs_diff": {}}
  for batch, side in SHAPES:
    x = rng.random((batch, side, side, CHANNELS), dtype=np.float32)
    w = (rng.standard_normal((3, 3, CHANNELS, CHANNELS)) * 0.05).astype(np.float32)
    if kind == "torch":
      import torch

      torch.set_num_threads(os.cpu_count())
      tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
      tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()

      def call():
        with torch.inference_mode():
          y = tx
          for _ in range(LAYERS):
            y = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(y, tw, padding=1), 0.2)
          return y
    else:
      import lapsrn_jax  # noqa: F401  (applies, or with the opt-out skips, the XLA-CPU flag)
      import jax

      conv = formulation(kind)
      if kind != "lax":
        out["max_abs_diff"][f"{batch}x{side}"] = float(np.max(np.abs(
            np.asarray(jax.jit(conv)(x, w)) - np.asarray(jax.jit(formulation("lax"))(x, w)))))

      def chain(x, w):
        for _ in range(LAYERS):
          x = jax.nn.leaky_relu(conv(x, w), 0.2)
        return x
      fn, xd, wd = jax.jit(chain), jax.device_put(x), jax.device_put(w)
      call = lambda: jax.block_until_ready(fn(xd, wd))
    call()
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      call()
      times.append(time.perf_counter() - t)
    out["gflops"][f"{batch}x{side}"] = gflop(batch, side) / statistics.median(times)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--out", default=os.path.join(HERE, "out"))
  args = parser.parse_args(argv)
  if args.worker:
    print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0

  from lapsrn_jax import xla_cpu

  rows, base = [], os.environ.get("XLA_FLAGS", "").replace(xla_cpu.CONV_FLAG, "").strip()
  for name in args.variants.split(","):
    kind, flags = VARIANTS[name]
    os.environ["XLA_FLAGS"] = f"{base} {flags}".strip()  # the worker adds the flag on import
    r = run_in_subprocess({"variant": name, "formulation": kind, "repeats": args.repeats}, __file__)
    print(f"  {name}: {r.get('gflops', r.get('error'))}", file=sys.stderr, flush=True)
    rows.append(r)
  shapes = [f"{b}x{s}" for b, s in SHAPES]
  lines = ["| variant | " + " | ".join(f"GFLOP/s, batch {s.replace('x', ', ')}²" for s in shapes)
           + " | max abs diff vs lax conv |", "|---|" + "---|" * (len(shapes) + 1)]
  for r in rows:
    g, d = r.get("gflops", {}), r.get("max_abs_diff", {})
    cells = ([f"{g[s]:.0f}" if s in g else "—" for s in shapes]
             + [f"{max(d.values()):.1e}" if d else "—"])
    lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
  print("\n".join(lines))
  os.makedirs(args.out, exist_ok=True)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
  path = os.path.join(args.out, f"conv_kernels-{stamp}.json")
  with open(path, "w") as f:
    json.dump({"machine": machine_info(), "rows": rows}, f, indent=1)
  print(f"\nraw results: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
