"""PSNR / SSIM / paper_protocol against float64 numpy + scipy.ndimage oracles written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from lapsrn_jax import metrics


def _window():
  """fspecial('gaussian', 11, 1.5): the 2-D kernel, normalised."""
  y, x = np.mgrid[-5:6, -5:6].astype(np.float64)
  g = np.exp(-(x * x + y * y) / (2 * 1.5**2))
  return g / g.sum()


def _ssim_oracle(a, b, peak=1.0):
  """MATLAB ssim on 2-D float64: imfilter(..., 'replicate') == ndimage.correlate(mode='nearest')."""
  w = _window()
  f = lambda z: ndimage.correlate(z, w, mode="nearest")  # noqa: E731
  c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
  mu_a, mu_b = f(a), f(b)
  va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
  m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
  return m.mean()


def _psnr_oracle(a, b, peak=1.0):
  return 10 * np.log10(peak**2 / np.mean((a - b) ** 2))


def _pair(shape, seed=0, noise=0.05):
  rng = np.random.default_rng(seed)
  a = ndimage.gaussian_filter(rng.random(shape), 2)  # smooth, image-like
  b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
  return a, b


def test_psnr_of_a_constant_offset_is_20_db():
  x = np.full((32, 32), 0.5)
  assert float(metrics.psnr(x, x + 0.1)) == pytest.approx(20.0, abs=1e-4)


def test_ssim_of_constant_images_matches_the_closed_form():
  # zero variances: SSIM = (2ab + C1) / (a^2 + b^2 + C1) * (C2 / C2)
  a, b, c1 = 0.3, 0.6, 0.01**2
  got = float(metrics.ssim(np.full((32, 32), a), np.full((32, 32), b)))
  assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-6)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
  a, _ = _pair((32, 32))
  assert np.isposinf(float(metrics.psnr(a, a)))
  assert float(metrics.ssim(a, a)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("shave", [0, 3])
def test_gray_psnr_and_ssim_match_oracles(shave):
  a, b = _pair((32, 32))
  crop = np.s_[shave:32 - shave, shave:32 - shave]
  assert float(metrics.psnr(a, b, shave=shave)) == pytest.approx(
      _psnr_oracle(a[crop], b[crop]), abs=1e-4)
  assert float(metrics.ssim(a, b, shave=shave)) == pytest.approx(
      _ssim_oracle(a[crop], b[crop]), abs=2e-6)


def test_batched_multichannel_is_per_image_and_channel_mean():
  a, b = _pair((3, 32, 32, 3), seed=1)
  p = np.asarray(metrics.psnr(a, b, shave=2))
  s = np.asarray(metrics.ssim(a, b, shave=2))
  assert p.shape == s.shape == (3,)
  for n in range(3):
    an, bn = a[n, 2:-2, 2:-2], b[n, 2:-2, 2:-2]
    assert p[n] == pytest.approx(_psnr_oracle(an, bn), abs=1e-4)
    assert s[n] == pytest.approx(np.mean([_ssim_oracle(an[..., c], bn[..., c]) for c in range(3)]),
                                 abs=2e-6)


def test_data_range_scales_constants():
  a, b = _pair((32, 32), seed=2)
  assert float(metrics.psnr(a * 255, b * 255, data_range=255)) == pytest.approx(
      _psnr_oracle(a, b), abs=1e-3)
  assert float(metrics.ssim(a * 255, b * 255, data_range=255)) == pytest.approx(
      _ssim_oracle(a, b), abs=2e-5)


def test_metrics_work_under_jit_and_on_device_arrays():
  a, b = _pair((3, 32, 32, 3), seed=3)
  got = jax.jit(lambda x, y: metrics.ssim(x, y, shave=1))(jnp.asarray(a), jnp.asarray(b))
  assert got.shape == (3,)
  np.testing.assert_allclose(np.asarray(got), np.asarray(metrics.ssim(a, b, shave=1)), atol=1e-7)


def test_rgb_to_y_matches_bt601():
  rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.2, 0.5, 0.9]])
  expect = (65.481 * rgb[:, 0] + 128.553 * rgb[:, 1] + 24.966 * rgb[:, 2] + 16) / 255
  got = np.asarray(metrics.rgb_to_y(rgb))
  assert got.shape == (3, 1)
  np.testing.assert_allclose(got[:, 0], expect, atol=1e-6)
  u8 = np.array([[255, 255, 255]], np.uint8)
  assert float(metrics.rgb_to_y(u8)[0, 0]) == pytest.approx(235 / 255, abs=1e-6)


def test_im2uint8_rounds_half_away_and_saturates():
  x = np.array([-0.1, 0.5 / 255, 1.49 / 255, 1.5 / 255, 254.5 / 255, 1.2])
  np.testing.assert_array_equal(metrics.im2uint8(x), [0, 1, 1, 2, 255, 255])
  on_device = metrics.im2uint8(jnp.asarray(x[[0, 3, 5]]))
  np.testing.assert_array_equal(np.asarray(on_device), [0, 2, 255])


def _protocol_oracle(sr, hr, scale):
  """The scoring step of docs/evaluation_protocol.md in float64 numpy."""
  def q(x):
    return x / 255 if x.dtype == np.uint8 else np.floor(np.clip(x, 0, 1) * 255 + 0.5) / 255

  a, b = q(sr), q(hr)
  if a.ndim == 3:
    w = np.array([65.481, 128.553, 24.966]) / 255
    a, b = a @ w + 16 / 255, b @ w + 16 / 255
  a, b = a[scale:-scale, scale:-scale], b[scale:-scale, scale:-scale]
  return _psnr_oracle(a, b), _ssim_oracle(a, b)


@pytest.mark.parametrize("shape,scale", [((61, 45, 3), 2), ((45, 70, 3), 4), ((300, 37), 3)])
def test_paper_protocol_matches_oracle(shape, scale):
  # float SR vs uint8 HR; portrait, landscape, gray, sizes across a padding bucket
  rng = np.random.default_rng(4)
  hr = rng.integers(0, 256, shape, dtype=np.uint8)
  sr = ndimage.uniform_filter(hr / 255.0, 3) + 0.01 * rng.standard_normal(shape)
  sr = np.clip(sr, -0.05, 1.05)  # overshoots are saturated by the quantisation
  p, s = metrics.paper_protocol(sr, hr, scale)
  ep, es = _protocol_oracle(sr, hr, scale)
  assert float(p) == pytest.approx(ep, abs=1e-4)
  assert float(s) == pytest.approx(es, abs=2e-6)


def test_paper_protocol_device_batch_matches_host_path():
  rng = np.random.default_rng(5)
  hr = rng.integers(0, 256, (2, 45, 61, 3), dtype=np.uint8)
  sr = np.clip(hr / 255.0 + 0.02 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
  p, s = metrics.paper_protocol(jnp.asarray(sr), jnp.asarray(hr), 4)
  assert p.shape == s.shape == (2,)
  for n in range(2):
    hp, hs = metrics.paper_protocol(sr[n], hr[n], 4)
    assert float(p[n]) == pytest.approx(float(hp), abs=1e-4)
    assert float(s[n]) == pytest.approx(float(hs), abs=2e-6)


def test_paper_protocol_identical_images_give_inf():
  hr = np.random.default_rng(6).integers(0, 256, (61, 45, 3), dtype=np.uint8)
  p, s = metrics.paper_protocol(hr / 255.0, hr, 2)
  assert np.isposinf(float(p)) and float(s) == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_raise():
  a = np.zeros((10, 10, 3))
  with pytest.raises(ValueError, match="differ in shape"):
    metrics.psnr(a, a[:9])
  with pytest.raises(ValueError, match="leaves nothing"):
    metrics.ssim(a, a, shave=5)
  with pytest.raises(ValueError, match="gray .* or RGB"):
    metrics.paper_protocol(a[..., :2], a[..., :2], 2)
  with pytest.raises(ValueError, match="positive integer"):
    metrics.paper_protocol(a, a, 0)
  with pytest.raises(ValueError, match=r"\[H, W\]"):
    metrics.psnr(np.zeros(5), np.zeros(5))
