"""LapSRN, MS-LapSRN and CMS-LapSRN as Flax Linen modules.

All take the LR Y channel `[N, H, W, 1]` (values in [0, 1]) and return a tuple with the SR image
of every pyramid level up to `scale` (2x first, the last is `[N, scale*H, scale*W, 1]`):
`model.apply({"params": params}, lr, scale=s)`.
"""

from lapsrn_jax.models.cms_lapsrn import CMSLapSRN
from lapsrn_jax.models.lapsrn import LapSRN
from lapsrn_jax.models.ms_lapsrn import MSLapSRN
from lapsrn_jax.models.registry import MODEL_NAMES, create_model

__all__ = ["CMSLapSRN", "LapSRN", "MSLapSRN", "MODEL_NAMES", "create_model"]
