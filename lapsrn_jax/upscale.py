"""Upscales image files with a LapSRN-family model, in tiles of bounded memory.

    python -m lapsrn_jax.upscale photo.jpg scans/ --scale 4 --output out/ \\
        [--model official:MSLapSRN_D5R8 | <training workdir>] [--weights-dir DIR] \\
        [--tile 256] [--overlap N] [--self-ensemble] [--overwrite] [--no-progress]

Inputs: files, or folders (their png/jpg/jpeg/bmp/tif/tiff files, not recursive). Gray, gray +
alpha, RGB and RGBA; 8- or 16-bit; the EXIF orientation is applied (`upscale_io.read_pixels`).
Each image goes through `inference.super_resolve` (the project's one image -> SR path): the
network on Y (MATLAB `rgb2ycbcr`; a gray image is its own Y), MATLAB bicubic `imresize` on Cb/Cr
and alpha. Computation is in float; the output keeps the input's bit depth and channels.

Outputs: `OUTPUT/<stem>_x<scale>.png` (a 16-bit input gives a 16-bit PNG). An input file is never
overwritten, even with `--overwrite` (the image is reported as failed). An existing output is
kept and the image skipped, unless `--overwrite` (so an interrupted run can be resumed). Two
inputs that would write the same output: the second is reported as failed (unless the first
failed: then the second writes it).

Tiles: windows of `--tile` LR pixels (default 256) overlapping by `--overlap` pixels on each side,
by default the model's receptive radius (`model.receptive_radius`, e.g. 43 / 63 / 73 for
MS-LapSRN D5R8 at x2 / x4 / x8), which makes the tiled result equal to the whole-image one; a
smaller overlap is faster and approximate (measured with the official D5R8 on a Set14 crop:
`--overlap 32` differs from the whole-image result by at most 0.0005/255 at x2 and x4,
`--overlap 16` by up to 1.9/255 at x2 and 3.2/255 at x4). One compilation per window shape: one
for all images of at least `tile x tile` pixels. `--self-ensemble` averages the 8 rotations and
flips of every window (8x the time). Host memory holds the whole image in float (about 40 bytes
per output pixel for colour images); device memory is that of the network on one window.

Exit status: 0 when every image was written or skipped, 1 when some failed (each is named on
stderr; the others are still processed), 2 for bad arguments (a missing input, an unknown model,
an `--output` folder that cannot be created or written: checked before any work).
"""

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence

from tqdm import tqdm

from lapsrn_jax import upscale_io
from lapsrn_jax.images import IMAGE_EXTENSIONS, check_writable, list_images
from lapsrn_jax.inference import network_scale, super_resolve
from lapsrn_jax.loading import OFFICIAL, load_model

__all__ = ["Report", "expand_inputs", "main", "output_path", "upscale_files"]

SCALES = (2, 4, 8)


# ------------------------------------------------------------------------------------ the files
@dataclasses.dataclass
class Report:
  """What `upscale_files` did: output paths written, `(input, reason)` skipped and failed."""
  written: list = dataclasses.field(default_factory=list)
  skipped: list = dataclasses.field(default_factory=list)
  failed: list = dataclasses.field(default_factory=list)


def output_path(input_path, output_dir, scale: int) -> pathlib.Path:
  """`output_dir/<stem>_x<scale>.png`."""
  return pathlib.Path(output_dir) / f"{pathlib.Path(input_path).stem}_x{scale}.png"


def expand_inputs(inputs: Sequence) -> list[pathlib.Path]:
  """Files as given, folders as their image files (sorted, not recursive); duplicates removed.

  Raises:
    ValueError: naming an input that does not exist, or a folder without images.
  """
  paths, seen = [], set()
  for item in inputs:
    item = pathlib.Path(item)
    if item.is_dir():
      found = list_images(item)
    elif item.exists():
      found = [item]
    else:
      raise ValueError(f"input {str(item)!r} does not exist")
    for path in found:
      key = path.resolve()
      if key not in seen:
        seen.add(key)
        paths.append(path)
  return paths


