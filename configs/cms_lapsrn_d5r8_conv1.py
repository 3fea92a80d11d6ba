"""CMS-LapSRN D5R8, feature upsampler tied to conv1 of the block: the fine-tuning recipe.

    export LAPSRN_DATA_DIR=/path/to/data LAPSRN_WEIGHTS_DIR=/path/to/weights
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv1.py --workdir runs/cms_conv1
    # variants (config arg, comma-separated): official SGD instead of Adam; an ablation;
    # from scratch
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv1.py:sgd \
        --workdir runs/cms_conv1_sgd
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv1.py:pad0 \
        --workdir runs/cms_conv1_pad0
    python -m lapsrn_jax.train --config configs/cms_lapsrn_d5r8_conv1.py:scratch \
        --workdir runs/cms_conv1_scratch
    # the CPU recipe (`:cpu`: 8 patches of 64² a step), as Table 1's CMS rows use it (step 2,500)
    python scripts/cpu_budget_train.py --config configs/cms_lapsrn_d5r8_conv1.py:cpu \
        --workdir workdirs/cms_conv1_cpu --budget-hours 3 --cores 2 \
        --config.train.num_steps=2500 --config.eval.every=0 --config.eval.at_start=False

Starts from the official MS-LapSRN D5R8 weights converted for CMS-LapSRN (upconv kernel dropped,
the upsampler reads conv1's kernel; 185,938 parameters), fits the tied upsampler to the old
upconv's features (stage 1, 300 Adam steps on 64 real patches), then fine-tunes end to end with the
official data and loss (291 images, 128-px patches, batch 64 over 2x/4x/8x, Charbonnier) and Adam
(lr 1e-4 halved every 1000 steps); validation on BSDS100 crops every 250 steps and at step 0.
Add `--config.train.max_seconds=N` to stop (and checkpoint) after N seconds; the same command
resumes. Fields and ablation names: `lapsrn_jax.training.config.cms_finetune_config`.
Expected result: after 1048 steps (`--config.train.num_steps=1048`) on one H100, validation
(BSDS100 256-px crops) 31.31 / 26.64 / 23.86 dB at 2x / 4x / 8x; the official MS-LapSRN D5R8 gets
31.48 / 26.80 / 23.97 on the same crops. Still rising at that step. The Set5 / Set14 / BSDS100
table is in RESULTS.md.
Run time: 67 ms per step on one H100 with the GPU to itself (2026-11-26); stage 1 and compilation
take about a minute. On the 2-core CPU an official-batch step takes about 20 s (measured for
conv3, which has the same shapes: benchmarks/RESULTS.md).
`:cpu` to step 2,500 on a 2-core AMD EPYC: validation 31.25 / 26.58 / 23.82 dB at 2x / 4x / 8x in
1.8 h (2.77 CPU-hours; 2026-12-08, stopped once and resumed): stage 1 8 min, then ~2.5 s a step;
Table 1 in RESULTS.md.
"""

from lapsrn_jax.training.config import cms_finetune_config


def get_config(arg=None):
  return cms_finetune_config(tie_to=1, arg=arg)
