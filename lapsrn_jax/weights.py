"""Import of the official MatConvNet weights (LapSRN_x{2,4,8}.mat, MSLapSRN_D5R{2,5,8}.mat).

The files hold a DagNN saved with `net.saveobj()`: `net.params` is a struct array of
`(name, value)`, `net.layers` the layer list. Layout facts (docs/architecture.md, "The official
weights"):

- conv filters `*_f` are `[kh, kw, C_in, C_out]` = our HWIO conv kernels;
- ConvTranspose filters (`upconv_f`, `img_up_f`) are `[kh, kw, C_out, C_in]`, which is the layout
  our transposed convs store (the kernel of the stride-2 conv they are the adjoint of, see
  `lapsrn_jax.models.layers`);
- MATLAB drops trailing singleton dimensions (`[3,3,64,1]` is stored `(3,3,64)`, `[4,4,1,1]`
  as `(4,4)`); biases are `(1, K)` or `(K, 1)`.

LapSRN numbers its levels from the finest (`level1` = the last level applied), we name them by the
scale they output (`level_2x` is applied first): in an L-level file `level{s}` is our
`level_{2^(L-s+1)}x`.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import scipy.io
from flax import traverse_util

from lapsrn_jax.models import LapSRN, MSLapSRN
from lapsrn_jax.models.cms_lapsrn import softplus_inverse

Params = dict

_LAPSRN_NAME = re.compile(r"level(\d+)_(conv(\d+)|upconv|residual_conv|img_up)_([fb])")
_MS_NAME = re.compile(r"(input_conv|conv(\d+)|upconv|residual_conv|img_up)_([fb])")
_RECURSION = re.compile(r"_R(\d+)_")


def read_official(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[str]]:
  """The raw `{param name: value as stored}` and the layer names of an official `.mat` file."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no weights file at {path}")
  try:
    mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=False)
  except Exception as e:  # scipy raises ValueError, TypeError, OSError, zlib.error, ...
    raise ValueError(f"could not read {path} as a MATLAB .mat file (truncated or corrupt?): "
                     f"{type(e).__name__}: {e}") from e
  if "net" not in mat:
    found = sorted(k for k in mat if not k.startswith("__"))
    raise ValueError(f"{path} has no 'net' variable (found {found}); expected an official "
                     "LapSRN/MS-LapSRN MatConvNet model")
  try:
    net = mat["net"].reshape(-1)[0]
    params = {_string(p.name): np.asarray(p.value) for p in np.ravel(net.params)}
    layers = [_string(layer.name) for layer in np.ravel(getattr(net, "layers", np.empty(0)))]
  except (AttributeError, IndexError, TypeError) as e:
    raise ValueError(f"{path}: 'net' is not a MatConvNet DagNN struct with params(name, value): "
                     f"{e}") from e
  return params, layers


def _string(x) -> str:
  return str(np.asarray(x).reshape(-1)[0]) if np.size(x) else ""


def infer_model(names, layer_names, path: str = "") -> LapSRN | MSLapSRN:
  """The module an official file describes, from its parameter names (and layer names for R)."""
  names = set(names)
  lapsrn = [m for m in map(_LAPSRN_NAME.fullmatch, names) if m]
  if lapsrn:
    levels = max(int(m.group(1)) for m in lapsrn)
    depth = max((int(m.group(3)) for m in lapsrn if m.group(3) and m.group(1) == "1"), default=0)
    return LapSRN(levels=levels, depth=depth)
  ms = [m for m in map(_MS_NAME.fullmatch, names) if m]
  if ms and "upconv_f" in names:
    depth = max((int(m.group(2)) for m in ms if m.group(2)), default=0)
    recursions = [int(m.group(1)) for m in map(_RECURSION.search, layer_names) if m]
    if recursions:
      r = max(recursions)
    else:  # no layer list: fall back on the file name, e.g. MSLapSRN_D5R8.mat
      m = re.search(r"R(\d+)", os.path.basename(path))
      if not m:
        raise ValueError(f"{path}: MS-LapSRN weights without a layer list or an 'R<n>' in the "
                         "file name; cannot tell the number of recursions")
      r = int(m.group(1))
    return MSLapSRN(depth=depth, recursions=r)
  raise ValueError(f"{path}: unrecognised parameters {sorted(names)[:8]}...; expected LapSRN "
                   "(level<s>_conv<d>_f, ...) or MS-LapSRN (conv<d>_f, upconv_f, ...) weights")


def expected_shapes(model, scale: int | None = None) -> dict[tuple[str, ...], tuple[int, ...]]:
  """`{param path: shape}` of `model` (no computation: `jax.eval_shape`)."""
  if scale is None:
    scale = 2 ** model.levels if isinstance(model, LapSRN) else 2
  size = max(getattr(model, "pad", 0), 4)
  lr = jnp.zeros((1, size, size, 1))
  tree = jax.eval_shape(lambda: model.init(jax.random.key(0), lr, scale=scale))
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree["params"]).items()}


