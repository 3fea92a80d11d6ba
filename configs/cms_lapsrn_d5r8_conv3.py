"""CMS-LapSRN D5R8 (feature upsampler tied to conv3 of the block), official MS-LapSRN recipe.

    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv3.py --workdir runs/cms_conv3
    # fine-tune from the converted official MS-LapSRN D5R8 weights instead of training from scratch:
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv3.py \
        --workdir runs/cms_conv3_ft \
        --config.init_from=official:MSLapSRN_D5R8     # needs LAPSRN_WEIGHTS_DIR

Same data, loss, optimiser and schedule as configs/ms_lapsrn_d5r8.py; only the model differs (the
transposed-conv upsampler is replaced by the regularised Fourier inverse of the stride-2 conv with
the tied kernel conv3, 185,938 parameters). Expected result: the seed poster reports CMS-LapSRN
(conv3) within ~0.1 dB of MS-LapSRN (evaluation.md) -- not reproduced here. Run time: see
configs/ms_lapsrn_d5r8.py; the inverse-conv upsampler makes a step slower (measured in the README).
"""

from lapsrn_jax.training.config import base_config


def get_config():
  config = base_config()
  config.model.name = "cms_lapsrn_d5r8_conv3"  # upsampler tied to conv3
  return config
