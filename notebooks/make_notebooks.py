"""Writes notebooks/quickstart.ipynb and notebooks/colab_tpu_training.ipynb (without outputs).

    python notebooks/make_notebooks.py

The notebooks are generated so that their code stays reviewable as plain Python here; edit this
file, not the .ipynb files, and re-run it. `tests/test_notebooks.py` executes both notebooks with
`LAPSRN_NOTEBOOK_TINY=1` (a tiny CPU setting).
"""

import pathlib
import textwrap

import nbformat
from nbformat import v4

HERE = pathlib.Path(__file__).resolve().parent


def _md(text: str):
  return v4.new_markdown_cell(textwrap.dedent(text).strip())


def _code(text: str, tags=()):
  cell = v4.new_code_cell(textwrap.dedent(text).strip())
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


# Shared by both notebooks: configs/ lives in the repository, not in the installed package.
_FIND_REPO = '''

def find_repo_dir() -> pathlib.Path:
  """The lapsrn-jax checkout that holds configs/: $LAPSRN_REPO_DIR, the working directory or a
  folder above it (Jupyter starts in notebooks/), or the folder above an editable install."""
  import lapsrn_jax
  candidates = [os.environ.get("LAPSRN_REPO_DIR"), pathlib.Path.cwd(),
                *pathlib.Path.cwd().parents, pathlib.Path(lapsrn_jax.__file__).parents[1]]
  for folder in candidates:
    if folder and (pathlib.Path(folder) / "configs" / "quickstart.py").is_file():
      return pathlib.Path(folder).resolve()
  raise FileNotFoundError("configs/quickstart.py not found: run this notebook from a checkout of "
                          "lapsrn-jax or set LAPSRN_REPO_DIR to one")


def load_config(name: str):
  """`get_config()` of configs/<name>.py (an ml_collections.ConfigDict)."""
  path = REPO_DIR / "configs" / f"{name}.py"
  if not path.is_file():
    known = sorted(p.stem for p in (REPO_DIR / "configs").glob("*.py"))
    raise ValueError(f"no config {name!r} in {path.parent}; known: {', '.join(known)}")
  spec = importlib.util.spec_from_file_location(f"lapsrn_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
'''


