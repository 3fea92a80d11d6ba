"""Image files for the upscale CLI: every pixel kept (16-bit, alpha), EXIF orientation applied.

`read_pixels(path)` returns `[H, W, C]` uint8 or uint16, with C = 1 (gray), 2 (gray + alpha),
3 (RGB) or 4 (RGBA), in the display orientation (EXIF orientation tag applied, as
`PIL.ImageOps.exif_transpose` does); `write_pixels(path, pixels)` writes such an array as PNG
(8- or 16-bit by dtype).

Pillow decodes most files, but it silently truncates 16-bit colour to 8 bits, so:
- 16-bit PNG (any colour type, interlaced or not; a tRNS colour key becomes an alpha channel) are
  read and written with `imagecodecs` (libpng; Pillow cannot write 16-bit colour PNG);
- TIFF with more than 8 bits per sample are read with `tifffile` (LZW and the other compressions
  through `imagecodecs`).
Other kinds: 1-bit -> gray; palette -> RGB, or RGBA when it has transparency; CMYK, YCbCr,
LAB, HSV -> RGB; 32-bit int gray -> uint16 when its values fit; 32-bit float files are rejected
(no defined range). Evaluation reads files with `lapsrn_jax.images.read_image` instead (uint8,
MATLAB semantics); this module reuses its `ImageReadError`.
"""

import io
import pathlib

import imagecodecs
import numpy as np
from PIL import Image, ImageOps

from lapsrn_jax.images import ImageReadError

__all__ = ["ImageReadError", "read_pixels", "write_pixels", "orient"]

_EXIF_ORIENTATION = 0x0112


# ------------------------------------------------------------------------------------- orientation
def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
  """Applies an EXIF orientation (1..8) to `[H, W, ...]`, as `PIL.ImageOps.exif_transpose` does."""
  ops = {
      1: lambda x: x,
      2: lambda x: x[:, ::-1],                    # mirror left-right
      3: lambda x: x[::-1, ::-1],                 # rotate 180
      4: lambda x: x[::-1],                       # mirror top-bottom
      5: lambda x: np.swapaxes(x, 0, 1),          # transpose
      6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],  # rotate 90 clockwise (PIL ROTATE_270)
      7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],  # transverse
      8: lambda x: np.swapaxes(x, 0, 1)[::-1],    # rotate 90 counter-clockwise (PIL ROTATE_90)
  }
  return np.ascontiguousarray(ops.get(int(orientation), ops[1])(pixels))


# --------------------------------------------------------------------------------------- reading
def _from_pillow(im: Image.Image) -> np.ndarray:
  mode = im.mode
  if mode == "1":
    im, mode = im.convert("L"), "L"
  if mode in ("P", "PA"):
    has_alpha = mode == "PA" or "transparency" in im.info
    im = im.convert("RGBA" if has_alpha else "RGB")
    mode = im.mode
  if mode == "La":
    im, mode = im.convert("LA"), "LA"
  if mode == "RGBa":
    im, mode = im.convert("RGBA"), "RGBA"
  if mode in ("L", "LA", "RGB", "RGBA"):
    array = np.asarray(im, dtype=np.uint8)
  elif mode.startswith("I;16"):
    array = np.asarray(im).astype(np.uint16)
  elif mode == "I":
    values = np.asarray(im)
    if values.size and (values.min() < 0 or values.max() > 65535):
      raise ValueError(f"32-bit integer image with values in [{values.min()}, {values.max()}] "
                       "does not fit 16 bits; save it as 8- or 16-bit PNG")
    array = values.astype(np.uint16)
  elif mode == "F":
    raise ValueError("32-bit float images (mode F) have no defined range; save them as 8- or "
                     "16-bit PNG")
  else:  # RGBX, CMYK, YCbCr, LAB, HSV
    array = np.asarray(im.convert("RGB"), dtype=np.uint8)
  return array if array.ndim == 3 else array[..., None]


