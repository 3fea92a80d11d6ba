"""A tiny run for tests and smoke checks (no external data: scikit-image's bundled photos).

    python -m lapsrn_jax.train --config configs/debug.py --workdir /tmp/lapsrn_debug

MS-LapSRN with 1 conv, 1 recursion and 8 channels, 16x16 HR patches at 2x and 4x, batch 4, 12 SGD
steps (official optimiser, larger lr), validation on 32x32 crops every 6 steps, a checkpoint every
4 steps (and after each validation), the 2 latest + the best kept.

Expected result: it finishes with a finite loss and validation PSNR reported next to bicubic (no
quality target: 12 steps of a 4k-parameter model stay well below bicubic).
Run time: ~35 s on a shared, heavily loaded 2-core CPU (~20 s with a warm JAX compilation cache),
mostly compilation.
"""

from lapsrn_jax.training.config import base_config


def get_config():
  config = base_config()
  config.model.name = "ms_lapsrn"  # MS-LapSRN with the overrides below
  config.model.overrides.depth = 1  # convs in the recursive block
  config.model.overrides.recursions = 1  # block applications per level
  config.model.overrides.features = 8  # channels
  config.data.train = "skimage:train"  # 12 photos bundled with scikit-image
  config.data.val = "skimage:val"  # 2 held-out photos
  config.train.num_steps = 12  # optimiser steps
  config.train.batch_size = 4  # 2 images at 2x, 2 at 4x
  config.train.patch_size = 16  # HR patch side
  config.train.scales = (2, 4)  # trained jointly
  config.train.log_every = 2  # steps between train records
  config.train.progress_bar = False  # quiet in tests
  config.optim.learning_rate = 1e-3  # larger: the loss sums over far fewer pixels than 128^2
  config.optim.decay_every = 6  # halve once, at step 6
  config.optim.min_learning_rate = 1e-4  # floor of the step decay
  config.eval.every = 6  # validations at steps 6 and 12
  config.eval.scales = (2, 4)  # validated scales
  config.eval.crop = 32  # HR validation crop side
  config.checkpoint.every = 4  # checkpoints at 4, 8 (+ 6, 12 after validation)
  config.checkpoint.keep = 2  # latest kept (plus the best)
  return config
