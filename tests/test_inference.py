"""super_resolve: colour handling, sizes, dtypes; the official weights reproduce Set5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require_file

from lapsrn_jax.color import rgb_to_ycbcr
from lapsrn_jax.images import list_images, mod_crop, read_image
from lapsrn_jax.imresize import imresize
from lapsrn_jax import inference
from lapsrn_jax.inference import downscale, super_resolve
from lapsrn_jax.metrics import paper_protocol
from lapsrn_jax.models import create_model
from lapsrn_jax.models.layers import bilinear_kernel
from lapsrn_jax.weights import load_official


def random_params(model, scale, seed=0, std=0.1):
  """N(0, std^2) params from numpy (a jitted `model.init` compiles the PRNG: seconds on CPU)."""
  lr = jnp.zeros((1, 16, 16, 1))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), lr, scale=scale))
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape) * std, s.dtype),
                                shapes["params"])


def _bilinear_params(model, scale=2):
  """Params that make the network a pure bilinear 2x upsampler: zero residual branch."""
  params = random_params(model, scale)
  zero = {"kernel": jnp.zeros_like(params["residual_conv"]["kernel"]), "bias": jnp.zeros((1,))}
  img_up = {"kernel": jnp.asarray(bilinear_kernel(4))[:, :, None, None]}
  return {**params, "residual_conv": zero, "img_up": img_up}


@pytest.fixture(scope="module")
def tiny_ms():
  model = create_model("ms_lapsrn", depth=1, recursions=1, features=4)
  return model, _bilinear_params(model, scale=4)


def np_bilinear_up(y):
  """2x upsampling by the MatConvNet bilinear 4x4 kernel (crop 1), in numpy float64."""
  h, w = y.shape
  k = bilinear_kernel(4).astype(np.float64)
  full = np.zeros((2 * h + 2, 2 * w + 2))
  for u in range(4):
    for v in range(4):
      full[u:u + 2 * h:2, v:v + 2 * w:2] += k[u, v] * y
  return full[1:-1, 1:-1]


def test_network_runs_on_y_and_cbcr_are_bicubic(tiny_ms):
  model, params = tiny_ms
  rgb = np.random.default_rng(0).uniform(0.2, 0.8, (6, 5, 3))
  sr = super_resolve(model, params, rgb, 2)
  assert sr.shape == (12, 10, 3) and sr.dtype == rgb.dtype
  ycc = rgb_to_ycbcr(sr)[1:-1, 1:-1]  # the zero-padded border is dark enough for RGB to clip
  lr = rgb_to_ycbcr(rgb)
  np.testing.assert_allclose(ycc[..., 0], np_bilinear_up(lr[..., 0])[1:-1, 1:-1], atol=1e-5)
  np.testing.assert_allclose(ycc[..., 1:], imresize(lr[..., 1:], 2)[1:-1, 1:-1], atol=1e-5)


def test_gray_stays_gray_in_its_dtype(tiny_ms):
  model, params = tiny_ms
  gray = np.random.default_rng(1).integers(0, 256, (5, 7), dtype=np.uint8)
  out = super_resolve(model, params, gray, 4)
  assert out.shape == (20, 28) and out.dtype == np.uint8
  out1 = super_resolve(model, params, gray[..., None].astype(np.float32) / 255, 2)
  assert out1.shape == (10, 14, 1) and out1.dtype == np.float32
  assert 0.0 <= out1.min() and out1.max() <= 1.0


@pytest.mark.parametrize("size", [(1, 1), (2, 3)])
def test_tiny_images_work_for_every_model_kind(size):
  # CMS-LapSRN's symmetric boundary (pad 8) is larger than these images
  for model in (create_model("lapsrn", levels=1, depth=1, features=4),
                create_model("ms_lapsrn", depth=1, recursions=1, features=4),
                create_model("cms_lapsrn", depth=1, recursions=1, tie_to=1, features=4)):
    out = super_resolve(model, random_params(model, 2), np.full(size + (3,), 128, np.uint8), 2)
    assert out.shape == (2 * size[0], 2 * size[1], 3) and out.dtype == np.uint8


def test_constant_image_stays_constant_in_the_interior(tiny_ms):
  # with the bilinear-only network, a constant gray image upsamples to the same constant
  model, params = tiny_ms
  out = super_resolve(model, params, np.full((6, 6), 0.5, np.float64), 2)
  np.testing.assert_allclose(out[1:-1, 1:-1], 0.5, atol=1e-6)


def test_non_power_of_two_scale_resizes_the_next_power(tiny_ms):
  model, params = tiny_ms
  img = np.random.default_rng(2).uniform(size=(5, 6)).astype(np.float32)
  out = super_resolve(model, params, img, 3)
  assert out.shape == (15, 18)
  x4 = super_resolve(model, params, img, 4).astype(np.float64)
  np.testing.assert_allclose(out, np.clip(imresize(x4, output_shape=(15, 18)), 0, 1), atol=1e-5)


def test_bad_inputs_raise(tiny_ms):
  model, params = tiny_ms
  with pytest.raises(ValueError, match="uint8, uint16 or float"):
    super_resolve(model, params, np.zeros((4, 4), np.int32), 2)
  with pytest.raises(ValueError, match=r"C in 1..4"):
    super_resolve(model, params, np.zeros((4, 4, 5)), 2)
  with pytest.raises(ValueError, match="integer >= 2"):
    super_resolve(model, params, np.zeros((4, 4)), 1)
  with pytest.raises(ValueError, match="NaN"):
    super_resolve(model, params, np.full((4, 4), np.nan), 2)
  with pytest.raises(ValueError, match="mod-crop"):
    downscale(np.zeros((5, 4)), 2)


def test_float_images_outside_0_1_raise_with_a_hint(tiny_ms):
  """A float32 image in 0..255 would come back white; bicubic overshoot of [0, 1] is accepted."""
  model, params = tiny_ms
  with pytest.raises(ValueError, match=r"in \[0, 1\].*divide by 255"):
    super_resolve(model, params, np.full((4, 4, 3), 200.0, np.float32), 2)
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    super_resolve(model, params, np.full((4, 4), -0.8), 2)
  overshoot = np.linspace(-0.05, 1.05, 16).reshape(4, 4)
  assert super_resolve(model, params, overshoot, 2).shape == (8, 8)


# ---- compilation reuse: size buckets (LapSRN / MS-LapSRN), cached factors (CMS-LapSRN) ----

def test_bucket_size_rounds_up_to_few_sizes():
  sides = np.arange(1, 2049)
  buckets = np.array([inference.bucket_size(int(n)) for n in sides])
  assert np.all(buckets >= sides) and np.all(buckets % 16 == 0)
  assert np.all(buckets[128:] <= sides[128:] * 1.125)  # < 1/8 extra per side above 128
  assert np.all(np.diff(buckets) >= 0)
  for lo in (256, 512, 1024):  # at most 16 sizes per octave
    assert len(set(buckets[(sides > lo) & (sides <= 2 * lo)])) <= 16


def _run_one_bucket(monkeypatch, model, params, seed, atol) -> list:
  """`super_resolve_y` at 4x on three sizes of the 16x16 bucket, each checked against the model
  on the image alone; returns the traced canvas shapes (one entry per compilation)."""
  traces = []
  forward = inference._forward
  monkeypatch.setattr(inference, "_forward", lambda *a: traces.append(a[2].shape) or forward(*a))
  inference._jitted_apply.cache_clear()
  run_alone = jax.jit(lambda p, x: model.apply({"params": p}, x, scale=4)[-1])
  rng = np.random.default_rng(seed)
  for size in [(5, 7), (16, 3), (9, 16)]:
    y = rng.random(size)
    got = inference.super_resolve_y(model, params, y, 4)
    want = run_alone(params, jnp.asarray(y, jnp.float32)[None, :, :, None])[0, :, :, 0]
    assert got.shape == (4 * size[0], 4 * size[1])
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
  return traces


def test_sizes_in_one_bucket_share_a_compile_and_match_the_unpadded_model(monkeypatch):
  model = create_model("ms_lapsrn", depth=1, recursions=2, features=3)
  params = random_params(model, 4, seed=3)
  traces = _run_one_bucket(monkeypatch, model, params, 4, 1e-5)
  assert traces == [(1, 16, 16, 1)]
  inference.super_resolve_y(model, params, np.random.default_rng(5).random((17, 5)), 4)
  assert traces == [(1, 16, 16, 1), (1, 32, 16, 1)]


def test_cms_new_size_in_a_seen_bucket_needs_no_factorisation_and_no_compilation(monkeypatch):
  """CMS-LapSRN: one factor per weights (any size, any scale), one compilation per bucket, and
  the bucketed canvas gives the model's output on the image alone."""
  model = create_model("cms_lapsrn", depth=1, recursions=1, tie_to=1, pad=2, features=4)
  params = random_params(model, 4, seed=5)
  factorisations = []
  compute = inference._compute_factor
  monkeypatch.setattr(inference, "_compute_factor",
                      lambda m, p: factorisations.append(1) or compute(m, p))
  inference.clear_factor_cache()
  traces = _run_one_bucket(monkeypatch, model, params, 6, 1e-6)
  assert len(factorisations) == 1 and traces == [(1, 16, 16, 1)]
  rng = np.random.default_rng(7)
  same_values = jax.tree.map(jnp.array, params)  # new arrays, same values: the cache still hits
  inference.super_resolve_y(model, same_values, rng.random((7, 7)), 2)  # another scale
  assert len(factorisations) == 1
  bumped = {**params, "upconv": {**params["upconv"], "theta": params["upconv"]["theta"] + 1}}
  inference.super_resolve_y(model, bumped, rng.random((6, 5)), 4)  # another theta
  assert len(factorisations) == 2  # new weights: a new factor, but no new compilation at 4x
  assert traces == [(1, 16, 16, 1)] * 2  # the 4x bucket, then the 2x one (scale is static)