def _our_path(name: str, model) -> tuple[str, ...] | None:
  """Our parameter path for an official parameter name (None if the name is not one of ours)."""
  if isinstance(model, LapSRN):
    if name in ("input_conv_f", "input_conv_b"):
      return ("input_conv", "kernel" if name.endswith("_f") else "bias")
    m = _LAPSRN_NAME.fullmatch(name)
    if not m or not 1 <= int(m.group(1)) <= model.levels:
      return None
    level = f"level_{2 ** (model.levels - int(m.group(1)) + 1)}x"
    return (level, m.group(2), "kernel" if m.group(4) == "f" else "bias")
  m = _MS_NAME.fullmatch(name)
  return (m.group(1), "kernel" if m.group(3) == "f" else "bias") if m else None


def _bias(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
  """MATLAB `(1, K)` / `(K, 1)` (or `(K,)`) -> `(K,)`; None if the size does not fit."""
  if value.ndim > 2 or (value.ndim == 2 and min(value.shape) != 1) or value.size != shape[0]:
    return None
  return value.reshape(shape)


def _filter(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
  """A 4-D MatConvNet filter with MATLAB's dropped trailing singletons restored; None if it
  cannot be `shape`.

  No axis moves: conv filters `[kh, kw, C_in, C_out]` are already HWIO, and ConvTranspose
  filters `F[h, w, out, in]` are the kernel of the stride-2 conv the layer is the adjoint of,
  which is the layout our transposed convs store (`[kh, kw, C_hr, C_lr]`).
  """
  full = value.shape + (1,) * (len(shape) - value.ndim)
  return value.reshape(shape) if value.ndim <= len(shape) and full == shape else None


def params_from_official(official: dict[str, np.ndarray], model, path: str = "") -> Params:
  """Our params tree for `model` from `{official name: value}`; ValueError on any mismatch."""
  expected = expected_shapes(model)
  flat, unexpected, misshaped = {}, [], []
  for name, value in official.items():
    key = _our_path(name, model)
    if key is None or key not in expected:
      unexpected.append(name)
      continue
    convert = _bias if key[-1] == "bias" else _filter
    array = convert(np.asarray(value), expected[key])
    if array is None:
      misshaped.append(f"{name}: stored {tuple(np.shape(value))}, expected {expected[key]}")
      continue
    flat[key] = jnp.asarray(array, jnp.float32)
  missing = sorted("/".join(k) for k in expected if k not in flat)
  if missing or unexpected or misshaped:
    raise ValueError(
        f"{path or 'weights'} do not match {type(model).__name__}"
        f"({', '.join(f'{k}={getattr(model, k)}' for k in _arch_fields(model))}): "
        + "; ".join(f"{label}: {items}" for label, items in
                    (("missing", missing), ("unexpected", sorted(unexpected)),
                     ("wrong shape", misshaped))
                    if items)
        + " (a truncated or edited file?)")
  return traverse_util.unflatten_dict(flat)


def _arch_fields(model) -> tuple[str, ...]:
  return ("levels", "depth") if isinstance(model, LapSRN) else ("depth", "recursions")


def load_official(path: str | os.PathLike) -> tuple[LapSRN | MSLapSRN, Params]:
  """`(model, params)` from an official LapSRN_x*.mat / MSLapSRN_D*R*.mat file.

  The architecture (LapSRN levels and depth, MS-LapSRN depth and recursions) is read from the file;
  `model.apply({"params": params}, lr, scale=s)` runs it. ValueError for a truncated, corrupt or
  mismatching file (names and shapes are checked against the model's own parameters).
  """
  official, layer_names = read_official(path)
  model = infer_model(official, layer_names, os.fspath(path))
  return model, params_from_official(official, model, os.fspath(path))


def cms_params_from_ms(params: Params, tie_to: int, rho_init: float = 1.0) -> Params:
  """CMS-LapSRN params from MS-LapSRN params: drop `upconv.kernel`, keep `upconv.bias`, add
  `upconv.theta = softplus^-1(rho_init)`; every other parameter is shared as is.

  The result fits `CMSLapSRN(depth=<the MS depth>, tie_to=tie_to, ...)`.
  """
  convs = sorted(k for k in params if re.fullmatch(r"conv\d+", k))
  if "upconv" not in params or "kernel" not in params["upconv"] or not convs:
    raise ValueError("expected MS-LapSRN params (conv<d>, upconv.kernel, ...), got keys "
                     f"{sorted(params)}")
  if f"conv{tie_to}" not in params:
    raise ValueError(f"tie_to={tie_to} names no conv of the block (have {convs})")
  out = {k: v for k, v in params.items() if k != "upconv"}
  out["upconv"] = {"bias": params["upconv"]["bias"],
                   "theta": jnp.asarray(softplus_inverse(rho_init), jnp.float32)}
  return out


__all__ = ["cms_params_from_ms", "infer_model", "load_official", "params_from_official",
           "read_official"]