def _read_tiff_deep(path: pathlib.Path) -> np.ndarray:
  import tifffile  # pylint: disable=import-outside-toplevel

  with tifffile.TiffFile(path) as tif:
    page = tif.pages[0]
    array = page.asarray()
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and array.ndim == 3:
      array = np.moveaxis(array, 0, -1)
  if array.dtype == np.uint8 or array.dtype == np.uint16:
    return array if array.ndim == 3 else array[..., None]
  raise ValueError(f"TIFF samples of type {array.dtype} are not supported (use 8- or 16-bit "
                   "unsigned integers)")


def _tiff_is_deep(im: Image.Image) -> bool:
  """True when Pillow would truncate the TIFF (more than 8 bits per sample, several samples)."""
  bits = im.tag_v2.get(258, (8,)) if hasattr(im, "tag_v2") else (8,)
  bits = bits if isinstance(bits, tuple) else (bits,)
  return max(bits) > 8 and not im.mode.startswith("I") and im.mode != "F"


def read_pixels(path) -> np.ndarray:
  """Reads an image file as `[H, W, C]` uint8 or uint16 in display orientation (see module doc).

  Raises:
    ImageReadError: naming the file, when it is missing, not an image, corrupt, truncated or of
      an unsupported kind.
  """
  path = pathlib.Path(path)
  try:
    with Image.open(path) as im:
      orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
      if im.format == "PNG" and _png_bit_depth(path) == 16:
        array = orient(_hwc(imagecodecs.png_decode(path.read_bytes())), orientation)
      elif im.format == "TIFF" and _tiff_is_deep(im):
        array = orient(_read_tiff_deep(path), orientation)
      else:
        im.load()
        array = _from_pillow(ImageOps.exif_transpose(im))
  except Exception as e:  # Pillow/imagecodecs/tifffile raise many kinds for bad files
    raise ImageReadError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
  if array.ndim != 3 or min(array.shape[:2]) < 1 or array.shape[2] not in (1, 2, 3, 4):
    raise ImageReadError(f"cannot read image {str(path)!r}: unexpected pixel array shape "
                         f"{array.shape}")
  return np.ascontiguousarray(array)


def _png_bit_depth(path: pathlib.Path) -> int:
  """The bit depth in the IHDR of a PNG file (0 when it has none)."""
  with open(path, "rb") as f:
    head = f.read(25)
  return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 0


def _hwc(array: np.ndarray) -> np.ndarray:
  return array[..., None] if array.ndim == 2 else array


# --------------------------------------------------------------------------------------- writing
def write_pixels(path, pixels: np.ndarray) -> None:
  """Writes `[H, W, C]` uint8 (8-bit) or uint16 (16-bit) pixels, C in 1..4, as a PNG file."""
  path = pathlib.Path(path)
  pixels = np.asarray(pixels)
  if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
    raise ValueError(f"write_pixels needs [H, W, C] with C in 1..4, got shape {pixels.shape}")
  if path.suffix.lower() != ".png":
    raise ValueError(f"write_pixels writes PNG files; got {str(path)!r}")
  if pixels.dtype == np.uint16:  # libpng wants canonical C strides, gray as [H, W]
    h, w, c = pixels.shape
    data = imagecodecs.png_encode(np.ascontiguousarray(pixels).reshape(-1).reshape(
        (h, w) if c == 1 else (h, w, c)))
  elif pixels.dtype == np.uint8:
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if mode == "L" else pixels))
    if image.mode != mode:
      raise ValueError(f"Pillow made a {image.mode} image of {pixels.shape} uint8, expected {mode}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
  else:
    raise ValueError(f"write_pixels needs uint8 or uint16 pixels, got {pixels.dtype}")
  tmp = path.with_name(f".{path.name}.partial")
  tmp.write_bytes(data)
  tmp.replace(path)  # never leaves a half-written output under the final name
