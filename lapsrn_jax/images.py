"""Image files for evaluation: reading (as MATLAB `imread` would give them), listing, mod-crop.

`read_image` returns uint8 `[H, W]` for grayscale files and `[H, W, 3]` for colour ones:

- gray (`L`), 1-bit (`1`, as 0/255) -> `[H, W]`; gray + alpha (`LA`) -> alpha dropped, `[H, W]`;
- RGB -> `[H, W, 3]`; RGBA / RGBX -> alpha dropped (not composited), `[H, W, 3]`;
- palette (`P`) -> expanded to RGB `[H, W, 3]` (alpha/transparency dropped);
- CMYK, YCbCr, LAB, HSV -> converted to RGB by Pillow;
- 16-bit gray (`I;16*`, or `I` holding 0..65535) -> uint8 by MATLAB's `im2uint8` rule for
  uint16, `round(v / 257)` (values outside 0..65535 are saturated first);
- 32-bit float (`F`) files are rejected: their range is not defined.

The EXIF orientation tag is ignored (pixels as stored, like MATLAB's `imread`); animated or
multi-page files give their first frame.

`check_writable(path, what)` checks an output location before any work (the CLIs' `--output`,
`--save-images`).
"""

import os
import pathlib
import tempfile

import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "check_writable", "list_images", "mod_crop",
           "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageReadError(ValueError):
  """An image file that is missing, unreadable, corrupt or of an unsupported kind."""


def from_float(x, dtype) -> np.ndarray:
  """The project's one rounding rule, MATLAB `im2uint8` / `im2uint16`: float in [0, 1] -> uint8
  or uint16 as `floor(x * peak + 0.5)` saturated to [0, peak] (computed in float64); a float
  `dtype` is a plain cast."""
  dtype = np.dtype(dtype)
  x = np.asarray(x)
  if dtype.kind == "f":
    return x.astype(dtype)
  if dtype not in (np.uint8, np.uint16):
    raise ValueError(f"from_float makes uint8, uint16 or float images, not {dtype}")
  if x.dtype == dtype:
    return x
  peak = float(np.iinfo(dtype).max)
  return np.clip(np.floor(x.astype(np.float64) * peak + 0.5), 0, peak).astype(dtype)


def _to_uint8(im: Image.Image) -> np.ndarray:
  mode = im.mode
  if mode == "L":
    return np.asarray(im, dtype=np.uint8)
  if mode in ("1", "LA", "La"):
    return np.asarray(im.convert("L"), dtype=np.uint8)
  if mode == "RGB":
    return np.asarray(im, dtype=np.uint8)
  if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (32-bit int)
    values = np.asarray(im).astype(np.float64)
    values = np.clip(values, 0, 65535)
    return from_float(values / 65535.0, np.uint8)
  if mode == "F":
    raise ValueError("32-bit float images (mode F) have no defined range; save them as 8- or "
                     "16-bit PNG")
  # RGBA, RGBa, RGBX, P, PA, CMYK, YCbCr, LAB, HSV: RGB with the alpha (if any) dropped.
  return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_image(path) -> np.ndarray:
  """Reads an image file as uint8 `[H, W]` (gray) or `[H, W, 3]` (RGB); see the module doc.

  Raises:
    ImageReadError: naming the file, when it is missing, not an image, corrupt or truncated.
  """
  path = pathlib.Path(path)
  try:
    with Image.open(path) as im:
      im.load()
      array = _to_uint8(im)
  except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, ... for bad files
    raise ImageReadError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
  if array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
    raise ImageReadError(f"cannot read image {str(path)!r}: unexpected pixel array shape "
                         f"{array.shape}")
  return np.ascontiguousarray(array)


def list_images(folder) -> list[pathlib.Path]:
  """The image files directly in `folder` (png/jpg/jpeg/bmp/tif/tiff, any case), sorted by name.

  Hidden files (names starting with '.') are skipped.

  Raises:
    ValueError: naming the folder when it does not exist, is not a folder, or holds no images.
  """
  folder = pathlib.Path(folder)
  if not folder.exists():
    raise ValueError(f"image folder {str(folder)!r} does not exist")
  if not folder.is_dir():
    raise ValueError(f"{str(folder)!r} is not a folder of images")
  paths = sorted(p for p in folder.iterdir()
                 if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
                 and p.is_file())
  if not paths:
    raise ValueError(f"image folder {str(folder)!r} holds no images "
                     f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
  return paths


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
  """Crops the bottom/right of `[H, W]` or `[H, W, C]` so H and W are multiples of `scale`."""
  if isinstance(scale, bool) or int(scale) != scale or scale < 1:
    raise ValueError(f"mod_crop needs a positive integer scale, got {scale!r}")
  scale = int(scale)
  if np.ndim(img) < 2:
    raise ValueError(f"mod_crop needs an [H, W] or [H, W, C] image, got shape {np.shape(img)}")
  h, w = img.shape[0], img.shape[1]
  h2, w2 = h - h % scale, w - w % scale
  if h2 == 0 or w2 == 0:
    raise ValueError(f"image of {h}x{w} pixels is smaller than the scale {scale}")
  return img[:h2, :w2]


def check_writable(path, what: str, *, folder: bool) -> pathlib.Path:
  """Checks, creating nothing, that `path` can later be created and written: a folder
  (`folder=True`) or a file (not an existing folder), below a writable existing ancestor.

  Args:
    what: the option named in the error, e.g. "--output".

  Raises:
    ValueError: one line naming `what`, the path and the reason.
  """
  path = pathlib.Path(os.path.expanduser(str(path))).absolute()
  if path.exists():
    if folder and not path.is_dir():
      raise ValueError(f"{what} {str(path)!r} exists and is not a folder")
    if not folder and path.is_dir():
      raise ValueError(f"{what} {str(path)!r} is a folder, not a file")
  ancestor = path if folder and path.is_dir() else path.parent
  while not ancestor.exists():
    ancestor = ancestor.parent
  if not ancestor.is_dir():
    raise ValueError(f"{what} {str(path)!r} cannot be created: {str(ancestor)!r} is a file")
  try:
    with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".write_test"):
      pass
    if path.is_file() and not os.access(path, os.W_OK):
      raise PermissionError("the file is read-only")
  except OSError as err:
    raise ValueError(f"{what} {str(path)!r} cannot be written ({str(ancestor)!r}: "
                     f"{err.strerror or err})") from None
  return path
