"""LapSRN, MS-LapSRN and CMS-LapSRN as Flax Linen modules.

All take the LR Y channel `[N, H, W, 1]` (values in [0, 1]) and return a tuple with the SR image
of every pyramid level up to `scale` (2x first, the last is `[N, scale*H, scale*W, 1]`):
`model.apply({"params": params}, lr, scale=s)`.

One interface, whatever the model (callers never dispatch on the class):

- `apply(params, lr, *, scale, valid_hw=None, factor=None)`: `valid_hw` = the true image size
  inside a zero-padded canvas (size buckets), `factor` = a precomputed `factor()`;
- `apply(params, method="factor")`: the image-independent precomputation (CMS-LapSRN's local
  solve factor; None for LapSRN and MS-LapSRN), computed once and reused for every image;
- `max_scale`: the largest scale (LapSRN: `2**levels`; None = any power of two);
- `receptive_radius(scale)`: LR pixels of context per side an output pixel depends on (tiling).
"""

from lapsrn_jax.models.cms_lapsrn import CMSLapSRN
from lapsrn_jax.models.lapsrn import LapSRN
from lapsrn_jax.models.ms_lapsrn import MSLapSRN
from lapsrn_jax.models.registry import MODEL_NAMES, create_model

__all__ = ["CMSLapSRN", "LapSRN", "MSLapSRN", "MODEL_NAMES", "create_model"]
