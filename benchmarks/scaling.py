"""Forward time vs pixel count (LR 32² .. 512², 2x, batch 1) and where the time goes.

For each LR size, times (median of repeats, after compile/warm-up) lapsrn-jax MS-LapSRN D5R8,
CMS-LapSRN (conv3, the MS weights, rho = 1) and the PyTorch reference (both layouts, the faster
kept), fits `log t = a + slope * log(pixels)` (slope 1 = linear in pixels) and reports the
achieved GFLOP/s of the whole network (analytic MS-LapSRN count) next to the GFLOP/s that XLA
reaches on ONE 3x3 64->64 conv on the same grid, measured in the same run. The profile columns
time the network's parts in JAX on the same grid: the recursive block (40 convs), the feature
upsampler (MatConvNet convT as an lhs-dilated conv) and CMS-LapSRN's inverse-conv upsampler
(factorisation + apply), plus PyTorch's single conv for the kernel-level comparison.

Each framework runs in its own subprocess. Inputs are seeded uniform [0, 1] (synthetic), so the
figure holds no data-derived content.

  python benchmarks/scaling.py [--quick] [--figure PATH]
Writes benchmarks/out/scaling-<time>.json and a log-log PNG (default benchmarks/out/scaling.png).
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
from inference import machine_info, ms_lapsrn_gflop, run_in_subprocess  # noqa: E402

FULL_SIZES = (32, 45, 64, 91, 128, 181, 256, 362, 512)
QUICK_SIZES = (32, 64, 128, 256)
PROFILE_SIZES = (64, 128, 256)
CONV_GFLOP_PER_PX = 2 * 9 * 64 * 64 / 1e9


def _median_time(call, repeats: int, target_s: float) -> tuple[float, int]:
  call()  # warm-up (and compile for jitted calls)
  t = time.perf_counter()
  call()
  first = time.perf_counter() - t
  n = int(max(3, min(repeats, round(target_s / max(first, 1e-6)))))
  times = [first]
  for _ in range(n - 1):
    t = time.perf_counter()
    call()
    times.append(time.perf_counter() - t)
  return statistics.median(times), len(times)


def _rolled_block(source, convs, layers, recursions: int = 8):
  """The recursive block ("SS" skip) as a rolled `lax.scan` (the project unrolls it)."""
  import jax

  def body(x, _):
    h = x
    for k, b in convs:
      h = layers.conv3x3(layers.leaky_relu(h), k, b)
    return h + source, None
  return jax.lax.scan(body, source, None, length=recursions)[0]


def _jax_worker(spec: dict) -> dict:
  import jax
  import jax.numpy as jnp

  from lapsrn_jax.models import create_model, layers
  from lapsrn_jax.weights import cms_params_from_ms, load_official

  ms, ms_params = load_official(os.path.join(spec["weights"], "MSLapSRN_D5R8.mat"))
  models = {"jax-ms": (ms, ms_params),
            "jax-cms": (create_model("cms_lapsrn_d5r8_conv3"),
                        cms_params_from_ms(ms_params, tie_to=3))}
  out = {"times": {}, "profile": {}, "versions": {"jax": jax.__version__}}
  rng = np.random.default_rng(0)
  for name, (model, params) in models.items():
    fn = jax.jit(lambda p, x, model=model: model.apply({"params": p}, x, scale=2))
    for n in spec["sizes"]:
      x = jnp.asarray(rng.random((1, n, n, 1), dtype=np.float32))
      out["times"].setdefault(name, {})[n] = _median_time(
          lambda: jax.block_until_ready(fn(params, x)), spec["repeats"], spec["target_s"])[0]
      print(f"  {name} {n}²: {out['times'][name][n]:.4f}s", file=sys.stderr, flush=True)

  # Parts of the network on an n x n grid of 64-channel features.
  kernel = ms_params["conv3"]["kernel"]
  bias = ms_params["conv3"]["bias"]
  convs = [(ms_params[f"conv{d}"]["kernel"], ms_params[f"conv{d}"]["bias"]) for d in range(1, 6)]
  up_kernel, up_bias = ms_params["upconv"]["kernel"], ms_params["upconv"]["bias"]
  from lapsrn_jax.models.ms_lapsrn import recursive_block

  parts = {
      "conv3x3": jax.jit(lambda y, k, b: layers.conv3x3(y, k, b)),
      "block": jax.jit(lambda y, cs: recursive_block(y, cs, 8, "SS")),
      "block_rolled": jax.jit(lambda y, cs: _rolled_block(y, cs, layers)),
      "feature_convT": jax.jit(
          lambda y, k, b: layers.conv_transpose2x(y, k, layers.FEATURE_UP_CROP, b)),
  }
  args = {"conv3x3": (kernel, bias), "block": (convs,), "block_rolled": (convs,),
          "feature_convT": (up_kernel, up_bias)}
  try:
    from lapsrn_jax import ops

    lam = ops.gram_scale(kernel)  # rho = 1
    factorize = jax.jit(lambda k, l, n: ops.factorize(k, l, (n, n), boundary="symmetric", pad=8),
                        static_argnums=2)
    parts["cms_factorize"] = lambda y, k, l: factorize(k, l, y.shape[1])
    parts["cms_apply"] = jax.jit(ops.apply)
    args["cms_factorize"] = (kernel, lam)
  except (ImportError, AttributeError) as err:  # ops not available
    out["profile_error"] = repr(err)
  for n in spec["profile_sizes"]:
    y = jnp.asarray(rng.standard_normal((1, n, n, 64), dtype=np.float32))
    if "cms_apply" in parts:
      args["cms_apply"] = (jax.block_until_ready(factorize(kernel, lam, n)),)
    for name, fn in parts.items():
      call = ((lambda fn=fn, a=args[name]: jax.block_until_ready(fn(a[0], y)))
              if name == "cms_apply"
              else (lambda fn=fn, a=args[name]: jax.block_until_ready(fn(y, *a))))
      out["profile"].setdefault(name, {})[n] = _median_time(call, spec["repeats"],
                                                            spec["target_s"] / 2)[0]
      print(f"  {name} {n}²: {out['profile'][name][n]:.4f}s", file=sys.stderr, flush=True)
  return out


def _torch_worker(spec: dict) -> dict:
  import torch
  import torch.nn.functional as F

  from torch_reference import MSLapSRNTorch, to_layout

  torch.set_num_threads(os.cpu_count())
  model = MSLapSRNTorch.from_mat(os.path.join(spec["weights"], "MSLapSRN_D5R8.mat"))
  out = {"times": {}, "profile": {}, "versions": {"torch": torch.__version__}}
  rng = np.random.default_rng(0)
  with torch.inference_mode():
    for layout in ("nhwc", "nchw"):
      for n in spec["sizes"]:
        m, x = to_layout(model, torch.from_numpy(rng.random((1, 1, n, n), dtype=np.float32)),
                         layout)
        out["times"].setdefault(f"torch-{layout}", {})[n] = _median_time(
            lambda: m(x, 2), spec["repeats"], spec["target_s"])[0]
        print(f"  torch-{layout} {n}²: {out['times'][f'torch-{layout}'][n]:.4f}s", file=sys.stderr,
              flush=True)
      w = model.convs[2].weight.detach()
      b = model.convs[2].bias.detach()
      fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
      w = w.contiguous(memory_format=fmt)
      for n in spec["profile_sizes"]:
        y = torch.from_numpy(rng.standard_normal((1, 64, n, n), dtype=np.float32)).contiguous(
            memory_format=fmt)
        out["profile"].setdefault(f"torch_conv3x3_{layout}", {})[n] = _median_time(
            lambda: F.conv2d(y, w, b, padding=1), spec["repeats"], spec["target_s"] / 2)[0]
  return out


def _int_keys(result: dict) -> dict:
  """JSON turns the size keys into strings; back to ints."""
  for group in ("times", "profile"):
    result[group] = {k: {int(n): t for n, t in v.items()} for k, v in result.get(group, {}).items()}
  return result


def fit_slope(sizes, times, min_size: int = 0) -> float:
  pts = [(n * n, t) for n, t in zip(sizes, times) if n >= min_size]
  px, ts = np.log([p for p, _ in pts]), np.log([t for _, t in pts])
  return float(np.polyfit(px, ts, 1)[0])


def summarise(res: dict) -> str:
  times = {**res["jax"]["times"], **res["torch"]["times"]}
  sizes = sorted(next(iter(times.values())))
  torch_best = {n: min(times["torch-nhwc"][n], times["torch-nchw"][n]) for n in sizes}
  times["torch-best"] = torch_best
  cols = ["jax-ms", "jax-cms", "torch-best"]
  lines = ["| LR | GFLOP | " + " | ".join(f"{c} s" for c in cols)
           + " | JAX MS GFLOP/s | Torch GFLOP/s | JAX CMS / MS | Torch / JAX MS |",
           "|---|---|" + "---|" * (len(cols) + 4)]
  for n in sizes:
    g = ms_lapsrn_gflop(n, 1, 2)
    lines.append(f"| {n}² | {g:.1f} | " + " | ".join(f"{times[c][n]:.4f}" for c in cols)
                 + f" | {g / times['jax-ms'][n]:.0f} | {g / torch_best[n]:.0f} | "
                 f"{times['jax-cms'][n] / times['jax-ms'][n]:.2f} | "
                 f"{torch_best[n] / times['jax-ms'][n]:.2f} |")
  lines.append("")
  lines.append("log-log slope of time vs pixels (1 = linear): " + ", ".join(
      f"{c} {fit_slope(sizes, [times[c][n] for n in sizes]):.2f} (all) / "
      f"{fit_slope(sizes, [times[c][n] for n in sizes], 64):.2f} (>= 64²)" for c in cols))
  prof = {**res["jax"]["profile"], **res["torch"]["profile"]}
  psizes = sorted(prof["conv3x3"])
  lines += ["",
            "| grid (batch 1, 64 ch) | XLA conv3x3 GFLOP/s | Torch conv3x3 GFLOP/s (NHWC / NCHW) | "
            "XLA block (40 convs) GFLOP/s | same, rolled scan | "
            "XLA feature convT ms (useful GFLOP/s) | CMS factorize ms | "
            "CMS apply ms | JAX MS network GFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
  for n in psizes:
    conv_g = CONV_GFLOP_PER_PX * n * n
    fac, app = prof.get("cms_factorize", {}).get(n), prof.get("cms_apply", {}).get(n)
    net = f"{ms_lapsrn_gflop(n, 1, 2) / times['jax-ms'][n]:.0f}" if n in times["jax-ms"] else "—"
    lines.append(
        f"| {n}² | {conv_g / prof['conv3x3'][n]:.0f} | "
        f"{conv_g / prof['torch_conv3x3_nhwc'][n]:.0f} / "
        f"{conv_g / prof['torch_conv3x3_nchw'][n]:.0f} | {40 * conv_g / prof['block'][n]:.0f} | "
        f"{40 * conv_g / prof['block_rolled'][n]:.0f} | "
        f"{prof['feature_convT'][n] * 1e3:.1f} ({conv_g / prof['feature_convT'][n]:.0f}) | "
        f"{'—' if fac is None else f'{fac * 1e3:.1f}'} | "
        f"{'—' if app is None else f'{app * 1e3:.1f}'} | "
        f"{net} |")
  return "\n".join(lines)


def plot(res: dict, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  times = {**res["jax"]["times"], **res["torch"]["times"]}
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  for name, style in (("jax-ms", "o-"), ("jax-cms", "s-"), ("torch-nhwc", "^--"),
                      ("torch-nchw", "v--")):
    if name not in times:
      continue
    sizes = sorted(times[name])
    ts = [times[name][n] for n in sizes]
    px = np.array(sizes) ** 2
    ax1.loglog(px, ts, style, label=f"{name} (slope {fit_slope(sizes, ts, 64):.2f})")
    if name in ("jax-ms", "torch-nhwc", "torch-nchw"):
      ax2.semilogx(px, [ms_lapsrn_gflop(n, 1, 2) / t for n, t in zip(sizes, ts)], style, label=name)
  sizes = sorted(times["jax-ms"])
  px = np.array(sizes, float) ** 2
  ref = sizes[len(sizes) // 2]
  ax1.loglog(px, times["jax-ms"][ref] * px / ref**2, "k:", lw=1, label="linear (slope 1)")
  conv = res["jax"]["profile"]["conv3x3"]
  cs = sorted(conv)
  ax2.semilogx(np.array(cs, float) ** 2, [CONV_GFLOP_PER_PX * n * n / conv[n] for n in cs], "k*:",
               label="XLA single conv3x3")
  ax1.set(xlabel="LR pixels (2x, batch 1)", ylabel="forward time [s]", title="time vs pixels")
  ax2.set(xlabel="LR pixels", ylabel="GFLOP/s (MS-LapSRN count)", title="achieved throughput")
  ax1.legend(fontsize=8)
  ax2.legend(fontsize=8)
  fig.suptitle(f"{res['info']['cpu']} x{res['info']['cpu_count']}, {res['info']['start']}",
               fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--quick", action="store_true", help="LR 32/64/128/256 only")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--target-s", type=float, default=3.0)
  parser.add_argument("--weights", default=os.environ.get("LAPSRN_WEIGHTS_DIR"),
                      help="folder of MSLapSRN_D5R8.mat (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--out", default=os.path.join(HERE, "out"))
  parser.add_argument("--figure", default=None, help="PNG path (default <out>/scaling.png)")
  args = parser.parse_args(argv)
  if args.worker:
    spec = json.loads(args.worker)
    fn = _jax_worker if spec["framework"] == "jax" else _torch_worker
    print("RESULT " + json.dumps({**spec, **fn(spec)}), flush=True)
    return 0
  if not args.weights:
    parser.error("needs the official weights: pass --weights or set LAPSRN_WEIGHTS_DIR")

  info = {"start": datetime.datetime.now().isoformat(timespec="seconds"),
          "command": " ".join(sys.argv), **machine_info()}
  print(f"# {info['start']}  {info['cpu']} x{info['cpu_count']}  load {info['loadavg']}",
        flush=True)
  sizes = QUICK_SIZES if args.quick else FULL_SIZES
  res = {"info": info}
  for framework in ("jax", "torch"):
    spec = {"framework": framework, "sizes": list(sizes), "profile_sizes": list(PROFILE_SIZES),
            "repeats": args.repeats, "target_s": args.target_s,
            "weights": os.path.abspath(args.weights)}
    res[framework] = run_in_subprocess(spec, __file__)
    if "error" in res[framework]:
      print(f"ERROR ({framework}): {res[framework]['error']}")
      return 1
    _int_keys(res[framework])
  info["end"] = datetime.datetime.now().isoformat(timespec="seconds")
  info["loadavg_end"] = os.getloadavg()
  table = summarise(res)
  print(f"\nload at end {info['loadavg_end']}\n\n" + table)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"scaling-{'quick' if args.quick else 'full'}-"
                                f"{info['start'].replace(':', '')}.json")
  with open(path, "w") as f:
    json.dump({**res, "table": table}, f, indent=1)
  figure = args.figure or os.path.join(args.out, "scaling.png")
  plot(res, figure)
  print(f"\nraw results: {path}\nfigure: {figure}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
