"""Official MatConvNet weight import: architecture inference, layouts, validation, MS -> CMS."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
from conftest import require_file
from flax import traverse_util

from lapsrn_jax.models import LapSRN, MSLapSRN, create_model
from lapsrn_jax.weights import cms_params_from_ms, load_official, read_official

# (file, class, architecture, number of values stored in the file; docs/architecture.md).
OFFICIAL = [
    ("LapSRN_x2.mat", LapSRN, dict(levels=1, depth=10), 407_441),
    ("LapSRN_x4.mat", LapSRN, dict(levels=2, depth=10), 814_242),
    ("LapSRN_x8.mat", LapSRN, dict(levels=3, depth=5), 667_123),
    ("MSLapSRN_D5R2.mat", MSLapSRN, dict(depth=5, recursions=2), 222_801),
    ("MSLapSRN_D5R5.mat", MSLapSRN, dict(depth=5, recursions=5), 222_801),
    ("MSLapSRN_D5R8.mat", MSLapSRN, dict(depth=5, recursions=8), 222_801),
]


def count(tree) -> int:
  return sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("name, cls, arch, n", OFFICIAL)
def test_load_official_infers_the_architecture_and_keeps_every_value(weights_dir, name, cls, arch,
                                                                     n):
  path = require_file(weights_dir, name)
  model, params = load_official(path)
  assert model == cls(**arch)
  raw, _ = read_official(path)
  assert count(params) == count(list(raw.values())) == n
  # every stored value lands somewhere unchanged (multiset of values preserved)
  ours = np.sort(np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(params)]))
  theirs = np.sort(np.concatenate([np.ravel(a) for a in raw.values()]).astype(np.float32))
  np.testing.assert_array_equal(ours, theirs)


def test_lapsrn_levels_are_renamed_coarse_to_fine_and_singletons_restored(weights_dir):
  path = require_file(weights_dir, "LapSRN_x4.mat")
  _, params = load_official(path)
  raw, _ = read_official(path)
  # The official level2 runs first (it takes input_relu); we call it level_2x.
  np.testing.assert_array_equal(params["level_2x"]["conv1"]["kernel"], raw["level2_conv1_f"])
  np.testing.assert_array_equal(params["level_4x"]["upconv"]["kernel"], raw["level1_upconv_f"])
  assert raw["level1_residual_conv_f"].shape == (3, 3, 64)  # MATLAB dropped the trailing 1
  assert params["level_4x"]["residual_conv"]["kernel"].shape == (3, 3, 64, 1)
  assert params["level_2x"]["img_up"]["kernel"].shape == (4, 4, 1, 1)
  assert params["level_2x"]["upconv"]["bias"].shape == (64,)


@pytest.fixture(scope="module")
def d5r2_path(weights_dir):
  return require_file(weights_dir, "MSLapSRN_D5R2.mat")


def _rewrite(src, dst, edit):
  """Writes `dst` with scipy.io.savemat: `net.params` (name, value) of `src` after
  `edit([(name, value), ...]) -> list`, and `net.layers` (name) of `src`."""
  params, layers = read_official(src)
  entries = edit(list(params.items()))
  p = np.empty((1, len(entries)), dtype=[("name", "O"), ("value", "O")])
  for i, (name, value) in enumerate(entries):
    p[0, i] = (name, value)
  lay = np.empty((1, len(layers)), dtype=[("name", "O")])
  for i, name in enumerate(layers):
    lay[0, i] = (name,)
  scipy.io.savemat(dst, {"net": {"params": p, "layers": lay}})
  return dst


def test_rewritten_copy_still_loads(d5r2_path, tmp_path):
  # the savemat round trip used below is itself faithful
  model, params = load_official(_rewrite(d5r2_path, tmp_path / "same.mat", lambda p: p))
  assert model == MSLapSRN(depth=5, recursions=2)
  assert count(params) == 222_801


def test_truncated_file_raises_a_clear_error(d5r2_path, tmp_path):
  data = d5r2_path.read_bytes()
  bad = tmp_path / "MSLapSRN_D5R2.mat"
  bad.write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match="truncated or corrupt"):
    load_official(bad)


def test_missing_parameter_is_named(d5r2_path, tmp_path):
  path = _rewrite(d5r2_path, tmp_path / "missing.mat",
                  lambda p: [e for e in p if e[0] != "conv3_b"])
  with pytest.raises(ValueError, match=r"missing: \['conv3/bias'\]"):
    load_official(path)


def test_misshaped_parameter_is_named(d5r2_path, tmp_path):
  def edit(p):
    return [(n, np.zeros((3, 3, 64, 32), np.float32) if n == "upconv_f" else v) for n, v in p]
  message = r"wrong shape: \['upconv_f: stored \(3, 3, 64, 32\), expected \(3, 3, 64, 64\)"
  with pytest.raises(ValueError, match=message):
    load_official(_rewrite(d5r2_path, tmp_path / "misshaped.mat", edit))


def test_file_without_a_network_raises(tmp_path):
  scipy.io.savemat(tmp_path / "x.mat", {"x": np.ones(3)})
  with pytest.raises(ValueError, match="no 'net' variable"):
    load_official(tmp_path / "x.mat")
  with pytest.raises(FileNotFoundError):
    load_official(tmp_path / "absent.mat")


# ---- MS-LapSRN -> CMS-LapSRN ----

def _shapes(model, scale=2):
  tree = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), scale=scale))
  return {k: v.shape for k, v in traverse_util.flatten_dict(tree["params"]).items()}


@pytest.mark.parametrize("tie_to", [1, 3, 5])
def test_cms_params_from_ms_fit_the_cms_model(tie_to):
  ms = create_model("ms_lapsrn_d5r8")
  ms_params = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, 0.5, s.dtype), jax.eval_shape(
      lambda: ms.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), scale=2)))["params"]
  cms_params = cms_params_from_ms(ms_params, tie_to, rho_init=0.25)
  flat = {k: v.shape for k, v in traverse_util.flatten_dict(cms_params).items()}
  assert flat == _shapes(create_model(f"cms_lapsrn_d5r8_conv{tie_to}"))
  assert count(cms_params) == 185_938
  assert float(jax.nn.softplus(cms_params["upconv"]["theta"])) == pytest.approx(0.25, rel=1e-6)
  assert cms_params["upconv"]["bias"] is ms_params["upconv"]["bias"]
  assert cms_params[f"conv{tie_to}"] is ms_params[f"conv{tie_to}"]


def test_cms_params_from_official_ms_weights(weights_dir):
  _, ms_params = load_official(require_file(weights_dir, "MSLapSRN_D5R8.mat"))
  assert count(cms_params_from_ms(ms_params, 3)) == 185_938
  with pytest.raises(ValueError, match="tie_to=6"):
    cms_params_from_ms(ms_params, 6)
  with pytest.raises(ValueError, match="expected MS-LapSRN params"):
    cms_params_from_ms(cms_params_from_ms(ms_params, 3), 3)
