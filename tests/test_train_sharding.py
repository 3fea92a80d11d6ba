"""Data parallelism (training/sharding.py, step.py): 8 devices give the 1-device step.

XLA_FLAGS=--xla_force_host_platform_device_count=8 must be set before JAX starts, so the check runs
in a subprocess. Batch 16 over scales 2/4/8 is split 6/6/4: the 6-image chunks are padded to 8 on
8 devices (zero-weight rows), which must not change the loss or the update.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).parents[1]

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
from lapsrn_jax.models import create_model
from lapsrn_jax.training import optimizer, sharding, step, state as state_lib
from lapsrn_jax.training.config import base_config

assert jax.device_count() == 8, jax.devices()
cfg = base_config().optim
cfg.learning_rate = 1e-3
model = create_model("ms_lapsrn", depth=1, recursions=1, features=4)
params = jax.device_get(jax.jit(lambda k: model.init(k, jnp.zeros((1, 2, 2, 1)), scale=8))(
    jax.random.key(0, impl="rbg"))["params"])
tx = optimizer.make_optimizer(cfg)
B, PATCH, SCALES = 16, 16, (2, 4, 8)
sizes = sharding.scale_batch_sizes(B, SCALES)
rng = np.random.default_rng(0)
batches = []
for _ in range(2):
  batch = {}
  for s, n in sizes.items():
    levels = s.bit_length() - 1
    sides = [PATCH >> (levels - 1 - l) for l in range(levels)]
    batch[f"x{s}"] = {"lr": rng.random((n, PATCH // s, PATCH // s, 1), np.float32),
                      "targets": tuple(rng.random((n, h, h, 1), np.float32) for h in sides)}
  batches.append(batch)
out = {"sizes": {str(k): v for k, v in sizes.items()}}
for ndev in (1, 8):
  mesh = sharding.make_mesh(ndev)
  st = jax.jit(lambda p: state_lib.create_train_state(p, tx),
               out_shardings=sharding.replicated(mesh))(params)
  train_step = step.make_train_step(model, tx, mesh, batch_size=B, eps=1e-3)
  losses = []
  for batch in batches:
    global_batch = sharding.shard_batch(batch, mesh, sizes)
    lr2 = global_batch["x2"]["lr"]
    out[f"x2_rows_{ndev}"] = int(lr2.shape[0])
    out[f"x2_shards_{ndev}"] = [int(sh.data.shape[0]) for sh in lr2.addressable_shards]
    out[f"x2_spec_{ndev}"] = str(lr2.sharding.spec)
    st, m = train_step(st, global_batch)
    losses.append(float(m["loss"]))
  out[f"param_devices_{ndev}"] = len(st.params["conv1"]["kernel"].sharding.device_set)
  out[f"param_replicated_{ndev}"] = bool(st.params["conv1"]["kernel"].sharding.is_fully_replicated)
  out[f"loss_{ndev}"] = losses
  flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(st.params))])
  np.save(f"params_{ndev}.npy", flat)
print("RESULT" + json.dumps(out))
"""


def test_eight_device_step_equals_one_device_step(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert out["sizes"] == {"2": 6, "4": 6, "8": 4}
  assert out["x2_rows_1"] == 6 and out["x2_rows_8"] == 8  # padded to the device count
  assert out["x2_shards_8"] == [1] * 8 and "data" in out["x2_spec_8"]
  assert out["param_devices_8"] == 8 and out["param_replicated_8"]
  np.testing.assert_allclose(out["loss_8"], out["loss_1"], rtol=1e-5)
  p1, p8 = np.load(tmp_path / "params_1.npy"), np.load(tmp_path / "params_8.npy")
  assert np.max(np.abs(p8 - p1)) <= 1e-5 * np.max(np.abs(p1))
  assert np.linalg.norm(p8 - p1) <= 1e-5 * np.linalg.norm(p1)


def test_run_batches_are_the_streams_batches_k_onward_sharded_with_unit_weights():
  import jax

  from lapsrn_jax.data import pipeline
  from lapsrn_jax.training import sharding
  from lapsrn_jax.training.config import base_config

  config = base_config()
  config.data.train = "skimage:train"
  config.train.update(batch_size=3, patch_size=16, scales=(2, 4))
  got = sharding.run_batches(config, 2, 2, sharding.make_mesh())
  it = pipeline.make_train_iterator(dict(config.data.to_dict()), global_batch_size=3,
                                    scales=(2, 4), patch_size=16, seed=config.seed)
  expected = [next(it) for _ in range(4)][2:]
  assert len(got) == 2
  for batch, ref in zip(got, expected):
    assert sorted(batch) == sorted(ref) == ["x2", "x4"]
    for key, chunk in ref.items():
      np.testing.assert_array_equal(jax.device_get(batch[key]["lr"]), chunk["lr"])
      for t, t_ref in zip(batch[key]["targets"], chunk["targets"]):
        np.testing.assert_array_equal(jax.device_get(t), t_ref)
      np.testing.assert_array_equal(jax.device_get(batch[key]["weight"]),
                                    np.ones(chunk["lr"].shape[0], np.float32))
  np.testing.assert_raises(AssertionError, np.testing.assert_array_equal,
                           jax.device_get(got[0]["x2"]["lr"]), jax.device_get(got[1]["x2"]["lr"]))
