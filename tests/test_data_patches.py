"""Official-recipe patch ops against independent oracles (full imresize, explicit formulas)."""

import math
from fractions import Fraction

import numpy as np
import pytest

from lapsrn_jax.data import patches
from lapsrn_jax.imresize import imresize


def test_luma_is_matlab_uint8_rgb2ycbcr_then_im2single():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (7, 9, 3), np.uint8)
  rgb[0, 0] = (235, 199, 223)  # Y = 198.5 exactly: a rounding tie
  # MATLAB rgb2ycbcr on uint8: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded half
  # away from zero; exact rational arithmetic as the oracle.
  def y8(r, g, b):
    y = 16 + Fraction(65481 * int(r) + 128553 * int(g) + 24966 * int(b), 255000)
    return math.floor(y + Fraction(1, 2))
  expected = np.array([[y8(*px) for px in row] for row in rgb]) / 255.0
  np.testing.assert_array_equal(patches.luma(rgb), expected)
  assert expected[0, 0] == 199 / 255
  gray = rgb[..., 0]
  np.testing.assert_array_equal(patches.luma(gray), gray / 255.0)
  with pytest.raises(ValueError):
    patches.luma(rgb.astype(np.float32))


@pytest.mark.parametrize("tenths,shape,expected", [
    (5, (300, 400), 0.5),           # 150 >= 128: kept
    (5, (200, 400), 128 / 200 + 1e-3),  # 100 < 128: forced by the short side (height)
    (7, (500, 150), 128 / 150 + 1e-3),  # short side is the width
    (10, (78, 120), 128 / 78 + 1e-3),   # smaller than the patch: enlarged (official)
    (6, (214, 300), 0.6000000000000001),  # 128.4 >= 128
])
def test_scale_ratio_follows_the_official_rule(tenths, shape, expected):
  assert patches.scale_ratio(tenths, shape, 128) == expected


@pytest.mark.parametrize("ratio", [0.5, 0.7000000000000001, 1.0, 128 / 78 + 1e-3])
def test_resized_crop_equals_a_crop_of_the_full_imresize(ratio):
  rng = np.random.default_rng(3)
  y = rng.random((78, 101))
  full = imresize(y, ratio)
  size = 24
  for top, left in [(0, 0), (full.shape[0] - size, full.shape[1] - size), (9, 17)]:
    got = patches.resized_crop(y, ratio, top, left, size)
    np.testing.assert_allclose(got, full[top:top + size, left:left + size], rtol=0, atol=1e-12)
  with pytest.raises(ValueError, match="outside"):
    patches.resized_crop(y, ratio, full.shape[0] - size + 1, 0, size)


def test_sample_patch_always_fits_and_varies():
  rng = np.random.default_rng(4)
  y = np.random.default_rng(5).random((40, 60))
  seen = set()
  for _ in range(60):
    p = patches.sample_patch(y, rng, 16)
    assert p.shape == (16, 16) and p.dtype == np.float64
    seen.add(round(float(p.std()), 12))
  assert len(seen) > 30  # crops and ratios vary
  small = np.random.default_rng(6).random((10, 30))  # short side < patch: enlarged, still fits
  assert patches.sample_patch(small, rng, 16).shape == (16, 16)


def test_rot_flip_matches_matlab_rot90_and_fliplr():
  x = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3)
  # MATLAB rot90(A) is counter-clockwise: out(i, j) = A(j, n - 1 - i) (0-based).
  n = 3
  ccw = np.empty_like(x)
  for i in range(n):
    for j in range(n):
      ccw[:, i, j] = x[:, j, n - 1 - i]
  np.testing.assert_array_equal(patches.rot_flip(x, 1, False), ccw)
  np.testing.assert_array_equal(patches.rot_flip(x, 0, True), x[:, :, ::-1])
  np.testing.assert_array_equal(patches.rot_flip(x, 2, True),
                                patches.rot_flip(patches.rot_flip(x, 1, False), 1, True))


def test_rot_flip_params_have_the_official_probabilities():
  rng = np.random.default_rng(7)
  draws = [patches.rot_flip_params(rng) for _ in range(4000)]
  ks = np.bincount([k for k, _ in draws], minlength=4) / len(draws)
  flips = np.mean([f for _, f in draws])
  np.testing.assert_allclose(ks, 0.25, atol=0.03)
  assert abs(flips - 0.5) < 0.03


def test_pyramid_levels_equal_imresize_of_the_hr_patch():
  hr = np.random.default_rng(8).random((3, 32, 32))
  out = patches.pyramid(hr, 8)
  assert out["lr"].shape == (3, 4, 4, 1) and out["lr"].dtype == np.float32
  assert [t.shape for t in out["targets"]] == [(3, 8, 8, 1), (3, 16, 16, 1), (3, 32, 32, 1)]
  for n in range(3):
    np.testing.assert_allclose(out["lr"][n, ..., 0], imresize(hr[n], 1 / 8), atol=1e-6)
    for level, factor in enumerate((4, 2, 1)):
      want = hr[n] if factor == 1 else imresize(hr[n], 1 / factor)
      np.testing.assert_allclose(out["targets"][level][n, ..., 0], want, atol=1e-6)
  with pytest.raises(ValueError):
    patches.pyramid(hr[:, :30, :30], 8)
  with pytest.raises(ValueError):
    patches.pyramid(hr, 3)
