"""Quickstart: a small MS-LapSRN trained at 2x on scikit-image's bundled photos (no download).

    python -m lapsrn_jax.train --config configs/quickstart.py --workdir /tmp/lapsrn_quickstart

MS-LapSRN with a 3-conv block, 1 recursion and 32 channels, 2x only, 64x64 HR patches, batch 16,
Adam (lr 1e-3, halved at 60% and 80% of the run), validation on the 2 held-out photos (chelsea,
camera; 256x256 centre crops) every 500 steps.

Expected result: RESULT_TBD
Run time: RUNTIME_TBD
"""

from lapsrn_jax.training.config import base_config


def get_config():
  config = base_config()
  config.model.name = "ms_lapsrn"  # MS-LapSRN with the overrides below
  config.model.overrides.depth = 3  # convs in the shared recursive block
  config.model.overrides.recursions = 1  # block applications per pyramid level
  config.model.overrides.features = 16  # channels (the paper's models use 64)
  config.data.train = "skimage:train"  # 12 photos bundled with scikit-image
  config.data.val = "skimage:val"  # 2 held-out photos (chelsea, camera)
  config.train.num_steps = 800  # optimiser steps
  config.train.batch_size = 16  # patches per step
  config.train.patch_size = 48  # HR patch side
  config.train.scales = (2,)  # 2x only
  config.train.log_every = 50  # steps between train records
  config.optim.name = "adam"  # converges faster than the official SGD in a short run
  config.optim.learning_rate = 1e-3  # initial learning rate
  config.optim.decay_every = 300  # 1e-3, 5e-4 from step 300, 2.5e-4 from step 600 (the floor).
  config.optim.min_learning_rate = 2.5e-4  # floor of the step decay
  config.optim.weight_decay = 0.0  # no L2
  config.optim.bias_lr_multiplier = 1.0  # same lr for biases
  config.eval.every = 200  # steps between validations
  config.eval.scales = (2,)  # validated scale
  config.eval.crop = 256  # HR validation crop side (both photos are >= 300 px)
  config.checkpoint.every = 200  # steps between checkpoints
  return config
