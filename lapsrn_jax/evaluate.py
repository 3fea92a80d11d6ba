"""Scores super-resolution models on folders of HR images with the papers' protocol.

    python -m lapsrn_jax.evaluate --model bicubic --data-dir $LAPSRN_DATA_DIR \\
        --sets Set5,Set14,BSDS100 --scales 2,4,8 --output results.json --save-images out/

For every image and scale (docs/evaluation_protocol.md): mod-crop the HR image, LR = MATLAB bicubic
`imresize(HR, 1/scale)` in float64, SR = model(LR), score with `metrics.paper_protocol`
(uint8 quantisation, Y channel for colour / raw gray, shave = scale, PSNR peak 1, MATLAB SSIM),
and average over the set. Prints a Markdown table (rows = scale x model, columns = sets, cells
`PSNR / SSIM`) and, with `--output`, writes JSON:

    {"results": [{"model", "weights", "set", "scale", "psnr", "ssim", "num_images", "failed",
                  "seconds", "images": [{"name", "psnr", "ssim"} or {"name", "error"}]}],
     "failed_images": <distinct image files that failed for some model or scale>}

`weights` (absent for bicubic) is the scored params' fingerprint, `sha256:<16 hex>`
(`inference.params_fingerprint`): two results of the same `model` name come from the same weights
exactly when it is equal. `name` is the file's stem, or its full name when several files of the
set share the stem (`baby.png`, `baby.jpg`); saved images and JSON entries stay distinct.

The JSON is strict (no `NaN` / `Infinity`): an image whose SR equals the HR on the scored pixels
has an infinite PSNR, which is capped at `PSNR_CAP` = 100 dB (an MSE of 1e-10, far below 8-bit
quantisation) in the JSON, the table and the set mean, so the mean stays finite.
With `--save-images OUT` each SR image is written as an 8-bit PNG (`im2uint8`, what is scored)
to `OUT/<set>/x<scale>/<name>.png` (`OUT/<model>/<set>/x<scale>/<name>.png` with several models).

Models (`--model`, comma-separated for several):
- `bicubic`: MATLAB bicubic upscaling of the LR image;
- `official:<stem>` (e.g. `official:MSLapSRN_D5R8`): the authors' released weights, from
  `--weights-dir` / `$LAPSRN_WEIGHTS_DIR`, else downloaded once and verified
  (`lapsrn_jax.load_model`);
- a `.mat` file, or a training workdir or checkpoint of ours (its best checkpoint by validation
  PSNR), named `ours:<workdir>@<step>` in the table and JSON (the checkpoint scored).

A long run can be resumed: with `--output OUT`, every scored image is also appended to the journal
`OUT.journal.jsonl` as soon as it is scored; killed, the same command with `--resume` scores only
the images the journal lacks (failed images are tried again) and gives the same JSON. The journal
is removed once OUT is written; `--resume` refuses a journal written for other models, sets,
images or scales, or for other weights under the same model name (a checkpoint trained again in
the same workdir), and without `--resume` an old journal is replaced.

Exit status: 0 when every image was scored, 1 when some images failed (they are named in the
JSON and on stderr; the others are still scored), 2 for bad arguments (unknown model, a missing
or empty folder, an `--output` or `--save-images` that cannot be written: checked before any
work). Bicubic on Set5 + Set14 + BSDS100 at x2/x4/x8 takes about 40 s on 2 CPU cores
and reproduces the published Bicubic row (e.g. Set5 x4: 28.43 / 0.811).
"""

import argparse
import dataclasses
import json
import os
import pathlib
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from lapsrn_jax import images as images_lib
from lapsrn_jax import metrics
from lapsrn_jax.imresize import imresize
from lapsrn_jax.inference import downscale, params_fingerprint, super_resolve
from lapsrn_jax.loading import resolve_model

__all__ = ["Journal", "Model", "count_failed_images", "evaluate_model", "main", "markdown_table",
           "model_from_spec", "resolve_sets"]

Upscaler = Callable[[np.ndarray, int], np.ndarray]
PSNR_CAP = 100.0  # dB: an infinite PSNR (exact reconstruction) is reported as this


@dataclasses.dataclass(frozen=True)
class Model:
  """A named upscaler: `upscale(lr, scale)` maps an LR image (float64 in [0, 1], `[h, w]` or
  `[h, w, 3]`) to the SR image `[scale*h, scale*w(, 3)]` (float in [0, 1] or uint8). `weights`
  is the fingerprint of its params (`inference.params_fingerprint`), None for a model without
  weights (bicubic)."""
  name: str
  upscale: Upscaler
  weights: str | None = None


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
  """The Bicubic baseline: MATLAB `imresize(lr, scale)`."""
  return imresize(lr, scale)