def colab_notebook():
  cells = [
      _md("""
      # Train LapSRN / MS-LapSRN / CMS-LapSRN on a TPU, a GPU or a CPU

      This notebook trains a model of the `lapsrn-jax` package with the same library function as
      `python -m lapsrn_jax.train` (`train_and_evaluate(config, workdir)`), then scores it with the
      papers' evaluation protocol and shows a few pixels.

      **In Colab:** open this file from your copy of the repository (*File → Open notebook →
      GitHub*), pick *Runtime → Change runtime type → TPU* (or a GPU), set `REPO_URL` in the
      first code cell to that repository, and run all cells. Outside Colab the package must already
      be installed (`pip install -e .` in a checkout) and the notebook must run inside the checkout
      (it reads `configs/`), or `LAPSRN_REPO_DIR` must point at one.

      * Default: the **quickstart** config, a 16-channel MS-LapSRN trained at 2x for 800 steps on
        photographs bundled with scikit-image (nothing to download). Measured on a busy 2-core CPU
        (no accelerator): about 7 minutes for the whole notebook, Set5 2x 35.32 dB / 0.9455
        (bicubic 33.69 / 0.931).
      * The paper recipe: `CONFIG_NAME = "ms_lapsrn_d5r8"` or `"cms_lapsrn_d5r8_conv3"`. It needs
        the 291 training images (T91 + BSDS200) and BSDS100 in `$LAPSRN_DATA_DIR` (e.g. a folder
        on your Google Drive) and 1M steps for the full schedule: set `NUM_STEPS` for a shorter run.
      * `LAPSRN_DATA_DIR` set: the trained model is also scored on Set5 (`$LAPSRN_DATA_DIR/Set5`);
        otherwise on the config's validation photos.
      * `LAPSRN_NOTEBOOK_TINY=1` (environment): a tiny CPU smoke run (8 steps of `configs/debug.py`
        at 2x) used by `tests/test_notebooks.py`. Its model is far below bicubic: it only checks
        that every cell runs.
      """),
      _code("""
      # Settings: edit these.
      REPO_URL = "https://github.com/YOUR-ORG/lapsrn-jax"  # your lapsrn-jax repository (Colab only)
      # A configs/*.py: "quickstart", "ms_lapsrn_d5r8", "cms_lapsrn_d5r8_conv3".
      CONFIG_NAME = "quickstart"
      NUM_STEPS = None  # None: the config's number of steps; e.g. 20_000 for a shorter recipe
      INIT_FROM = None  # None: the config's; "official:MSLapSRN_D5R8" fine-tunes official weights
      WORKDIR = None  # None: workdirs/<config>; a workdir that holds a checkpoint is resumed

      # Data and weights (paper recipe, Set5 scores, INIT_FROM="official:..."), e.g. on Drive:
      # from google.colab import drive; drive.mount("/content/drive")
      # import os; os.environ["LAPSRN_DATA_DIR"] = "/content/drive/MyDrive/lapsrn/data"
      # os.environ["LAPSRN_WEIGHTS_DIR"] = "/content/drive/MyDrive/lapsrn/weights"
      """, tags=["parameters"]),
      _md("""
      ## 1. Install

      In Colab the repository is cloned (the training configs live in its `configs/` folder) and
      installed with pip; JAX is Colab's own (with TPU support on TPU runtimes).
      """),
      _code(textwrap.dedent("""
      import importlib.util
      import json
      import os
      import pathlib
      import subprocess
      import sys

      try:
        import google.colab  # noqa: F401  (only importable inside Colab)
        IN_COLAB = True
      except ImportError:
        IN_COLAB = False

      if IN_COLAB:
        if "YOUR-ORG" in REPO_URL:
          raise ValueError("set REPO_URL in the first code cell to your lapsrn-jax repository")
        os.environ["LAPSRN_REPO_DIR"] = "/content/lapsrn-jax"
        if not pathlib.Path("/content/lapsrn-jax").exists():
          subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/lapsrn-jax"],
                         check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/lapsrn-jax"],
                       check=True)
      """) + _FIND_REPO + textwrap.dedent("""

      REPO_DIR = find_repo_dir()
      TINY = os.environ.get("LAPSRN_NOTEBOOK_TINY") == "1"
      print(f"configs from {REPO_DIR / 'configs'}; in Colab: {IN_COLAB}; tiny CPU run: {TINY}")
      """)),
      _md("""
      ## 2. Devices

      Training is data-parallel over every device JAX sees (a TPU v2-8 has 8 cores, a v5e-1 one
      chip): the global batch is split over them, so `train.batch_size` must be divisible by their
      number (the config check says so before any work).
      """),
      _code("""
      import jax

      DEVICES = jax.devices()
      PLATFORM = DEVICES[0].platform  # "tpu", "gpu" or "cpu"
      print(f"{len(DEVICES)} {PLATFORM.upper()} device(s): {DEVICES}")
      if PLATFORM == "cpu" and not TINY:
        print("No accelerator: in Colab use Runtime > Change runtime type > TPU (or a GPU). "
              "The quickstart config also runs on a CPU, slowly.")
      """),
      _md("""
      ## 3. Config

      Each `configs/<name>.py` has a `get_config()` with every field commented (the same files
      `python -m lapsrn_jax.train --config configs/<name>.py` reads). Change fields here as you
      would with `--config.<field>=value`.
      """),
      _code("""
      config = load_config("debug" if TINY else CONFIG_NAME)
      if TINY:  # smoke run: 8 steps of a 4k-parameter model at 2x, validated once, at the end
        config.train.num_steps = 8
        config.train.scales = (2,)
        config.eval.scales = (2,)
        config.eval.every = 0
        config.checkpoint.every = 8
      if NUM_STEPS is not None:
        config.train.num_steps = int(NUM_STEPS)
      if INIT_FROM is not None:
        config.init_from = INIT_FROM
      RUN_NAME = "tiny" if TINY else CONFIG_NAME
      WORKDIR = pathlib.Path(WORKDIR or f"workdirs/{RUN_NAME}").absolute()
      SCALES = tuple(config.eval.scales)
      print(f"model: {config.model.name} {config.model.overrides.to_dict()}")
      print(f"data: train={config.data.train!r} val={config.data.val!r}")
      print(f"{config.train.num_steps} steps of batch {config.train.batch_size} "
            f"({config.train.patch_size}px patches) at scales {tuple(config.train.scales)}, "
            f"optimiser {config.optim.name}; workdir {WORKDIR}")
      """),
      _md("""
      ## 4. Train

      Checkpoints (the latest ones and the best by validation PSNR) and metrics
      (`metrics.jsonl`, TensorBoard) go to `WORKDIR`; re-running this cell resumes from the last
      checkpoint. The returned dict holds the last validation scores, next to bicubic.
      """),
      _code("""
      from lapsrn_jax.train import train_and_evaluate

      summary = train_and_evaluate(config, WORKDIR)
      for s in SCALES:
        print(f"step {summary['step']}, x{s}: validation Y-PSNR {summary[f'val/psnr_x{s}']:.2f} dB "
              f"(bicubic {summary[f'val/bicubic_psnr_x{s}']:.2f} dB)")
      """),
      _code("""
      import matplotlib.pyplot as plt

      records = [json.loads(line) for line in (WORKDIR / "metrics.jsonl").read_text().splitlines()]
      train = [r for r in records if "train/loss" in r]
      fig, ax = plt.subplots(figsize=(6, 3))
      ax.plot([r["step"] for r in train], [r["train/loss"] for r in train], marker=".")
      ax.set_xlabel("step")
      ax.set_ylabel("Charbonnier loss (per image)")
      ax.set_yscale("log")
      ax.set_title("training loss")
      plt.show()
      """),
      _md("""
      ## 5. Evaluate with the papers' protocol

      `evaluate_model` is the function behind `python -m lapsrn_jax.evaluate`: mod-crop, MATLAB
      bicubic LR in float64, the network on Y (bicubic Cb/Cr), uint8 quantisation, Y-channel PSNR /
      SSIM with `scale` pixels shaved. The trained model is the best checkpoint of `WORKDIR`
      (`load_model`, the resolver behind every `--model`). The published Bicubic row on Set5 is
      33.69 / 0.931 (2x), 28.43 / 0.811 (4x), 24.40 / 0.658 (8x).
      """),
      _code("""
      from IPython.display import Markdown, display
      from PIL import Image

      from lapsrn_jax import load_model, super_resolve
      from lapsrn_jax.evaluate import Model, evaluate_model, markdown_table, resolve_sets

      model, params = load_model(WORKDIR)
      ours = Model(f"ours ({RUN_NAME})", lambda lr, s: super_resolve(model, params, lr, s))

      DATA_DIR = os.environ.get("LAPSRN_DATA_DIR")
      if DATA_DIR:
        sets = resolve_sets(data_dir=DATA_DIR, set_names=["Set5"])
      else:  # the config's validation photos, written once as (lossless) PNG files
        from lapsrn_jax.data.pipeline import load_validation_set
        val_dir = WORKDIR / "validation_images"
        val_dir.mkdir(exist_ok=True)
        for name, hr in load_validation_set(config.data):
          Image.fromarray(hr).save(val_dir / f"{name}.png")
        sets = {"validation": sorted(val_dir.glob("*.png"))}

      results = []
      for m in ("bicubic", ours):
        results += evaluate_model(m, sets, SCALES, progress=False)["results"]
      (WORKDIR / "evaluation.json").write_text(json.dumps({"results": results}, indent=1))
      display(Markdown(markdown_table(results)))
      """),
      _md("""
      ## 6. Look at the pixels

      The centre of the evaluation image that is hardest for bicubic (its lowest PSNR), at the
      largest scale: bicubic, ours and the HR original (PSNR of the whole image in the titles).
      """),
      _code("""
      import numpy as np

      from lapsrn_jax.images import mod_crop, read_image
      from lapsrn_jax.imresize import imresize
      from lapsrn_jax.inference import downscale
      from lapsrn_jax.metrics import im2uint8, paper_protocol

      scale = max(SCALES)
      set_name, paths = next(iter(sets.items()))
      bicubic_row = next(r for r in results
                         if (r["model"], r["set"], r["scale"]) == ("bicubic", set_name, scale))
      hardest = min((e for e in bicubic_row["images"] if "psnr" in e), key=lambda e: e["psnr"])
      path = next(p for p in paths if pathlib.Path(p).stem == hardest["name"])
      hr = mod_crop(read_image(path), scale)
      lr = downscale(hr, scale)  # float64, MATLAB bicubic
      panels = {"bicubic": imresize(lr, scale), "ours": super_resolve(model, params, lr, scale),
                "HR": hr}
      side = min(128, *hr.shape[:2])
      top, left = (hr.shape[0] - side) // 2, (hr.shape[1] - side) // 2
      fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
      for ax, (name, img) in zip(axes, panels.items()):
        title = name
        if name != "HR":
          title += f": {float(paper_protocol(img, hr, scale)[0]):.2f} dB"
        crop = np.asarray(im2uint8(img))[top:top + side, left:left + side]
        ax.imshow(crop, cmap="gray" if crop.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
      fig.suptitle(f"{set_name}/{pathlib.Path(path).name}, x{scale}")
      plt.show()
      """),
  ]
  return _notebook(cells)


