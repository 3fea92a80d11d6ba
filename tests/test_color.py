"""rgb_to_ycbcr / ycbcr_to_rgb against BT.601 studio-range values worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lapsrn_jax.color import rgb_to_ycbcr, ycbcr_to_rgb


@pytest.mark.parametrize("rgb,ycbcr255", [
    ((0, 0, 0), (16, 128, 128)),
    ((1, 1, 1), (235, 128, 128)),   # 65.481 + 128.553 + 24.966 = 219
    ((1, 0, 0), (16 + 65.481, 128 - 37.797, 128 + 112)),
    ((0, 1, 0), (16 + 128.553, 128 - 74.203, 128 - 93.786)),
    ((0, 0, 1), (16 + 24.966, 128 + 112, 128 - 18.214)),
])
def test_primaries_map_to_bt601_studio_range(rgb, ycbcr255):
  out = rgb_to_ycbcr(np.array(rgb, np.float64))
  np.testing.assert_allclose(out * 255, ycbcr255, atol=1e-10)
  back = ycbcr_to_rgb(np.array(ycbcr255) / 255)
  np.testing.assert_allclose(back, rgb, atol=1e-10)


def test_round_trip_numpy_float64():
  x = np.random.default_rng(0).random((5, 7, 3))
  np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-12)
  assert rgb_to_ycbcr(x).dtype == np.float64


def test_jax_matches_numpy_under_jit():
  x = np.random.default_rng(1).random((2, 4, 6, 3))
  fwd = jax.jit(rgb_to_ycbcr)(jnp.asarray(x, jnp.float32))
  assert isinstance(fwd, jax.Array) and fwd.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(fwd), rgb_to_ycbcr(x), atol=1e-6)
  back = jax.jit(ycbcr_to_rgb)(fwd)
  np.testing.assert_allclose(np.asarray(back), x, atol=2e-6)


def test_ycbcr_to_rgb_clips_like_matlab_unless_asked_not_to():
  ycc = np.array([235, 240, 240]) / 255  # out of the RGB gamut
  clipped = ycbcr_to_rgb(ycc)
  raw = ycbcr_to_rgb(ycc, clip=False)
  assert raw.max() > 1.5  # R = 1.701, B = 1.886 before clipping
  np.testing.assert_allclose(clipped, np.clip(raw, 0, 1))


def test_float32_numpy_keeps_dtype():
  x = np.random.default_rng(2).random((3, 3, 3)).astype(np.float32)
  assert rgb_to_ycbcr(x).dtype == np.float32


def test_wrong_channel_count_raises():
  with pytest.raises(ValueError, match=r"\[..., 3\]"):
    rgb_to_ycbcr(np.zeros((4, 4, 4)))
  with pytest.raises(ValueError, match="3 channels"):
    ycbcr_to_rgb(np.zeros((4, 4)))
