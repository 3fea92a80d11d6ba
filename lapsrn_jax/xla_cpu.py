"""XLA-CPU tuning that `import lapsrn_jax` applies before JAX starts its CPU backend.

jaxlib 0.10 hands every 3×3 convolution on CPU to YNNPACK (an HLO `ynn_fusion`). On the
networks here (64→64 3×3 convolutions, NHWC float32) XLA's own Eigen convolution is faster
on most shapes. On the 2-core Xeon of `benchmarks/RESULTS.md` (2026-11-26): Eigen beat YNNPACK
in all six `benchmarks/conv_kernels.py` measurements; the MS-LapSRN D5R8 forward at 2x, LR 64²,
batch 8 went from 1.16 s to 0.58 s and the official training step from 36.6 s to 19.1 s
(variant `jax-ms-ynn` = the untuned default, same run), but three batch-8 inference sizes got
10–14 % slower. The one flag below turns the YNNPACK convolution fusion off; matmuls, FFTs and
everything else are untouched.

XLA aborts the process on a flag it does not know, so the flag is only added for the jaxlib
versions it was verified on (`VERIFIED_JAXLIB`); elsewhere nothing changes. XLA reads
`XLA_FLAGS` once, when the CPU backend starts (the first array or `jax.devices()` call), so
this must run before that: `lapsrn_jax/__init__.py` calls it on import. If JAX already
started, the flag has no effect (results are the same, only speed differs).

Opt out with `LAPSRN_XLA_CPU_TUNING=0`. A `--xla_cpu_experimental_ynn_fusion_type` already in
`XLA_FLAGS` is the user's choice and is kept as it is.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import MutableMapping

CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
VERIFIED_JAXLIB = ("0.10.",)  # version prefixes on which XLA knows CONV_FLAG (checked by tests)
OPT_OUT = "LAPSRN_XLA_CPU_TUNING"


def jaxlib_version() -> str | None:
  """The installed jaxlib version string, without importing it (None if not installed)."""
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return None


def tune(environ: MutableMapping[str, str] | None = None, version: str | None = None) -> bool:
  """Adds `CONV_FLAG` to `environ["XLA_FLAGS"]` where that is safe; returns whether it did.

  Args:
    environ: the environment to edit (default `os.environ`).
    version: the jaxlib version (default: the installed one).
  """
  environ = os.environ if environ is None else environ
  version = jaxlib_version() if version is None else version
  if environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
    return False
  if not version or not version.startswith(VERIFIED_JAXLIB):
    return False
  flags = environ.get("XLA_FLAGS", "")
  if "--xla_cpu_experimental_ynn_fusion_type" in flags:
    return False
  environ["XLA_FLAGS"] = f"{flags} {CONV_FLAG}".strip()
  return True