# ---- the official weights on Set5 (the protocol of docs/evaluation_protocol.md) ----
# LapSRN 37.517 / 31.539 / 26.143 (the LapSRN paper publishes 37.52 / 31.54 / 26.14 for these
# weights), MS-LapSRN D5R8 37.778 / 31.737 dB (also reproduced by the independent PyTorch
# reference: python benchmarks/torch_reference.py --psnr).
SET5 = [("LapSRN_x2.mat", 2, 37.517), ("LapSRN_x4.mat", 4, 31.539), ("LapSRN_x8.mat", 8, 26.143),
        ("MSLapSRN_D5R8.mat", 2, 37.778), ("MSLapSRN_D5R8.mat", 4, 31.737)]


@pytest.fixture(scope="module")
def set5(data_dir):
  files = list_images(data_dir / "Set5")
  assert len(files) == 5
  return [read_image(f) for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("name, scale, want", SET5)
def test_official_weights_reproduce_set5_psnr(weights_dir, set5, name, scale, want):
  model, params = load_official(require_file(weights_dir, name))
  scores = []
  for hr in set5:
    hr = mod_crop(hr, scale)
    sr = super_resolve(model, params, downscale(hr, scale), scale)
    scores.append(paper_protocol(sr, hr.astype(np.float64) / 255, scale)[0])
  assert float(np.mean(scores)) == pytest.approx(want, abs=0.01)
