"""Tiled inference: window plans, exact stitching, receptive radii, the x8 self-ensemble."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lapsrn_jax import tiling
from lapsrn_jax.models import create_model


# ------------------------------------------------------------------------------------ plan_axis
@pytest.mark.parametrize("length,tile,overlap", [
    (1, 8, 3), (7, 8, 3), (8, 8, 3), (9, 8, 3), (23, 8, 3), (100, 16, 0), (101, 16, 7),
    (57, 20, 4), (1000, 256, 73)])
def test_plan_axis_partitions_the_axis_and_keeps_pixels_away_from_window_borders(
    length, tile, overlap):
  spans = tiling.plan_axis(length, tile, overlap)
  size = min(length, tile)
  kept = np.concatenate([np.arange(s.keep_start, s.keep_stop) for s in spans])
  np.testing.assert_array_equal(kept, np.arange(length))  # each pixel exactly once, in order
  for s in spans:
    assert 0 <= s.start and s.start + size <= length      # never past the image
    assert s.start <= s.keep_start < s.keep_stop <= s.start + size
    if s.start > 0:                                        # an inner border: full context
      assert s.keep_start - s.start >= overlap
    if s.start + size < length:
      assert s.start + size - s.keep_stop >= overlap


def test_plan_axis_rejects_a_tile_without_room_inside_the_overlap():
  with pytest.raises(ValueError, match="at least 9"):
    tiling.plan_axis(20, 8, 4)
  assert tiling.plan_axis(8, 8, 4) == (tiling.Span(0, 0, 8),)  # fits in one window: fine


# ------------------------------------------------------------------------ tiled_apply (numpy fn)
def _box_then_nearest(x, radius=2, scale=2):
  """A numpy SR stand-in with a known receptive field: zero-padded box sum, then 2x nearest."""
  n, h, w, c = x.shape
  padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
  box = sum(padded[:, i:i + h, j:j + w] for i in range(2 * radius + 1)
            for j in range(2 * radius + 1))
  return np.repeat(np.repeat(box, scale, axis=1), scale, axis=2)


@pytest.mark.parametrize("shape,tile,batch_size", [((23, 31, 2), 9, 1), ((23, 31, 2), 10, 3),
                                                   ((5, 40, 1), 11, 2), ((1, 1, 1), 9, 1)])
def test_tiled_apply_equals_the_whole_image_when_the_overlap_covers_the_receptive_field(
    shape, tile, batch_size):
  x = np.random.default_rng(0).random(shape).astype(np.float32)
  whole = _box_then_nearest(x[None])[0]
  tiled = tiling.tiled_apply(_box_then_nearest, x, scale=2, tile=tile, overlap=2,
                             batch_size=batch_size)
  assert tiled.shape == (2 * shape[0], 2 * shape[1], shape[2]) and tiled.dtype == np.float32
  np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


def test_tiled_apply_differs_when_the_overlap_is_too_small():
  x = np.random.default_rng(0).random((23, 31, 1)).astype(np.float32)
  tiled = tiling.tiled_apply(_box_then_nearest, x, scale=2, tile=9, overlap=1)
  assert np.abs(tiled - _box_then_nearest(x[None])[0]).max() > 0.1


def test_tiled_apply_calls_fn_with_one_shape_for_all_large_images():
  shapes = []

  def fn(batch):
    shapes.append(batch.shape)
    return _box_then_nearest(batch)

  class Progress:
    total, n = None, 0

    def update(self, k):
      self.n += k

  for size in [(40, 33), (17, 60), (64, 64)]:
    progress = Progress()
    tiling.tiled_apply(fn, np.zeros(size + (1,), np.float32), scale=2, tile=16, overlap=2,
                       batch_size=2, progress=progress)
    windows = len(tiling.plan_axis(size[0], 16, 2)) * len(tiling.plan_axis(size[1], 16, 2))
    assert progress.n == progress.total == windows
  assert set(shapes) == {(2, 16, 16, 1)}


def test_tiled_apply_rejects_fn_output_of_the_wrong_scale():
  with pytest.raises(ValueError, match="expected"):
    tiling.tiled_apply(_box_then_nearest, np.zeros((8, 8, 1)), scale=4, tile=8, overlap=2)


# ------------------------------------------------------------------------ a tiny random network
def random_params(model, scale, seed=0, std=0.3):
  """N(0, std^2) params of `model`'s shapes (numpy: no compilation), for a network whose residual
  branch dominates its output, so tiling errors show."""
  init = functools.partial(model.init, scale=scale)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (std * rng.standard_normal(s.shape)).astype(s.dtype), shapes)


@functools.lru_cache(maxsize=None)
def _tiny(name="ms_lapsrn", **fields):
  model = create_model(name, features=4, **fields)
  return model, random_params(model, 8)


def _network_fn(model, params, scale):
  apply = jax.jit(lambda x: model.apply({"params": params}, x, scale=scale)[-1])
  return lambda batch: np.asarray(apply(jnp.asarray(batch)))


@pytest.mark.parametrize("name,fields,scale", [
    ("ms_lapsrn", (("depth", 2), ("recursions", 1)), 2),
    ("ms_lapsrn", (("depth", 1), ("recursions", 3)), 8),
    ("lapsrn", (("levels", 3), ("depth", 2)), 4)])
def test_receptive_radius_bounds_the_gradient_support_tightly(name, fields, scale):
  model, params = _tiny(name, **dict(fields))
  n = 31
  x = jax.random.uniform(jax.random.PRNGKey(3), (1, n, n, 1))
  grad = jax.jit(jax.grad(
      lambda x, i: model.apply({"params": params}, x, scale=scale)[-1][0, i, i, 0]))
  reach = 0
  for sub in range(scale):  # every output pixel of the centre LR pixel (diagonal)
    g = np.asarray(grad(x, (n // 2) * scale + sub))[0, :, :, 0]
    reach = max(reach, int(np.abs(np.argwhere(g != 0) - n // 2).max()))
  radius = model.receptive_radius(scale)
  assert reach <= radius <= reach + 1


def test_receptive_radius_of_the_released_ms_lapsrn():
  # 1 (input conv) + sum over levels of (40 convs + 0.75 upconv) / 2^l + the residual conv.
  model = create_model("ms_lapsrn_d5r8")
  assert [model.receptive_radius(s) for s in (2, 4, 8)] == [43, 63, 73]
  with pytest.raises(ValueError, match="levels"):
    create_model("lapsrn_x2").receptive_radius(4)


@pytest.mark.parametrize("scale,shape,tile", [(2, (37, 29), 19), (4, (13, 30), 17)])
def test_tiled_network_equals_the_untiled_network(scale, shape, tile):
  model, params = _tiny("ms_lapsrn", depth=2, recursions=1)
  fn = _network_fn(model, params, scale)
  overlap = model.receptive_radius(scale)
  assert tile < max(shape)  # really tiled
  y = np.random.default_rng(1).random(shape + (1,)).astype(np.float32)
  whole = fn(y[None])[0]
  tiled = tiling.tiled_apply(fn, y, scale=scale, tile=tile, overlap=overlap)
  assert np.abs(tiled - whole).max() <= 1e-5  # the contract is 1/255; it is exact up to rounding
  short = tiling.tiled_apply(fn, y, scale=scale, tile=tile, overlap=overlap - 2)
  assert np.abs(short - whole).max() > 1 / 255  # the test can fail: too little context shows


# ------------------------------------------------------------------------------ self_ensemble
def _nearest2(x):
  return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def test_self_ensemble_of_an_equivariant_fn_is_the_fn():
  x = np.random.default_rng(0).random((2, 5, 7, 1)).astype(np.float32)
  np.testing.assert_allclose(tiling.self_ensemble(_nearest2)(x), _nearest2(x), atol=1e-6)


def test_self_ensemble_is_the_mean_over_the_8_dihedral_transforms_and_is_equivariant():
  model, params = _tiny("ms_lapsrn", depth=2, recursions=1)
  fn = _network_fn(model, params, 2)
  x = np.random.default_rng(2).random((1, 6, 9, 1)).astype(np.float32)
  ens = tiling.self_ensemble(fn)
  out = ens(x)
  assert out.shape == (1, 12, 18, 1) and out.dtype == np.float32
  # Oracle: transforms written as index maps (transpose / flips), independent of np.rot90.
  transforms = [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)]

  def forward(a, t, fh, fw):
    a = a[:, ::-1] if fh else a
    a = a[:, :, ::-1] if fw else a
    return a.transpose(0, 2, 1, 3) if t else a

  def inverse(a, t, fh, fw):
    a = a.transpose(0, 2, 1, 3) if t else a
    a = a[:, :, ::-1] if fw else a
    return a[:, ::-1] if fh else a

  expected = np.mean([inverse(fn(np.ascontiguousarray(forward(x, *g))), *g) for g in transforms],
                     axis=0)
  np.testing.assert_allclose(out, expected, atol=1e-5)
  assert np.abs(fn(x) - out).max() > 1e-3  # the network alone is not equivariant
  for g in [(True, False, False), (False, True, True)]:
    np.testing.assert_allclose(ens(np.ascontiguousarray(forward(x, *g))), forward(out, *g),
                               atol=1e-5)


def test_tiled_cms_lapsrn_matches_the_untiled_network_within_its_decay_margin():
  # The tied inverse-conv upsampler is solved locally (halo `solve_halo` grid pixels), and
  # receptive_radius adds that halo per level: only the inverse's taps beyond it differ.
  model, params = _tiny("cms_lapsrn", depth=2, recursions=1, tie_to=1)
  fn = _network_fn(model, params, 2)
  overlap = model.receptive_radius(2)
  y = np.random.default_rng(4).random((45, 41, 1)).astype(np.float32)
  tile = 2 * overlap + 9
  assert tile < min(y.shape[:2])
  tiled = tiling.tiled_apply(fn, y, scale=2, tile=tile, overlap=overlap)
  assert np.abs(tiled - fn(y[None])[0]).max() <= 1e-5
