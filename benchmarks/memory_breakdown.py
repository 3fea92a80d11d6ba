"""Where CMS-LapSRN's extra resident memory over MS-LapSRN comes from, stage by stage.

    python benchmarks/memory_breakdown.py [--scale 8 --lr 96x128] [--scale 2 --lr 64x64]

For the official MS-LapSRN D5R8 and CMS-LapSRN conv3 converted from it (ρ = 1), each in a fresh
process at batch 1: resident memory (MB, Linux `/proc/self/status`) after loading the weights,
then for each stage — the cached factor (`inference.cached_factor`; none for MS), compiling the
forward for one LR size, running it — the peak reached during the stage (VmHWM) and what is still
held after it once glibc has returned its free heap to the system (`malloc_trim(0)`), both
relative to the loaded weights. "Freed" memory that glibc keeps counts in a process's RSS, so the
peak column is what `benchmarks/inference.py` reports; the held column separates buffers that
live on (the factor, executables) from transients (compilation).
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys


def _status_mb(key: str) -> float:
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith(key + ":"):
        return int(line.split()[1]) / 1024.0
  raise RuntimeError(f"{key} not in /proc/self/status")


def _trim() -> None:
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


def worker(variant: str, scale: int, h: int, w: int, weights: str) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from lapsrn_jax import inference  # pylint: disable=import-outside-toplevel
  from lapsrn_jax.models import create_model  # pylint: disable=import-outside-toplevel
  from lapsrn_jax.weights import (cms_params_from_ms,  # pylint: disable=import-outside-toplevel
                                  load_official)

  model, params = load_official(os.path.join(weights, "MSLapSRN_D5R8.mat"))
  if variant == "cms":
    model, params = create_model("cms_lapsrn_d5r8_conv3"), cms_params_from_ms(params, tie_to=3)
  _trim()
  base = _status_mb("VmRSS")
  row = {"variant": variant, "loaded_mb": round(base, 1)}

  def stage(name):
    row[f"{name}_peak_mb"] = round(_status_mb("VmHWM") - base, 1)
    _trim()
    row[f"{name}_held_mb"] = round(_status_mb("VmRSS") - base, 1)

  factor = jax.block_until_ready(inference.cached_factor(model, params))
  stage("factor")
  fn = jax.jit(lambda p, x, f: model.apply({"params": p}, x, scale=scale, factor=f)[-1])
  x = jnp.zeros((1, h, w, 1), jnp.float32)
  compiled = fn.lower(params, x, factor).compile()
  stage("compile")
  jax.block_until_ready(compiled(params, x, factor))
  stage("run")
  return row


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scale", type=int, default=8)
  p.add_argument("--lr", default="96x128", help="LR size HxW")
  p.add_argument("--weights-dir", default=os.environ.get("LAPSRN_WEIGHTS_DIR"))
  p.add_argument("--worker", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  h, w = (int(v) for v in a.lr.split("x"))
  if a.worker:
    print(json.dumps(worker(a.worker, a.scale, h, w, a.weights_dir)))
    return 0
  if not a.weights_dir:
    p.error("--weights-dir or LAPSRN_WEIGHTS_DIR (MSLapSRN_D5R8.mat) is needed")
  rows = []
  for variant in ("ms", "cms"):
    out = subprocess.run([sys.executable, __file__, "--worker", variant, "--scale", str(a.scale),
                          "--lr", a.lr, "--weights-dir", a.weights_dir], check=True,
                         capture_output=True, text=True).stdout
    rows.append(json.loads(out.strip().splitlines()[-1]))
  print(f"{a.scale}x, LR {h}x{w}, batch 1; MB relative to the loaded weights "
        "(peak during the stage / held after it)")
  print("| model | loaded MB | factor | compile | run |\n|---|---|---|---|---|")
  for r in rows:
    cells = [f"{r[s + '_peak_mb']:.0f} / {r[s + '_held_mb']:.0f}"
             for s in ("factor", "compile", "run")]
    print(f"| {r['variant']} | {r['loaded_mb']:.0f} | " + " | ".join(cells) + " |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
