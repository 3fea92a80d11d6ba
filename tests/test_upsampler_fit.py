"""Stage-1 upsampler fit: the teacher features, the loss oracle (rho -> inf limit), convergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lapsrn_jax.models import MSLapSRN, layers
from lapsrn_jax.training import upsampler_fit as uf
from lapsrn_jax.weights import cms_params_from_ms

F, PAD, TIE = 6, 2, 2


@pytest.fixture(scope="module")
def case():
  """A tiny MS-LapSRN (D2R1, 6 features), its params, an x4 LR batch, its features (2 levels)."""
  model = MSLapSRN(depth=2, recursions=1, features=F)
  lr = {4: np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype(np.float32)}
  init = jax.jit(lambda key: model.init(key, jnp.asarray(lr[4]), scale=4)["params"])
  params = init(jax.random.key(0))
  params = jax.tree.map(lambda x: x + 0.05 * jnp.ones_like(x), params)  # non-zero biases
  return model, params, lr, uf.collect_features(model, params, lr)


def test_features_are_the_upconv_inputs_of_the_model(case):
  """residual_conv(upconv(y_0)) + img_up(lr) rebuilds the model's own first-level output."""
  model, params, lr, features = case
  assert sorted(features) == [(4, 4), (8, 8)]
  assert features[(8, 8)][0].shape == (3, 8, 8, F)
  lr = jnp.asarray(lr[4])
  y0 = features[(4, 4)][0]
  rc, iu = params["residual_conv"], params["img_up"]
  rebuilt = (layers.conv_transpose2x(lr, iu["kernel"], layers.IMAGE_UP_CROP)
             + layers.conv3x3(uf.ms_upconv(params, y0), rc["kernel"], rc["bias"]))
  want = model.apply({"params": params}, lr, scale=4)[0]
  np.testing.assert_allclose(rebuilt, want, atol=1e-5)


def test_loss_vanishes_when_tied_kernel_is_the_upconv_kernel_and_rho_is_large(case):
  """Oracle: as rho -> inf the tied upsampler is the convT with the tied kernel, so with
  conv{tie}.kernel := upconv.kernel the loss tends to 0 (interior: border=1), like 1 / rho."""
  _, params, _, features = case
  kernel = params["upconv"]["kernel"]
  fit = lambda theta: {"theta": jnp.float32(theta), "bias": params["upconv"]["bias"]}
  loss = jax.jit(lambda f: uf.feature_loss(f, kernel, features, pad=PAD, border=1))
  rel = [uf.relative_error(float(loss(fit(t))), features) for t in (0.5, 30.0, 3000.0)]
  assert rel[2] < 1e-3 < 0.1 < rel[0]
  assert rel[1] > 30 * rel[2]


def test_fit_reaches_the_tied_transposed_conv_and_only_moves_the_kernel_when_asked(case):
  """With conv{tie}.kernel := upconv.kernel the optimum is rho -> inf: theta must grow and the
  loss fall; a fit of the kernel too moves the tied conv (and so the trunk) and fits no worse."""
  _, params, _, features = case
  cms = cms_params_from_ms(params, TIE)
  cms[f"conv{TIE}"] = dict(cms[f"conv{TIE}"], kernel=params["upconv"]["kernel"])
  fitted, losses = uf.fit_upsampler(cms, features, tie_to=TIE, steps=30, pad=PAD,
                                    learning_rate=0.3)
  assert losses.shape == (31,)
  assert losses[-1] < 0.3 * losses[0]
  assert float(fitted["upconv"]["theta"]) > float(cms["upconv"]["theta"]) + 1
  np.testing.assert_array_equal(fitted[f"conv{TIE}"]["kernel"], cms[f"conv{TIE}"]["kernel"])
  moved, kernel_losses = uf.fit_upsampler(cms, features, tie_to=TIE, steps=30, pad=PAD,
                                          learning_rate=0.3, train_kernel=True,
                                          kernel_learning_rate=1e-3)
  assert kernel_losses[-1] < 0.3 * kernel_losses[0]
  assert not np.allclose(moved[f"conv{TIE}"]["kernel"], cms[f"conv{TIE}"]["kernel"])


def test_stage1_in_initialization_lowers_the_feature_error_on_fresh_patches(case):
  """`initialization.fit_converted_upsampler` (stage 1 of the CMS recipe, run by the training
  init): on a new batch of patches the fitted upsampler matches the MS upconv better than the
  conversion does."""
  import ml_collections

  from lapsrn_jax.models import CMSLapSRN
  from lapsrn_jax.training import initialization
  from lapsrn_jax.training.config import base_config

  model, params, _, _ = case
  cms_model = CMSLapSRN(depth=2, recursions=1, features=F, tie_to=TIE, pad=PAD)
  cms = cms_params_from_ms(params, TIE)
  config = base_config()
  config.data.train = "skimage:train"
  config.upsampler_fit = ml_collections.ConfigDict(dict(
      steps=60, patches=4, patch_size=16, scales=(2, 4), learning_rate=0.1, train_kernel=True,
      kernel_learning_rate=3e-2))
  fitted = initialization.fit_converted_upsampler(cms_model, cms, model, params, config)
  assert jax.tree.structure(fitted) == jax.tree.structure(cms)
  from lapsrn_jax.data.pipeline import make_train_iterator

  it = make_train_iterator("skimage:train", global_batch_size=4, scales=(2, 4), patch_size=16,
                           seed=7)
  batch = next(it)
  it.close()
  fresh = uf.collect_features(model, params, {s: batch[f"x{s}"]["lr"] for s in (2, 4)})
  err = lambda p: float(uf.feature_loss(uf.fit_params_of(p, TIE, train_kernel=True), None,
                                        fresh, pad=PAD))
  print(f"feature error: converted {err(cms):.4g}, fitted {err(fitted):.4g}")
  assert err(fitted) < 0.8 * err(cms)
