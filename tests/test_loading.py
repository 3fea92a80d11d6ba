"""The one model resolver (`lapsrn_jax.load_model`): every spec, one error type, and the
inference side kept free of the training package."""

import ast
import pathlib
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

import lapsrn_jax
from conftest import require_file
from lapsrn_jax import inference, loading, upscale
from lapsrn_jax.models import CMSLapSRN, MSLapSRN, create_model
from lapsrn_jax.weights import load_official

REPO = pathlib.Path(__file__).parents[1]


def _same_params(a, b) -> None:
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_the_package_exports_the_resolver():
  assert lapsrn_jax.load_model is loading.load_model
  assert issubclass(lapsrn_jax.ModelLoadError, ValueError)


def test_official_stem_mat_path_and_official_path_give_the_same_model(weights_dir):
  path = require_file(weights_dir, "MSLapSRN_D5R2.mat")
  model, params = load_official(path)
  for spec in ("official:MSLapSRN_D5R2", f"official:{path}", str(path)):
    got_model, got_params = loading.load_model(spec, weights_dir=weights_dir)
    assert isinstance(got_model, MSLapSRN) and got_model == model
    _same_params(got_params, params)
    assert loading.resolve_model(spec, weights_dir=weights_dir)[2] == "official:MSLapSRN_D5R2"


def test_official_stem_without_a_weights_folder_is_downloaded_once(weights_dir, weights_server,
                                                                   tmp_path, monkeypatch):
  shutil.copy(require_file(weights_dir, "MSLapSRN_D5R2.mat"), weights_server.folder)
  monkeypatch.delenv("LAPSRN_WEIGHTS_DIR")
  monkeypatch.setenv("LAPSRN_CACHE_DIR", str(tmp_path / "cache"))
  _, params = loading.load_model("official:MSLapSRN_D5R2")
  _, again = loading.load_model("official:MSLapSRN_D5R2")
  assert weights_server.seen == ["/release/MSLapSRN_D5R2.mat"]  # the second use is offline
  _same_params(again, params)
  with pytest.raises(loading.ModelLoadError, match="downloads are off"):
    loading.load_model("official:MSLapSRN_D5R5", download=False)


def _write_workdir(path: pathlib.Path, name: str, overrides: dict, params) -> None:
  """A minimal training workdir: config.json and one checkpoint at step 3 (validated)."""
  from lapsrn_jax.training import checkpointing  # pylint: disable=import-outside-toplevel

  path.mkdir()
  config = ml_collections.ConfigDict({"model": {"name": name, "overrides": overrides}})
  checkpointing.write_config(path, config)
  manager = checkpointing.make_manager(path, keep=1, async_save=False)
  checkpointing.save(manager, 3, {"step": np.int32(3), "params": params}, {"val_psnr": 30.0})
  manager.wait_until_finished()
  manager.close()


def _tiny_run(path: pathlib.Path):
  """`(model, params)` of a 4-feature MS-LapSRN, saved as the workdir `path` (step 3)."""
  overrides = {"depth": 1, "recursions": 1, "features": 4}
  model = create_model("ms_lapsrn", **overrides)
  params = jax.tree.map(np.asarray,
                        model.init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32),
                                   scale=2)["params"])
  _write_workdir(path, "ms_lapsrn", overrides, params)
  return model, params


def test_workdir_checkpoints_folder_and_one_checkpoint_load_the_trained_params_and_name_the_step(
    tmp_path):
  model, params = _tiny_run(tmp_path / "run")
  for spec in ("run", "run/checkpoints", "run/checkpoints/3"):
    got_model, got_params = loading.load_model(tmp_path / spec)
    assert got_model == model
    _same_params(got_params, params)
    assert loading.resolve_model(tmp_path / spec)[2] == "ours:run@3"