def model_from_spec(spec: str, *, weights_dir=None) -> Model:
  """A `Model` from a `--model` value: `bicubic`, or any spec of `lapsrn_jax.load_model`
  (`official:<stem>`, a `.mat` file, a training workdir or checkpoint) run by
  `inference.super_resolve`, named by `loading.resolve_model` (a workdir's name says the step of
  the checkpoint scored, `ours:<workdir>@<step>`); `loading.ModelLoadError` (a ValueError) when it
  does not load."""
  spec = spec.strip()
  if spec == "bicubic":
    return Model("bicubic", bicubic)
  net, params, name = resolve_model(spec, weights_dir=weights_dir)
  return Model(name, lambda lr, scale: super_resolve(net, params, lr, scale),
               weights=params_fingerprint(params))


def resolve_sets(*, data_dir=None, set_names: Sequence[str] = (), hr_dirs: Sequence = ()
                 ) -> dict[str, list[pathlib.Path]]:
  """`{set name: sorted image paths}` for `data_dir/<name>` and each HR folder (named by its
  basename); raises ValueError naming any missing or empty folder, or a repeated set name."""
  folders = []
  if set_names and data_dir is None:
    raise ValueError("set names need --data-dir (the folder that holds them)")
  for name in set_names:
    folders.append((name, pathlib.Path(data_dir) / name))
  for folder in hr_dirs:
    folder = pathlib.Path(folder)
    folders.append((folder.resolve().name or str(folder), folder))
  if not folders:
    raise ValueError("no images to evaluate: give --data-dir with --sets, or --hr-dir")
  sets = {}
  for name, folder in folders:
    if name in sets:
      raise ValueError(f"set name {name!r} is given twice")
    sets[name] = images_lib.list_images(folder)
  return sets


def _safe_name(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _save_png(path: pathlib.Path, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  array = metrics.im2uint8(np.asarray(image))
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  Image.fromarray(array).save(path, compress_level=1)  # fast; PNG is lossless anyway


def _score_one(model: Model, hr: np.ndarray, scale: int):
  """(SR image, psnr capped at `PSNR_CAP`, ssim) of one uint8 HR image (mod-cropped) at `scale`."""
  sr = np.asarray(model.upscale(downscale(hr, scale), scale))
  if sr.shape != hr.shape:
    raise ValueError(f"model {model.name!r} returned shape {sr.shape}, expected {hr.shape}")
  p, s = metrics.paper_protocol(sr, hr, scale)
  return sr, min(float(p), PSNR_CAP), float(s)


class Journal:
  """Per-image results of an unfinished run, one JSON line each, so that a killed run resumes.

  The first line is `header` (what the run scores); each further line is one scored image,
  `{"model", "set", "scale", "name", "psnr", "ssim", "seconds"}`. A line cut short by a kill is
  ignored. Raises ValueError when resuming a journal whose header differs from `header`.
  """

  def __init__(self, path, header: Mapping, *, resume: bool):
    self.path = pathlib.Path(path)
    self._done = {}
    header = json.loads(json.dumps(dict(header)))  # as it reads back
    if resume and self.path.is_file():
      records, torn = [], False
      for line in self.path.read_text(encoding="utf-8").splitlines():
        try:
          records.append(json.loads(line))
        except ValueError:
          torn = True  # the line being written when the run was killed
      if not records or records[0] != header:
        old = records[0] if records and isinstance(records[0], dict) else {}
        if {k: v for k, v in old.items() if k != "weights"} == {
            k: v for k, v in header.items() if k != "weights"}:
          raise ValueError(
              f"{self.path} was written for other weights under the same model names (a "
              f"checkpoint trained again?): it scored {old.get('weights', 'unrecorded weights')}, "
              f"these are {header.get('weights')}. Move the journal aside to keep its scores, or "
              "drop --resume to start over")
        raise ValueError(f"{self.path} was written by a run of other models, sets, images or "
                         "scales: run the same command, or drop --resume to start over")
      for r in records[1:]:
        self._done[(r["model"], r["set"], r["scale"], r["name"])] = r
      if torn:  # rewrite without it, so that new lines are not appended to it
        self._rewrite([header, *records[1:]])
    else:
      self._rewrite([header])

  def _rewrite(self, records) -> None:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, self.path)

  def __len__(self) -> int:
    return len(self._done)

  def get(self, model: str, set_name: str, scale: int, name: str) -> dict | None:
    """The recorded `{"psnr", "ssim", "seconds", ...}` of an image, or None."""
    return self._done.get((model, set_name, scale, name))

  def add(self, model: str, set_name: str, scale: int, name: str, **values) -> None:
    record = {"model": model, "set": set_name, "scale": scale, "name": name, **values}
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(record) + "\n")
      f.flush()
      os.fsync(f.fileno())
    self._done[(model, set_name, scale, name)] = record


