"""LapSRN / MS-LapSRN / CMS-LapSRN modules: geometry, sizes, sharing, tying (tiny CPU shapes)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from lapsrn_jax.models import CMSLapSRN, LapSRN, MSLapSRN, create_model
from lapsrn_jax.models import layers
from lapsrn_jax.models.cms_lapsrn import tied_inverse_upsample
from lapsrn_jax.models.ms_lapsrn import recursive_block


def param_shapes(model, scale=None):
  """The params tree of `model` as ShapeDtypeStructs (no computation)."""
  lr = jnp.zeros((1, 16, 16, 1))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), lr, scale=scale))["params"]


def n_params(model, scale=None):
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(param_shapes(model, scale)))


def random_params(model, scale=None, seed=0, std=0.1):
  """N(0, std^2) params from numpy (a jitted `model.init` compiles the PRNG: seconds on CPU)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape) * std, s.dtype),
                                param_shapes(model, scale))


# ---- numpy float64 oracles (MatConvNet definitions, written as loops over taps) ----

def np_conv3x3(x, kernel, bias):
  """vl_nnconv, pad 1: out[n,i,j,o] = sum_{u,v,c} k[u,v,c,o] xpad[n,i+u,j+v,c] + b[o]."""
  n, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, w, kernel.shape[-1])) + bias
  for u in range(3):
    for v in range(3):
      out += xp[:, u:u + h, v:v + w] @ kernel[u, v]
  return out


def np_convt(y, f, crop):
  """vl_nnconvt, upsample 2: scatter y[i,j] @ F[u,v]^T to (2i+u, 2j+v), then crop (t, b, l, r)."""
  n, h, w, _ = y.shape
  kh, kw = f.shape[:2]
  full = np.zeros((n, 2 * (h - 1) + kh, 2 * (w - 1) + kw, f.shape[2]))
  for u in range(kh):
    for v in range(kw):
      full[:, u:u + 2 * h:2, v:v + 2 * w:2] += y @ f[u, v].T
  t, b, l, r = crop
  return full[:, t:full.shape[1] - b, l:full.shape[2] - r]


def np_lrelu(x):
  return np.where(x >= 0, x, 0.2 * x)


@pytest.fixture(scope="module")
def rng():
  return np.random.default_rng(0)


# ---- layers ----

CONVT_CASES = [(3, layers.FEATURE_UP_CROP), (4, layers.IMAGE_UP_CROP), (3, (1, 0, 0, 2)),
               (3, (0, 0, 2, 2))]


@pytest.mark.parametrize("size, crop", CONVT_CASES)
def test_conv_transpose_matches_matconvnet_scatter(rng, size, crop):
  y = rng.standard_normal((2, 3, 5, 4))
  f = rng.standard_normal((size, size, 3, 4))
  got = layers.conv_transpose2x(jnp.asarray(y, jnp.float32), jnp.asarray(f, jnp.float32), crop)
  want = np_convt(y, f, crop)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4)


