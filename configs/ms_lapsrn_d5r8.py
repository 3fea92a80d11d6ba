"""MS-LapSRN D5R8 with the official recipe (TPAMI 2018; docs/architecture.md).

    export LAPSRN_DATA_DIR=/path/to/data   # holds T91/, BSDS200/, BSDS100/
    python -m lapsrn_jax.train --config configs/ms_lapsrn_d5r8.py --workdir runs/ms_lapsrn_d5r8
    # the control of the CMS-LapSRN recipe: the official weights through the same fine-tuning
    python -m lapsrn_jax.train --config configs/ms_lapsrn_d5r8.py:finetune \
        --workdir runs/ms_finetune

291 training images (T91 + BSDS200), 128x128 HR patches, batch 64 split over scales 2/4/8
(22/22/20), scale augmentation 0.5-1.0, rot90 + flips, Charbonnier (eps 1e-3) summed over pixels
and levels and divided by the batch, SGD momentum 0.9, lr 1e-5 halved every 100 epochs of 1000
iterations down to 1e-6, bias lr x0.1, coupled weight decay 5e-4, 1000 epochs (1M steps);
validation on BSDS100 (256x256 centre crops, every 10k steps).

Expected result: the released MSLapSRN_D5R8 weights score 37.78 / 31.74 / 26.34 dB on Set5 at
2x / 4x / 8x (paper protocol, `python -m lapsrn_jax.evaluate`); a full run of this recipe should
land near them (not verified here: no full run was done). The `:finetune` control (Adam 1e-4 from
the official weights, `training.config.ms_finetune_config`) validates at 31.48 / 26.80 / 23.97 dB
(BSDS100 crops, 2x / 4x / 8x) at step 0, 31.42 / 26.77 / 23.94 at step 250 and 31.45 / 26.79 /
23.97 at step 375 (2-core CPU, 2026-11-26; RESULTS.md).
Run time: about 18 s per step (batch 64, 128x128, after compilation) on the shared 2-core CPU
(benchmarks/RESULTS.md, "Current code: polyphase transposed convolution"), so 1M steps need
accelerators (README, "Devices and scale-out"; this recipe was not timed on one). On one H100 a
step of the CMS-LapSRN variant of this recipe takes 67 ms (RESULTS.md). The `:finetune` control
took 19-21 s per step on the 2-core CPU (RESULTS.md).
"""

from lapsrn_jax.training.config import base_config, ms_finetune_config


def get_config(arg=None):
  if arg == "finetune":
    return ms_finetune_config()
  if arg:
    raise ValueError(f"unknown config arg {arg!r}; the only one is 'finetune'")
  return base_config()
