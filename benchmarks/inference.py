"""Inference throughput: lapsrn-jax MS-LapSRN D5R8 and CMS-LapSRN (conv3) vs PyTorch MS-LapSRN.

Every (variant, scale, LR size, batch) runs in its own subprocess, so that its peak RSS
(VmHWM of that process: imports + weights + compile + runs) is clean.
Variants: `jax-ms` (load_official; with the `lapsrn_jax.xla_cpu` flag that `import lapsrn_jax`
adds), `jax-ms-ynn` (the same, with XLA-CPU's default YNNPACK convolutions: what the flag buys),
`jax-cms` (create_model("cms_lapsrn_d5r8_conv3") with
cms_params_from_ms(..., tie_to=3): the MS weights, rho = 1), `torch-nhwc` / `torch-nchw`
(benchmarks/torch_reference.py, `torch.inference_mode`, `torch.set_num_threads(os.cpu_count())`;
the faster layout is the PyTorch number), and `jax-cms-cached`: the same CMS-LapSRN forward with the
factor of its local solve (one per weights, for every image size:
`lapsrn_jax.inference.cached_factor`) computed once outside the timed call, as inference does
(checked equal to the model's own output, max |diff| recorded; its one-off factorisation time is
reported with its compile).
With batch 1, `jax-ms` and `jax-cms-cached` also time the inference path
(`lapsrn_jax.inference.super_resolve_y`: size buckets, the cached factor): its first call, the
first call of a new size in the same bucket (LR 5 rows and 3 columns smaller), and later calls of
that size.
`--photo` adds a 1024x768 HR photo (LR 512x384 / 256x192 / 128x96 at 2x / 4x / 8x, batch 1).
All variants of one configuration get the same input
(a seeded uniform [0, 1] Y batch) and run back to back, so their ratios share the machine's load.

Times are per forward call of the whole pyramid (all levels up to `scale`), after warm-up:
median over `repeats` calls (at least --min-repeats, more for short calls up to ~--target-s).
JAX compile time (`jit(...).lower(...).compile()`) and the first call are reported apart from the
steady state; PyTorch (eager) has no compile step, its first call is reported instead.
Megapixels/s count output (HR) pixels. GFLOP is the analytic MS-LapSRN count (2 x MACs of every
conv/convT); the CMS-LapSRN upsampler does different work, so only its time is comparable.

  python benchmarks/inference.py --quick            # 4 configurations, a few minutes
  python benchmarks/inference.py                    # 2x/4x/8x, LR 64/128/256, batch 1/8
  python benchmarks/inference.py --photo --variants jax-ms,jax-cms,jax-cms-cached   # + the photo
  python benchmarks/inference.py --check            # first: torch == jax on Set5 (exit 1 if not)
Results: a markdown table on stdout and raw JSON under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("jax-ms", "jax-cms", "jax-cms-cached", "torch-nhwc", "torch-nchw", "jax-ms-ynn")
FULL = {"scales": (2, 4, 8), "sizes": (64, 128, 256), "batches": (1, 8)}
QUICK_CONFIGS = ((2, 64, 64, 1), (2, 64, 64, 8), (2, 128, 128, 8),
                 (4, 64, 64, 1))  # (s, h, w, batch)
PHOTO_HW = (768, 1024)  # HR of the "photo" rows: LR = HR / scale, batch 1
NEW_SIZE_SHRINK = (5, 3)  # the "new size in a seen bucket": LR (h - 5, w - 3), same bucket


def ms_lapsrn_gflop(size: int, batch: int, scale: int, depth: int = 5, recursions: int = 8,
                    features: int = 64, width: int | None = None) -> float:
  """Analytic forward GFLOP (2 x multiply-adds) of MS-LapSRN on `batch` LR images `size` x `width`
  (`width` None: square)."""
  f = features
  per_lr_px = (recursions * depth * 9 * f * f   # recursive block
               + 9 * f * f                      # feature convT: each LR pixel scatters 3x3xFxF
               + 4 * 9 * f                      # residual conv on the 4 HR pixels of an LR pixel
               + 16)                            # image convT 4x4
  px = size * (size if width is None else width)
  macs = 9 * f * px                             # input conv, once
  for _ in range(int(math.log2(scale))):
    macs += per_lr_px * px
    px *= 4
  return 2.0 * macs * batch / 1e9


def machine_info() -> dict:
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
  except OSError:
    pass
  return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "platform": platform.platform(), "loadavg": os.getloadavg()}


# ------------------------------------------------------------------------------------------------
# Worker: one variant on one configuration, in a fresh process.


def rss_mb() -> float:
  """Peak resident set of this process in MB: VmHWM of /proc/self/status (Linux).

  Not `ru_maxrss`: Linux carries the parent's high-water mark at fork into the child's ru_maxrss,
  so a child of a big driver would report the driver's peak.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0  # kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_calls(call, first_s: float, min_repeats: int, target_s: float, max_repeats: int = 20):
  reps = int(min(max_repeats, max(min_repeats, math.ceil(target_s / max(first_s, 1e-6)))))
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    call()
    times.append(time.perf_counter() - t)
  return times


