"""Tests for lapsrn_jax.ops: the periodic stride-2 conv C, its adjoint and
C⁺_λ = Cᵀ(CCᵀ + λI)⁻¹.

Oracles: C built as an explicit matrix from its definition (numpy loops), numpy pinv/solve,
finite differences, float64 against float32, and a MatConvNet-style transposed convolution.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from lapsrn_jax import ops
from lapsrn_jax.ops.hermitian_inverse import hermitian_inverse


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def dense_stride2_matrix(kernel: np.ndarray, h: int, w: int) -> np.ndarray:
  """C as a `[h w C_out, 4 h w C_in]` matrix, straight from the definition (row-major NHWC)."""
  kh, kw, cin, cout = kernel.shape
  c = np.zeros((h * w * cout, 4 * h * w * cin))
  for i in range(h):
    for j in range(w):
      for o in range(cout):
        for u in range(kh):
          for v in range(kw):
            p, q = (2 * i + u) % (2 * h), (2 * j + v) % (2 * w)
            for ci in range(cin):
              c[(i * w + j) * cout + o, (p * 2 * w + q) * cin + ci] += kernel[u, v, ci, o]
  return c


def he_kernel(rng, size, cin, cout):
  return rng.standard_normal((size, size, cin, cout)) * np.sqrt(2 / (size * size * cin))


def matconvnet_convt(y, kernel):
  """MatConvNet ConvTranspose(upsample 2, crop [0 1 0 1]) with zero boundary: [N,H,W,Co] ->
  [N,2H,2W,Ci]."""
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  return lax.conv_general_dilated(y, flipped, (1, 1), ((2, 1), (2, 1)), lhs_dilation=(2, 2),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def rel_err(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  return np.abs(actual - expected).max() / np.abs(expected).max()


def rel_norm(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("ksize,cin,cout,h,w", [
    (3, 3, 2, 4, 6), (3, 3, 3, 4, 6), (4, 3, 2, 4, 6), (4, 3, 3, 4, 6), (3, 2, 3, 3, 5),
    (3, 8, 20, 2, 3)])  # the last: C_out > 16 takes the Schur-complement path of the inverse
def test_operators_match_dense_matrix(x64, ksize, cin, cout, h, w):
  rng = np.random.default_rng(100 * ksize + 10 * cout + h)
  kernel = rng.standard_normal((ksize, ksize, cin, cout))
  c = dense_stride2_matrix(kernel, h, w)
  x = rng.standard_normal((2, 2 * h, 2 * w, cin))
  y = rng.standard_normal((2, h, w, cout))
  flat = lambda a: np.asarray(a).reshape(2, -1)

  assert rel_err(flat(ops.stride2_conv(x, kernel)), flat(x) @ c.T) < 1e-10
  assert rel_err(flat(ops.stride2_conv_transpose(y, kernel)), flat(y) @ c) < 1e-10
  for lam in (1.0, 1e-3):
    expected = np.linalg.solve(c @ c.T + lam * np.eye(len(c)), flat(y).T).T @ c
    assert rel_err(flat(ops.inverse_conv(y, kernel, lam)), expected) < 1e-10
  pinv = flat(y) @ np.linalg.pinv(c).T
  assert rel_err(flat(ops.inverse_conv(y, kernel, 1e-12)), pinv) < 1e-10


@pytest.mark.parametrize("n", [5, 37])
def test_hermitian_inverse_matches_numpy(x64, n):
  rng = np.random.default_rng(n)
  a = rng.standard_normal((3, n, 2 * n)) + 1j * rng.standard_normal((3, n, 2 * n))
  m = a @ np.conj(np.swapaxes(a, 1, 2)) / n + 1e-3 * np.eye(n)
  p, q = jax.jit(hermitian_inverse)(m.real, m.imag)
  assert rel_err(np.asarray(p) + 1j * np.asarray(q), np.linalg.inv(m)) < 1e-10


@pytest.mark.parametrize("ksize", [3, 4])
def test_transpose_is_adjoint(x64, ksize):
  rng = np.random.default_rng(ksize)
  kernel = rng.standard_normal((ksize, ksize, 3, 4))
  x = rng.standard_normal((2, 16, 20, 3))
  y = rng.standard_normal((2, 8, 10, 4))
  lhs = jnp.vdot(ops.stride2_conv(x, kernel), y)
  rhs = jnp.vdot(x, ops.stride2_conv_transpose(y, kernel))
  assert abs(float(lhs - rhs)) < 1e-12 * abs(float(lhs))


def test_gram_scale_is_mean_eigenvalue_of_cct(x64):
  kernel = np.random.default_rng(1).standard_normal((3, 3, 3, 2))
  c = dense_stride2_matrix(kernel, 4, 6)
  assert float(ops.gram_scale(kernel)) == pytest.approx(np.trace(c @ c.T) / len(c), rel=1e-12)


def test_right_inverse_error_falls_with_lambda(x64):
  rng = np.random.default_rng(2)
  kernel = jnp.asarray(he_kernel(rng, 3, 8, 8))
  y = jnp.asarray(rng.standard_normal((2, 8, 8, 8)))
  tau = ops.gram_scale(kernel)
  residual = [rel_norm(ops.stride2_conv(ops.inverse_conv(y, kernel, rho * tau), kernel), y)
              for rho in (1e-2, 1e-4, 1e-6, 1e-8)]
  # C C⁺_λ y - y = -λ (G + λI)⁻¹ y: about λ/τ times an O(1) spectral factor (1.7 here).
  assert all(b < a / 50 for a, b in zip(residual, residual[1:])), residual
  assert residual[2] < 1e-5 and residual[3] < 1e-7, residual


def test_scaled_inverse_tends_to_transposed_conv(x64):
  rng = np.random.default_rng(3)
  kernel = jnp.asarray(he_kernel(rng, 3, 8, 8))
  y = jnp.asarray(rng.standard_normal((2, 8, 8, 8)))
  tau = ops.gram_scale(kernel)
  adjoint = ops.stride2_conv_transpose(y, kernel)
  err = [rel_norm(rho * tau * ops.inverse_conv(y, kernel, rho * tau), adjoint)
         for rho in (1e4, 1e6)]
  assert err[1] < 1e-5 and err[1] < err[0] / 50, err


@pytest.mark.parametrize("boundary,pad", [("periodic", 0), ("symmetric", 2)])
def test_gradients_match_finite_differences(x64, boundary, pad):
  rng = np.random.default_rng(4)
  y = jnp.asarray(rng.standard_normal((1, 4, 4, 2)))
  kernel = jnp.asarray(rng.standard_normal((3, 3, 2, 2)))
  lam = jnp.asarray(0.7)
  f = jax.jit(lambda y, k, lam: ops.inverse_conv(y, k, lam, boundary=boundary, pad=pad))
  check_grads(f, (y, kernel, lam), order=1, modes=("rev",))


def test_float32_matches_float64_with_64_channels():
  rng = np.random.default_rng(5)
  kernel = he_kernel(rng, 3, 64, 64)
  y = rng.standard_normal((2, 12, 12, 64))
  lam = 0.01 * np.sum(kernel ** 2) / 64
  with jax.enable_x64(True):
    expected = np.asarray(jax.jit(ops.inverse_conv)(jnp.asarray(y), jnp.asarray(kernel), lam))
  actual = jax.jit(ops.inverse_conv)(jnp.asarray(y, jnp.float32), jnp.asarray(kernel, jnp.float32),
                                     jnp.float32(lam))
  assert actual.dtype == jnp.float32
  assert rel_norm(actual, expected) < 1e-4


def _smooth_field_with_ramp(h, w, channels):
  i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([np.sin(i / 7 + c) + np.cos(j / 5 - c) + 0.05 * (i + 2 * j) + 0.3 * c
                   for c in range(channels)], -1)[None]


def test_symmetric_pad_8_is_converged(x64):
  rng = np.random.default_rng(6)
  kernel = jnp.asarray(he_kernel(rng, 3, 8, 8))
  lam = 0.1 * ops.gram_scale(kernel)
  y = jnp.asarray(_smooth_field_with_ramp(24, 20, 8))
  solve = lambda pad: ops.inverse_conv(y, kernel, lam, boundary="symmetric", pad=pad)
  reference = solve(32)
  assert rel_norm(solve(8), reference) < 1e-4
  assert rel_norm(solve(0), reference) > 1e-2  # the map really is non-periodic


def test_symmetric_geometry_matches_matconvnet_transposed_conv(x64):
  rng = np.random.default_rng(7)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 4)))
  y = jnp.asarray(rng.standard_normal((2, 6, 7, 4)))
  lam = 1e8 * ops.gram_scale(kernel)
  pad = 3
  scaled = lam * ops.inverse_conv(y, kernel, lam, boundary="symmetric", pad=pad)
  # Whole image: the convT of the symmetrically padded map, cropped to the same HR window.
  y_pad = jnp.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
  expected = matconvnet_convt(y_pad, kernel)[:, 2 * pad:2 * pad + 12, 2 * pad:2 * pad + 14]
  assert scaled.shape == (2, 12, 14, 3)
  assert rel_err(scaled, expected) < 1e-6
  # The convT of the unpadded map agrees except on HR row/col 0 (zero vs reflected neighbour).
  assert rel_err(scaled[:, 1:, 1:], matconvnet_convt(y, kernel)[:, 1:, 1:]) < 1e-6


def test_periodic_transpose_is_matconvnet_convt_away_from_wraparound(x64):
  rng = np.random.default_rng(8)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 4)))
  y = jnp.asarray(rng.standard_normal((2, 5, 6, 4)))
  periodic = ops.stride2_conv_transpose(y, kernel)
  assert rel_err(periodic[:, 1:, 1:], matconvnet_convt(y, kernel)[:, 1:, 1:]) < 1e-12


def test_factor_reuse_is_bit_identical_to_one_shot():
  rng = np.random.default_rng(9)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32)
  y1, y2 = (jnp.asarray(rng.standard_normal((3, 6, 5, 5)), jnp.float32) for _ in range(2))
  factor = ops.factorize(kernel, 0.3, (6, 5), boundary="symmetric", pad=3)
  for y in (y1, y2):
    np.testing.assert_array_equal(
        ops.apply(factor, y), ops.inverse_conv(y, kernel, 0.3, boundary="symmetric", pad=3))
  # A factor is a pytree: it crosses jit boundaries with its static geometry.
  assert len(jax.tree_util.tree_leaves(factor)) == 3
  jitted = jax.jit(ops.apply)(factor, y1)
  np.testing.assert_allclose(jitted, ops.apply(factor, y1), rtol=0, atol=1e-5)


def test_factorize_many_equals_separate_factorize():
  rng = np.random.default_rng(10)
  kernel = jnp.asarray(rng.standard_normal((4, 4, 3, 5)), jnp.float32)
  shapes = [(4, 6), (5, 3), (4, 6)]
  many = ops.factorize_many(kernel, 0.2, shapes, boundary="symmetric", pad=2)
  assert [f.lr_shape for f in many] == shapes
  for factor, shape in zip(many, shapes):
    single = ops.factorize(kernel, 0.2, shape, boundary="symmetric", pad=2)
    assert (factor.boundary, factor.pad, factor.grid_shape) == ("symmetric", 2, single.grid_shape)
    np.testing.assert_array_equal(factor.inverse, single.inverse)


@pytest.mark.timeout(120)
def test_jit_grad_through_factorize_many_and_apply_completes():
  """Three grid sizes in one jitted gradient: the shape that hung XLA-CPU with triangular solves."""
  rng = np.random.default_rng(11)
  kernel = jnp.asarray(he_kernel(rng, 3, 4, 4), jnp.float32)
  ys = [jnp.asarray(rng.standard_normal((2, s, s, 4)), jnp.float32) for s in (4, 6, 8)]

  def loss(kernel, theta):
    lam = jax.nn.softplus(theta) * ops.gram_scale(kernel)
    factors = ops.factorize_many(kernel, lam, [y.shape[1:3] for y in ys], boundary="symmetric",
                                 pad=2)
    return sum(jnp.sum(ops.apply(f, y) ** 2) for f, y in zip(factors, ys))

  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  _, first = value_and_grad(kernel, 0.5)
  for _ in range(3):
    np.testing.assert_array_equal(value_and_grad(kernel, 0.5)[1][0], first[0])
  assert np.all(np.isfinite(first[0]))
  # d loss / d theta against a central difference of the same compiled program (float32: loose).
  h = 1e-2
  numeric = (value_and_grad(kernel, 0.5 + h)[0] - value_and_grad(kernel, 0.5 - h)[0]) / (2 * h)
  assert float(first[1]) == pytest.approx(float(numeric), rel=1e-2)


def test_lam_stays_traceable():
  rng = np.random.default_rng(12)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 2, 2)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((1, 4, 4, 2)), jnp.float32)
  out = jax.jit(lambda lam: ops.inverse_conv(y, kernel, lam))(jnp.float32(0.5))
  np.testing.assert_allclose(out, ops.inverse_conv(y, kernel, 0.5), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda y, k: ops.inverse_conv(y[0], k, 1.0), "y must be 4-D"),
    (lambda y, k: ops.inverse_conv(y, k[0], 1.0), "kernel must be 4-D"),
    (lambda y, k: ops.inverse_conv(y, k[..., None], 1.0), "kernel must be 4-D"),
    (lambda y, k: ops.inverse_conv(y[..., :2], k, 1.0), "channels but the kernel's C_out is 3"),
    (lambda y, k: ops.stride2_conv_transpose(y[..., :2], k),
     "channels but the kernel's C_out is 3"),
    (lambda y, k: ops.stride2_conv(jnp.zeros((1, 8, 8, 3)), k),
     "channels but the kernel's C_in is 2"),
    (lambda y, k: ops.stride2_conv(jnp.zeros((1, 7, 8, 2)), k), "even height and width"),
    (lambda y, k: ops.stride2_conv(jnp.zeros((8, 8, 2)), k), "x must be 4-D"),
    (lambda y, k: ops.inverse_conv(y, k, 0.0), "lam must be > 0"),
    (lambda y, k: ops.inverse_conv(y, k, -1.0), "lam must be > 0"),
    (lambda y, k: ops.inverse_conv(y, k, np.float32("nan")), "lam must be > 0"),
    (lambda y, k: ops.inverse_conv(y, k, jnp.zeros(())), "lam must be > 0"),
    (lambda y, k: ops.inverse_conv(y, k, jnp.ones(2)), "lam must be a scalar"),
    (lambda y, k: ops.inverse_conv(y, k, 1.0, boundary="reflect"), "boundary must be one of"),
    (lambda y, k: ops.inverse_conv(y, k, 1.0, boundary="symmetric", pad=-1),
     "pad must be an integer >= 0"),
    (lambda y, k: ops.inverse_conv(y, k, 1.0, boundary="symmetric", pad=1.5),
     "pad must be an integer >= 0"),
    (lambda y, k: ops.factorize(k, 1.0, (4,)), "lr_shape must be"),
    (lambda y, k: ops.factorize(k, 1.0, (4, 0)), "lr_shape must be"),
    (lambda y, k: ops.apply(ops.factorize(k, 1.0, (5, 5)), y), "factor was built for"),
    (lambda y, k: ops.gram_scale(k[0]), "kernel must be 4-D"),
])
def test_bad_inputs_raise_value_error(call, message):
  y = jnp.zeros((1, 4, 4, 3))
  kernel = jnp.ones((3, 3, 2, 3))
  with pytest.raises(ValueError, match=message):
    call(y, kernel)


@pytest.mark.parametrize("ksize", [(3, 3), (4, 4), (2, 3), (5, 4), (1, 1)])
def test_polyphase_transpose_conv_equals_the_lhs_dilated_convolution(x64, ksize):
  """`dilated_transpose_conv` (polyphase) == XLA's `lhs_dilation=2` convolution, every padding.

  Paddings from -1 to kh + 1 per side cover crops, zero extension and the models' geometries.
  Oracle: XLA's own lhs-dilated convolution, float64.
  """
  from lapsrn_jax.ops.stride2 import dilated_transpose_conv

  kh, kw = ksize
  rng = np.random.default_rng(kh * 10 + kw)
  y, kernel = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((kh, kw, 4, 3))
  flipped = np.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  checked = 0
  for lo_h in (-1, 0, kh - 1, kh + 1):
    for hi_h in (-1, 1, kh):
      for pad_w in ((0, 1), (kw - 1, kw + 1)):
        padding = ((lo_h, hi_h), pad_w)
        if 10 + lo_h + hi_h - kh <= 0 or 12 + sum(pad_w) - kw <= 0:
          continue
        expected = lax.conv_general_dilated(y, flipped, (1, 1), padding, lhs_dilation=(2, 2),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        got = dilated_transpose_conv(jnp.asarray(y), jnp.asarray(kernel), padding)
        assert got.shape == expected.shape, padding
        np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=str(padding))
        checked += 1
  assert checked >= 16
