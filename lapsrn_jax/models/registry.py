"""Model names -> modules: `create_model("ms_lapsrn_d5r8")`, `create_model("lapsrn", levels=2)`."""

import dataclasses
import re

import flax.linen as nn

from lapsrn_jax.models.cms_lapsrn import CMSLapSRN
from lapsrn_jax.models.lapsrn import LapSRN
from lapsrn_jax.models.ms_lapsrn import MSLapSRN

# Released LapSRN (CVPR 2017) models: x2 and x4 use 10 convs per level, x8 uses 5.
_LAPSRN_DEPTH = {1: 10, 2: 10, 3: 5}

_PATTERNS = (
    (re.compile(r"lapsrn(?:_x(\d+))?"), LapSRN),
    (re.compile(r"ms_lapsrn(?:_d(\d+)r(\d+))?"), MSLapSRN),
    (re.compile(r"cms_lapsrn(?:_d(\d+)r(\d+)_conv(\d+))?"), CMSLapSRN),
)

MODEL_NAMES = ("lapsrn_x2", "lapsrn_x4", "lapsrn_x8", "ms_lapsrn_d5r2", "ms_lapsrn_d5r5",
               "ms_lapsrn_d5r8", "cms_lapsrn_d5r8_conv1", "cms_lapsrn_d5r8_conv3",
               "cms_lapsrn_d5r8_conv5")


def _config(cls, groups) -> dict:
  if cls is LapSRN:
    if groups[0] is None:
      return {}
    scale = int(groups[0])
    levels = scale.bit_length() - 1
    if scale < 2 or scale & (scale - 1):
      raise ValueError(f"LapSRN scale must be a power of two, got x{scale}")
    return {"levels": levels, "depth": _LAPSRN_DEPTH.get(levels, 10)}
  if groups[0] is None:
    return {}
  config = {"depth": int(groups[0]), "recursions": int(groups[1])}
  if cls is CMSLapSRN:
    config["tie_to"] = int(groups[2])
  return config


def create_model(name: str, **overrides) -> nn.Module:
  """A LapSRN-family module by name, with field overrides.

  Names: "lapsrn_x2|x4|x8" (the released configurations), "ms_lapsrn_d{D}r{R}",
  "cms_lapsrn_d{D}r{R}_conv{k}", or a bare "lapsrn" / "ms_lapsrn" / "cms_lapsrn" with the
  class defaults. `overrides` set any field, e.g.
  `create_model("ms_lapsrn", depth=2, recursions=1)`.
  """
  for pattern, cls in _PATTERNS:
    match = pattern.fullmatch(name)
    if match:
      break
  else:
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)} (or lapsrn, "
                     "ms_lapsrn, cms_lapsrn with field overrides)")
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"{cls.__name__} has no field(s) {unknown}; fields: {sorted(fields)}")
  return cls(**{**_config(cls, match.groups()), **overrides})