def _jax_setup(variant: str, scale: int, weights: str):
  import jax


  from lapsrn_jax.weights import cms_params_from_ms, load_official

  model, params = load_official(os.path.join(weights, "MSLapSRN_D5R8.mat"))
  if variant.startswith("jax-cms"):
    from lapsrn_jax.models import create_model

    model, params = create_model("cms_lapsrn_d5r8_conv3"), cms_params_from_ms(params, tie_to=3)
  fn = jax.jit(lambda p, x: model.apply({"params": p}, x, scale=scale))
  return model, fn, params


def worker(spec: dict) -> dict:
  """Times one variant; returns the record printed as JSON by `--worker`."""
  variant, scale, batch = spec["variant"], spec["scale"], spec["batch"]
  h, w = spec["hw"]
  lr = np.random.default_rng(spec["seed"]).random((batch, h, w, 1), dtype=np.float32)
  out = {**spec, "versions": {}}
  if variant.startswith("jax"):
    import jax

    out["versions"]["jax"] = jax.__version__
    model, fn, params = _jax_setup(variant, scale, spec["weights"])
    x = jax.device_put(lr)
    out["rss_setup_mb"] = rss_mb()
    t = time.perf_counter()
    if variant == "jax-cms-cached":
      from lapsrn_jax.inference import cached_factor

      factor = jax.block_until_ready(cached_factor(model, params))
      cached = jax.jit(lambda p, f, x: model.apply({"params": p}, x, scale=scale, factor=f))
      compiled_cached = cached.lower(params, factor, x).compile()
      out["compile_s"] = time.perf_counter() - t  # factorisation (incl. its compile) + compile
      call = lambda: jax.block_until_ready(compiled_cached(params, factor, x))
      reference = np.asarray(fn(params, x)[-1])
      out["max_abs_diff_vs_model"] = float(np.max(np.abs(np.asarray(call()[-1]) - reference)))
    else:
      compiled = fn.lower(params, x).compile()
      out["compile_s"] = time.perf_counter() - t
      call = lambda: jax.block_until_ready(compiled(params, x))
  else:
    import torch

    sys.path.insert(0, HERE)
    from torch_reference import MSLapSRNTorch, to_layout

    torch.set_num_threads(os.cpu_count())
    out["versions"]["torch"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
    model = MSLapSRNTorch.from_mat(os.path.join(spec["weights"], "MSLapSRN_D5R8.mat"))
    model, x = to_layout(model, torch.from_numpy(lr).permute(0, 3, 1, 2), variant.split("-")[1])
    out["rss_setup_mb"] = rss_mb()
    out["compile_s"] = 0.0

    def call():
      with torch.inference_mode():
        return model(x, scale)
  t = time.perf_counter()
  call()
  out["first_call_s"] = time.perf_counter() - t
  out["times_s"] = time_calls(call, out["first_call_s"], spec["min_repeats"], spec["target_s"])
  out["median_s"] = statistics.median(out["times_s"])
  if variant in ("jax-ms", "jax-cms-cached") and batch == 1:
    out.update(new_size_record(model, params, lr[0, :, :, 0], scale))
  out["peak_rss_mb"] = rss_mb()
  return out


def new_size_record(model, params, y: np.ndarray, scale: int) -> dict:
  """The inference path (`lapsrn_jax.inference.super_resolve_y`, size buckets, CMS-LapSRN's
  cached factor): its first call on `y` (compiles the bucket), then the first call on a new size
  in the same bucket, and the median of 3 later calls on that size."""
  from lapsrn_jax import inference

  h, w = y.shape
  small = y[:h - NEW_SIZE_SHRINK[0], :w - NEW_SIZE_SHRINK[1]]
  assert ([inference.bucket_size(n) for n in small.shape]
          == [inference.bucket_size(n) for n in y.shape])
  t = time.perf_counter()
  inference.super_resolve_y(model, params, y, scale)
  first = time.perf_counter() - t
  t = time.perf_counter()
  inference.super_resolve_y(model, params, small, scale)
  new = time.perf_counter() - t
  later = time_calls(lambda: inference.super_resolve_y(model, params, small, scale), new, 3, 0.0, 3)
  return {"path_first_call_s": first, "path_new_size_s": new,
          "path_new_size_later_s": statistics.median(later)}


# ------------------------------------------------------------------------------------------------
# Driver.


def worker_env(variant: str) -> dict:
  """The worker's environment: `*-ynn` variants get XLA-CPU's defaults (no `lapsrn_jax.xla_cpu`
  flag)."""
  env = dict(os.environ)
  if variant.endswith("-ynn"):
    from lapsrn_jax import xla_cpu

    env[xla_cpu.OPT_OUT] = "0"
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(xla_cpu.CONV_FLAG, "").strip()
  return env


def run_in_subprocess(spec: dict, script: str = __file__, flag: str = "--worker") -> dict:
  """Runs `script <flag> <spec json>` and returns the record it printed (or `{..., "error"}`)."""
  cmd = [sys.executable, os.path.abspath(script), flag, json.dumps(spec)]
  # stderr (progress, errors) passes through
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                        env=worker_env(spec.get("variant", "")))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode != 0 or not lines:
    return {**spec, "error": f"worker exit code {proc.returncode} (its stderr is above)"}
  return json.loads(lines[-1][len("RESULT "):])