def test_the_fingerprint_names_the_weights_not_the_way_they_were_loaded(tmp_path):
  _, params = _tiny_run(tmp_path / "run")
  restored = loading.load_model(tmp_path / "run")[1]
  fingerprint = inference.params_fingerprint(params)
  assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 16
  assert inference.params_fingerprint(restored) == fingerprint  # restored from the checkpoint
  assert inference.params_fingerprint(jax.tree.map(jax.numpy.asarray, params)) == fingerprint
  reordered = dict(reversed(list(params.items())))
  assert list(reordered) != list(params) and inference.params_fingerprint(reordered) == fingerprint
  # One bit of one parameter, a dtype, or a name changes it.
  leaves, treedef = jax.tree.flatten(params)
  flipped = leaves[-1].copy()
  flipped.reshape(-1).view(np.uint32)[0] ^= 1
  assert inference.params_fingerprint(jax.tree.unflatten(treedef, [*leaves[:-1], flipped])) != (
      fingerprint)
  as64 = jax.tree.map(lambda x: x.astype(np.float64), params)
  assert inference.params_fingerprint(as64) != fingerprint
  renamed = {("x" + k): v for k, v in params.items()}
  assert inference.params_fingerprint(renamed) != fingerprint


@pytest.mark.parametrize("spec, message", [
    ("bicubik", "unknown model 'bicubik'"),
    ("", "unknown model ''"),
    ("official:", "needs the weights' name"),
    ("official:Nope", "cannot load model 'official:Nope': unknown official weights 'Nope'"),
    ("missing.mat", "cannot load model 'missing.mat': no such file"),
])
def test_bad_specs_raise_one_error_type_naming_the_spec(spec, message):
  with pytest.raises(loading.ModelLoadError, match=message):
    loading.load_model(spec)


def test_a_folder_that_is_not_a_workdir_and_a_corrupt_mat_are_model_load_errors(tmp_path):
  with pytest.raises(loading.ModelLoadError, match="is not a training workdir"):
    loading.load_model(tmp_path)
  (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
  with pytest.raises(loading.ModelLoadError, match="cannot load model .*broken.mat"):
    loading.load_model(tmp_path / "broken.mat")


def test_init_from_converts_ms_weights_for_a_cms_model(weights_dir):
  """Training's `init_from` goes through the same resolver; MS weights become CMS params."""
  from lapsrn_jax.training import initialization  # pylint: disable=import-outside-toplevel

  model = create_model("cms_lapsrn_d5r8_conv3")
  expected = jax.eval_shape(
      lambda: model.init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32), scale=2))["params"]
  require_file(weights_dir, "MSLapSRN_D5R2.mat")
  params = initialization._loaded_params("official:MSLapSRN_D5R2", model, expected)
  assert isinstance(model, CMSLapSRN) and set(params["upconv"]) == {"bias", "theta"}
  _, ms = load_official(weights_dir / "MSLapSRN_D5R2.mat")
  np.testing.assert_array_equal(params["conv3"]["kernel"], ms["conv3"]["kernel"])


def _imports(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return names


def test_only_the_training_package_and_the_train_cli_import_it():
  package = REPO / "lapsrn_jax"
  allowed = {package / "train.py"} | set((package / "training").rglob("*.py"))
  offenders = sorted(str(p.relative_to(REPO)) for p in package.rglob("*.py")
                     if p not in allowed and any(n.startswith("lapsrn_jax.training")
                                                 for n in _imports(p)))
  assert not offenders


def test_running_a_model_loads_nothing_from_the_training_package(tmp_path):
  code = ("import sys, lapsrn_jax.evaluate, lapsrn_jax.upscale, lapsrn_jax.loading, "
          "lapsrn_jax.workdir, lapsrn_jax.inference\n"
          "print(sorted(m for m in sys.modules if m.startswith('lapsrn_jax.training')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=REPO)
  assert out.stdout.strip() == "[]"


def test_upscale_cli_downloads_the_default_model_on_first_use(weights_dir, weights_server,
                                                              tmp_path, monkeypatch):
  """`python -m lapsrn_jax.upscale photo.png --scale 4` with no weights folder: the first run
  downloads MSLapSRN_D5R8 (verified), the second runs offline."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  shutil.copy(require_file(weights_dir, "MSLapSRN_D5R8.mat"), weights_server.folder)
  monkeypatch.delenv("LAPSRN_WEIGHTS_DIR")
  monkeypatch.setenv("LAPSRN_CACHE_DIR", str(tmp_path / "cache"))
  photo = tmp_path / "photo.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8)).save(photo)
  for run in range(2):
    assert upscale.main([str(photo), "--scale", "4", "--output", str(tmp_path / f"out{run}"),
                         "--no-progress"]) == 0
    assert Image.open(tmp_path / f"out{run}" / "photo_x4.png").size == (40, 48)
  assert weights_server.seen == ["/release/MSLapSRN_D5R8.mat"]
