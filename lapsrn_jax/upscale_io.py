"""Image files for the upscale CLI: every pixel kept (16-bit, alpha), EXIF orientation applied.

`read_pixels(path)` returns `[H, W, C]` uint8 or uint16, with C = 1 (gray), 2 (gray + alpha),
3 (RGB) or 4 (RGBA), in the display orientation (EXIF orientation tag applied, as
`PIL.ImageOps.exif_transpose` does); `write_pixels(path, pixels)` writes such an array as PNG
(8- or 16-bit by dtype).

Pillow decodes most files, but it silently truncates 16-bit colour to 8 bits, so:
- 16-bit PNG (any colour type) are decoded here (zlib + PNG filters, non-interlaced) and written
  here (Pillow cannot write 16-bit colour PNG);
- TIFF with more than 8 bits per sample are read with `tifffile` (a scikit-image dependency).
Other kinds: 1-bit -> gray; palette -> RGB, or RGBA when it has transparency; CMYK, YCbCr,
LAB, HSV -> RGB; 32-bit int gray -> uint16 when its values fit; 32-bit float files are rejected
(no defined range). Evaluation reads files with `lapsrn_jax.images.read_image` instead (uint8,
MATLAB semantics); this module reuses its `ImageReadError`.
"""

import io
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

from lapsrn_jax.images import ImageReadError

__all__ = ["ImageReadError", "read_pixels", "write_pixels", "orient", "decode_png16", "encode_png16"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_COLOR_TYPE = {c: t for t, c in _PNG_CHANNELS.items()}
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


# --------------------------------------------------------------------------------------- PNG 16-bit
def _chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a, b, c):
  p = a + b - c
  pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
  return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _predictors(x: np.ndarray, bpp: int):
  """The 5 PNG predictors (None, Sub, Up, Average, Paeth) of `[H, L]` bytes, each `[H, L]` int16."""
  x = x.astype(np.int16)
  a = np.zeros_like(x)
  a[:, bpp:] = x[:, :-bpp]     # left
  b = np.zeros_like(x)
  b[1:] = x[:-1]               # up
  c = np.zeros_like(x)
  c[1:, bpp:] = x[:-1, :-bpp]  # up-left
  yield np.zeros_like(x)
  yield a
  yield b
  yield (a + b) // 2
  yield _paeth(a, b, c)


def encode_png16(pixels: np.ndarray, filters: str | int = "auto") -> bytes:
  """A 16-bit PNG (non-interlaced) of `[H, W, C]` uint16, C in 1..4 (gray, gray+alpha, RGB, RGBA).

  `filters`: a PNG filter type 0..4 for every row, or "auto" (per row the filter with the least
  sum of absolute signed bytes, the heuristic of the PNG specification).
  """
  pixels = np.asarray(pixels)
  if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPE:
    raise ValueError(f"encode_png16 needs [H, W, C] uint16 with C in 1..4, got {pixels.dtype} "
                     f"{pixels.shape}")
  if filters != "auto" and filters not in range(5):
    raise ValueError(f"filters must be 0..4 or 'auto', got {filters!r}")
  h, w, ch = pixels.shape
  rows = pixels.astype(">u2").view(np.uint8).reshape(h, w * ch * 2)
  out = np.empty((h, 1 + rows.shape[1]), np.uint8)
  best = np.full(h, np.inf)
  for kind, pred in enumerate(_predictors(rows, ch * 2)):
    if filters != "auto" and kind != filters:
      continue
    filtered = ((rows - pred) & 255).astype(np.uint8)
    cost = np.abs(filtered.view(np.int8).astype(np.int64)).sum(axis=1)
    better = cost < best if filters == "auto" else np.ones(h, bool)
    best = np.where(better, cost, best)
    out[better, 0] = kind
    out[better, 1:] = filtered[better]
  header = struct.pack(">IIBBBBB", w, h, 16, _COLOR_TYPE[ch], 0, 0, 0)
  return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(out.tobytes(), 6))
          + _chunk(b"IEND", b""))


def _png_chunks(data: bytes):
  if not data.startswith(_PNG_SIGNATURE):
    raise ValueError("not a PNG file (bad signature)")
  pos = len(_PNG_SIGNATURE)
  while pos + 8 <= len(data):
    (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + length]
    crc = data[pos + 8 + length:pos + 12 + length]
    if len(body) != length or len(crc) != 4:
      raise ValueError(f"truncated PNG chunk {kind!r}")
    if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
      raise ValueError(f"PNG chunk {kind!r} fails its CRC check (corrupt file)")
    yield kind, body
    if kind == b"IEND":
      return
    pos += 12 + length
  raise ValueError("truncated PNG file (no IEND chunk)")


def png_header(data: bytes) -> tuple[int, int, int, int, int]:
  """`(width, height, bit_depth, color_type, interlace)` from the IHDR of PNG bytes."""
  if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
    raise ValueError("not a PNG file")
  w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
  return w, h, depth, color, interlace


