"""Config files and `validate_config` (training/config.py): the recipe, bad values rejected."""

import importlib.util
import pathlib

import ml_collections
import pytest

from lapsrn_jax.training.config import base_config, validate_config

CONFIGS = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.py"))


def load(path: pathlib.Path, *arg: str) -> ml_collections.ConfigDict:
  """`get_config()` of a config file, or `get_config(arg)` (the `--config path:arg` form)."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*arg)


@pytest.fixture(autouse=True)
def _data_env(monkeypatch):
  monkeypatch.setenv("LAPSRN_DATA_DIR", "/nonexistent-but-set")  # validation touches no files
  # CMS configs: init_from official
  monkeypatch.setenv("LAPSRN_WEIGHTS_DIR", "/nonexistent-but-set")


def _sequences(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _sequences(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_file_is_valid_documented_and_uses_tuples(path):
  config = load(path)
  validate_config(config)
  assert all(not isinstance(v, list) for _, v in _sequences(config)), "use tuples, not lists"
  text = path.read_text()
  assert "python -m lapsrn_jax.train --config configs/" + path.name in text
  assert "Expected result" in text and "Run time" in text, path.name


def test_official_recipe_values():
  """docs/architecture.md: 291 images, 128^2, batch 64 over 2/4/8, SGD 0.9, 1e-5 /2 per 100k."""
  c = load(CONFIGS[0].parent / "ms_lapsrn_d5r8.py")
  assert c.model.name == "ms_lapsrn_d5r8" and c.init_from == ""
  assert c.data.train == "folder:$LAPSRN_DATA_DIR/T91+folder:$LAPSRN_DATA_DIR/BSDS200"
  assert (c.train.batch_size, c.train.patch_size, tuple(c.train.scales)) == (64, 128, (2, 4, 8))
  assert c.train.charbonnier_eps == 1e-3 and c.train.num_steps == 1_000_000
  o = c.optim
  assert (o.name, o.momentum, o.learning_rate, o.decay_factor, o.decay_every) == (
      "sgd", 0.9, 1e-5, 0.5, 100_000)
  assert (o.min_learning_rate, o.weight_decay, o.bias_lr_multiplier) == (1e-6, 5e-4, 0.1)
  assert c.data.scale_augmentation and c.data.data_augmentation


@pytest.mark.parametrize("conv", [1, 3, 5])
def test_cms_scratch_configs_differ_from_ms_recipe_only_in_the_model(conv):
  ms = load(CONFIGS[0].parent / "ms_lapsrn_d5r8.py").to_dict()
  path = CONFIGS[0].parent / f"cms_lapsrn_d5r8_conv{conv}.py"
  cms = load(path, "scratch").to_dict()
  assert cms.pop("model") == {"name": f"cms_lapsrn_d5r8_conv{conv}", "overrides": {}}
  ms.pop("model")
  assert cms == ms
  finetune = load(path)
  assert finetune.init_from == "official:MSLapSRN_D5R8" and finetune.upsampler_fit.steps > 0
  assert finetune.data.to_dict() == ms["data"]
  assert (finetune.train.batch_size, finetune.train.patch_size) == (64, 128)


def _with(**fields) -> ml_collections.ConfigDict:
  config = base_config()
  for dotted, value in fields.items():
    node = config
    *parents, leaf = dotted.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.mark.parametrize("fields, message", [
    ({"train__scales": (3,)}, "train.scales"),
    ({"train__scales": (4, 2)}, "train.scales"),
    ({"train__scales": ()}, "train.scales"),
    ({"train__patch_size": 100}, "divisible by the largest scale 8"),
    ({"train__batch_size": 2}, "batch_size"),
    ({"train__batch_size": 4}, "batch_size"),  # 2 + 2 + 0: the 8x chunk would be empty
    ({"train__num_steps": 0}, "train.num_steps"),
    ({"model__name": "srcnn"}, "unknown model"),
    ({"model__name": "lapsrn_x2"}, "pyramid levels"),  # 2x model asked for 2/4/8
    ({"optim__name": "rmsprop"}, "optim.name"),
    ({"optim__learning_rate": 0.0}, "learning_rate"),
    ({"optim__momentum": 1.0}, "momentum"),
    ({"eval__crop": 100}, "eval.crop"),
    ({"eval__scales": (2, 16)}, "eval.scales"),
    ({"checkpoint__keep": 0}, "checkpoint.keep"),
    ({"data__train": ""}, "data.train"),
    ({"optim__learning_rate": float("inf")}, "optim.learning_rate must be a finite number"),
    ({"optim__weight_decay": float("nan")}, "optim.weight_decay must be a finite number"),
    ({"train__max_seconds": float("inf")}, "train.max_seconds must be a finite number"),
])
def test_bad_values_are_rejected_with_the_field_named(fields, message):
  with pytest.raises(ValueError, match=message):
    validate_config(_with(**fields))


def test_unknown_model_override_is_rejected():
  config = base_config()
  config.model.overrides.widht = 32
  with pytest.raises(ValueError, match="widht"):
    validate_config(config)


def test_batch_must_divide_over_devices():
  config = _with(train__batch_size=66)  # 22 per scale
  validate_config(config, num_devices=1)
  with pytest.raises(ValueError, match="number of devices"):
    validate_config(config, num_devices=4)


def test_unset_data_env_var_is_rejected(monkeypatch):
  monkeypatch.delenv("LAPSRN_DATA_DIR")
  with pytest.raises(ValueError, match="LAPSRN_DATA_DIR"):
    validate_config(base_config())


def test_locked_config_rejects_unknown_keys():
  config = base_config()
  config.lock()
  with pytest.raises(AttributeError):
    config.train.num_stpes = 10


def test_cms_finetune_config_args_set_schedule_and_ablation_overrides():
  import math

  from lapsrn_jax.training.config import cms_finetune_config

  c = cms_finetune_config(3)
  assert c.model.name == "cms_lapsrn_d5r8_conv3" and c.init_from == "official:MSLapSRN_D5R8"
  assert c.optim.name == "adam" and c.upsampler_fit.steps > 0 and c.upsampler_fit.train_kernel
  c = cms_finetune_config(1, "sgd,rho_inf")
  assert c.optim.name == "sgd" and c.model.overrides.fixed_rho == math.inf
  assert (c.optim.learning_rate, c.optim.decay_every) == (1e-5, 100_000)  # the official SGD
  c = cms_finetune_config(5, "no_upsampler_kernel_grad")
  assert c.model.overrides.upsampler_kernel_grad is False and not c.upsampler_fit.train_kernel
  c = cms_finetune_config(3, "scratch")
  assert c.init_from == "" and c.upsampler_fit.steps == 0
  validate_config(cms_finetune_config(3, "pad0"))
  c = cms_finetune_config(3, "cpu")
  validate_config(c)
  assert (c.train.batch_size, c.train.patch_size, c.init_from) == (8, 64, "official:MSLapSRN_D5R8")
  with pytest.raises(ValueError, match="unknown config arg.*'pad1'"):
    cms_finetune_config(3, "pad1")


def test_ms_finetune_control_differs_from_the_cms_recipe_only_in_model_and_stage1():
  configs = CONFIGS[0].parent
  control = load(configs / "ms_lapsrn_d5r8.py", "finetune")
  validate_config(control)
  cms = load(configs / "cms_lapsrn_d5r8_conv3.py").to_dict()
  control = control.to_dict()
  assert control.pop("model") == {"name": "ms_lapsrn_d5r8", "overrides": {}}
  assert control.pop("upsampler_fit")["steps"] == 0  # nothing to repair: no stage 1
  cms.pop("model")
  cms.pop("upsampler_fit")
  assert control == cms
  with pytest.raises(ValueError, match="unknown config arg 'adam'"):
    load(configs / "ms_lapsrn_d5r8.py", "adam")


@pytest.mark.parametrize("field,value,match", [
    ("train.max_seconds", -1.0, "max_seconds"),
    ("train.max_cpu_seconds", -5.0, "max_cpu_seconds"),
    ("upsampler_fit.patch_size", 30, "upsampler_fit.patch_size"),
    ("upsampler_fit.steps", -3, "upsampler_fit.steps"),
])
def test_bad_budget_and_stage1_fields_are_rejected(field, value, match):
  from lapsrn_jax.training.config import cms_finetune_config

  c = cms_finetune_config(3)
  group, key = field.split(".")
  c[group][key] = value
  with pytest.raises(ValueError, match=match):
    validate_config(c)