def configurations(args) -> list[tuple[int, int, int, int]]:
  """`(scale, LR h, LR w, batch)`: the square grid (or the quick subset), then the photo rows."""
  if args.quick:
    configs = list(QUICK_CONFIGS)
  else:
    configs = [(s, n, n, b) for s in FULL["scales"] for n in FULL["sizes"] for b in FULL["batches"]]
    configs = [c for c in configs
               if ms_lapsrn_gflop(c[1], c[3], c[0], width=c[2]) <= args.max_gflop]
  if args.photo:
    configs += [(s, PHOTO_HW[0] // s, PHOTO_HW[1] // s, 1) for s in FULL["scales"]]
  return configs


def _label(h: int, w: int) -> str:
  return f"{h}²" if h == w else f"{h}×{w}"


def _fmt(x, spec="{:.3f}"):
  return "—" if x is None else spec.format(x)


def summarise(rows: list[dict]) -> str:
  """Markdown tables: steady state + ratios, then compile / first call / peak RSS."""
  by_cfg = {}
  for r in rows:
    by_cfg.setdefault((r["scale"], *r["hw"], r["batch"]), {})[r["variant"]] = r
  lines = ["| scale | LR | batch | GFLOP | JAX MS s | JAX CMS s | JAX CMS cached s | "
           "Torch NHWC s | Torch NCHW s | JAX MS img/s | JAX MS MP/s | Torch best MP/s | "
           "Torch best / JAX MS | JAX CMS / JAX MS | CMS cached / JAX MS | "
           "JAX MS untuned (YNNPACK conv) s | untuned / JAX MS |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for (s, n, wd, b), v in sorted(by_cfg.items()):
    med = {k: v[k].get("median_s") if k in v else None for k in VARIANTS}
    torch_best = min((t for t in (med["torch-nhwc"], med["torch-nchw"]) if t), default=None)
    mp = b * s * s * n * wd / 1e6
    jm, jc, jcc = med["jax-ms"], med["jax-cms"], med["jax-cms-cached"]
    ratio = lambda a, c: _fmt(a / c if a and c else None, "{:.2f}")
    lines.append(
        f"| {s}x | {_label(n, wd)} | {b} | {ms_lapsrn_gflop(n, b, s, width=wd):.0f} | "
        f"{_fmt(jm)} | {_fmt(jc)} | {_fmt(jcc)} | "
        f"{_fmt(med['torch-nhwc'])} | {_fmt(med['torch-nchw'])} | "
        f"{_fmt(b / jm if jm else None, '{:.3g}')} | {_fmt(mp / jm if jm else None, '{:.3g}')} | "
        f"{_fmt(mp / torch_best if torch_best else None, '{:.3g}')} | {ratio(torch_best, jm)} | "
        f"{ratio(jc, jm)} | {ratio(jcc, jm)} | {_fmt(med['jax-ms-ynn'])} | "
        f"{ratio(med['jax-ms-ynn'], jm)} |")
  lines += ["",
            "| scale | LR | batch | compile s (JAX MS / CMS / CMS cached: factorise + compile) | "
            "1st call s (JAX MS / CMS / Torch NHWC / NCHW) | "
            "peak RSS MB (JAX MS / CMS / CMS cached / Torch NHWC / NCHW) | CMS / MS peak RSS | "
            "inference path, batch 1: 1st call / new size in the bucket / later calls s "
            "(JAX MS; CMS cached) |",
            "|---|---|---|---|---|---|---|---|"]
  for (s, n, wd, b), v in sorted(by_cfg.items()):
    g = lambda k, f: v[k].get(f) if k in v else None
    join = lambda keys, f, spec: " / ".join(_fmt(g(k, f), spec) for k in keys)
    rss = [g(k, "peak_rss_mb") for k in ("jax-ms", "jax-cms", "jax-cms-cached")]
    rss_ratio = (f"{max(r for r in rss[1:] if r) / rss[0]:.2f}"
                 if rss[0] and any(rss[1:]) else "—")
    path = "; ".join(join((k,), "path_first_call_s", "{:.2f}") + " / "
                     + join((k,), "path_new_size_s", "{:.2f}") + " / "
                     + join((k,), "path_new_size_later_s", "{:.2f}")
                     for k in ("jax-ms", "jax-cms-cached"))
    lines.append(f"| {s}x | {_label(n, wd)} | {b} | {join(VARIANTS[:3], 'compile_s', '{:.2f}')} | "
                 + join(("jax-ms", "jax-cms", "torch-nhwc", "torch-nchw"), "first_call_s",
                        "{:.3f}")
                 + f" | {join(VARIANTS, 'peak_rss_mb', '{:.0f}')} | {rss_ratio} | "
                 f"{path if b == 1 else '—'} |")
  diffs = [r["max_abs_diff_vs_model"] for r in rows if "max_abs_diff_vs_model" in r]
  if diffs:
    lines.append(f"\nCMS cached vs model output: max |diff| = {max(diffs):.2e} over {len(diffs)} "
                 "configurations")
  for r in rows:
    if "error" in r:
      lines.append(f"\nERROR {r['variant']} x{r['scale']} {_label(*r['hw'])} b{r['batch']}: "
                   f"{r['error']}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--quick", action="store_true", help="a 4-configuration subset")
  parser.add_argument("--photo", action="store_true",
                      help=f"add a {PHOTO_HW[1]}x{PHOTO_HW[0]} HR photo at 2x/4x/8x (batch 1)")
  parser.add_argument("--check", action="store_true", help="verify torch == jax on Set5 first")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--max-gflop", type=float, default=2500.0,
                      help="skip configurations whose MS-LapSRN forward exceeds this (full mode)")
  parser.add_argument("--min-repeats", type=int, default=3)
  parser.add_argument("--target-s", type=float, default=3.0,
                      help="aim for this much timed work per variant")
  parser.add_argument("--weights", default=os.environ.get("LAPSRN_WEIGHTS_DIR", ""),
                      help="folder of MSLapSRN_D5R8.mat (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--data", default=os.environ.get("LAPSRN_DATA_DIR", ""),
                      help="folder of Set5/ for --check (default $LAPSRN_DATA_DIR)")
  parser.add_argument("--out", default=os.path.join(HERE, "out"))
  args = parser.parse_args(argv)

  if args.worker:
    print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0
  if not args.weights:
    parser.error("set LAPSRN_WEIGHTS_DIR or pass --weights (the folder of MSLapSRN_D5R8.mat)")
  if args.check and not args.data:
    parser.error("--check needs LAPSRN_DATA_DIR or --data (the folder holding Set5/)")
  if args.check:
    sys.path.insert(0, HERE)
    from torch_reference import check_against_jax

    if not check_against_jax(args.weights, args.data):
      print("MISMATCH between the PyTorch reference and lapsrn_jax: not benchmarking")
      return 1
  variants = [v for v in args.variants.split(",") if v]
  if unknown := set(variants) - set(VARIANTS):
    parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
  info = {"start": datetime.datetime.now().isoformat(timespec="seconds"),
          "command": " ".join(sys.argv), **machine_info()}
  print(f"# {info['start']}  {info['cpu']} x{info['cpu_count']}  load {info['loadavg']}",
        flush=True)
  rows = []
  for scale, h, w, batch in configurations(args):
    for variant in variants:
      spec = {"variant": variant, "scale": scale, "hw": [h, w], "batch": batch,
              "seed": 1000 * scale + h + batch, "weights": os.path.abspath(args.weights),
              "min_repeats": args.min_repeats, "target_s": args.target_s}
      r = run_in_subprocess(spec)
      rows.append(r)
      print(f"  {variant:10s} x{scale} {_label(h, w)} b{batch}: "
            + (f"median {r['median_s']:.3f}s over {len(r['times_s'])} "
               f"(compile {r['compile_s']:.2f}s, 1st {r['first_call_s']:.2f}s, "
               f"peak RSS {r['peak_rss_mb']:.0f} MB)" if "error" not in r
               else f"ERROR {r['error']}"), flush=True)
  info["end"] = datetime.datetime.now().isoformat(timespec="seconds")
  info["loadavg_end"] = os.getloadavg()
  table = summarise(rows)
  print(f"\nload at end {info['loadavg_end']}\n\n" + table)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"inference-{'quick' if args.quick else 'full'}-"
                                f"{info['start'].replace(':', '')}.json")
  with open(path, "w") as f:
    json.dump({"info": info, "rows": rows, "table": table}, f, indent=1)
  print(f"\nraw results: {path}")
  return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
  sys.exit(main())
