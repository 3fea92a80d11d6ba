"""CMS-LapSRN D5R8 (feature upsampler tied to conv5 of the block), official MS-LapSRN recipe.

    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv5.py --workdir runs/cms_conv5
    # fine-tune from the converted official MS-LapSRN D5R8 weights instead of training from scratch:
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv5.py \
        --workdir runs/cms_conv5_ft \
        --config.init_from=official:MSLapSRN_D5R8     # needs LAPSRN_WEIGHTS_DIR

Same data, loss, optimiser and schedule as configs/ms_lapsrn_d5r8.py; only the model differs (the
transposed-conv upsampler is replaced by the regularised Fourier inverse of the stride-2 conv with
the tied kernel conv5, 185,938 parameters). Expected result: the seed poster reports CMS-LapSRN
(conv5) within ~0.1 dB of MS-LapSRN (evaluation.md) -- not reproduced here.
Run time: measured for conv3 on a shared 2-core CPU (batch 64, 128x128, after a 31 s compile):
73 s per step with the recursions unrolled (49 s for MS-LapSRN D5R8 the same way); with the
lax.scan of lapsrn_jax.models at commit 3994027 a step takes far longer (see ms_lapsrn_d5r8.py).
"""

from lapsrn_jax.training.config import base_config


def get_config():
  config = base_config()
  config.model.name = "cms_lapsrn_d5r8_conv5"  # upsampler tied to conv5
  return config
