"""The optimiser reproduces MatConvNet's SGD update and the step-decay schedule (optimizer.py)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lapsrn_jax.training import optimizer
from lapsrn_jax.training.config import base_config


def official_lr(step, lr, factor, every, floor):
  return max(lr * factor ** (step // every), floor)


def test_schedule_halves_every_decay_period_down_to_the_floor():
  cfg = base_config().optim  # 1e-5, x0.5 every 100k steps, floor 1e-6
  schedule = optimizer.learning_rate_schedule(cfg)
  for s in (0, 99_999, 100_000, 199_999, 200_000, 300_000, 399_999, 400_000, 999_999):
    np.testing.assert_allclose(schedule(s), official_lr(s, 1e-5, 0.5, 100_000, 1e-6), rtol=1e-6)


def test_constant_schedule_when_decay_every_is_zero():
  cfg = base_config().optim
  cfg.decay_every = 0
  assert float(optimizer.learning_rate_schedule(cfg)(10 ** 6)) == pytest.approx(cfg.learning_rate)


def test_sgd_matches_matconvnet_update_with_bias_multiplier_and_coupled_decay():
  """s <- mu s - (g + wd w); w <- w + lr m_p s, m_p = 0.1 for biases (numpy float64 oracle)."""
  cfg = base_config().optim
  cfg.learning_rate, cfg.decay_every, cfg.min_learning_rate = 0.1, 2, 0.02
  rng = np.random.default_rng(0)
  params = {"conv1": {"kernel": rng.normal(size=(3, 3, 2, 2)), "bias": rng.normal(size=(2,))},
            "img_up": {"kernel": rng.normal(size=(4, 4, 1, 1))}}
  grads = [{k: {n: rng.normal(size=v.shape) for n, v in d.items()} for k, d in params.items()}
           for _ in range(5)]
  tx = optimizer.make_optimizer(cfg)
  p = {k: {n: jnp.asarray(v, jnp.float32) for n, v in d.items()} for k, d in params.items()}
  state = tx.init(p)
  ref = {k: dict(d) for k, d in params.items()}
  mom = {k: {n: np.zeros_like(v) for n, v in d.items()} for k, d in params.items()}
  for t, g in enumerate(grads):
    gj = {k: {n: jnp.asarray(v, jnp.float32) for n, v in d.items()} for k, d in g.items()}
    updates, state = tx.update(gj, state, p)
    p = optax.apply_updates(p, updates)
    lr = official_lr(t, 0.1, 0.5, 2, 0.02)
    for k in ref:
      for n in ref[k]:
        mom[k][n] = 0.9 * mom[k][n] - (g[k][n] + 5e-4 * ref[k][n])
        ref[k][n] = ref[k][n] + lr * (0.1 if n == "bias" else 1.0) * mom[k][n]
  for k in ref:
    for n in ref[k]:
      np.testing.assert_allclose(p[k][n], ref[k][n], rtol=2e-5, atol=1e-6)


def test_param_labels_mark_only_bias_leaves():
  params = {"conv1": {"kernel": 0, "bias": 0}, "upconv": {"bias": 0, "theta": 0}}
  assert optimizer.param_labels(params) == {
      "conv1": {"kernel": "weight", "bias": "bias"}, "upconv": {"bias": "bias", "theta": "weight"}}


def test_adam_bias_update_is_scaled_by_the_multiplier():
  cfg = base_config().optim
  cfg.name, cfg.weight_decay, cfg.learning_rate = "adam", 0.0, 1e-3
  params = {"c": {"kernel": jnp.ones((2,)), "bias": jnp.ones((2,))}}
  grads = {"c": {"kernel": jnp.array([0.5, -2.0]), "bias": jnp.array([0.5, -2.0])}}
  tx = optimizer.make_optimizer(cfg)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["c"]["bias"], 0.1 * updates["c"]["kernel"], rtol=1e-6)
  # Adam's first step is -lr * sign(g)
  np.testing.assert_allclose(updates["c"]["kernel"], [-1e-3, 1e-3], rtol=1e-4)
