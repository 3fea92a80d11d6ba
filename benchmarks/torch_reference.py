"""MS-LapSRN (D5R2/D5R5/D5R8) in PyTorch: an independent reference for lapsrn-jax.

Written from the MatConvNet graph as docs/architecture.md describes it and from the parameter
names and shapes stored in the official `.mat` files, not from the JAX code, so that agreement
between the two is evidence that both read the MatConvNet graph correctly. Used by the
benchmarks as the PyTorch baseline.

Geometry (MatConvNet, all ops are cross-correlations with zero padding):
  * `vl_nnconv` filters `F[kh, kw, Cin, Cout]`  -> torch `Conv2d.weight[Cout, Cin, kh, kw]`.
  * `vl_nnconvt` filters `F[kh, kw, Cout, Cin]` -> torch
    `ConvTranspose2d.weight[Cin, Cout, kh, kw]`.
    Both are exact adjoints of a strided correlation, so no kernel flip is needed: the full
    (uncropped) output is `y[2i + a, 2j + b] += F[a, b] x[i, j]`, of size `2(H - 1) + k`, and
    MatConvNet crops `[top, bottom, left, right]` rows/cols from it.
  * Feature upsampler: k = 3, crop [0 1 0 1] -> torch `conv_transpose2d(stride=2, padding=0)`
    (size 2H + 1) minus the last row and column -> 2H. (Torch's `padding` crops both sides
    equally, so the one-sided crop is a slice.)
  * Image upsampler: k = 4, crop [1 1 1 1] -> torch `conv_transpose2d(stride=2, padding=1)` -> 2H.

Per level (all weights shared by recursions, levels and scales; "SS" skip):
  feats = input_conv(lr)                                   # no activation
  for each level:  h = feats
                   R times: h = convD(lrelu(...conv1(lrelu(h))...)) + feats
                   feats = upconv(lrelu(h))                # [N, 64, 2H, 2W]
                   img = img_up(img) + residual_conv(feats)

Command line:
  python benchmarks/torch_reference.py --check [--weights DIR] [--data DIR]
      compare with lapsrn_jax (load_official + apply) on real Set5 images; exit 1 on mismatch.
  python benchmarks/torch_reference.py --psnr [--weights DIR] [--data DIR]
      Set5 Y-PSNR of the PyTorch model (paper protocol; needs lapsrn_jax.imresize).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2


def _mat_params(path: str) -> tuple[dict[str, np.ndarray], list[str]]:
  """Reads `net.params` (name -> float32 array, MATLAB shape) and the layer names of a
  DagNN .mat."""
  if not os.path.isfile(path):
    raise ValueError(f"weight file not found: {path!r} "
                     "(point --weights at the official .mat folder)")
  mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=False)
  if "net" not in mat:
    raise ValueError(f"{path!r} is not a MatConvNet DagNN file (no 'net' variable)")
  net = mat["net"][0, 0]
  params = {}
  for p in net.params.ravel():
    params[str(p.name[0])] = np.asarray(p.value, np.float32)
  layers = [str(layer.name[0]) for layer in net.layers.ravel()]
  return params, layers


def _conv_weight(f: np.ndarray, cin: int, cout: int) -> torch.Tensor:
  """MatConvNet conv filter [kh, kw, Cin, Cout] (trailing 1s dropped) -> torch
  [Cout, Cin, kh, kw]."""
  f = f.reshape(f.shape[0], f.shape[1], cin, cout)  # restores dropped trailing singleton dims
  return torch.from_numpy(np.ascontiguousarray(f.transpose(3, 2, 0, 1)))


def _convt_weight(f: np.ndarray, cout: int, cin: int) -> torch.Tensor:
  """MatConvNet convt filter [kh, kw, Cout, Cin] -> torch conv_transpose weight
  [Cin, Cout, kh, kw]."""
  f = f.reshape(f.shape[0], f.shape[1], cout, cin)
  return torch.from_numpy(np.ascontiguousarray(f.transpose(3, 2, 0, 1)))


def _bias(b: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(b.reshape(-1)))


class MSLapSRNTorch(nn.Module):
  """MS-LapSRN with recursive blocks of `depth` pre-activation convs run `recursions` times.

  `forward(lr, scale)` takes `lr` [N, 1, H, W] (Y in [0, 1], NCHW or channels_last) and returns
  the list of SR outputs of every level, 2x first; the last is [N, 1, scale*H, scale*W].
  """

  def __init__(self, depth: int = 5, recursions: int = 8, channels: int = 64):
    super().__init__()
    self.depth, self.recursions, self.channels = depth, recursions, channels
    c = channels
    self.input_conv = nn.Conv2d(1, c, 3, padding=1)
    self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for _ in range(depth)])
    self.upconv_weight = nn.Parameter(torch.zeros(c, c, 3, 3))  # [Cin, Cout, 3, 3]
    self.upconv_bias = nn.Parameter(torch.zeros(c))
    self.residual_conv = nn.Conv2d(c, 1, 3, padding=1)
    self.img_up_weight = nn.Parameter(torch.zeros(1, 1, 4, 4))  # [Cin, Cout, 4, 4], no bias

  @classmethod
  def from_mat(cls, path: str) -> "MSLapSRNTorch":
    """Builds the model from an official `MSLapSRN_D5R*.mat` (depth/recursions read from the
    graph)."""
    params, layers = _mat_params(path)
    depth = len([k for k in params if re.fullmatch(r"conv\d+_f", k)])
    recs = [int(m.group(1)) for name in layers
            if (m := re.fullmatch(r"x\d+SR_level1_R(\d+)_output", name))]
    if depth == 0 or not recs:
      raise ValueError(f"{path!r} does not look like an MS-LapSRN model "
                       "(no conv*_f / R*_output layers)")
    c = params["conv1_f"].shape[-1]
    model = cls(depth=depth, recursions=max(recs), channels=c)
    with torch.no_grad():
      model.input_conv.weight.copy_(_conv_weight(params["input_conv_f"], 1, c))
      model.input_conv.bias.copy_(_bias(params["input_conv_b"]))
      for d, conv in enumerate(model.convs, start=1):
        conv.weight.copy_(_conv_weight(params[f"conv{d}_f"], c, c))
        conv.bias.copy_(_bias(params[f"conv{d}_b"]))
      model.upconv_weight.copy_(_convt_weight(params["upconv_f"], c, c))
      model.upconv_bias.copy_(_bias(params["upconv_b"]))
      model.residual_conv.weight.copy_(_conv_weight(params["residual_conv_f"], c, 1))
      model.residual_conv.bias.copy_(_bias(params["residual_conv_b"]))
      model.img_up_weight.copy_(_convt_weight(params["img_up_f"], 1, 1))
    return model.eval()

  def _feature_upsample(self, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    y = F.conv_transpose2d(F.leaky_relu(x, LEAK), self.upconv_weight, self.upconv_bias, stride=2)
    return y[:, :, : 2 * h, : 2 * w]  # crop [0 1 0 1]: drop the last row and column

  def _image_upsample(self, img: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(img, self.img_up_weight, stride=2, padding=1)  # crop [1 1 1 1]

  def forward(self, lr: torch.Tensor, scale: int) -> list[torch.Tensor]:
    if scale not in (2, 4, 8, 16):
      raise ValueError(f"scale must be a power of 2 in (2, 4, 8, 16), got {scale!r}")
    if lr.ndim != 4 or lr.shape[1] != 1:
      raise ValueError(f"lr must be [N, 1, H, W] (Y channel), got shape {tuple(lr.shape)}")
    # A 1-channel input is both NCHW- and NHWC-contiguous; the layout is the weights' layout.
    nhwc = self.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    memory_format = torch.channels_last if nhwc else torch.contiguous_format
    feats = self.input_conv(lr)
    img = lr
    outputs = []
    for _ in range(int(np.log2(scale))):
      h = feats
      for _ in range(self.recursions):
        t = h
        for conv in self.convs:
          t = conv(F.leaky_relu(t, LEAK))
        h = t + feats
      feats = self._feature_upsample(h).contiguous(memory_format=memory_format)
      img = self._image_upsample(img) + self.residual_conv(feats)
      outputs.append(img)
    return outputs


def to_layout(model: MSLapSRNTorch, lr: torch.Tensor, layout: str):
  """Returns (model, lr) in `layout` ("nchw" or "nhwc" = torch.channels_last)."""
  if layout == "nhwc":
    return (model.to(memory_format=torch.channels_last),
            lr.contiguous(memory_format=torch.channels_last))
  if layout == "nchw":
    return model.to(memory_format=torch.contiguous_format), lr.contiguous()
  raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")


# ---------------------------------------------------------------------------------------------
# Command-line checks (need the official weights and Set5; the JAX side needs lapsrn_jax).


def _set5(data_dir: str, name: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
  """(HR RGB float64 [H, W, 3] in [0, 1], mod-cropped; LR = imresize(HR, 1/scale)) for a Set5
  image."""
  from PIL import Image

  from lapsrn_jax.imresize import imresize

  with Image.open(os.path.join(data_dir, "Set5", f"{name}.png")) as im:
    hr = np.asarray(im.convert("RGB"), np.float64) / 255.0
  h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
  hr = hr[:h, :w]  # mod_crop
  return hr, imresize(hr, 1.0 / scale)


def _y(rgb: np.ndarray) -> np.ndarray:
  from lapsrn_jax.color import rgb_to_ycbcr

  return np.asarray(rgb_to_ycbcr(rgb))[..., 0]


def _torch_sr(model: MSLapSRNTorch, lr_y: np.ndarray, scale: int, layout: str) -> np.ndarray:
  lr = torch.from_numpy(lr_y.astype(np.float32))[None, None]
  model, lr = to_layout(model, lr, layout)
  with torch.inference_mode():
    return model(lr, scale)[-1][0, 0].numpy()


def check_against_jax(weights_dir: str, data_dir: str, tol: float = 1e-4) -> bool:
  """Max |torch - jax| of the final SR output on Set5 baby and bird at 2x/4x/8x, both layouts."""
  import jax.numpy as jnp
  from lapsrn_jax.weights import load_official

  path = os.path.join(weights_dir, "MSLapSRN_D5R8.mat")
  tmodel = MSLapSRNTorch.from_mat(path)
  jmodel, jparams = load_official(path)
  ok = True
  for name in ("baby", "bird"):
    for scale in (2, 4, 8):
      lr_y = _y(_set5(data_dir, name, scale)[1])
      jax_out = np.asarray(jmodel.apply({"params": jparams},
                                        jnp.asarray(lr_y, jnp.float32)[None, :, :, None],
                                        scale=scale)[-1])[0, :, :, 0]
      for layout in ("nchw", "nhwc"):
        t_out = _torch_sr(tmodel, lr_y, scale, layout)
        if t_out.shape != jax_out.shape:
          print(f"FAIL {name} x{scale} {layout}: shape torch {t_out.shape} vs jax {jax_out.shape}")
          ok = False
          continue
        err = float(np.max(np.abs(t_out - jax_out)))
        status = "ok  " if err <= tol else "FAIL"
        ok &= err <= tol
        print(f"{status} {name:5s} x{scale} {layout}: LR {lr_y.shape} -> SR {t_out.shape}, "
              f"max|torch - jax| = {err:.2e} (tol {tol:g})")
  return ok


def set5_psnr(weights_dir: str, data_dir: str, scales=(2, 4)) -> dict[int, float]:
  """Mean Set5 PSNR of the PyTorch D5R8 model under the paper protocol
  (docs/evaluation_protocol.md).

  Network on Y, CbCr bicubic, back to RGB, uint8 quantisation, Y, `scale`-pixel border shaved.
  """
  from lapsrn_jax.color import rgb_to_ycbcr, ycbcr_to_rgb
  from lapsrn_jax.imresize import imresize

  model = MSLapSRNTorch.from_mat(os.path.join(weights_dir, "MSLapSRN_D5R8.mat"))
  names = ("baby", "bird", "butterfly", "head", "woman")
  quantise = lambda a: np.round(np.clip(a, 0.0, 1.0) * 255.0) / 255.0
  result = {}
  for scale in scales:
    values = []
    for name in names:
      hr, lr = _set5(data_dir, name, scale)
      lr_ycc = np.asarray(rgb_to_ycbcr(lr))
      sr_ycc = imresize(lr_ycc, float(scale))
      sr_ycc[..., 0] = _torch_sr(model, lr_ycc[..., 0], scale, "nchw")
      sr = np.asarray(ycbcr_to_rgb(sr_ycc))
      d = (_y(quantise(sr)) - _y(quantise(hr)))[scale:-scale, scale:-scale]
      values.append(10 * np.log10(1.0 / np.mean(d**2)))
    result[scale] = float(np.mean(values))
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--check", action="store_true",
                      help="compare with lapsrn_jax on Set5 (exit 1 on mismatch)")
  parser.add_argument("--psnr", action="store_true", help="Set5 Y-PSNR of the PyTorch model")
  parser.add_argument("--weights", default=os.environ.get("LAPSRN_WEIGHTS_DIR"),
                      help="folder of the official .mat files (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--data", default=os.environ.get("LAPSRN_DATA_DIR"),
                      help="folder holding Set5/ (default $LAPSRN_DATA_DIR)")
  parser.add_argument("--tol", type=float, default=1e-4)
  args = parser.parse_args(argv)
  if not (args.check or args.psnr):
    parser.error("choose --check and/or --psnr")
  if not args.weights or not args.data:
    parser.error("needs the official weights and Set5: pass --weights and --data, or set "
                 "LAPSRN_WEIGHTS_DIR and LAPSRN_DATA_DIR")
  ok = True
  if args.psnr:
    for scale, value in set5_psnr(args.weights, args.data).items():
      print(f"Set5 x{scale}: {value:.3f} dB (PyTorch MS-LapSRN D5R8)")
  if args.check:
    ok = check_against_jax(args.weights, args.data, args.tol)
    print("torch reference matches lapsrn_jax" if ok
          else "MISMATCH between torch reference and lapsrn_jax")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
