"""lapsrn-jax: LapSRN, MS-LapSRN and CMS-LapSRN in JAX/Flax.

Public functional API (imported lazily so `import lapsrn_jax` stays cheap):

- `create_model(name)` -> a Flax Linen module (`"lapsrn_x4"`, `"ms_lapsrn_d5r8"`,
  `"cms_lapsrn_d5r8_conv3"`, ...).
- `load_model(spec)` -> `(model, params)` for `"official:MSLapSRN_D5R8"` (the authors' weights,
  downloaded once and verified when not in `$LAPSRN_WEIGHTS_DIR`), a `.mat` file, or a training
  workdir / checkpoint; `ModelLoadError` (a ValueError) otherwise.
- `super_resolve(model, params, image, scale)` -> the image upscaled `scale` times
  (gray, RGB, with or without alpha; uint8, uint16 or float in [0, 1]; the network runs on Y,
  Cb/Cr and alpha use bicubic; `tile=` bounds memory).

Importing the package adds one XLA-CPU flag to `XLA_FLAGS` (Eigen instead of YNNPACK for
convolutions: faster here); see `lapsrn_jax.xla_cpu`.
"""

__version__ = "0.1.0"

from lapsrn_jax import xla_cpu as _xla_cpu

# Before JAX starts its CPU backend; see lapsrn_jax/xla_cpu.py (opt out: LAPSRN_XLA_CPU_TUNING=0).
_xla_cpu.tune()

_LAZY = {
    "create_model": "lapsrn_jax.models",
    "ModelLoadError": "lapsrn_jax.loading",
    "load_model": "lapsrn_jax.loading",
    "load_official": "lapsrn_jax.weights",
    "super_resolve": "lapsrn_jax.inference",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'lapsrn_jax' has no attribute {name!r}")