def lax_convt(y, f, crop):
  """The plain `lhs_dilation` convolution (XLA's own autodiff): the reference for gradients."""
  kh, kw = f.shape[:2]
  t, b, l, r = crop
  rhs = jnp.flip(f, (0, 1)).transpose(0, 1, 3, 2)
  return jax.lax.conv_general_dilated(y, rhs, (1, 1), ((kh - 1 - t, kh - 1 - b),
                                                       (kw - 1 - l, kw - 1 - r)),
                                      lhs_dilation=(2, 2),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("size, crop", CONVT_CASES)
def test_conv_transpose_gradients_match_lax_autodiff(rng, size, crop):
  y = jnp.asarray(rng.standard_normal((2, 4, 5, 3)), jnp.float32)
  f = jnp.asarray(rng.standard_normal((size, size, 2, 3)), jnp.float32)
  out_shape = jax.eval_shape(lambda: lax_convt(y, f, crop)).shape
  w = jnp.asarray(rng.standard_normal(out_shape), jnp.float32)

  def value_and_grads(conv):
    return jax.jit(jax.value_and_grad(lambda y, f: jnp.sum(conv(y, f, crop) * w), (0, 1)))(y, f)

  value, (gy, gf) = value_and_grads(layers.conv_transpose2x)
  want_value, (want_gy, want_gf) = value_and_grads(lax_convt)
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  np.testing.assert_allclose(gy, want_gy, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gf, want_gf, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, crop", CONVT_CASES)
def test_conv_transpose_gradients_match_finite_differences(rng, size, crop):
  with jax.enable_x64(True):
    y = jnp.asarray(rng.standard_normal((1, 3, 4, 2)))
    f = jnp.asarray(rng.standard_normal((size, size, 3, 2)))
    b = jnp.asarray(rng.standard_normal(3))
    fn = jax.jit(lambda y, f, b: layers.conv_transpose2x(y, f, crop, b))
    check_grads(fn, (y, f, b), order=1, modes=("fwd", "rev"))


def test_conv_transpose_composes_with_vmap_and_grad(rng):
  """Per-example kernel gradients through vmap(grad) equal a Python loop of grads."""
  y = jnp.asarray(rng.standard_normal((3, 1, 4, 4, 2)), jnp.float32)
  f = jnp.asarray(rng.standard_normal((3, 3, 2, 2)), jnp.float32)

  def loss(f, y):
    return jnp.sum(jnp.sin(layers.conv_transpose2x(y, f, layers.FEATURE_UP_CROP)))

  got = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(f, y)
  want_loss = lambda f, y: jnp.sum(jnp.sin(lax_convt(y, f, layers.FEATURE_UP_CROP)))
  want = jnp.stack([jax.grad(want_loss)(f, yi) for yi in y])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv3x3_matches_zero_padded_correlation(rng):
  x, k = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((3, 3, 3, 2))
  b = rng.standard_normal(2)
  got = layers.conv3x3(*(jnp.asarray(a, jnp.float32) for a in (x, k, b)))
  np.testing.assert_allclose(got, np_conv3x3(x, k, b), atol=1e-4)


def test_bilinear_image_upsampler_interpolates_a_ramp():
  # Bilinear 2x upsampling of a ramp x[i] = i puts HR pixel 2i at i - 1/4 and 2i+1 at i + 1/4.
  ramp = jnp.broadcast_to(jnp.arange(6.0)[:, None], (6, 6))[None, :, :, None]
  kernel = layers.bilinear_init(None, (4, 4, 1, 1))
  up = layers.conv_transpose2x(ramp, kernel, layers.IMAGE_UP_CROP)[0, :, :, 0]
  want = (jnp.arange(12) - 0.5) / 2
  np.testing.assert_allclose(up[1:-1, 1:-1], jnp.broadcast_to(want[1:-1, None], (10, 10)),
                             atol=1e-6)


# ---- parameter counts (the official files hold exactly these numbers of values) ----

@pytest.mark.parametrize("name, count", [("lapsrn_x2", 407_441), ("lapsrn_x4", 814_242),
                                         ("lapsrn_x8", 667_123)])
def test_lapsrn_parameter_count(name, count):
  assert n_params(create_model(name)) == count


@pytest.mark.parametrize("recursions", [2, 5, 8])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_ms_lapsrn_parameter_count_is_independent_of_recursions_and_scale(recursions, scale):
  assert n_params(create_model(f"ms_lapsrn_d5r{recursions}"), scale) == 222_801


@pytest.mark.parametrize("tie_to", [1, 3, 5])
def test_cms_lapsrn_parameter_count(tie_to):
  model = create_model(f"cms_lapsrn_d5r8_conv{tie_to}")
  assert n_params(model, 2) == n_params(model, 8) == 185_938 == 222_801 - 3 * 3 * 64 * 64 + 1


# ---- registry ----

def test_create_model_parses_names_and_overrides():
  assert create_model("lapsrn_x8") == LapSRN(levels=3, depth=5)
  assert create_model("lapsrn_x4") == LapSRN(levels=2, depth=10)
  assert create_model("ms_lapsrn_d5r2") == MSLapSRN(depth=5, recursions=2)
  assert create_model("cms_lapsrn_d5r8_conv5") == CMSLapSRN(depth=5, recursions=8, tie_to=5)
  assert create_model("ms_lapsrn", depth=2, recursions=1) == MSLapSRN(depth=2, recursions=1)
  with pytest.raises(ValueError, match="unknown model"):
    create_model("srcnn")
  with pytest.raises(ValueError, match="no field"):
    create_model("ms_lapsrn", levels=2)


# ---- forward geometry ----

TINY = dict(features=8)


@pytest.fixture(scope="module")
def tiny_models():
  return {"lapsrn": create_model("lapsrn", levels=3, depth=1, **TINY),
          "ms": create_model("ms_lapsrn", depth=2, recursions=2, **TINY),
          "cms": create_model("cms_lapsrn", depth=2, recursions=2, tie_to=2, pad=2, **TINY)}


@pytest.mark.parametrize("kind", ["lapsrn", "ms", "cms"])
def test_every_level_has_the_right_shape(tiny_models, kind):
  model = tiny_models[kind]
  lr = jnp.asarray(np.random.default_rng(1).random((2, 5, 7, 1)), jnp.float32)  # odd sizes, batch 2
  params = random_params(model, 8)
  for scale in (2, 4, 8):
    outs = jax.eval_shape(lambda p, x: model.apply({"params": p}, x, scale=scale), params, lr)
    shapes = [o.shape for o in outs]
    assert shapes == [(2, 5 * 2 ** l, 7 * 2 ** l, 1) for l in range(1, scale.bit_length())]
  run = jax.jit(lambda p, x: model.apply({"params": p}, x, scale=8))
  outs = run(params, lr)
  assert all(bool(jnp.all(jnp.isfinite(o))) for o in outs)
  # batch items are independent: swapping them swaps the outputs
  np.testing.assert_allclose(run(params, lr[::-1])[-1][::-1], outs[-1], atol=1e-5)


@pytest.mark.parametrize("kind", ["lapsrn", "ms", "cms"])
@pytest.mark.parametrize("size", [(5, 7), (17, 9), (33, 40)])
def test_masked_canvas_output_equals_the_image_alone(tiny_models, kind, size):
  """`valid_hw`: on a larger zero canvas every level (2x, 4x, 8x) equals the model run on the
  image alone in the image's region, and is zero elsewhere."""
  model = tiny_models[kind]
  params = random_params(model, 8, seed=8)
  h, w = size
  lr = np.random.default_rng(9).random((1, h, w, 1)).astype(np.float32)
  canvas = np.zeros((1, 48, 48, 1), np.float32)
  canvas[:, :h, :w] = lr
  canvas[:, h:, w:] = 0.5  # whatever is outside the region must not matter
  alone = jax.jit(lambda p, x: model.apply({"params": p}, x, scale=8))(params, lr)
  masked = jax.jit(lambda p, x, v: model.apply({"params": p}, x, scale=8, valid_hw=v))(
      params, canvas, jnp.asarray([h, w]))
  for level, (a, m) in enumerate(zip(alone, masked), 1):
    f = 2 ** level
    np.testing.assert_allclose(m[:, :f * h, :f * w], a, rtol=0, atol=1e-5)
    assert float(jnp.abs(m).sum()) == pytest.approx(float(jnp.abs(m[:, :f * h, :f * w]).sum()))


@pytest.mark.parametrize("kind", ["ms", "cms"])
def test_masked_canvas_takes_one_region_per_image(tiny_models, kind):
  """`valid_hw` `[N, 2]`: images of different sizes in one batch, each exact in its region."""
  model = tiny_models[kind]
  params = random_params(model, 4, seed=10)
  rng = np.random.default_rng(11)
  images = [rng.random((1, 6, 3, 1)).astype(np.float32),
            rng.random((1, 4, 7, 1)).astype(np.float32)]
  canvas = np.zeros((2, 8, 8, 1), np.float32)
  for i, img in enumerate(images):
    canvas[i, :img.shape[1], :img.shape[2]] = img[0]
  valid = jnp.asarray([img.shape[1:3] for img in images])
  masked = model.apply({"params": params}, canvas, scale=4, valid_hw=valid)[-1]
  for i, img in enumerate(images):
    alone = model.apply({"params": params}, img, scale=4)[-1]
    np.testing.assert_allclose(masked[i:i + 1, :4 * img.shape[1], :4 * img.shape[2]], alone,
                               atol=1e-5)


def test_bad_scale_and_input_raise(tiny_models):
  ms = tiny_models["ms"]
  lr = jnp.zeros((1, 4, 4, 1))
  params = random_params(ms, 2)
  with pytest.raises(ValueError, match="power of two"):
    ms.apply({"params": params}, lr, scale=3)
  with pytest.raises(ValueError, match=r"\[N, H, W, 1\]"):
    ms.apply({"params": params}, jnp.zeros((1, 4, 4, 3)), scale=2)
  lapsrn = create_model("lapsrn", levels=1, depth=1, **TINY)
  with pytest.raises(ValueError, match="largest scale 2"):
    param_shapes(lapsrn, 4)


# ---- MS-LapSRN: recursion and sharing ----

@pytest.mark.parametrize("skip", ["SS", "DS", "NS"])
def test_recursive_block_matches_numpy_unrolled(rng, skip):
  source = rng.standard_normal((1, 4, 5, 3))
  convs = [(rng.standard_normal((3, 3, 3, 3)) * 0.3, rng.standard_normal(3) * 0.1)
           for _ in range(2)]
  x = source
  for _ in range(3):
    h = x
    for k, b in convs:
      h = np_conv3x3(np_lrelu(h), k, b)
    x = h + source if skip == "SS" else h + x if skip == "DS" else h
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  got = recursive_block(f32(source), [(f32(k), f32(b)) for k, b in convs], 3, skip)
  np.testing.assert_allclose(got, x, rtol=1e-4, atol=1e-4)


def test_ms_lapsrn_level_loop_matches_numpy_graph(rng):
  """The whole MS-LapSRN graph (input conv, R recursions, upconv, residual, img_up) in numpy."""
  model = create_model("ms_lapsrn", depth=2, recursions=2, **TINY)
  lr = rng.random((1, 3, 4, 1))
  params = random_params(model, 4, seed=1)
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  feats, image, want = np_conv3x3(lr, p["input_conv"]["kernel"], p["input_conv"]["bias"]), lr, []
  convs = [(p[f"conv{i}"]["kernel"], p[f"conv{i}"]["bias"]) for i in (1, 2)]
  for _ in range(2):  # levels
    x = feats
    for _ in range(2):  # recursions, shared-source skip
      h = x
      for k, b in convs:
        h = np_conv3x3(np_lrelu(h), k, b)
      x = h + feats
    feats = np_convt(np_lrelu(x), p["upconv"]["kernel"], layers.FEATURE_UP_CROP)
    feats = feats + p["upconv"]["bias"]
    image = np_convt(image, p["img_up"]["kernel"], layers.IMAGE_UP_CROP) + np_conv3x3(
        feats, p["residual_conv"]["kernel"], p["residual_conv"]["bias"])
    want.append(image)
  run = jax.jit(lambda p, x: model.apply({"params": p}, x, scale=4))
  got = run(params, jnp.asarray(lr, jnp.float32))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_lapsrn_level_loop_matches_numpy_graph(rng):
  """LapSRN (post-activation, per-level parameters) in numpy, 2 levels."""
  model = create_model("lapsrn", levels=2, depth=2, **TINY)
  lr = rng.random((1, 3, 4, 1))
  params = random_params(model, seed=1)
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  feats = np_lrelu(np_conv3x3(lr, p["input_conv"]["kernel"], p["input_conv"]["bias"]))
  image, want = lr, []
  for name in ("level_2x", "level_4x"):
    q = p[name]
    for i in (1, 2):
      feats = np_lrelu(np_conv3x3(feats, q[f"conv{i}"]["kernel"], q[f"conv{i}"]["bias"]))
    feats = np_convt(feats, q["upconv"]["kernel"], layers.FEATURE_UP_CROP) + q["upconv"]["bias"]
    feats = np_lrelu(feats)
    image = np_convt(image, q["img_up"]["kernel"], layers.IMAGE_UP_CROP) + np_conv3x3(
        feats, q["residual_conv"]["kernel"], q["residual_conv"]["bias"])
    want.append(image)
  got = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, jnp.asarray(lr, jnp.float32))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_ms_lapsrn_shares_one_parameter_set(tiny_models):
  model = tiny_models["ms"]
  lr = jnp.asarray(np.random.default_rng(2).random((1, 4, 4, 1)), jnp.float32)
  params = random_params(model, 8)
  assert sorted(params) == ["conv1", "conv2", "img_up", "input_conv", "residual_conv", "upconv"]
  bumped = {**params, "conv2": {**params["conv2"], "kernel": params["conv2"]["kernel"] * 1.1}}
  run = jax.jit(lambda p: model.apply({"params": p}, lr, scale=8))
  before, after = run(params), run(bumped)
  # one shared kernel: changing it changes every level's output
  assert all(float(jnp.max(jnp.abs(a - b))) > 1e-6 for a, b in zip(before, after))


# ---- CMS-LapSRN: true tying, the transposed-conv limit, a training step ----

class UntiedCMS(CMSLapSRN):
  """CMS-LapSRN whose upsampler reads its own copy of the kernel (`untied_kernel`)."""

  def setup(self):
    super().setup()
    f = self.features
    self.untied = self.param("untied_kernel", layers.he_normal, (3, 3, f, f))

  def tied_kernel(self):
    return self.untied


@pytest.fixture(scope="module")
def cms_case():
  model = create_model("cms_lapsrn", depth=1, recursions=1, tie_to=1, pad=3, features=6)
  params = random_params(model, 2, seed=3, std=0.3)
  lr = jnp.asarray(np.random.default_rng(4).random((2, 4, 5, 1)), jnp.float32)
  return model, params, lr


def test_cms_tied_kernel_gradient_is_the_sum_of_its_two_uses(cms_case):
  """The tied kernel's gradient equals the sum of the gradients of its two uses (block +
  upsampler), taken from an untied copy whose upsampler reads its own copy of the kernel."""
  model, params, lr = cms_case
  weight = jnp.asarray(np.random.default_rng(5).standard_normal((2, 8, 10, 1)), jnp.float32)

  def loss_fn(m):
    return lambda p: jnp.sum(m.apply({"params": p}, lr, scale=2)[-1] * weight)

  untied = UntiedCMS(**{f.name: getattr(model, f.name) for f in dataclasses.fields(CMSLapSRN)
                        if f.name not in ("parent", "name")})
  untied_params = {**params, "untied_kernel": params["conv1"]["kernel"]}
  value, grads = jax.jit(jax.value_and_grad(loss_fn(model)))(params)
  untied_value, untied_grads = jax.jit(jax.value_and_grad(loss_fn(untied)))(untied_params)
  np.testing.assert_allclose(value, untied_value, rtol=1e-5)
  g_tied = grads["conv1"]["kernel"]
  g_block, g_up = untied_grads["conv1"]["kernel"], untied_grads["untied_kernel"]
  # both uses matter
  assert float(jnp.linalg.norm(g_up)) > 0.05 * float(jnp.linalg.norm(g_block)) > 0
  np.testing.assert_allclose(g_tied, g_block + g_up, rtol=1e-3,
                             atol=1e-4 * float(jnp.abs(g_tied).max()))


@pytest.mark.timeout(300)
def test_cms_training_step_compiles_and_runs_on_cpu():
  """A jitted value-and-grad of an all-levels Charbonnier loss at 8x: three grid sizes in one
  factorisation call (the XLA-CPU hang pitfall), recursions through the scan."""
  model = create_model("cms_lapsrn", depth=1, recursions=2, tie_to=1, pad=3, features=6)
  params = random_params(model, 8, seed=6)
  lr = jnp.asarray(np.random.default_rng(7).random((2, 4, 5, 1)), jnp.float32)

  def loss(p):
    return sum(jnp.sum(jnp.sqrt(o ** 2 + 1e-6)) for o in model.apply({"params": p}, lr, scale=8))

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(float(value))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
  assert float(jnp.abs(grads["upconv"]["theta"])) > 0
  assert float(jnp.abs(grads["conv1"]["kernel"]).max()) > 0


def test_cms_precomputed_factor_equals_factorising_in_the_call(cms_case):
  """One factor (`method="factor"`) serves every scale and every input size."""
  model, params, lr = cms_case
  factor = jax.jit(lambda p: model.apply({"params": p}, method="factor"))(params)
  assert factor.window == model.solve_tile + 2 * model.solve_halo
  run = jax.jit(lambda p, x, f: model.apply({"params": p}, x, scale=8, factor=f))
  for x in (lr, lr[:1, :3, :2]):
    for want, got in zip(jax.jit(lambda p, x: model.apply({"params": p}, x, scale=8))(params, x),
                         run(params, x, factor)):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_cms_output_depends_on_the_input_within_its_receptive_radius(cms_case):
  """The local solve gives CMS-LapSRN a finite reach: a change of the LR input moves no output
  pixel further than `model.receptive_radius(2)` LR pixels away (the image edges are far)."""

  model, params, _ = cms_case
  radius = model.receptive_radius(2)
  size = 2 * radius + 12
  x = np.random.default_rng(12).random((1, size, size, 1)).astype(np.float32)
  bumped = x.copy()
  bumped[0, size // 2, size // 2, 0] += 1.0
  run = jax.jit(lambda p, v: model.apply({"params": p}, v, scale=2)[-1])
  diff = np.abs(np.asarray(run(params, bumped) - run(params, x)))[0, :, :, 0]
  rows, cols = np.nonzero(diff > 1e-6 * diff.max())
  assert diff.max() > 0
  reach = max(np.abs(rows // 2 - size // 2).max(), np.abs(cols // 2 - size // 2).max())
  assert reach <= radius


def test_cms_params_hold_no_upconv_kernel(cms_case):
  _, params, _ = cms_case
  assert sorted(params["upconv"]) == ["bias", "theta"]
  assert params["conv1"]["kernel"].shape == (3, 3, 6, 6)


def test_cms_upsampler_tends_to_the_tied_transposed_conv(rng):
  """(1 + rho) tau C^T (C C^T + rho tau I)^-1 y + b -> the MatConvNet convT with the tied kernel
  (MS-LapSRN's upsampler with upconv.kernel := the tied kernel), error O(1 / rho)."""
  kernel = jnp.asarray(rng.standard_normal((3, 3, 6, 6)) * 0.2, jnp.float32)
  bias = jnp.asarray(rng.standard_normal(6) * 0.1, jnp.float32)
  y = jnp.asarray(rng.standard_normal((2, 7, 9, 6)), jnp.float32)
  want = layers.conv_transpose2x(y, kernel, layers.FEATURE_UP_CROP, bias)
  up = jax.jit(lambda theta: tied_inverse_upsample(y, kernel, bias, theta, pad=4))
  # Interior only: at HR row/col 0 the symmetric boundary sees a mirrored LR pixel where the
  # MatConvNet convT sees zeros.
  inner = lambda a: a[:, 1:, 1:]
  errs = [float(jnp.linalg.norm(inner(up(jnp.float32(t)) - want)) / jnp.linalg.norm(inner(want)))
          for t in (3.0, 30.0, 3000.0)]
  assert errs[1] < 5e-2 and errs[2] < 5e-4
  assert errs[0] > 5 * errs[1] > 50 * errs[2]  # decays like 1 / rho


def test_cms_without_upsampler_kernel_grad_the_kernel_learns_from_the_block_only(cms_case):
  """upsampler_kernel_grad=False: same outputs, and the tied kernel's gradient is exactly the
  block's share (the untied copy's `conv1` gradient)."""
  model, params, lr = cms_case
  weight = jnp.asarray(np.random.default_rng(5).standard_normal((2, 8, 10, 1)), jnp.float32)
  fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(CMSLapSRN)
            if f.name not in ("parent", "name")}
  no_grad = CMSLapSRN(**{**fields, "upsampler_kernel_grad": False})
  untied = UntiedCMS(**fields)
  loss_fn = lambda m: lambda p: jnp.sum(m.apply({"params": p}, lr, scale=2)[-1] * weight)
  value, grads = jax.jit(jax.value_and_grad(loss_fn(no_grad)))(params)
  untied_params = {**params, "untied_kernel": params["conv1"]["kernel"]}
  want_value, want = jax.jit(jax.value_and_grad(loss_fn(untied)))(untied_params)
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  np.testing.assert_allclose(grads["conv1"]["kernel"], want["conv1"]["kernel"], rtol=1e-4,
                             atol=1e-6 * float(jnp.abs(want["conv1"]["kernel"]).max()))


def test_cms_fixed_rho_replaces_the_learned_one(cms_case):
  """fixed_rho=r: the output is the learned model's at softplus(theta) = r, whatever theta is,
  and theta gets no gradient."""
  from lapsrn_jax.models.cms_lapsrn import softplus_inverse

  model, params, lr = cms_case
  fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(CMSLapSRN)
            if f.name not in ("parent", "name")}
  fixed = CMSLapSRN(**{**fields, "fixed_rho": 0.3})
  with_theta = lambda t: {**params, "upconv": {**params["upconv"], "theta": jnp.float32(t)}}
  out_fixed = fixed.apply({"params": with_theta(5.0)}, lr, scale=2)[-1]
  out_learned = model.apply({"params": with_theta(softplus_inverse(0.3))}, lr, scale=2)[-1]
  np.testing.assert_allclose(out_fixed, out_learned, rtol=1e-5, atol=1e-6)
  grads = jax.grad(lambda p: jnp.sum(fixed.apply({"params": p}, lr, scale=2)[-1]))(params)
  assert float(grads["upconv"]["theta"]) == 0.0


def test_cms_fixed_rho_inf_is_the_limit_of_large_rho(cms_case):
  """fixed_rho=inf (the tied transposed conv, no solve) agrees with fixed_rho=1e5 away from the
  border (where the symmetric boundary differs from the convT's zeros), like the rho -> inf test."""
  import math

  model, params, lr = cms_case
  fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(CMSLapSRN)
            if f.name not in ("parent", "name")}
  inf_out = CMSLapSRN(**{**fields, "fixed_rho": math.inf}).apply({"params": params}, lr,
                                                                   scale=2)[-1]
  big_out = CMSLapSRN(**{**fields, "fixed_rho": 1e5}).apply({"params": params}, lr, scale=2)[-1]
  inner = lambda a: a[:, 2:, 2:]
  err = float(jnp.linalg.norm(inner(inf_out - big_out)) / jnp.linalg.norm(inner(inf_out)))
  assert err < 1e-3
  with pytest.raises(ValueError, match="fixed_rho"):
    CMSLapSRN(**{**fields, "fixed_rho": -1.0}).apply({"params": params}, lr, scale=2)
