"""Initial parameters: the model's own (official) init, or weights loaded through `init_from`."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lapsrn_jax.loading import load_model


def random_params(model: nn.Module, rng: jax.Array, *, lr_size: int, scale: int):
  """`model.init` params for an `[1, lr_size, lr_size, 1]` input at `scale` (all levels used)."""
  return model.init(rng, jnp.zeros((1, lr_size, lr_size, 1), jnp.float32), scale=scale)["params"]


def _loaded_params(spec: str, model: nn.Module, expected,
                   config: ml_collections.ConfigDict | None = None):
  """Params named by `init_from` (any `lapsrn_jax.load_model` spec; `$VARIABLES` expanded),
  converted for `model` (whose params look like `expected`) where needed.

  MS-LapSRN weights (a transposed-conv `upconv`) loaded for a model with a tied upsampler
  (CMS-LapSRN: `upconv` holds no kernel) are converted (`weights.cms_params_from_ms`) and, when
  `config.upsampler_fit.steps > 0`, get the stage-1 upsampler fit (`fit_converted_upsampler`).
  """
  from lapsrn_jax import weights

  loaded_model, params = load_model(os.path.expandvars(spec))
  if "kernel" in params.get("upconv", {}) and "kernel" not in expected.get("upconv", {}):
    cms = weights.cms_params_from_ms(params, model.tie_to, model.rho_init)
    if config is not None and config.upsampler_fit.steps:
      cms = fit_converted_upsampler(model, cms, loaded_model, params, config)
    return cms
  return params


def fit_converted_upsampler(model: nn.Module, cms_params, ms_model: nn.Module, ms_params,
                            config: ml_collections.ConfigDict):
  """Stage 1: fits the tied upsampler of converted params to the MS upconv on real patches.

  One batch of `config.upsampler_fit.patches` training patches (the training data, seed
  `config.seed + 1`) -> the MS trunk's LR features -> `training.upsampler_fit.fit_upsampler`
  with the model's own `pad`, `tau_grad` and `fixed_rho`. Logs the feature loss before / after.
  """
  from absl import logging

  from lapsrn_jax.data.pipeline import make_train_iterator
  from lapsrn_jax.training import upsampler_fit

  f = config.upsampler_fit
  train = os.path.expandvars(config.data.train)
  it = make_train_iterator(ml_collections.ConfigDict({**config.data.to_dict(), "train": train}),
                           global_batch_size=f.patches, scales=tuple(f.scales),
                           patch_size=f.patch_size, seed=config.seed + 1)
  try:
    batch = next(it)
  finally:
    it.close()
  features = upsampler_fit.collect_features(ms_model, ms_params,
                                            {s: batch[f"x{s}"]["lr"] for s in f.scales})
  fitted, losses = upsampler_fit.fit_upsampler(
      cms_params, features, tie_to=model.tie_to, steps=f.steps, learning_rate=f.learning_rate,
      kernel_learning_rate=f.kernel_learning_rate, train_kernel=f.train_kernel, pad=model.pad,
      tau_grad=model.tau_grad, fixed_rho=model.fixed_rho, tile=model.solve_tile,
      halo=model.solve_halo)
  logging.info("stage-1 upsampler fit, %d steps: relative feature error %.4f -> %.4f", f.steps,
               upsampler_fit.relative_error(float(losses[0]), features),
               upsampler_fit.relative_error(float(losses[-1]), features))
  return jax.tree.map(np.asarray, fitted)


def check_same_structure(loaded, expected, source: str) -> None:
  """ValueError listing missing / unexpected / misshaped params of `loaded` vs `expected`."""
  flat = lambda tree: {jax.tree_util.keystr(k): np.shape(v)
                       for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  got, want = flat(loaded), flat(expected)
  problems = [f"missing {sorted(set(want) - set(got))}" if set(want) - set(got) else "",
              f"unexpected {sorted(set(got) - set(want))}" if set(got) - set(want) else "",
              ", ".join(f"{k}: {got[k]} != {want[k]}" for k in sorted(set(got) & set(want))
                        if got[k] != want[k])]
  problems = [p for p in problems if p]
  if problems:
    raise ValueError(f"init_from={source!r} does not fit the model: " + "; ".join(problems))


def initial_params(model: nn.Module, config: ml_collections.ConfigDict, rng: jax.Array):
  """Random params (`config.init_from == ""`, jitted init) or the loaded ones, checked against the
  model's parameter shapes."""
  t = config.train
  init = functools.partial(random_params, model, lr_size=max(2, t.patch_size // max(t.scales)),
                           scale=max(max(t.scales), max(config.eval.scales)))
  if not config.init_from:
    # Non-partitionable threefry: the same values on every backend, and ~5x faster to compile on
    # CPU than the partitionable default (the init is replicated, so partitioning is moot).
    with jax.threefry_partitionable(False):
      return jax.jit(init)(rng)
  expected = jax.eval_shape(init, rng)
  loaded = _loaded_params(config.init_from, model, expected, config)
  check_same_structure(loaded, expected, config.init_from)
  return jax.tree.map(lambda x, ref: jnp.asarray(x, ref.dtype), loaded, expected)
