"""Where the time of the cached inverse-conv upsampler (`ops.apply`) goes, piece by piece.

At CMS-LapSRN's shape for the forward target (2x, LR 128², batch 8, 64 channels, symmetric
boundary, pad 8): each piece of `ops.inverse_conv._apply` jitted on its own, next to the
MS-LapSRN feature upsampler it replaces (`layers.conv_transpose2x`). Medians of --repeats calls,
in ms. The pieces overlap less than the whole (`apply total` fuses across them).

A second table times other ways to compute the per-frequency product `[F, N, C] @ [F, C, C]`
(complex), the largest piece, each checked against `jnp.matmul`: real GEMMs (stacked, Gauss's
3-multiplication form, the real 2C x 2C form), images as columns, the product split into
independent halves, and a broadcast multiply-reduce. GFLOP/s count the complex product's
8 F N C^2 real flops for every form.

  python benchmarks/apply_profile.py [--lr 128] [--batch 8] [--repeats 7] [--no-gemm-forms]
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

inverse_conv = importlib.import_module(
    "lapsrn_jax.ops.inverse_conv")  # the module, not the function


def median_ms(fn, *args, repeats: int) -> float:
  return timed(fn, *args, repeats=repeats)[0]


def timed(fn, *args, repeats: int) -> tuple[float, float]:
  """(median wall ms, cores used = process CPU time / wall time over the repeats)."""
  jax.block_until_ready(fn(*args))
  times = []
  cpu, wall = time.process_time(), time.perf_counter()
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  cores = (time.process_time() - cpu) / (time.perf_counter() - wall)
  return 1e3 * float(np.median(times)), cores


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--lr", type=int, default=128)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--channels", type=int, default=64)
  p.add_argument("--pad", type=int, default=8)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--no-gemm-forms", action="store_true", help="skip the GEMM-formulation table")
  a = p.parse_args()
  rng = np.random.default_rng(0)
  n, h, c, pad = a.batch, a.lr, a.channels, a.pad
  kernel = jnp.asarray(rng.standard_normal((3, 3, c, c)) * 0.05, jnp.float32)
  y = jnp.asarray(rng.standard_normal((n, h, h, c)), jnp.float32)
  factor = ops.factorize(kernel, 0.1 * inverse_conv.gram_scale(kernel), (h, h),
                         boundary="symmetric", pad=pad)
  hp = h + 2 * pad
  wf, f = hp // 2 + 1, hp * (hp // 2 + 1)
  y_pad = jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
  spec = jnp.fft.rfft2(jnp.transpose(y_pad, (0, 3, 1, 2)))
  rows = spec.transpose(2, 3, 0, 1).reshape(f, n, c)
  gflop = 8 * f * n * c * c / 1e9
  pieces = [
      ("apply total", lambda y: ops.apply(factor, y), (y,)),
      ("MS feature convT (what apply replaces)",
       lambda y: layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP), (y,)),
      ("pad symmetric",
       lambda y: jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric"), (y,)),
      ("rfft2 (+ NHWC->NCHW)", lambda y: jnp.fft.rfft2(jnp.transpose(y, (0, 3, 1, 2))), (y_pad,)),
      ("transpose to [F, N, C]", lambda s: s.transpose(2, 3, 0, 1).reshape(f, n, c), (spec,)),
      (f"complex GEMM [{f}, {n}, {c}] @ [{f}, {c}, {c}]", jnp.matmul, (rows, factor.inverse)),
      ("transpose back", lambda r: r.reshape(hp, wf, n, c).transpose(2, 3, 0, 1), (rows,)),
      ("irfft2 (+ NCHW->NHWC)", lambda s: jnp.fft.irfft2(s, s=(hp, hp)).transpose(0, 2, 3, 1),
       (spec,)),
      ("C^T on the window", lambda z: transpose_conv_window(z, kernel, (pad, pad), (h, h)),
       (y_pad,)),
  ]
  pieces += local_pieces(kernel, y, pad)
  print(f"{jax.__version__=}, LR {h}², batch {n}, {c} channels, pad {pad}; median of {a.repeats}")
  print("| piece | ms | cores used |\n|---|---|---|")
  for name, fn, args in pieces:
    ms, cores = timed(jax.jit(fn), *args, repeats=a.repeats)
    if "GEMM [" in name:
      f_, m_, c_ = args[0].shape
      extra = f" ({8 * f_ * m_ * c_ * c_ / ms / 1e6:.0f} GFLOP/s)"
    else:
      extra = ""
    print(f"| {name} | {ms:.1f}{extra} | {cores:.2f} |")
  if not a.no_gemm_forms:
    gemm_forms(rows, factor.inverse, gflop, a.repeats)


def local_pieces(kernel, y, pad: int) -> list:
  """The local solve the models use (`ops.apply_local`, default tile and halo), piece by piece."""
  local = importlib.import_module("lapsrn_jax.ops.local_inverse")
  factor = local.factorize_local(kernel, 0.1 * inverse_conv.gram_scale(kernel))
  n, h, w, c = y.shape
  t, halo, win = factor.tile, factor.halo, factor.window
  kr, rows = local._window_positions(h, t, halo, 1)  # pylint: disable=protected-access
  kc, cols = local._window_positions(w, t, halo, 1)  # pylint: disable=protected-access
  ri = local.extension_index(jnp.asarray(rows).reshape(-1), h, pad)
  ci = local.extension_index(jnp.asarray(cols).reshape(-1), w, pad)
  m = n * kr * kc

  def windows(y):  # [N, H, W, C] -> [M, C, L, L]
    win_ = y[:, ri][:, :, ci].reshape(n, kr, win, kc, win, c)
    return win_.transpose(0, 1, 3, 5, 2, 4).reshape(m, c, win, win)

  wins = windows(y)
  spec = jnp.fft.rfft2(wins)
  rows_ = spec.transpose(2, 3, 0, 1).reshape(-1, m, c)
  z = jnp.zeros((n, kr * t, kc * t, c), y.dtype)
  f = rows_.shape[0]
  return [
      (f"local apply total ({m} windows of {win}², tile {t})",
       lambda y: local.apply_local(factor, y, pad=pad), (y,)),
      ("local: gather the windows", windows, (y,)),
      ("local: rfft2", jnp.fft.rfft2, (wins,)),
      ("local: transpose to [F, M, C]", lambda s: s.transpose(2, 3, 0, 1).reshape(-1, m, c),
       (spec,)),
      (f"local: complex GEMM [{f}, {m}, {c}] @ [{f}, {c}, {c}]",
       lambda r, i: jnp.matmul(r, i, precision=jax.lax.Precision.HIGHEST),
       (rows_, factor.inverse)),
      ("local: irfft2 + crop", lambda s: jnp.fft.irfft2(s, s=(win, win))[
          :, :, halo:halo + t, halo:halo + t], (spec,)),
      ("local: C^T of the tiles", lambda z: transpose_conv_window(z, kernel, (1, 1), (h, w)),
       (z,)),
  ]


def gemm_forms(rows, inverse, gflop: float, repeats: int) -> None:
  """Times formulations of `rows @ inverse` (`[F, N, C] @ [F, C, C]`, complex64)."""
  exact = jax.lax.Precision.HIGHEST
  mm = lambda x, m: jnp.matmul(x, m, precision=exact)  # noqa: E731
  n, c = rows.shape[1:]
  p, q = jnp.real(inverse), jnp.imag(inverse)

  def stacked(x, pq):  # [F, 2N, C] @ [F, C, 2C], one real GEMM, 4 real products
    o = mm(jnp.concatenate([jnp.real(x), jnp.imag(x)], 1), pq)
    return jax.lax.complex(o[:, :n, :c] - o[:, n:, c:], o[:, :n, c:] + o[:, n:, :c])

  def gauss(x, g):  # 3 real GEMMs: (a + ib)(P + iQ) from (a+b)P, a(Q-P), b(P+Q)
    g_p, g_qmp, g_ppq = g
    a_, b_ = jnp.real(x), jnp.imag(x)
    t1, t2, t3 = mm(a_ + b_, g_p), mm(a_, g_qmp), mm(b_, g_ppq)
    return jax.lax.complex(t1 - t3, t1 + t2)

  def real_2c(x, r):  # [F, N, 2C] @ [F, 2C, 2C]
    o = mm(jnp.concatenate([jnp.real(x), jnp.imag(x)], -1), r)
    return jax.lax.complex(o[..., :c], o[..., c:])

  def columns(x, m_t):  # images as columns: [F, C, C] @ [F, C, N]
    return jnp.swapaxes(mm(m_t, jnp.swapaxes(x, 1, 2)), 1, 2)

  def halves(x, m):  # two independent dots (XLA-CPU may run independent ops concurrently)
    (x1, x2), (m1, m2) = jnp.split(x, 2), jnp.split(m, 2)
    return jnp.concatenate([mm(x1, m1), mm(x2, m2)])

  def broadcast(x, m):  # multiply-reduce, no dot
    return jnp.sum(x[:, :, :, None] * m[:, None, :, :], axis=2)

  forms = [
      ("complex matmul (what apply does)", mm, inverse),
      ("real, stacked: [F, 2N, C] @ [F, C, 2C]", stacked, jnp.concatenate([p, q], -1)),
      ("real, Gauss 3 GEMMs (1.5x factor memory)", gauss, (p, q - p, p + q)),
      ("real 2C x 2C (2x factor memory)", real_2c,
       jnp.concatenate([jnp.concatenate([p, q], -1), jnp.concatenate([-q, p], -1)], -2)),
      ("images as columns", columns, jnp.swapaxes(inverse, 1, 2)),
      ("two independent halves", halves, inverse),
      ("broadcast multiply + sum", broadcast, inverse),
  ]
  reference = jax.jit(mm)(rows, inverse)
  scale = float(jnp.max(jnp.abs(reference)))
  print("\n| formulation of [F, N, C] @ [F, C, C] | ms | GFLOP/s | max rel. diff |")
  print("|---|---|---|---|")
  for name, fn, arg in forms:
    jitted = jax.jit(fn)
    diff = float(jnp.max(jnp.abs(jitted(rows, arg) - reference))) / scale
    ms = median_ms(jitted, rows, arg, repeats=repeats)
    print(f"| {name} | {ms:.1f} | {gflop / ms * 1e3:.0f} | {diff:.1e} |")


if __name__ == "__main__":
  main()
