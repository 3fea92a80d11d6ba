"""The one resolver of a model spec: `load_model(spec) -> (module, params)`.

Specs (what `--model` of `evaluate` / `upscale` and `init_from` of a training config accept):

- `official:<stem>`, e.g. `official:MSLapSRN_D5R8`: the authors' released weights, from
  `weights_dir` / `$LAPSRN_WEIGHTS_DIR` when the file is there, else downloaded once from the
  authors' release into the cache and verified (`lapsrn_jax.official_weights`);
- `official:<path>.mat` or a path to a `.mat` file: weights in the official MatConvNet format;
- a training workdir of ours, its `checkpoints/` folder or one `checkpoints/<step>` folder
  (`lapsrn_jax.workdir.load_trained`: the best checkpoint by validation PSNR, else the latest).

`resolve_model(spec)` also names what it loaded: `official:<stem>` for official weights and
`.mat` files, `ours:<workdir name>@<step>` for a training run (the checkpoint actually restored,
so a result can say which one it came from; `inference.params_fingerprint` names the weights
themselves).

The module is built from what the file or workdir says (LapSRN levels and depth, MS-LapSRN depth
and recursions, the trained config); params are numpy arrays in host memory. Every failure is a
`ModelLoadError` (a `ValueError`) whose message starts with the spec.
"""

import os
import pathlib

__all__ = ["OFFICIAL", "ModelLoadError", "load_model", "resolve_model"]

OFFICIAL = "official:"
_SPECS = (f"{OFFICIAL}<stem> (e.g. {OFFICIAL}MSLapSRN_D5R8), a .mat file, or a training workdir "
          "or checkpoint")


class ModelLoadError(ValueError):
  """A model spec that does not name a loadable model (the message says why and what to use)."""


def load_model(spec: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None,
               download: bool = True):
  """`(module, params)` for a model spec (see the module doc).

  Args:
    spec: `official:<stem>`, `official:<file.mat>`, a `.mat` path, or a workdir / checkpoint path.
    weights_dir: folder of the official `.mat` files (default `$LAPSRN_WEIGHTS_DIR`).
    download: fetch missing official weights from the authors' release (verified, cached).

  Raises:
    ModelLoadError: unknown spec, missing or corrupt weights, a folder that is not a workdir.
  """
  module, params, _ = resolve_model(spec, weights_dir=weights_dir, download=download)
  return module, params


def resolve_model(spec: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None,
                  download: bool = True):
  """`(module, params, name)`: `load_model` and the name of what it loaded (see the module doc),
  e.g. `official:MSLapSRN_D5R8` or `ours:cms_conv3_cpu@4500`."""
  text = os.fspath(spec).strip()
  try:
    if text.startswith(OFFICIAL):
      stem = text[len(OFFICIAL):]
      if not stem:
        raise ValueError(f"'{OFFICIAL}' needs the weights' name, e.g. {OFFICIAL}MSLapSRN_D5R8")
      return (*_load_mat(_official_file(stem, weights_dir, download)),
              OFFICIAL + pathlib.Path(stem).stem)
    path = pathlib.Path(text)
    if text.endswith(".mat"):
      if not path.is_file():
        raise ValueError(f"no such file {text!r}")
      return (*_load_mat(path), OFFICIAL + path.stem)
    if text and path.exists():
      # pylint: disable-next=import-outside-toplevel
      from lapsrn_jax.workdir import load_trained_checkpoint, resolve_run

      try:
        module, params, step = load_trained_checkpoint(path)
        return module, params, f"ours:{resolve_run(path)[0].name}@{step}"
      except FileNotFoundError as err:
        raise ValueError(str(err)) from err
  except ModelLoadError:
    raise
  except (ValueError, KeyError) as err:
    raise ModelLoadError(f"cannot load model {text!r}: {err}") from err
  raise ModelLoadError(f"unknown model {text!r}: use {_SPECS}")


def _official_file(stem: str, weights_dir, download: bool) -> pathlib.Path:
  from lapsrn_jax.official_weights import official_weights_path  # pylint: disable=import-outside-toplevel

  return official_weights_path(stem, weights_dir, download=download)


def _load_mat(path: pathlib.Path):
  from lapsrn_jax.weights import load_official  # pylint: disable=import-outside-toplevel

  return load_official(path)