def quickstart_notebook():
  cells = [
      _md("""
      # Quickstart: super-resolve a photo with MS-LapSRN and CMS-LapSRN

      1. Load the official MS-LapSRN D5R8 weights (`MSLapSRN_D5R8.mat` from `$LAPSRN_WEIGHTS_DIR`),
         or, when that variable is not set, train the small quickstart model
         (`configs/quickstart.py`: about 6 minutes on a busy 2-core CPU, then ~0.8 dB above bicubic
         on this crop).
      2. Use the functional API: `create_model`, `model.init` / `model.apply`, `super_resolve`.
      3. Turn the MS-LapSRN weights into a CMS-LapSRN (the transposed-conv upsampler replaced by
         the regularised inverse of a stride-2 conv tied to a conv of the recursive block).
      4. Super-resolve a crop of a photo bundled with scikit-image (no download) 2x and compare
         bicubic / MS-LapSRN / CMS-LapSRN, with the papers' PSNR / SSIM.

      `LAPSRN_NOTEBOOK_TINY=1` (environment) uses a small crop (and a tiny training run when there
      are no official weights) so that `tests/test_notebooks.py` runs it quickly on a CPU.
      """),
      _code("""
      import importlib.util
      import json
      import os
      import pathlib

      import jax
      import matplotlib.pyplot as plt
      import numpy as np
      import skimage.data
      from IPython.display import Markdown, display

      from lapsrn_jax import create_model, load_model, super_resolve
      from lapsrn_jax.color import rgb_to_ycbcr
      from lapsrn_jax.images import mod_crop
      from lapsrn_jax.imresize import imresize
      from lapsrn_jax.inference import downscale
      from lapsrn_jax.metrics import im2uint8, paper_protocol
      from lapsrn_jax.weights import cms_params_from_ms

      TINY = os.environ.get("LAPSRN_NOTEBOOK_TINY") == "1"
      SCALE = 2
      OUT_DIR = pathlib.Path("outputs/quickstart").absolute()  # scores (JSON) and workdirs
      OUT_DIR.mkdir(parents=True, exist_ok=True)
      print(f"JAX {jax.__version__} on {jax.devices()[0].platform}; tiny: {TINY}")
      """),
      _md("""
      ## 1. A test image

      `skimage.data.chelsea()` (300×451 RGB) ships with scikit-image. It is one of the quickstart
      config's two held-out validation photos, so the trained fallback model never saw it. The LR
      input is made as in the papers' evaluation: MATLAB bicubic downscaling in float64.
      """),
      _code("""
      photo = skimage.data.chelsea()
      size = 128 if TINY else 256  # HR crop side
      eye = (115, 172)  # (row, col) of the cat's left eye in the photo
      top = int(np.clip(eye[0] - size // 2, 0, photo.shape[0] - size))
      left = int(np.clip(eye[1] - size // 2, 0, photo.shape[1] - size))
      hr = mod_crop(photo[top:top + size, left:left + size], SCALE)  # uint8 [size, size, 3]
      lr = downscale(hr, SCALE)  # float64 [size/2, size/2, 3] in [0, 1] (not clipped)
      print(f"HR {hr.shape} {hr.dtype} -> LR {lr.shape} {lr.dtype}")
      """),
      _md("""
      ## 2. MS-LapSRN weights

      `load_model` is the one resolver of a model: `"official:MSLapSRN_D5R8"` reads the architecture
      (depth, recursions) from the authors' `.mat` file and returns `(model, params)`; a training
      workdir gives its best checkpoint. Without `LAPSRN_WEIGHTS_DIR` the quickstart config is
      trained here instead with `train_and_evaluate` (the function behind `python -m
      lapsrn_jax.train`); `load_model("official:MSLapSRN_D5R8")` with no weights folder would
      download the authors' file once (verified) instead.
      """),
      _code(textwrap.dedent("""
      WEIGHTS_DIR = os.environ.get("LAPSRN_WEIGHTS_DIR")
      if WEIGHTS_DIR:
        ms_model, ms_params = load_model("official:MSLapSRN_D5R8", weights_dir=WEIGHTS_DIR,
                                         download=False)
        SOURCE = "official MSLapSRN_D5R8"
      else:
        from lapsrn_jax.train import train_and_evaluate
      """) + textwrap.indent(_FIND_REPO, "  ") + textwrap.dedent("""
        REPO_DIR = find_repo_dir()
        config = load_config("quickstart")
        if TINY:  # a smoke run: a tiny model for a few steps (far below bicubic)
          config.model.overrides.features = 8
          config.train.num_steps = 8
          config.eval.every = 0
          config.checkpoint.every = 8
        workdir = OUT_DIR / ("workdir_tiny" if TINY else "workdir")
        summary = train_and_evaluate(config, workdir)  # resumes when workdir holds a checkpoint
        print(f"validation: {summary['val/psnr_x2']:.2f} dB (bicubic "
              f"{summary['val/bicubic_psnr_x2']:.2f} dB) after {summary['step']} steps")
        ms_model, ms_params = load_model(workdir)
        SOURCE = "quickstart (trained here)" + (", tiny" if TINY else "")
      print(SOURCE, ms_model)
      """)),
      _md("""
      ## 3. The functional API

      Every model is a Flax Linen module. `model.init` builds a parameter tree (here only its
      shapes, with `jax.eval_shape`, to compare with the loaded one); `model.apply` runs the
      network on the LR **Y channel** `[N, H, W, 1]` in [0, 1] and returns the SR image of every
      pyramid level up to `scale` (2x first). One MS-LapSRN serves every scale: at `scale=4` the
      same weights are applied twice.
      """),
      _code("""
      y = rgb_to_ycbcr(lr)[None, ..., :1].astype(np.float32)  # [1, h, w, 1]
      shapes = jax.eval_shape(lambda: ms_model.init(jax.random.key(0), y, scale=SCALE))["params"]
      assert jax.tree.structure(shapes) == jax.tree.structure(ms_params)
      count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
      print(f"MS-LapSRN: {count(ms_params):,} parameters")

      apply = jax.jit(ms_model.apply, static_argnames="scale")
      pyramid = apply({"params": ms_params}, y[:, :32, :32], scale=4)
      print("scale=4 on a 32x32 LR patch ->", [tuple(level.shape) for level in pyramid])
      """),
      _md("""
      ## 4. CMS-LapSRN from the same weights

      `cms_params_from_ms` keeps every parameter of MS-LapSRN except the transposed-conv kernel of
      the feature upsampler, which CMS-LapSRN does not have: its upsampler is
      `(1 + ρ) τ Cᵀ (C Cᵀ + ρ τ I)⁻¹` with `C` the stride-2 conv **tied** to conv 3 of the recursive
      block, plus the old bias; `ρ = softplus(θ)` starts at 1.

      **Untuned, CMS-LapSRN is worse** than MS-LapSRN, possibly below bicubic, because the shared
      weights were trained around a different upsampler. The papers' CMS-LapSRN numbers need
      fine-tuning (or training from scratch): `python -m lapsrn_jax.train --config
      configs/cms_lapsrn_d5r8_conv3.py --config.init_from=official:MSLapSRN_D5R8 --workdir ...`.
      Its PSNR below is shown as it is.
      """),
      _code("""
      tie_to = min(3, ms_model.depth)
      cms_model = create_model("cms_lapsrn", depth=ms_model.depth, recursions=ms_model.recursions,
                               features=ms_model.features, skip=ms_model.skip, tie_to=tie_to)
      cms_params = cms_params_from_ms(ms_params, tie_to=tie_to)
      print(f"CMS-LapSRN (tied to conv{tie_to}): {count(cms_params):,} parameters")
      """),
      _md("""
      ## 5. Super-resolve and score

      `super_resolve(model, params, image, scale)` runs the network on Y and MATLAB bicubic on Cb /
      Cr, like the official `SR_MSLapSRN.m`. Scores: the papers' protocol (uint8, Y channel,
      `scale` pixels shaved; `paper_protocol`).
      """),
      _code("""
      outputs = {
          "Bicubic": imresize(lr, SCALE),
          "MS-LapSRN": super_resolve(ms_model, ms_params, lr, SCALE),
          "CMS-LapSRN (untuned)": super_resolve(cms_model, cms_params, lr, SCALE),
      }
      scores = {}
      for name, image in outputs.items():
        p, s = paper_protocol(image, hr, SCALE)
        scores[name] = {"psnr": float(p), "ssim": float(s)}
      summary = {"source": SOURCE, "scores": scores}
      (OUT_DIR / "scores.json").write_text(json.dumps(summary, indent=1))
      rows = [f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} |" for name, v in scores.items()]
      display(Markdown(f"**{SOURCE}**, {SCALE}x on a {hr.shape[0]}×{hr.shape[1]} crop\\n\\n"
                       "| Method | PSNR (dB) | SSIM |\\n|---|---|---|\\n" + "\\n".join(rows)))
      """),
      _md("""
      ## 6. Compare

      The 64×64 HR pixels around the eye, enlarged without interpolation.
      """),
      _code("""
      r0 = int(np.clip(eye[0] - top - 32, 0, hr.shape[0] - 64))
      c0 = int(np.clip(eye[1] - left - 32, 0, hr.shape[1] - 64))
      window = (slice(r0, r0 + 64), slice(c0, c0 + 64))
      panels = {"HR": hr, **outputs}
      fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3))
      for ax, (name, image) in zip(axes, panels.items()):
        ax.imshow(np.asarray(im2uint8(image))[window], interpolation="nearest")
        title = name if name == "HR" else f"{name}\\n{scores[name]['psnr']:.2f} dB"
        ax.set_title(title)
        ax.axis("off")
      plt.show()
      """),
  ]
  return _notebook(cells)


def _notebook(cells):
  for i, cell in enumerate(cells):
    cell.id = f"cell-{i:02d}"  # stable ids: regenerating gives no spurious diff
  nb = v4.new_notebook(cells=cells)
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                               "language": "python"}
  nb.metadata["language_info"] = {"name": "python"}
  nb.metadata["accelerator"] = "TPU"  # Colab: ask for a TPU runtime
  return nb


def main():
  for name, make in (("colab_tpu_training", colab_notebook), ("quickstart", quickstart_notebook)):
    nb = make()
    if name == "quickstart":
      del nb.metadata["accelerator"]
    nbformat.validate(nb)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
