"""Tests for lapsrn_jax.ops.local_inverse: the regularised inverse solved in overlapping windows.

Oracles: the dense matrix of C on the symmetrically extended grid (numpy solve), the global
Fourier solve (`ops.inverse_conv`), finite differences, and the solve on the exact image size for
a canvas with `valid_hw`.

Exactness: each window is solved on an `L x L` periodic grid. When `L` is a multiple of the
period of the extended map (`H + 2 pad` rows, `W + 2 pad` cols), the window holds whole periods,
so its periodic solve IS the global one and the local solve is exact (float64: 1e-10). Otherwise
only the inverse's spatial taps beyond `halo` are lost, and the error follows them down.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from test_inverse_conv import dense_stride2_matrix, he_kernel, rel_err

from lapsrn_jax import ops
from lapsrn_jax.ops import local_inverse


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def dense_symmetric_solve(y: np.ndarray, kernel: np.ndarray, lam: float, pad: int) -> np.ndarray:
  """`Cᵀ (C Cᵀ + λI)⁻¹ y` on the `'symmetric'`-padded periodic grid, cropped back (dense)."""
  n, h, w, cout = y.shape
  ext = np.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
  hp, wp = h + 2 * pad, w + 2 * pad
  c = dense_stride2_matrix(kernel, hp, wp)
  z = np.linalg.solve(c @ c.T + lam * np.eye(len(c)), ext.reshape(n, -1).T).T
  x = (z @ c).reshape(n, 2 * hp, 2 * wp, kernel.shape[2])
  return x[:, 2 * pad:2 * (pad + h), 2 * pad:2 * (pad + w)]


@pytest.mark.parametrize("h,w,pad,tile,halo", [
    (4, 4, 2, 4, 2),     # period 8 = window 8
    (4, 6, 1, 16, 4),    # periods 6 and 8, window 24
    (5, 3, 0, 11, 2),    # periodic (pad 0): periods 5 and 3, window 15
    (1, 2, 3, 40, 8),    # pad > n: numpy's repeated mirrors; periods 7 and 8, window 56
])
def test_window_of_whole_periods_equals_the_dense_oracle(x64, h, w, pad, tile, halo):
  rng = np.random.default_rng(10 * h + w)
  kernel = he_kernel(rng, 3, 2, 3)
  y = rng.standard_normal((2, h, w, 3))
  lam = 0.3 * float(ops.gram_scale(jnp.asarray(kernel)))
  got = ops.local_inverse_conv(jnp.asarray(y), jnp.asarray(kernel), lam, tile=tile, halo=halo,
                               pad=pad)
  assert got.shape == (2, 2 * h, 2 * w, 2) and got.dtype == jnp.float64
  assert rel_err(got, dense_symmetric_solve(y, kernel, lam, pad)) < 1e-10


def test_extension_index_is_numpy_symmetric_pad_then_periodic():
  for n in (1, 2, 3, 7):
    for pad in (0, 1, 3, 8):
      period = n + 2 * pad
      row = np.pad(np.arange(n), pad, mode="symmetric")  # one period of the extension
      positions = np.arange(-3 * period, 3 * period)
      want = row[np.mod(positions + pad, period)]
      np.testing.assert_array_equal(local_inverse.extension_index(positions, n, pad), want)


def _smooth_features(rng, n, h, w, channels):
  """A smooth, non-periodic map plus noise: the boundary handling matters."""
  i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  smooth = np.stack([np.sin(i / 7 + c) + np.cos(j / 5 - c) + 0.05 * (i + 2 * j)
                     for c in range(channels)], -1)
  return smooth[None] + 0.3 * rng.standard_normal((n, h, w, channels))


def test_error_to_the_global_solve_falls_with_the_halo(x64):
  """Windows that are not whole periods: the error is the inverse's taps beyond `halo`, so it
  falls geometrically with the halo (here a well-conditioned kernel at lam = 0.45 tau)."""
  rng = np.random.default_rng(1)
  kernel = jnp.asarray(he_kernel(rng, 3, 8, 8))
  lam = 0.45 * ops.gram_scale(kernel)
  y = jnp.asarray(_smooth_features(rng, 1, 37, 29, 8))
  want = ops.inverse_conv(y, kernel, lam, boundary="symmetric", pad=8)
  errs = [rel_err(ops.local_inverse_conv(y, kernel, lam, tile=12, halo=halo, pad=8), want)
          for halo in (2, 4, 6, 8)]  # measured: 3e-3, 7e-5, 3e-6, 1e-7
  assert all(a > 10 * b for a, b in zip(errs, errs[1:])), errs
  assert errs[-1] < 1e-6, errs


def test_trained_kernels_match_the_global_solve_to_2e6(weights_dir):
  """The official MS-LapSRN D5R8 block convs at rho in {1, 0.45, 0.1}, 64 channels, float32:
  the default tile/halo (44, 10) reproduce the global symmetric solve to 2e-6 of the largest
  output. Their inverse's taps beyond 10 LR pixels are below 3.1e-7 of the largest (beyond 8:
  3.3e-6, where halo 8 gave up to 2.4e-6 for conv1 at rho = 0.1, the slowest decay); what
  remains is mostly float32 rounding."""
  from conftest import require_file  # pylint: disable=import-outside-toplevel

  from lapsrn_jax.weights import load_official  # pylint: disable=import-outside-toplevel

  _, params = load_official(require_file(weights_dir, "MSLapSRN_D5R8.mat"))
  rng = np.random.default_rng(2)
  y = jnp.asarray(np.maximum(_smooth_features(rng, 1, 70, 53, 64), 0), jnp.float32)
  for conv in ("conv1", "conv3", "conv5"):
    kernel = jnp.asarray(params[conv]["kernel"], jnp.float32)
    for rho in (1.0, 0.45, 0.1):
      lam = rho * ops.gram_scale(kernel)
      want = ops.inverse_conv(y, kernel, lam, boundary="symmetric", pad=8)
      got = ops.apply_local(ops.factorize_local(kernel, lam), y, pad=8)
      assert rel_err(got, want) < 2e-6, (conv, rho)


def test_valid_hw_on_a_canvas_equals_each_image_alone(x64):
  rng = np.random.default_rng(3)
  kernel = jnp.asarray(he_kernel(rng, 3, 4, 4))
  factor = ops.factorize_local(kernel, 0.5 * ops.gram_scale(kernel), tile=6, halo=3)
  sizes = [(9, 4), (3, 13)]
  images = [rng.standard_normal((1, h, w, 4)) for h, w in sizes]
  canvas = rng.standard_normal((2, 16, 16, 4)) * 100  # what is outside must not matter
  for i, img in enumerate(images):
    canvas[i, :img.shape[1], :img.shape[2]] = img[0]
  out = ops.apply_local(factor, jnp.asarray(canvas), pad=2, valid_hw=jnp.asarray(sizes))
  assert bool(jnp.all(jnp.isfinite(out)))
  for i, (img, (h, w)) in enumerate(zip(images, sizes)):
    alone = ops.apply_local(factor, jnp.asarray(img), pad=2)
    assert rel_err(out[i:i + 1, :2 * h, :2 * w], alone) < 1e-12
  # one size for every image, traced inside jit
  run = jax.jit(lambda v: ops.apply_local(factor, jnp.asarray(canvas), pad=2, valid_hw=v))
  np.testing.assert_allclose(run(jnp.asarray([9, 4]))[:1, :18, :8],
                             ops.apply_local(factor, jnp.asarray(images[0]), pad=2), atol=1e-12)


def test_chunked_solve_equals_one_chunk(monkeypatch, x64):
  """The window rows are solved in a sequential loop of chunks (bounded memory); the chunking,
  including a last chunk padded with extra rows, does not change the result."""
  rng = np.random.default_rng(4)
  kernel = jnp.asarray(he_kernel(rng, 3, 3, 3))
  factor = ops.factorize_local(kernel, 0.2, tile=4, halo=2)
  y = jnp.asarray(rng.standard_normal((2, 23, 11, 3)))
  whole = ops.apply_local(factor, y, pad=3)
  window_row_bytes = 2 * 4 * 8 * 8 * 3 * 4  # N * windows per row * L * L * C * 4
  monkeypatch.setattr(local_inverse, "CHUNK_BYTES", 2 * window_row_bytes)
  local_inverse._apply_local.clear_cache()  # re-trace with the small chunks
  assert local_inverse._chunking(7, window_row_bytes) == (4, 2)  # 7 window rows: 4 chunks of 2
  chunked = ops.apply_local(factor, y, pad=3)
  local_inverse._apply_local.clear_cache()
  np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)


def test_gradients_match_finite_differences(x64):
  rng = np.random.default_rng(5)
  y = jnp.asarray(rng.standard_normal((1, 5, 4, 2)))
  kernel = jnp.asarray(rng.standard_normal((3, 3, 2, 2)) * 0.5)
  lam = jnp.asarray(0.7)
  f = jax.jit(lambda y, k, lam: ops.local_inverse_conv(y, k, lam, tile=3, halo=2, pad=2))
  check_grads(f, (y, kernel, lam), order=1, modes=("rev",))


@pytest.mark.parametrize("call,message", [
    (lambda k, y: ops.factorize_local(k, 1.0, tile=0), "tile must be an integer >= 1"),
    (lambda k, y: ops.factorize_local(k, 1.0, halo=-1), "halo must be an integer >= 0"),
    (lambda k, y: ops.factorize_local(k, 1.0, tile=True), "tile must be an integer"),
    (lambda k, y: ops.factorize_local(k, -1.0), "lam"),
    (lambda k, y: ops.apply_local(ops.factorize_local(k, 1.0), y, pad=-1), "pad must be"),
    (lambda k, y: ops.apply_local(ops.factorize_local(k, 1.0), y[..., :2]), "C_out"),
    (lambda k, y: ops.apply_local(ops.factorize_local(k, 1.0), y,
                                  valid_hw=jnp.ones((3, 2), jnp.int32)), "valid_hw"),
])
def test_bad_inputs_raise_value_error(call, message):
  kernel = jnp.ones((3, 3, 2, 3), jnp.float32)
  y = jnp.ones((2, 4, 4, 3), jnp.float32)
  with pytest.raises(ValueError, match=message):
    call(kernel, y)
