"""imresize against MATLAB's algorithm re-derived here from the cubic formula (plain loops)."""

import math

import jax
import numpy as np
import pytest

from lapsrn_jax.imresize import imresize, imresize_jax, output_size


def _keys_cubic(t: float) -> float:
  t = abs(t)
  if t <= 1:
    return 1.5 * t**3 - 2.5 * t**2 + 1
  if t <= 2:
    return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
  return 0.0


def _mirror(j: int, n: int) -> int:
  """1-based index reflected into 1..n, edge pixel repeated (0 -> 1, n + 1 -> n)."""
  while j < 1 or j > n:
    j = 1 - j if j < 1 else 2 * n + 1 - j
  return j


def _oracle_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
  """Dense [n_out, n_in] resize matrix written from MATLAB's documented rules with plain loops."""
  shrink = scale < 1
  support = 2.0 / scale if shrink else 2.0
  m = np.zeros((n_out, n_in))
  for i in range(1, n_out + 1):
    u = i / scale + 0.5 * (1 - 1 / scale)
    row = np.zeros(n_in)
    for j in range(math.floor(u - support) - 1, math.ceil(u + support) + 2):
      w = scale * _keys_cubic(scale * (u - j)) if shrink else _keys_cubic(u - j)
      row[_mirror(j, n_in) - 1] += w
    m[i - 1] = row / row.sum()
  return m


def _round_u8(x):
  return np.clip(np.floor(x + 0.5), 0, 255)


def test_x2_first_output_pixel_has_hand_derived_weights():
  # u = 0.75: taps at 1-based -1, 0, 1, 2 with cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25);
  # -1 and 0 mirror to 2 and 1: out[0] = (0.2265625 + 0.8671875) x0 + (-0.0234375 - 0.0703125) x1.
  x = np.array([0.3, 0.9, 0.1, 0.5, 0.7])
  out = imresize(x[:, None], 2)[:, 0]
  assert out[0] == pytest.approx(1.09375 * x[0] - 0.09375 * x[1], abs=1e-14)
  # Interior pixel 3 (1-based): u = 1.75, taps 0..3 at distances 1.75, 0.75, -0.25, -1.25.
  expect = -0.0234375 * x[0] + 0.2265625 * x[0] + 0.8671875 * x[1] - 0.0703125 * x[2]
  assert out[2] == pytest.approx(expect, abs=1e-14)


def test_half_first_output_pixel_has_hand_derived_antialiased_weights():
  # scale 1/2: kernel 0.5 * cubic(x / 2) over 8 taps; u = 1.5, taps -2..5 (1-based); -2, -1, 0
  # mirror to 3, 2, 1.
  x = np.array([0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])
  out = imresize(x[:, None], 0.5)[:, 0]
  expect = (0.546875 * x[0] + 0.3984375 * x[1] + 0.1015625 * x[2] - 0.03515625 * x[3]
            - 0.01171875 * x[4])
  assert out.shape == (4,)
  assert out[0] == pytest.approx(expect, abs=1e-14)


@pytest.mark.parametrize("shape,scale", [((9, 7), 2), ((16, 12), 0.5), ((24, 20), 0.25),
                                         ((10, 13), 1.7), ((30, 22), 0.37), ((17, 11), 1 / 3)])
def test_matches_the_loop_oracle(shape, scale):
  rng = np.random.default_rng(0)
  x = rng.random(shape + (2,))
  (oh, ow), _ = output_size(shape, scale)
  ah = _oracle_matrix(shape[0], oh, scale)
  aw = _oracle_matrix(shape[1], ow, scale)
  expect = np.einsum("ih,hwc,jw->ijc", ah, x, aw)
  np.testing.assert_allclose(imresize(x, scale), expect, atol=1e-12)


def test_output_shape_uses_per_axis_scales():
  rng = np.random.default_rng(1)
  x = rng.random((12, 20))
  ah = _oracle_matrix(12, 30, 30 / 12)
  aw = _oracle_matrix(20, 7, 7 / 20)
  np.testing.assert_allclose(imresize(x, output_shape=(30, 7)), ah @ x @ aw.T, atol=1e-12)