def _mean(values):
  return float(np.mean(values)) if values else None


def evaluate_model(model, sets: Mapping[str, Sequence], scales: Sequence[int], *,
                   save_dir=None, weights_dir=None, progress: bool = True,
                   image_subdir: str | None = None, journal: Journal | None = None) -> dict:
  """Scores one model on image sets at several scales with the papers' protocol.

  Args:
    model: a `Model`, or a `--model` string (`bicubic`, `official:<stem>`, a workdir path).
    sets: `{set name: image paths}` (e.g. from `resolve_sets`) or `{set name: folder}`.
    scales: integer upscaling factors, e.g. `(2, 4, 8)`.
    save_dir: if given, SR images go to `save_dir/[image_subdir/]<set>/x<scale>/<name>.png`.
    weights_dir: folder of the official `.mat` files (for `official:` strings).
    progress: show a tqdm bar per set and scale.
    journal: if given, images it holds are not scored again, and every scored image is added.

  Returns:
    `{"results": [one entry per (set, scale)], "failed_images": n}` in the module doc's format;
    images that cannot be read or upscaled are recorded with their error, the others scored.
  """
  if isinstance(model, str):
    model = model_from_spec(model, weights_dir=weights_dir)
  scales = [int(s) for s in scales]
  if not scales or any(s < 1 for s in scales):
    raise ValueError(f"scales must be positive integers, got {scales}")
  results = []
  for set_name, paths in sets.items():
    if isinstance(paths, (str, os.PathLike)):
      paths = images_lib.list_images(paths)
    loaded = []  # (name, uint8 image or the ImageReadError)
    paths = [pathlib.Path(p) for p in paths]
    for path, name in zip(paths, _image_names(paths)):
      try:
        loaded.append((name, images_lib.read_image(path)))
      except images_lib.ImageReadError as e:
        loaded.append((name, e))
    for scale in scales:
      seconds = 0.0  # of scoring, summed over images (also those scored by a resumed run)
      entries, psnrs, ssims = [], [], []
      bar = tqdm(loaded, desc=f"{model.name} {set_name} x{scale}", unit="img",
                 disable=not progress, leave=False, file=sys.stderr)
      for name, img in bar:
        done = journal.get(model.name, set_name, scale, name) if journal else None
        if done is not None:
          entries.append({"name": name, "psnr": done["psnr"], "ssim": done["ssim"]})
          psnrs.append(done["psnr"])
          ssims.append(done["ssim"])
          seconds += done["seconds"]
          continue
        start = time.perf_counter()
        try:
          if isinstance(img, Exception):
            raise img
          hr = images_lib.mod_crop(img, scale)
          sr, p, s = _score_one(model, hr, scale)
        except Exception as e:  # pylint: disable=broad-except  (recorded, the set goes on)
          entries.append({"name": name, "error": f"{type(e).__name__}: {e}"})
          print(f"error: {model.name} {set_name} x{scale} {name}: {e}", file=sys.stderr)
          continue
        entries.append({"name": name, "psnr": p, "ssim": s})
        psnrs.append(p)
        ssims.append(s)
        if save_dir is not None:
          folder = pathlib.Path(save_dir)
          if image_subdir:
            folder = folder / image_subdir
          _save_png(folder / set_name / f"x{scale}" / f"{name}.png", sr)
        elapsed = time.perf_counter() - start
        seconds += elapsed
        if journal is not None:
          journal.add(model.name, set_name, scale, name, psnr=p, ssim=s, seconds=round(elapsed, 3))
      failed = len(entries) - len(psnrs)
      weights = {"weights": model.weights} if model.weights else {}
      results.append({"model": model.name, **weights, "set": set_name, "scale": scale,
                      "psnr": _mean(psnrs), "ssim": _mean(ssims), "num_images": len(psnrs),
                      "failed": failed, "seconds": round(seconds, 3), "images": entries})
  return {"results": results, "failed_images": count_failed_images(results)}


def _image_names(paths: Sequence[pathlib.Path]) -> list[str]:
  """Each file's stem, or its full name where several files of the set share the stem (e.g.
  `baby.png` and `baby.jpg`), so that names in the JSON and saved PNGs stay distinct."""
  stems = [p.stem for p in paths]
  return [p.name if stems.count(p.stem) > 1 else p.stem for p in paths]


def count_failed_images(results: Sequence[Mapping]) -> int:
  """The number of distinct image files (set, name) that failed for any model or scale."""
  return len({(r["set"], im["name"]) for r in results for im in r["images"] if "error" in im})


