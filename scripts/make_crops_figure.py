"""Zoomed crops of one test image: HR, bicubic, MS-LapSRN and CMS-LapSRN, PSNR in each caption
(on the whole image, and on the crop).

    python scripts/make_crops_figure.py --image $LAPSRN_DATA_DIR/BSDS100/<name>.png --scale 4 \
        --model official:MSLapSRN_D5R8 --model runs/cms_conv3 --out figures/generated/crops.png

The LR input and the scores follow the papers' protocol (`lapsrn_jax.evaluate`: mod-crop, MATLAB
bicubic downscaling, Y-PSNR with a `scale`-pixel shave, on the whole image). Models are
`lapsrn_jax.evaluate` specs (`official:<stem>`, a training workdir of ours); bicubic comes first.
The crop box is `--box top,left,size` in HR pixels (default: the size x size window, on a
`size / 2` grid, where the last model beats bicubic by the most, or beats the `--versus`-th model,
e.g. `--versus 1` for the first `--model`; `--versus -1` picks where it loses by the most).
Figures made from the shared test images go to a git-ignored folder (`figures/generated/`).
"""

import argparse
import pathlib

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from lapsrn_jax import evaluate, images, metrics  # pylint: disable=wrong-import-position
from lapsrn_jax.color import rgb_to_ycbcr  # pylint: disable=wrong-import-position
from lapsrn_jax.inference import downscale  # pylint: disable=wrong-import-position


def best_box(hr: np.ndarray, a: np.ndarray, b: np.ndarray, size: int) -> tuple[int, int]:
  """Top-left of the `size` window (stride size/2) where `b` has the least error relative to
  `a` (squared error on Y summed over the window): where the difference is most visible."""
  y = lambda im: rgb_to_ycbcr(np.asarray(im, np.float64) / 255.0)[..., 0] if im.ndim == 3 \
      else np.asarray(im, np.float64) / 255.0
  gain = (y(a) - y(hr)) ** 2 - (y(b) - y(hr)) ** 2
  best, where = -np.inf, (0, 0)
  for top in range(0, hr.shape[0] - size + 1, size // 2):
    for left in range(0, hr.shape[1] - size + 1, size // 2):
      g = gain[top:top + size, left:left + size].sum()
      if g > best:
        best, where = g, (top, left)
  return where


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--image", type=pathlib.Path, required=True, help="HR test image")
  p.add_argument("--scale", type=int, default=4)
  p.add_argument("--model", action="append", required=True, help="evaluate.py model spec")
  p.add_argument("--label", action="append", default=[], help="caption name per --model")
  p.add_argument("--box", default="", help="top,left,size in HR pixels")
  p.add_argument("--size", type=int, default=96, help="crop side when --box is not given")
  p.add_argument("--versus", type=int, default=0,
                 help="without --box: the crop where the last model beats panel N the most "
                      "(0 bicubic, 1 the first --model, ...); -N: where panel N beats it")
  p.add_argument("--out", type=pathlib.Path, required=True)
  args = p.parse_args(argv)
  if abs(args.versus) > len(args.model):
    p.error(f"--versus {args.versus}: there are {len(args.model)} --model panels after bicubic")

  hr = images.mod_crop(images.read_image(args.image), args.scale)
  lr = downscale(hr, args.scale)
  outs = [("bicubic", evaluate.bicubic(lr, args.scale))]
  for i, spec in enumerate(args.model):
    model = evaluate.model_from_spec(spec)
    label = args.label[i] if i < len(args.label) else model.name
    outs.append((label, model.upscale(lr, args.scale)))
  outs = [(n, np.asarray(metrics.im2uint8(o))) for n, o in outs]
  scores = [float(metrics.paper_protocol(o, hr, args.scale)[0]) for _, o in outs]
  if args.box:
    top, left, size = (int(v) for v in args.box.split(","))
  else:
    size = args.size
    other = outs[abs(args.versus)][1]
    a, b = (other, outs[-1][1]) if args.versus >= 0 else (outs[-1][1], other)
    top, left = best_box(hr, a, b, size)
  crop = lambda im: im[top:top + size, left:left + size]
  in_crop = [float(metrics.paper_protocol(crop(o), crop(hr), args.scale)[0]) for _, o in outs]
  panels = [("HR", hr, None)] + [(n, o, f"{s:.2f} dB (crop {c:.2f})")
                                 for (n, o), s, c in zip(outs, scores, in_crop)]
  fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
  for ax, (name, im, score) in zip(axes, panels):
    ax.imshow(crop(im), cmap="gray" if im.ndim == 2 else None, interpolation="nearest")
    ax.set_title(name if score is None else f"{name}\n{score}", fontsize=9)
    ax.axis("off")
  fig.suptitle(f"{args.image.name}, {args.scale}x, crop {size}px at ({top}, {left}); "
               f"PSNR on the whole image (and on the crop; Y, shave {args.scale})", fontsize=8)
  fig.tight_layout()
  args.out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(args.out, dpi=120)
  print(f"wrote {args.out}: " + ", ".join(f"{n} {s:.2f} dB (crop {c:.2f} dB)"
                                          for (n, _), s, c in zip(outs, scores, in_crop))
        + f"; crop {size} px at ({top}, {left})")


if __name__ == "__main__":
  main()