def test_output_sizes_follow_ceil_rule():
  assert imresize(np.zeros((7, 10)), 0.5).shape == (4, 5)
  assert imresize(np.zeros((10, 11, 3)), 1 / 3).shape == (4, 4, 3)
  assert imresize(np.zeros((7, 9)), 1.5).shape == (11, 14)
  assert imresize(np.zeros((5, 6, 3)), output_shape=(2, 13)).shape == (2, 13, 3)
  assert imresize(np.zeros((1, 1)), 4).shape == (4, 4)


@pytest.mark.parametrize("scale", [2, 0.5, 0.37, 1.7, 1 / 8])
def test_constant_image_stays_constant(scale):
  x = np.full((33, 21, 3), 0.625)
  np.testing.assert_allclose(imresize(x, scale), 0.625, atol=1e-14)
  u = np.full((33, 21), 77, np.uint8)
  out = imresize(u, scale)
  assert out.dtype == np.uint8 and np.all(out == 77)


def test_uint8_rounds_and_saturates_after_each_pass_smaller_scale_first():
  rng = np.random.default_rng(2)
  u = (rng.random((14, 16)) > 0.5).astype(np.uint8) * 255  # sharp edges overshoot
  ah = _oracle_matrix(14, 28, 2.0)
  aw = _oracle_matrix(16, 8, 0.5)
  width_first = _round_u8(ah @ _round_u8(u @ aw.T))
  height_first = _round_u8(_round_u8(ah @ u) @ aw.T)
  out = imresize(u, output_shape=(28, 8))
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, width_first)
  assert np.any(width_first != height_first)  # the order is observable, so the test can fail
  assert out.min() == 0 and out.max() == 255


def test_float32_in_float32_out():
  x = np.random.default_rng(3).random((8, 8)).astype(np.float32)
  out = imresize(x, 2)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, imresize(x.astype(np.float64), 2), atol=1e-6)


def test_rgb_channels_are_resized_independently():
  x = np.random.default_rng(4).random((10, 12, 3))
  out = imresize(x, 0.6)
  for c in range(3):
    np.testing.assert_allclose(out[..., c], imresize(x[..., c], 0.6), atol=1e-14)


@pytest.mark.parametrize("kwargs,match", [
    (dict(scale=2, output_shape=(4, 4)), "exactly one"),
    (dict(), "exactly one"),
    (dict(scale=-1), "positive"),
    (dict(scale=float("inf")), "positive"),
    (dict(output_shape=(0, 4)), "positive integers"),
    (dict(output_shape=(4,)), "height, width"),
])
def test_bad_arguments_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    imresize(np.zeros((4, 4)), **kwargs)


def test_bad_dtype_and_rank_raise():
  with pytest.raises(ValueError, match="dtype"):
    imresize(np.zeros((4, 4), np.int32), 2)
  with pytest.raises(ValueError, match="dimension"):
    imresize(np.zeros(4), 2)


@pytest.mark.parametrize("shape,kwargs", [((13, 9), dict(scale=2)),
                                          ((2, 16, 12, 3), dict(scale=0.25)),
                                          ((15, 11, 1), dict(scale=0.37)),
                                          ((2, 10, 12, 2), dict(output_shape=(17, 5)))])
def test_jax_matches_numpy(shape, kwargs):
  x = np.random.default_rng(5).random(shape)
  got = jax.jit(lambda a: imresize_jax(a, **kwargs))(x.astype(np.float32))
  if len(shape) == 4:
    expect = np.stack([imresize(xi, **kwargs) for xi in x])
  else:
    expect = imresize(x, **kwargs)
  assert got.shape == expect.shape
  np.testing.assert_allclose(np.asarray(got), expect, atol=1e-6)


def test_jax_uint8_stays_uint8_and_close_to_numpy():
  u = np.random.default_rng(6).integers(0, 256, (12, 10, 3), dtype=np.uint8)
  got = np.asarray(imresize_jax(u, 0.5))
  assert got.dtype == np.uint8
  diff = np.abs(got.astype(int) - imresize(u, 0.5).astype(int))
  assert diff.max() <= 1 and diff.mean() < 0.01  # float32 vs float64 at rounding ties only
