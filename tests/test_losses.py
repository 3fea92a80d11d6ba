"""Charbonnier pyramid loss vs float64 numpy oracles (training/losses.py, step.make_loss_fn)."""

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax.models import create_model
from lapsrn_jax.training import losses, step


def np_charbonnier(d, eps):
  return np.sqrt(np.asarray(d, np.float64) ** 2 + eps ** 2)


def test_charbonnier_matches_float64_formula():
  d = np.random.default_rng(0).normal(size=(3, 5, 5, 1)).astype(np.float32)
  np.testing.assert_allclose(losses.charbonnier(d, 1e-3), np_charbonnier(d, 1e-3), rtol=1e-6)
  np.testing.assert_allclose(losses.charbonnier(np.zeros(2, np.float32), 1e-3), 1e-3, rtol=1e-6)


def test_pyramid_loss_sums_pixels_and_levels_per_image():
  rng = np.random.default_rng(1)
  outs = [rng.random((2, 4, 4, 1), np.float32), rng.random((2, 8, 8, 1), np.float32)]
  tgts = [rng.random((2, 4, 4, 1), np.float32), rng.random((2, 8, 8, 1), np.float32)]
  got = losses.pyramid_loss_per_image(outs, tgts, 1e-3)
  want = [sum(np_charbonnier(o[i] - t[i], 1e-3).sum() for o, t in zip(outs, tgts))
          for i in range(2)]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_zero_weight_padding_changes_neither_loss_nor_gradient():
  rng = np.random.default_rng(2)
  real = rng.random((3,), np.float32)
  padded = np.concatenate([real, rng.random((2,), np.float32)])  # 2 padding rows
  w = np.array([1, 1, 1, 0, 0], np.float32)
  loss_real = losses.batch_loss([real], [np.ones(3, np.float32)], 4)
  np.testing.assert_allclose(losses.batch_loss([padded], [w], 4), loss_real, rtol=1e-7)
  np.testing.assert_allclose(loss_real, real.sum() / 4, rtol=1e-6)
  grad = jax.grad(lambda x: losses.batch_loss([x], [w], 4))(padded)
  np.testing.assert_array_equal(grad[3:], 0.0)


def test_train_loss_is_sum_over_scales_levels_pixels_divided_by_batch():
  """loss_fn == sum over every image of every scale chunk, all levels, / B (numpy recomputation)."""
  model = create_model("ms_lapsrn", depth=1, recursions=1, features=4)
  init = jax.jit(lambda k: model.init(k, jnp.zeros((1, 2, 2, 1)), scale=4))
  params = init(jax.random.key(0, impl="rbg"))["params"]  # rbg: compiles faster on CPU
  rng = np.random.default_rng(3)
  batch = {
      "x2": {"lr": rng.random((2, 4, 4, 1), np.float32),
             "targets": (rng.random((2, 8, 8, 1), np.float32),),
             "weight": np.ones(2, np.float32)},
      "x4": {"lr": rng.random((1, 2, 2, 1), np.float32),
             "targets": (rng.random((1, 4, 4, 1), np.float32),
                         rng.random((1, 8, 8, 1), np.float32)),
             "weight": np.ones(1, np.float32)},
  }
  loss, per_scale = jax.jit(step.make_loss_fn(model, batch_size=3, eps=1e-3))(params, batch)
  apply = jax.jit(model.apply, static_argnames="scale")
  want = 0.0
  for key, chunk in batch.items():
    outs = apply({"params": params}, chunk["lr"], scale=int(key[1:]))
    want += sum(np_charbonnier(np.asarray(o) - t, 1e-3).sum()
                for o, t in zip(outs, chunk["targets"]))
  np.testing.assert_allclose(loss, want / 3, rtol=1e-5)
  np.testing.assert_allclose(sum(per_scale.values()), loss, rtol=1e-6)
