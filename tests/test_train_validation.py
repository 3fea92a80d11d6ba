"""Validation during training (training/validation.py) against a float64 numpy oracle."""

import numpy as np
import pytest

from lapsrn_jax.imresize import imresize, imresize_jax
from lapsrn_jax.training.validation import Validator


class BicubicStandIn:
  """A 'model' whose SR output is bicubic upsampling: its scores must equal the bicubic row."""

  def apply(self, variables, lr, *, scale):
    del variables
    return (imresize_jax(lr, scale),)


def oracle_psnr(hr_uint8, scale, crop):
  """Y (BT.601) of the centre crop, LR = imresize(Y, 1/s), bicubic up, im2uint8, shave s, peak 1."""
  x = hr_uint8.astype(np.float64) / 255
  y = x
  if x.ndim == 3:
    y = (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2] + 16) / 255
  top, left = (y.shape[0] - crop) // 2, (y.shape[1] - crop) // 2
  y = y[top:top + crop, left:left + crop]
  up = imresize(imresize(y, 1 / scale), scale)
  q = np.floor(np.clip(up, 0, 1) * 255 + 0.5) / 255
  s = scale
  mse = np.mean((q[s:-s, s:-s] - y[s:-s, s:-s]) ** 2)
  return 10 * np.log10(1 / mse)


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)

  def smooth(shape):
    wave = np.sin(np.linspace(0, 7, shape[0]))[:, None] * np.cos(np.linspace(0, 5, shape[1]))[None]
    wave = wave.reshape(shape[:2] + (1,) * (len(shape) - 2))
    return np.clip(128 + 60 * wave + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)

  return [("rgb", smooth((40, 44, 3))), ("gray", smooth((36, 40)))]


def test_bicubic_scores_match_numpy_and_a_bicubic_model_scores_the_same(images):
  validator = Validator(BicubicStandIn(), images, scales=(2, 4), crop=32, batch_size=1)
  result = validator({})
  for s in (2, 4):
    want = np.mean([oracle_psnr(img, s, 32) for _, img in images])
    assert result[f"val/bicubic_psnr_x{s}"] == pytest.approx(want, abs=2e-3)
    assert result[f"val/psnr_x{s}"] == pytest.approx(result[f"val/bicubic_psnr_x{s}"], abs=2e-3)
    assert result[f"val/ssim_x{s}"] == pytest.approx(result[f"val/bicubic_ssim_x{s}"], abs=1e-4)
  assert result["val/psnr"] == pytest.approx((result["val/psnr_x2"] + result["val/psnr_x4"]) / 2)


def test_too_small_validation_image_is_a_clear_error(images):
  with pytest.raises(ValueError, match="smaller than eval.crop"):
    Validator(BicubicStandIn(), images, scales=(2,), crop=64)
