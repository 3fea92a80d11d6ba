"""The base training config (the official MS-LapSRN D5R8 recipe) and its validation.

`configs/*.py` start from `base_config()` and override fields; `validate_config` rejects bad values
before any work starts (`python -m lapsrn_jax.train` also rejects unknown keys: the config is
locked).
"""

import math
import os

import ml_collections

from lapsrn_jax.data.pipeline import scale_batch_sizes
from lapsrn_jax.training import optimizer

SCALES = (2, 4, 8)


def base_config() -> ml_collections.ConfigDict:
  """The official MS-LapSRN recipe (docs/architecture.md); every field is documented inline."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Seeds the parameter init and the data order (patches, augmentation).

  c.model = ml_collections.ConfigDict()
  c.model.name = "ms_lapsrn_d5r8"  # A `lapsrn_jax.models.create_model` name.
  c.model.overrides = ml_collections.ConfigDict()  # create_model field overrides, e.g. depth=2.
  # Initial params: "" = random (official init), or any `lapsrn_jax.load_model` spec:
  # "official:MSLapSRN_D5R8" (from $LAPSRN_WEIGHTS_DIR, else downloaded once and verified), a .mat
  # file, or a workdir / checkpoint of ours. MS-LapSRN weights are converted for CMS-LapSRN
  # models (rho = the model's rho_init). Ignored when the workdir already holds a checkpoint.
  c.init_from = ""

  c.data = ml_collections.ConfigDict()  # Passed to lapsrn_jax.data (make_train_iterator, ...).
  # Training images: the 291 = T91 + BSDS200 (a "+"-joined list of lapsrn_jax.data source specs:
  # folder:<path>, tfds:<name>[:<split>], skimage[:train|:val]); $VARIABLES are expanded.
  c.data.train = "folder:$LAPSRN_DATA_DIR/T91+folder:$LAPSRN_DATA_DIR/BSDS200"
  c.data.val = "folder:$LAPSRN_DATA_DIR/BSDS100"  # Validation images (official: BSDS100).
  # data_dir of tfds: specs (None: TFDS's default).
  c.data.tfds_data_dir = ml_collections.config_dict.placeholder(str)
  c.data.scale_augmentation = True  # Random downscaling ratio in {0.5, ..., 1.0} per image.
  c.data.data_augmentation = True  # Random rot90 / left-right flip per batch.
  # Skip training images whose short side is below this (None: patch_size // 2).
  c.data.min_side = ml_collections.config_dict.placeholder(int)
  c.data.num_workers = 0  # grain worker processes (0 = in the main process).

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1_000_000  # Optimiser steps (official: 1000 epochs x 1000 iterations).
  c.train.batch_size = 64  # Global batch: split over `scales` in contiguous chunks (22/22/20).
  c.train.patch_size = 128  # HR patch side in pixels; divisible by max(scales).
  c.train.scales = SCALES  # Scales trained jointly (a subset of 2, 4, 8).
  c.train.charbonnier_eps = 1e-3  # Charbonnier epsilon: sqrt(d^2 + eps^2).
  c.train.log_every = 100  # Steps between train-metric records (metrics.jsonl, TensorBoard).
  c.train.progress_bar = True  # tqdm bar with step/s and loss (process 0 only).
  c.train.distributed = False  # jax.distributed.initialize() first (multi-host: TPU pods, ...).
  # Wall-clock budget of the training loop in seconds (0 = none; the first step's compilation
  # counts, init and stage 1 do not): when spent, the run validates,
  # checkpoints and returns early; running the same command again resumes towards num_steps.
  c.train.max_seconds = 0.0
  # CPU-time budget of this process in seconds, all threads, counted from its start (0 = none;
  # init, stage 1 and compilation count): when the process has used it, the run validates,
  # checkpoints and returns early like max_seconds. For budgets on shared machines
  # (scripts/cpu_budget_train.py).
  c.train.max_cpu_seconds = 0.0

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "sgd"  # "sgd" (with momentum, official) or "adam".
  c.optim.learning_rate = 1e-5  # Base learning rate (official D5R8: 1e-5).
  c.optim.momentum = 0.9  # SGD momentum (MatConvNet default; no Nesterov).
  c.optim.decay_factor = 0.5  # Learning rate x this every `decay_every` steps...
  c.optim.decay_every = 100_000  # ...(official: every 100 epochs of 1000 iterations); 0 = constant.
  c.optim.min_learning_rate = 1e-6  # ...but never below this (official floor).
  c.optim.weight_decay = 5e-4  # Coupled L2 (added to the gradient), on weights and biases.
  c.optim.bias_lr_multiplier = 0.1  # Learning-rate multiplier of biases (official: 0.1).

  # Stage 1 of the CMS fine-tuning recipe (used only when a CMS-LapSRN model starts from MS-LapSRN
  # .mat weights via init_from): fit the tied upsampler to the MS upconv's output features on one
  # batch of training patches (lapsrn_jax.training.upsampler_fit), before step 1.
  c.upsampler_fit = ml_collections.ConfigDict()
  c.upsampler_fit.steps = 0  # Full-batch Adam steps (0 = no stage 1: start from the conversion).
  c.upsampler_fit.patches = 32  # Training patches in the batch (split over `scales`).
  c.upsampler_fit.patch_size = 64  # HR patch side; divisible by max(scales).
  c.upsampler_fit.scales = (2, 4)  # Scales whose levels provide the LR features.
  c.upsampler_fit.learning_rate = 3e-2  # Adam learning rate of theta and the bias.
  c.upsampler_fit.train_kernel = True  # Also fit the tied conv kernel (the trunk's conv too).
  c.upsampler_fit.kernel_learning_rate = 1e-4  # Its Adam rate (1e-3 breaks the trunk: measured).

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 10_000  # Steps between validations (and the end of training); 0 = only at the end.
  c.eval.scales = SCALES  # Scales validated (each reported next to bicubic).
  c.eval.crop = 256  # Validation images are centre-cropped to crop x crop HR (one compile).
  c.eval.max_images = 0  # Use the first N validation images (0 = all).
  c.eval.at_start = False  # Also validate the initial params (step 0) of a fresh run.

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 5_000  # Steps between checkpoints (also step 0, validations and the end).
  c.checkpoint.keep = 3  # Latest checkpoints kept (plus the best by validation PSNR).
  c.checkpoint.async_save = True  # Write checkpoints in a background thread.
  return c


# CMS-LapSRN fine-tuning: the ablations of RESULTS.md (model field overrides; models.cms_lapsrn).
CMS_ABLATIONS = {
    "rho_fixed_1e-2": {"fixed_rho": 1e-2},  # rho fixed at 1e-2 (theta unused)
    "rho_fixed_1": {"fixed_rho": 1.0},  # rho fixed at 1
    "rho_inf": {"fixed_rho": math.inf},  # the tied transposed conv (rho -> inf), no solve
    "no_upsampler_kernel_grad": {"upsampler_kernel_grad": False},  # kernel learns from the trunk
    "pad0": {"pad": 0},  # periodic solve on the bare grid (no symmetric extension)
}
CMS_SCHEDULES = ("adam", "sgd", "scratch", "cpu")


def cms_finetune_config(tie_to: int, arg: str | None = None) -> ml_collections.ConfigDict:
  """The CMS-LapSRN D5R8 fine-tuning recipe (RESULTS.md), upsampler tied to conv `tie_to`.

  From the converted official MS-LapSRN D5R8 weights: stage 1 fits the tied upsampler (theta,
  bias, tied kernel) to the old upconv's output features (300 Adam steps on 64 real 128-px
  patches), then the official loss end to end on the 291 images with Adam (lr 1e-4, halved every
  1000 steps, floor 1e-6), validating on BSDS100 every 250 steps (and at step 0).
  `arg` (the config file's `:arg`): comma-separated tokens from `CMS_SCHEDULES` ("adam" default;
  "sgd" = the official SGD, lr 1e-5; "scratch" = the from-scratch official recipe, random init;
  "cpu" = the recipe for a CPU: small batches of small patches, see `_cpu_schedule`) and
  `CMS_ABLATIONS` (model overrides).
  """
  c = base_config()
  c.model.name = f"cms_lapsrn_d5r8_conv{tie_to}"
  tokens = [t for t in (arg or "").split(",") if t]
  unknown = [t for t in tokens if t not in CMS_SCHEDULES and t not in CMS_ABLATIONS]
  if unknown:
    _fail(f"unknown config arg(s) {unknown}; choose from {CMS_SCHEDULES} and "
          f"{tuple(CMS_ABLATIONS)}")
  for t in tokens:
    for key, value in CMS_ABLATIONS.get(t, {}).items():
      c.model.overrides[key] = value
  if "scratch" in tokens:
    return c
  _finetune_from_official(c)
  c.upsampler_fit.steps = 300
  c.upsampler_fit.patches = 64
  c.upsampler_fit.patch_size = 128
  c.upsampler_fit.scales = (2, 4, 8)
  c.upsampler_fit.train_kernel = "no_upsampler_kernel_grad" not in tokens
  if "sgd" in tokens:
    c.optim.name = "sgd"
    c.optim.learning_rate = 1e-5  # the official rate (the run trained at it for 100 epochs)
    c.optim.decay_every = 100_000
  if "cpu" in tokens:
    _cpu_schedule(c)
  return c


def _cpu_schedule(c: ml_collections.ConfigDict) -> None:
  """The CPU recipe: batch 8 of 64-px patches (3/3/2 over 2x/4x/8x), ~1.5 s per step on 2 cores
  instead of ~40 s for the official 64 x 128 px; Adam 1e-4 halved every 2000 steps; stage 1 on 32
  patches of 64 px; validation on all of BSDS100 every 500 steps. Batch and patch size, the decay
  interval and stage 1 were each chosen by measurement at equal CPU time (RESULTS.md). Meant to
  run for a CPU budget (`train.max_cpu_seconds`, `scripts/cpu_budget_train.py`; resumable) rather
  than to `num_steps`."""
  c.train.batch_size = 8
  c.train.patch_size = 64
  c.train.log_every = 50
  c.optim.decay_every = 2000
  c.upsampler_fit.patches = 32
  c.upsampler_fit.patch_size = 64
  c.eval.every = 500
  c.checkpoint.every = 250


def ms_finetune_config() -> ml_collections.ConfigDict:
  """The control of the CMS recipe: the official MS-LapSRN D5R8 weights, fine-tuned unchanged.

  The same data, loss, Adam schedule, validation and checkpoints as `cms_finetune_config`, without
  the conversion and stage 1: what the fine-tuning alone does to a network that needs no repair.
  """
  c = base_config()
  _finetune_from_official(c)
  return c


def _finetune_from_official(c: ml_collections.ConfigDict) -> None:
  """Start from the official MS-LapSRN D5R8 .mat; Adam 1e-4 halved every 1000 steps; eval at 0."""
  c.init_from = "official:MSLapSRN_D5R8"
  c.train.num_steps = 20_000
  c.eval.every = 250
  c.eval.at_start = True
  c.checkpoint.every = 250
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-4
  c.optim.decay_every = 1000


def _fail(msg: str):
  raise ValueError(f"bad config: {msg}")


def _positive_int(value, name: str, *, zero_ok: bool = False) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
    _fail(f"{name} must be an integer >= {0 if zero_ok else 1}, got {value!r}")


def _scales(value, name: str) -> None:
  if not isinstance(value, (tuple, list)) or not value:
    _fail(f"{name} must be a non-empty tuple of scales from {SCALES}, got {value!r}")
  if any(s not in SCALES for s in value) or len(set(value)) != len(value) \
      or list(value) != sorted(value):
    _fail(f"{name} must be distinct increasing scales from {SCALES}, got {tuple(value)}")


def validate_config(config: ml_collections.ConfigDict, *, num_devices: int | None = None) -> None:
  """Raises `ValueError` naming the field for any bad value; cheap (touches no data or devices).

  Checks: every float of train, optim, upsampler_fit, eval, checkpoint and data is finite (model
  overrides may be infinite: `fixed_rho=inf`), scales, patch size divisible by max scale, batch
  large enough for one image per scale and divisible by `num_devices`, a known model that has enough
  pyramid levels, a known optimiser, positive step counts and learning rates, data specs present,
  eval crop divisible by the scales.
  """
  from lapsrn_jax.models import create_model  # deferred: models import jax/flax

  t, o, e, k = config.train, config.optim, config.eval, config.checkpoint
  for section in ("train", "optim", "upsampler_fit", "eval", "checkpoint", "data"):
    for key, value in config[section].items():  # NaN passes `< 0` checks, inf passes `> 0`
      if isinstance(value, float) and not math.isfinite(value):
        _fail(f"{section}.{key} must be a finite number, got {value}")
  _scales(t.scales, "train.scales")
  for name in ("num_steps", "batch_size", "patch_size", "log_every"):
    _positive_int(t[name], f"train.{name}")
  if t.patch_size % max(t.scales):
    _fail(f"train.patch_size={t.patch_size} must be divisible by the largest scale {max(t.scales)}")
  try:
    scale_batch_sizes(t.batch_size, len(t.scales))
  except ValueError as err:
    _fail(f"train.batch_size: {err}")
  if num_devices is not None and t.batch_size % num_devices:
    _fail(f"train.batch_size={t.batch_size} must be divisible by the number of devices "
          f"({num_devices})")
  if not t.charbonnier_eps > 0:
    _fail(f"train.charbonnier_eps must be > 0, got {t.charbonnier_eps}")

  try:
    model = create_model(config.model.name, **config.model.overrides.to_dict())
  except (ValueError, TypeError) as err:
    _fail(f"model: {err}")
  levels = getattr(model, "levels", None)  # LapSRN has a fixed number of levels
  if levels is not None and max(max(t.scales), max(e.scales)) > 2 ** levels:
    _fail(f"model {config.model.name} has {levels} pyramid levels (largest scale {2 ** levels}) "
          f"but scales {tuple(t.scales)} / eval {tuple(e.scales)} were asked for")

  if o.name not in optimizer.OPTIMIZERS:
    _fail(f"optim.name must be one of {optimizer.OPTIMIZERS}, got {o.name!r}")
  if not o.learning_rate > 0 or o.min_learning_rate < 0:
    _fail(f"optim.learning_rate must be > 0 and min_learning_rate >= 0, got "
          f"{o.learning_rate}, {o.min_learning_rate}")
  if not 0 <= o.momentum < 1 or not 0 < o.decay_factor <= 1:
    _fail(f"optim.momentum must be in [0, 1) and decay_factor in (0, 1], got {o.momentum}, "
          f"{o.decay_factor}")
  _positive_int(o.decay_every, "optim.decay_every", zero_ok=True)
  if o.weight_decay < 0 or o.bias_lr_multiplier < 0:
    _fail(f"optim.weight_decay and bias_lr_multiplier must be >= 0, got {o.weight_decay}, "
          f"{o.bias_lr_multiplier}")

  if not t.max_seconds >= 0:
    _fail(f"train.max_seconds must be >= 0 (0 = no limit), got {t.max_seconds}")
  if not t.max_cpu_seconds >= 0:
    _fail(f"train.max_cpu_seconds must be >= 0 (0 = no limit), got {t.max_cpu_seconds}")
  f = config.upsampler_fit
  _positive_int(f.steps, "upsampler_fit.steps", zero_ok=True)
  if f.steps:
    _scales(f.scales, "upsampler_fit.scales")
    _positive_int(f.patches, "upsampler_fit.patches")
    _positive_int(f.patch_size, "upsampler_fit.patch_size")
    if f.patch_size % max(f.scales):
      _fail(f"upsampler_fit.patch_size={f.patch_size} must be divisible by {max(f.scales)}")
    if not f.learning_rate > 0 or not f.kernel_learning_rate > 0:
      _fail("upsampler_fit learning rates must be > 0")

  _scales(e.scales, "eval.scales")
  _positive_int(e.every, "eval.every", zero_ok=True)
  _positive_int(e.max_images, "eval.max_images", zero_ok=True)
  _positive_int(e.crop, "eval.crop")
  if e.crop % max(e.scales) or e.crop < 2 * max(e.scales):
    _fail(f"eval.crop={e.crop} must be divisible by the largest eval scale {max(e.scales)} and "
          f"at least twice it")
  _positive_int(k.every, "checkpoint.every")
  _positive_int(k.keep, "checkpoint.keep")

  for name in ("train", "val"):
    spec = config.data[name]
    if not isinstance(spec, str) or not spec:
      _fail(f"data.{name} must be a non-empty source spec string, got {spec!r}")
    expanded = os.path.expandvars(spec)
    if "$" in expanded:
      _fail(f"data.{name}={spec!r} uses an environment variable that is not set "
            f"(e.g. export LAPSRN_DATA_DIR=/path/to/data)")
  _positive_int(config.data.num_workers, "data.num_workers", zero_ok=True)
  if "$" in os.path.expandvars(config.init_from):
    _fail(f"init_from={config.init_from!r} uses an environment variable that is not set")

