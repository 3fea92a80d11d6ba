"""LapSRN 2x (CVPR 2017) with the released LapSRN training options (docs/architecture.md).

    python -m lapsrn_jax.train --config configs/lapsrn_x2.py --workdir runs/lapsrn_x2

One model per scale (10 convs per level, no weight sharing), trained at 2x only, with deep
supervision at every pyramid level: 291 images, 128x128 HR patches, batch 64, the augmentation, loss
and optimiser of configs/ms_lapsrn_d5r8.py, but the LapSRN schedule: epochs of 100 iterations, lr
1e-5 halved every 50 epochs (5,000 steps) down to 1e-6, 1000 epochs (100k steps).

Expected result: the released LapSRN_x2 weights score 37.52 dB on Set5 (paper protocol,
`python -m lapsrn_jax.evaluate`); a full run of this config was not done here.
Run time: not measured (no weight sharing, no scan; per step comparable to
configs/ms_lapsrn_d5r8.py at one scale); 100k steps need an accelerator.
"""

from lapsrn_jax.training.config import base_config


def get_config():
  config = base_config()
  config.model.name = "lapsrn_x2"
  config.train.scales = (2,)  # the whole batch trains at 2x
  config.eval.scales = (2,)
  config.train.num_steps = 100_000  # 1000 epochs x 100 iterations
  config.optim.decay_every = 5_000  # halve every 50 epochs of 100 iterations
  return config