def _cell(entry) -> str:
  if entry is None:
    return "-"
  if entry["psnr"] is None:
    return "failed"
  text = f"{entry['psnr']:.3f} / {entry['ssim']:.4f}"
  return text + (f" ({entry['failed']} failed)" if entry["failed"] else "")


def markdown_table(results: Sequence[Mapping]) -> str:
  """The CMS-LapSRN poster's Table 1 layout: rows = scale x model (scale-major), columns = sets,
  cells `PSNR / SSIM`."""
  models = list(dict.fromkeys(r["model"] for r in results))
  sets = list(dict.fromkeys(r["set"] for r in results))
  scales = sorted(set(r["scale"] for r in results))
  index = {(r["model"], r["set"], r["scale"]): r for r in results}
  lines = ["| Model | Scale | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
  for scale in scales:
    for model in models:
      if not any((model, s, scale) in index for s in sets):
        continue
      cells = [_cell(index.get((model, s, scale))) for s in sets]
      lines.append(f"| {model} | {scale}x | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _split(text: str) -> list[str]:
  return [t.strip() for t in text.split(",") if t.strip()]


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m lapsrn_jax.evaluate",
      description="PSNR / SSIM of super-resolution models with the LapSRN papers' protocol.")
  parser.add_argument("--model", required=True,
                      help="comma-separated: bicubic, official:<stem> (e.g. "
                           "official:MSLapSRN_D5R8), or a training workdir/checkpoint path")
  parser.add_argument("--data-dir", help="folder holding the sets named by --sets")
  parser.add_argument("--sets", default=None,
                      help="comma-separated subfolders of --data-dir (default with --data-dir: "
                           "Set5,Set14,BSDS100)")
  parser.add_argument("--hr-dir", action="append", default=[],
                      help="a folder of HR images scored as one set named after it (repeatable)")
  parser.add_argument("--scales", default="2,4,8", help="comma-separated, default 2,4,8")
  parser.add_argument("--weights-dir", default=None,
                      help="folder of the official .mat weights (default $LAPSRN_WEIGHTS_DIR)")
  parser.add_argument("--output", help="write the results as JSON here")
  parser.add_argument("--save-images", metavar="OUT", help="write the SR images as PNG under OUT")
  parser.add_argument("--resume", action="store_true",
                      help="go on from the journal OUTPUT.journal.jsonl of a killed run of the "
                           "same command (needs --output)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  try:
    args.scales = [int(s) for s in _split(args.scales)]
  except ValueError:
    parser.error(f"--scales must be comma-separated integers, got {args.scales!r}")
  if not args.scales or min(args.scales) < 1:
    parser.error(f"--scales must be positive integers, got {args.scales}")
  if args.sets is None:
    args.sets = "Set5,Set14,BSDS100" if args.data_dir else ""
  args.sets = _split(args.sets)
  args.model = _split(args.model)
  if not args.model:
    parser.error("--model is empty")
  if args.resume and not args.output:
    parser.error("--resume needs --output (the journal is OUTPUT.journal.jsonl)")
  return args


def main(argv=None) -> int:
  """The CLI; returns the exit status (0 ok, 1 some images failed, 2 bad arguments)."""
  args = _parse_args(argv)
  try:
    if args.output:  # before any work: an unwritable output is found now, not after the run
      images_lib.check_writable(args.output, "--output", folder=False)
    if args.save_images:
      images_lib.check_writable(args.save_images, "--save-images", folder=True)
    sets = resolve_sets(data_dir=args.data_dir, set_names=args.sets, hr_dirs=args.hr_dir)
    models = [model_from_spec(spec, weights_dir=args.weights_dir) for spec in args.model]
    journal = None
    if args.output:
      header = {"evaluate_journal": 1, "models": [m.name for m in models],
                "weights": [m.weights for m in models],
                "scales": args.scales,
                "sets": {name: [p.name for p in paths] for name, paths in sets.items()}}
      journal = Journal(args.output + ".journal.jsonl", header, resume=args.resume)
      if len(journal):
        print(f"resuming: {len(journal)} image(s) already scored in {journal.path}",
              file=sys.stderr)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  results = []
  for model in models:
    out = evaluate_model(model, sets, args.scales, save_dir=args.save_images,
                         progress=not args.no_progress,
                         image_subdir=_safe_name(model.name) if len(models) > 1 else None,
                         journal=journal)
    results += out["results"]
  failed = count_failed_images(results)  # a broken file counts once, whatever the models/scales
  print(markdown_table(results))
  if args.output:
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"results": results, "failed_images": failed}, indent=1,
                                 allow_nan=False))
    journal.path.unlink()
  if failed:
    print(f"error: {failed} image(s) could not be scored (see above"
          f"{' and ' + args.output if args.output else ''})", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
