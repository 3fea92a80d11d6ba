"""The training step's loss: CMS-LapSRN factorises once per step, for every scale and level."""

import jax
import jax.numpy as jnp
import numpy as np

from lapsrn_jax import ops
from lapsrn_jax.models import create_model
from lapsrn_jax.training import losses, step


def _batch(rng):
  """x2 (LR 8x8, one level) and x4 (LR 4x4, two levels) chunks."""
  batch = {}
  for s, n in ((2, 2), (4, 1)):
    lr = rng.uniform(size=(n, 16 // s, 16 // s, 1)).astype(np.float32)
    targets = tuple(rng.uniform(size=(n, 16 // s << l, 16 // s << l, 1)).astype(np.float32)
                    for l in range(1, s.bit_length()))
    batch[f"x{s}"] = {"lr": jnp.asarray(lr), "targets": targets, "weight": jnp.ones((n,))}
  return batch


def test_cms_loss_shares_one_factorisation_and_matches_per_chunk_solves(monkeypatch):
  model = create_model("cms_lapsrn", depth=1, recursions=1, tie_to=1, pad=2, features=6)
  rng = np.random.default_rng(0)
  batch = _batch(rng)
  params = model.init(jax.random.key(0), batch["x4"]["lr"], scale=4)["params"]
  calls = []
  real = ops.factorize_local
  monkeypatch.setattr(ops, "factorize_local", lambda *a, **k: calls.append(1) or real(*a, **k))
  loss_fn = step.make_loss_fn(model, batch_size=3, eps=1e-3)
  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
  assert len(calls) == 1  # one factor for the x2 and x4 chunks and all their levels

  def per_chunk(p):  # the model factorising inside each call, the oracle
    total = 0.0
    for key, chunk in batch.items():
      out = model.apply({"params": p}, chunk["lr"], scale=int(key[1:]))
      total = total + jnp.sum(losses.pyramid_loss_per_image(out, chunk["targets"]))
    return total / 3

  want, want_grads = jax.value_and_grad(per_chunk)(params)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-5 * float(jnp.abs(w).max()) + 1e-8)


def test_models_without_a_solve_get_no_shared_factor():
  lr = jnp.zeros((1, 8, 8, 1), jnp.float32)
  for model in (create_model("lapsrn", levels=1, depth=1, features=4),
                create_model("ms_lapsrn", depth=1, recursions=1, features=4),
                create_model("cms_lapsrn", depth=1, recursions=1, features=4, tie_to=1,
                             fixed_rho=float("inf"))):
    params = model.init(jax.random.key(0), lr, scale=2)["params"]
    assert step.shared_factor(model, params) is None