def _unfilter(data: np.ndarray, h: int, row_bytes: int, bpp: int) -> np.ndarray:
  """Inverse PNG filtering of `[H, 1 + row_bytes]` bytes -> `[H, row_bytes]` uint8.

  Average and Paeth depend on the already decoded left and upper bytes; all rows are decoded
  together along anti-diagonals of pixels (step t decodes pixel i = t - r of every row r).
  """
  kinds = data[:, 0].astype(np.int32)
  if np.any(kinds > 4):
    raise ValueError(f"invalid PNG filter type {int(kinds.max())}")
  w = row_bytes // bpp
  f = data[:, 1:].reshape(h, w, bpp).astype(np.int32)
  x = np.zeros((h + 1, w + 1, bpp), np.int32)  # x[r + 1, i + 1] = pixel (r, i); zero border
  if np.all(kinds <= 2):  # no sequential dependency except cumulative sums: fast path
    for r in range(h):
      if kinds[r] == 1:
        x[r + 1, 1:] = np.cumsum(f[r], axis=0) & 255
      elif kinds[r] == 2:
        x[r + 1, 1:] = (f[r] + x[r, 1:]) & 255
      else:
        x[r + 1, 1:] = f[r]
    return x[1:, 1:].reshape(h, row_bytes).astype(np.uint8)
  for t in range(h + w - 1):
    r = np.arange(max(0, t - w + 1), min(h, t + 1))
    i = t - r
    a, b, c = x[r + 1, i], x[r, i + 1], x[r, i]
    k = kinds[r][:, None]
    pred = np.select([k == 1, k == 2, k == 3, k == 4], [a, b, (a + b) // 2, _paeth(a, b, c)], 0)
    x[r + 1, i + 1] = (f[r, i] + pred) & 255
  return x[1:, 1:].reshape(h, row_bytes).astype(np.uint8)


def decode_png16(data: bytes) -> np.ndarray:
  """Pixels of a non-interlaced 16-bit PNG: `[H, W, C]` uint16 (C = 1, 2, 3, 4 by colour type).

  A `tRNS` colour key (gray or RGB) becomes an alpha channel (0 where the pixel equals the key).
  """
  w, h, depth, color, interlace = png_header(data)
  if depth != 16 or color not in _PNG_CHANNELS:
    raise ValueError(f"decode_png16 handles 16-bit gray/RGB(A) PNG, got bit depth {depth}, "
                     f"colour type {color}")
  if interlace:
    raise ValueError("interlaced 16-bit PNG is not supported; re-save it without interlacing")
  idat, trns = [], None
  for kind, body in _png_chunks(data):
    if kind == b"IDAT":
      idat.append(body)
    elif kind == b"tRNS":
      trns = body
  ch = _PNG_CHANNELS[color]
  row_bytes = w * ch * 2
  raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
  if raw.size != h * (row_bytes + 1):
    raise ValueError(f"PNG image data holds {raw.size} bytes, expected {h * (row_bytes + 1)} "
                     f"for {w}x{h} (truncated or corrupt)")
  rows = _unfilter(raw.reshape(h, row_bytes + 1), h, row_bytes, ch * 2)
  pixels = rows.view(">u2").reshape(h, w, ch).astype(np.uint16)
  if trns is not None and color in (0, 2) and len(trns) == 2 * ch:
    key = np.frombuffer(trns, ">u2").astype(np.uint16)
    alpha = np.where(np.all(pixels == key, axis=2), 0, 65535).astype(np.uint16)
    pixels = np.concatenate([pixels, alpha[..., None]], axis=2)
  return pixels


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
  import tifffile  # pylint: disable=import-outside-toplevel  (scikit-image dependency)

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
      if im.format == "PNG" and _needs_png16_decoder(path):
        array = orient(decode_png16(path.read_bytes()), orientation)
      elif im.format == "TIFF" and _tiff_is_deep(im):
        array = orient(_read_tiff_deep(path), orientation)
      else:
        im.load()
        array = _from_pillow(ImageOps.exif_transpose(im))
  except Exception as e:  # Pillow/zlib/tifffile raise many kinds for bad files
    raise ImageReadError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
  if array.ndim != 3 or min(array.shape[:2]) < 1 or array.shape[2] not in (1, 2, 3, 4):
    raise ImageReadError(f"cannot read image {str(path)!r}: unexpected pixel array shape "
                         f"{array.shape}")
  return np.ascontiguousarray(array)


def _needs_png16_decoder(path: pathlib.Path) -> bool:
  """16-bit PNG that Pillow would truncate (colour) or that is not interlaced (gray)."""
  with open(path, "rb") as f:
    _, _, depth, color, interlace = png_header(f.read(29))
  return depth == 16 and (color != 0 or not interlace)


# --------------------------------------------------------------------------------------- writing
def write_pixels(path, pixels: np.ndarray) -> None:
  """Writes `[H, W, C]` uint8 (8-bit) or uint16 (16-bit) pixels, C in 1..4, as a PNG file."""
  path = pathlib.Path(path)
  pixels = np.asarray(pixels)
  if pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPE:
    raise ValueError(f"write_pixels needs [H, W, C] with C in 1..4, got shape {pixels.shape}")
  if path.suffix.lower() != ".png":
    raise ValueError(f"write_pixels writes PNG files; got {str(path)!r}")
  if pixels.dtype == np.uint16:
    data = encode_png16(pixels)
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