def upscale_files(model, params, inputs: Sequence, output_dir, scale: int, *, tile: int,
                  overlap: int | None = None, ensemble: bool = False, overwrite: bool = False,
                  progress: bool = True, log=sys.stderr) -> Report:
  """Upscales every input file into `output_dir` (see the module doc for the naming rules) with
  `inference.super_resolve(model, params, pixels, scale, tile=, overlap=, ensemble=)`.

  A file that cannot be read, processed or written is reported (by name, on `log`) in
  `Report.failed`; the others are still processed.
  """
  output_dir = pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  inputs = [pathlib.Path(p) for p in inputs]
  input_keys = {p.resolve() for p in inputs}
  claimed: dict[pathlib.Path, pathlib.Path] = {}
  report = Report()
  files = tqdm(inputs, desc=f"x{scale}", unit="image", disable=not progress)
  for path in files:
    target = output_path(path, output_dir, scale)
    key = target.resolve()
    if key in input_keys:
      reason = f"its output {str(target)!r} is an input file; refusing to overwrite an input"
    elif key in claimed:
      reason = f"its output {str(target)!r} is also the output of {str(claimed[key])!r}"
    else:
      reason = None
    if reason:
      report.failed.append((path, reason))
      print(f"error: {path}: {reason}", file=log)
      continue
    if target.exists() and not overwrite:
      claimed[key] = path
      report.skipped.append((path, f"{target} exists (--overwrite replaces it)"))
      continue
    try:
      pixels = upscale_io.read_pixels(path)
      bar = tqdm(desc=path.name, unit="tile", leave=False, disable=not progress)
      try:
        result = super_resolve(model, params, pixels, scale, tile=tile, overlap=overlap,
                               ensemble=ensemble, progress=bar)
      finally:
        bar.close()
      upscale_io.write_pixels(target, result)
    except Exception as e:  # one bad file must not stop the others
      message = str(e) if isinstance(e, upscale_io.ImageReadError) else f"{type(e).__name__}: {e}"
      report.failed.append((path, message))
      print(f"error: {path}: {message}", file=log)
      continue
    claimed[key] = path  # only now: a failed input does not block another of the same stem
    report.written.append(target)
  return report


# ------------------------------------------------------------------------------------ the CLI
def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m lapsrn_jax.upscale",
      description="Upscale images with LapSRN / MS-LapSRN / CMS-LapSRN (tiled, bounded memory).")
  parser.add_argument("inputs", nargs="+", metavar="INPUT",
                      help=f"image files or folders ({', '.join(IMAGE_EXTENSIONS)})")
  parser.add_argument("--scale", type=int, required=True, choices=SCALES)
  parser.add_argument("--model", default=f"{OFFICIAL}MSLapSRN_D5R8",
                      help=f"{OFFICIAL}<stem> (the authors' weights, downloaded on first use "
                           f"unless in --weights-dir; default {OFFICIAL}MSLapSRN_D5R8), a .mat "
                           "file, or a training workdir or checkpoint")
  parser.add_argument("--weights-dir", default=None,
                      help="folder of the official .mat weights (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--output", required=True, help="output folder (created if missing)")
  parser.add_argument("--tile", type=int, default=256,
                      help="window size in LR pixels (bounds memory; default 256)")
  parser.add_argument("--overlap", type=int, default=None,
                      help="LR pixels of context per window side (default: the model's receptive "
                           "radius, exact; smaller is faster and approximate)")
  parser.add_argument("--self-ensemble", action="store_true",
                      help="average over the 8 rotations/flips (8x slower)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing outputs (inputs are never overwritten)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  if args.tile < 1:
    parser.error(f"--tile must be >= 1, got {args.tile}")
  if args.overlap is not None and args.overlap < 0:
    parser.error(f"--overlap must be >= 0, got {args.overlap}")
  return args


def main(argv=None) -> int:
  """The CLI; returns the exit status (0 ok, 1 some images failed, 2 bad arguments)."""
  args = _parse_args(argv)
  try:
    check_writable(args.output, "--output", folder=True)  # before any work
    inputs = expand_inputs(args.inputs)
    model, params = load_model(args.model, weights_dir=args.weights_dir)
    overlap = (model.receptive_radius(network_scale(model, args.scale)) if args.overlap is None
               else args.overlap)
    if args.tile <= 2 * overlap:
      raise ValueError(f"--tile {args.tile} leaves no room inside an overlap of {overlap} pixels "
                       f"per side: use --tile {2 * overlap + 1} or more (or a smaller --overlap)")
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  report = upscale_files(model, params, inputs, args.output, args.scale, tile=args.tile,
                         overlap=overlap, ensemble=args.self_ensemble, overwrite=args.overwrite,
                         progress=not args.no_progress)
  print(f"{len(report.written)} written, {len(report.skipped)} skipped (output exists; "
        f"--overwrite replaces), {len(report.failed)} failed -> {args.output}")
  for path, reason in report.failed:
    print(f"failed: {path}: {reason}", file=sys.stderr)
  return 1 if report.failed else 0


if __name__ == "__main__":
  sys.exit(main())
