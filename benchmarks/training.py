"""Training-step time: lapsrn-jax MS-LapSRN D5R8 and CMS-LapSRN (conv3) vs PyTorch MS-LapSRN,
and the input pipeline's throughput on its own.

The JAX step is the project's own: `lapsrn_jax.training.step.make_train_step` (Charbonnier over
every level of every scale, / batch; SGD momentum 0.9, coupled weight decay 5e-4, bias lr x0.1 from
`training.config.base_config().optim`), on a batch built by `training.sharding.shard_batch`.
The PyTorch step is the same objective with `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`
(no bias multiplier: same arithmetic, different constants) on benchmarks/torch_reference.py.
Batches are synthetic (seeded uniform [0, 1]) with exactly the pipeline's shapes: the global batch
is split over scales 2/4/8 in contiguous chunks (batch 64 -> 22/22/20), patch P -> LR P/s.
`jax-ms-ynn` is the JAX MS step with XLA-CPU's default YNNPACK convolutions (without the
`lapsrn_jax.xla_cpu` flag that `import lapsrn_jax` adds): what the flag buys.
Each (variant, setting) runs in its own subprocess (peak RSS = VmHWM of that process).
Times: compile (`lower().compile()`, JAX), first step, then the median of the timed steps.

The pipeline (`lapsrn_jax.data.benchmark.patches_per_second`: real T91 + BSDS200 images, scale
augmentation, crops, rot/flip, the MATLAB-bicubic 3-scale pyramid) is timed alone, in-process
(workers 0) and with worker processes, to compare with the patches/s a training step consumes.

  python benchmarks/training.py --quick      # batch 8, 64² patches only
  python benchmarks/training.py              # + batch 64, 128² patches (the official setting)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from inference import (  # noqa: E402
    machine_info, ms_lapsrn_gflop, rss_mb, run_in_subprocess, time_calls)

SCALES = (2, 4, 8)
VARIANTS = ("jax-ms", "jax-cms", "torch-nhwc", "torch-nchw", "jax-ms-ynn")
SETTINGS = {"b8_p64": (8, 64), "b64_p128": (64, 128)}  # name -> (global batch, HR patch)


def chunk_sizes(batch: int, n: int = len(SCALES)) -> list[int]:
  """The official split: ceil(B / n) images per scale, the last scale gets the rest."""
  first = math.ceil(batch / n)
  sizes = [first] * (n - 1) + [batch - first * (n - 1)]
  if min(sizes) < 1:
    raise ValueError(f"batch {batch} is too small for {n} scales")
  return sizes


def synthetic_batch(batch: int, patch: int, seed: int) -> dict:
  """`{"x<s>": {"lr": [b, P/s, P/s, 1], "targets": (levels 2x .. sx)}}` float32, like the
  pipeline."""
  rng = np.random.default_rng(seed)
  out = {}
  for s, b in zip(SCALES, chunk_sizes(batch)):
    lr = patch // s
    out[f"x{s}"] = {"lr": rng.random((b, lr, lr, 1), dtype=np.float32),
                    "targets": tuple(rng.random((b, lr << l, lr << l, 1), dtype=np.float32)
                                     for l in range(1, int(math.log2(s)) + 1))}
  return out


def step_gflop(batch: int, patch: int) -> float:
  """Analytic forward GFLOP of MS-LapSRN over the multi-scale batch (a step is roughly 3x this)."""
  return sum(ms_lapsrn_gflop(patch // s, b, s) for s, b in zip(SCALES, chunk_sizes(batch)))


def _jax_step(variant: str, weights: str, batch_np: dict, batch_size: int):
  import jax

  from lapsrn_jax.training import optimizer, sharding, step as step_lib
  from lapsrn_jax.training.config import base_config
  from lapsrn_jax.training.state import create_train_state
  from lapsrn_jax.weights import cms_params_from_ms, load_official

  model, params = load_official(os.path.join(weights, "MSLapSRN_D5R8.mat"))
  if variant.startswith("jax-cms"):
    from lapsrn_jax.models import create_model

    model, params = create_model("cms_lapsrn_d5r8_conv3"), cms_params_from_ms(params, tie_to=3)
  cfg = base_config()
  tx = optimizer.make_optimizer(cfg.optim)
  mesh = sharding.make_mesh()
  sizes = dict(zip(SCALES, chunk_sizes(batch_size)))
  batch = sharding.shard_batch(batch_np, mesh, sizes)
  state = create_train_state(params, tx)
  train_step = step_lib.make_train_step(model, tx, mesh, batch_size=batch_size,
                                        eps=cfg.train.charbonnier_eps)
  t = time.perf_counter()
  compiled = train_step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  holder = {"state": state}

  def call():
    holder["state"], metrics = compiled(holder["state"], batch)
    return float(jax.block_until_ready(metrics["loss"]))
  return call, compile_s, {"jax": jax.__version__}


def _torch_step(variant: str, weights: str, batch_np: dict, batch_size: int):
  import torch

  from torch_reference import MSLapSRNTorch, to_layout

  torch.set_num_threads(os.cpu_count())
  layout = variant.split("-")[1]
  model = MSLapSRNTorch.from_mat(os.path.join(weights, "MSLapSRN_D5R8.mat")).train()
  fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
  to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
  chunks = []
  for key, chunk in batch_np.items():
    model, lr = to_layout(model, to_t(chunk["lr"]), layout)
    chunks.append((int(key[1:]), lr, [to_t(t) for t in chunk["targets"]]))
  opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9, weight_decay=5e-4)

  def call():
    opt.zero_grad(set_to_none=True)
    loss = 0.0
    for scale, lr, targets in chunks:
      for out, target in zip(model(lr, scale), targets):
        loss = loss + torch.sqrt((out - target) ** 2 + 1e-6).sum()
    loss = loss / batch_size
    loss.backward()
    opt.step()
    return float(loss)
  return call, 0.0, {"torch": torch.__version__, "threads": torch.get_num_threads()}


def worker(spec: dict) -> dict:
  batch_size, patch = SETTINGS[spec["setting"]]
  batch_np = synthetic_batch(batch_size, patch, spec["seed"])
  make = _jax_step if spec["variant"].startswith("jax") else _torch_step
  call, compile_s, versions = make(spec["variant"], spec["weights"], batch_np, batch_size)
  out = {**spec, "versions": versions, "compile_s": compile_s, "rss_setup_mb": rss_mb()}
  t = time.perf_counter()
  out["first_loss"] = call()
  out["first_call_s"] = time.perf_counter() - t
  out["times_s"] = time_calls(call, out["first_call_s"], spec["min_repeats"], spec["target_s"])
  out["median_s"] = statistics.median(out["times_s"])
  out["peak_rss_mb"] = rss_mb()
  return out


def pipeline_worker(spec: dict) -> dict:
  from lapsrn_jax.data.benchmark import patches_per_second

  data = spec["data"]
  cfg = {"train": f"folder:{data}/T91+folder:{data}/BSDS200"}
  rate = patches_per_second(cfg, patch_size=spec["patch"], batch=spec["batch"], scales=SCALES,
                            workers=spec["workers"], threads=1, batches=spec["batches"])
  return {**spec, "patches_per_s": rate, "peak_rss_mb": rss_mb()}


def profile_worker(spec: dict) -> dict:
  """Forward vs gradient time of the parts of a step, on [n, h, h, 64] features (JAX).

  `block` is the project's `recursive_block` (`lax.scan(..., unroll=True)` over the R = 8
  recursions); `block_rolled` is the same scan without unrolling, kept to show why the project
  unrolls: XLA-CPU runs convolutions in a while-loop body slowly, above all their gradients
  (jax-ml/jax#12868).
  Gradients are w.r.t. the 5 (kernel, bias) pairs and the input, as in training.
  """
  import jax

  from lapsrn_jax.models import layers
  from lapsrn_jax.models.ms_lapsrn import recursive_block
  from lapsrn_jax.weights import load_official

  _, p = load_official(os.path.join(spec["weights"], "MSLapSRN_D5R8.mat"))
  n, h = spec["batch"], spec["size"]
  y = jax.numpy.asarray(np.random.default_rng(0).standard_normal((n, h, h, 64), dtype=np.float32))
  convs = [(p[f"conv{d}"]["kernel"], p[f"conv{d}"]["bias"]) for d in range(1, 6)]

  def rolled(source, cs):
    def body(x, _):
      h = x
      for k, b in cs:
        h = layers.conv3x3(layers.leaky_relu(h), k, b)
      return h + source, None
    return jax.lax.scan(body, source, None, length=8)[0]

  parts = {
      "conv3x3": (lambda a, x: layers.conv3x3(x, *a).sum(), convs[2]),
      "feature_convT": (
          lambda a, x: layers.conv_transpose2x(x, a[0], layers.FEATURE_UP_CROP, a[1]).sum(),
          (p["upconv"]["kernel"], p["upconv"]["bias"])),
      "block": (lambda a, x: recursive_block(x, a, 8, "SS").sum(), convs),
      "block_rolled": (lambda a, x: rolled(x, a).sum(), convs),
  }
  try:  # CMS-LapSRN's upsampler (factorisation + apply), gradient w.r.t. kernel, bias, theta and y
    from lapsrn_jax.models.cms_lapsrn import softplus_inverse, tied_inverse_upsample

    theta = jax.numpy.asarray(softplus_inverse(1.0), jax.numpy.float32)
    parts["cms_upsampler"] = (lambda a, x: tied_inverse_upsample(x, a[0], a[1], a[2]).sum(),
                              (p["conv3"]["kernel"], p["upconv"]["bias"], theta))
  except ImportError as err:
    print(f"  profile: no CMS upsampler ({err!r})", file=sys.stderr)
  out = {}
  for name, (f, a) in parts.items():
    for mode, fn in (("fwd", jax.jit(f)), ("grad", jax.jit(jax.grad(f, argnums=(0, 1))))):
      jax.block_until_ready(fn(a, y))
      times = []
      for _ in range(spec["repeats"]):
        t = time.perf_counter()
        jax.block_until_ready(fn(a, y))
        times.append(time.perf_counter() - t)
      out[f"{name}_{mode}"] = statistics.median(times)
      print(f"  profile {name} {mode}: {out[f'{name}_{mode}']:.4f}s", file=sys.stderr, flush=True)
  return {**spec, "times": out}


def summarise(rows: list[dict], pipe: list[dict], prof: dict | None = None) -> str:
  by = {}
  for r in rows:
    by.setdefault(r["setting"], {})[r["variant"]] = r
  lines = ["| setting | fwd GFLOP | JAX MS step s | JAX CMS step s | Torch NHWC s | Torch NCHW s | "
           "JAX CMS / JAX MS | Torch best / JAX MS | JAX MS patches/s | JAX compile s (MS / CMS) | "
           "peak RSS MB (JAX MS / CMS / Torch NHWC / NCHW / MS untuned) | "
           "JAX MS untuned (YNNPACK conv) s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for name, (b, p) in SETTINGS.items():
    if name not in by:
      continue
    v = by[name]
    g = lambda k, f: v[k].get(f) if k in v else None
    f = lambda x, spec="{:.3f}": "—" if x is None else spec.format(x)
    jm, jc = g("jax-ms", "median_s"), g("jax-cms", "median_s")
    tb = min((t for t in (g("torch-nhwc", "median_s"), g("torch-nchw", "median_s")) if t),
             default=None)
    lines.append(
        f"| batch {b}, {p}² ({'/'.join(map(str, chunk_sizes(b)))}) | {step_gflop(b, p):.0f} | "
        f"{f(jm)} | {f(jc)} | "
        f"{f(g('torch-nhwc', 'median_s'))} | {f(g('torch-nchw', 'median_s'))} | "
        f"{f(jc / jm if jc and jm else None, '{:.2f}')} | "
        f"{f(tb / jm if tb and jm else None, '{:.2f}')} | "
        f"{f(b / jm if jm else None, '{:.1f}')} | {f(g('jax-ms', 'compile_s'), '{:.1f}')} / "
        f"{f(g('jax-cms', 'compile_s'), '{:.1f}')} | "
        + " / ".join(f(g(k, "peak_rss_mb"), "{:.0f}") for k in VARIANTS)
        + f" | {f(g('jax-ms-ynn', 'median_s'))} |")
  for r in pipe:
    lines.append(f"\npipeline alone (batch {r['batch']}, {r['patch']}², workers {r['workers']}): "
                 + (f"{r['patches_per_s']:.1f} patches/s" if "error" not in r
                    else f"ERROR {r['error']}"))
  if prof and "times" in prof:
    t = prof["times"]
    lines += ["", f"Profile (JAX, features [{prof['batch']}, {prof['size']}, {prof['size']}, 64], "
              f"median of {prof['repeats']}): forward / gradient seconds and their ratio", "",
              "| part | forward s | gradient s | grad / fwd |", "|---|---|---|---|"]
    for name in ("conv3x3", "feature_convT", "cms_upsampler", "block", "block_rolled"):
      if name + "_fwd" not in t:
        continue
      lines.append(f"| {name} | {t[name + '_fwd']:.4f} | {t[name + '_grad']:.4f} | "
                   f"{t[name + '_grad'] / t[name + '_fwd']:.1f} |")
  for r in rows:
    if "error" in r:
      lines.append(f"\nERROR {r['variant']} {r['setting']}: {r['error']}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--pipeline-worker", help=argparse.SUPPRESS)
  parser.add_argument("--profile-worker", help=argparse.SUPPRESS)
  parser.add_argument("--no-profile", action="store_true",
                      help="skip the forward/gradient profile of the parts")
  parser.add_argument("--quick", action="store_true", help="only batch 8, 64² patches")
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help=f"comma-separated from {VARIANTS}")
  parser.add_argument("--pipeline-workers", default="0,2",
                      help="grain worker counts for the pipeline timing ('' = skip)")
  parser.add_argument("--min-repeats", type=int, default=3)
  parser.add_argument("--target-s", type=float, default=5.0)
  parser.add_argument("--weights", default=os.environ.get("LAPSRN_WEIGHTS_DIR"),
                      help="folder of MSLapSRN_D5R8.mat (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--data", default=os.environ.get("LAPSRN_DATA_DIR"),
                      help="folder holding T91/ and BSDS200/, for the pipeline timing "
                           "(default $LAPSRN_DATA_DIR)")
  parser.add_argument("--out", default=os.path.join(HERE, "out"))
  args = parser.parse_args(argv)
  if args.worker:
    print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0
  if args.pipeline_worker:
    print("RESULT " + json.dumps(pipeline_worker(json.loads(args.pipeline_worker))), flush=True)
    return 0
  if args.profile_worker:
    print("RESULT " + json.dumps(profile_worker(json.loads(args.profile_worker))), flush=True)
    return 0
  if not args.weights:
    parser.error("needs the official weights: pass --weights or set LAPSRN_WEIGHTS_DIR")
  if not args.data and [w for w in args.pipeline_workers.split(",") if w]:
    parser.error("the pipeline timing needs the training images: pass --data or set "
                 "LAPSRN_DATA_DIR (or skip it with --pipeline-workers '')")

  info = {"start": datetime.datetime.now().isoformat(timespec="seconds"),
          "command": " ".join(sys.argv), **machine_info()}
  print(f"# {info['start']}  {info['cpu']} x{info['cpu_count']}  load {info['loadavg']}",
        flush=True)
  settings = ["b8_p64"] if args.quick else list(SETTINGS)
  rows, pipe = [], []
  for setting in settings:
    for variant in [v for v in args.variants.split(",") if v]:
      spec = {"variant": variant, "setting": setting, "seed": 7,
              "weights": os.path.abspath(args.weights),
              "min_repeats": args.min_repeats if setting == "b8_p64" else 2,
              "target_s": args.target_s}
      r = run_in_subprocess(spec, __file__)
      rows.append(r)
      print(f"  {variant:10s} {setting}: " + (
          f"median {r['median_s']:.3f}s over {len(r['times_s'])} (compile {r['compile_s']:.1f}s, "
          f"1st {r['first_call_s']:.1f}s, loss {r['first_loss']:.1f}, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB)"
          if "error" not in r else f"ERROR {r['error']}"), flush=True)
  for w in [int(w) for w in args.pipeline_workers.split(",") if w]:
    spec = {"data": os.path.abspath(args.data), "batch": 64, "patch": 128, "workers": w,
            "batches": 5}
    r = run_in_subprocess(spec, __file__, "--pipeline-worker")
    pipe.append(r)
    print(f"  pipeline workers={w}: " + (f"{r['patches_per_s']:.1f} patches/s" if "error" not in r
                                         else f"ERROR {r['error']}"), flush=True)
  prof = None
  if not args.no_profile:  # the x2 chunk of the batch-8 setting: 3 LR patches of 32²
    prof = run_in_subprocess({"weights": os.path.abspath(args.weights), "batch": 3, "size": 32,
                              "repeats": 3},
                             __file__, "--profile-worker")
  info["end"] = datetime.datetime.now().isoformat(timespec="seconds")
  info["loadavg_end"] = os.getloadavg()
  table = summarise(rows, pipe, prof)
  print(f"\nload at end {info['loadavg_end']}\n\n" + table)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"training-{'quick' if args.quick else 'full'}-"
                                f"{info['start'].replace(':', '')}.json")
  with open(path, "w") as f:
    json.dump({"info": info, "rows": rows, "pipeline": pipe, "profile": prof, "table": table}, f,
              indent=1)
  print(f"\nraw results: {path}")
  return 1 if any("error" in r for r in rows + pipe + ([prof] if prof else [])) else 0


if __name__ == "__main__":
  sys.exit(main())
