"""`lapsrn_jax.upscale_io`: every pixel kept (8/16-bit, alpha), EXIF orientation, bad files."""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from conftest import save_image, smooth_image
from lapsrn_jax import upscale_io

RNG = np.random.default_rng(0)
ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
         (1, 0, 2, 1)]  # (first row, first column, row step, column step) of each pass


def _image(h, w, c, dtype=np.uint8):
  return smooth_image(RNG, h, w, c, dtype)


_save = save_image


def _png16(pixels, interlace=False, trns=None):
  """A 16-bit PNG of `[H, W, C]` uint16 built by hand: an independent writer (filter 0 on every
  row; Adam7 when `interlace`; `trns`: a colour key), for what no dependency writes."""
  h, w, c = pixels.shape
  passes = ADAM7 if interlace else [(0, 0, 1, 1)]
  raw = b"".join(b"\0" + row.tobytes() for r0, c0, dr, dc in passes
                 for row in pixels[r0::dr, c0::dc].astype(">u2") if row.size)  # empty: no bytes

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
  key = b"" if trns is None else chunk(b"tRNS", np.asarray(trns, ">u2").tobytes())
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + key + chunk(b"IDAT", zlib.compress(raw))
          + chunk(b"IEND", b""))


def _random16(h, w, c):
  pixels = RNG.integers(0, 65536, (h, w, c)).astype(np.uint16)
  pixels[: h // 2] = RNG.integers(0, 300, (h // 2, w, c))  # small values: carries across bytes
  return pixels


# ------------------------------------------------------------------------------- reading files
@pytest.mark.parametrize("name,channels", [("gray.png", 1), ("ga.png", 2), ("rgb.png", 3),
                                           ("rgba.png", 4), ("rgb.bmp", 3), ("gray.bmp", 1),
                                           ("rgb.tif", 3), ("rgba.tiff", 4), ("gray.tif", 1)])
def test_read_pixels_returns_8bit_files_exactly(tmp_path, name, channels):
  pixels = _image(6, 5, channels)
  got = upscale_io.read_pixels(_save(tmp_path / name, pixels))
  assert got.dtype == np.uint8
  np.testing.assert_array_equal(got, pixels)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_read_pixels_returns_16bit_png_exactly(tmp_path, channels, interlace):
  pixels = _random16(11, 13, channels)  # 11 x 13: Adam7 passes of every size, some empty
  (tmp_path / "deep.png").write_bytes(_png16(pixels, interlace))
  got = upscale_io.read_pixels(tmp_path / "deep.png")
  assert got.dtype == np.uint16
  np.testing.assert_array_equal(got, pixels)


def test_read_pixels_turns_a_16bit_colour_key_into_alpha(tmp_path):
  rgb = _random16(5, 6, 3)
  rgb[2, 3] = rgb[0, 0]
  (tmp_path / "key.png").write_bytes(_png16(rgb, trns=rgb[0, 0]))
  got = upscale_io.read_pixels(tmp_path / "key.png")
  alpha = np.where(np.all(rgb == rgb[0, 0], axis=2), 0, 65535)
  np.testing.assert_array_equal(got, np.dstack([rgb, alpha]))


def test_read_pixels_returns_16bit_files_of_other_writers_exactly(tmp_path):
  gray = _image(40, 50, 1, np.uint16)
  gray[:, :20, 0] = np.arange(20) * 3000  # flat rows + gradients: Pillow picks several filters
  rgb, rgba = _image(6, 5, 3, np.uint16), _image(6, 5, 4, np.uint16)
  _save(tmp_path / "gray16.png", gray)  # Pillow writes 16-bit gray itself
  tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
  tifffile.imwrite(tmp_path / "lzw16.tif", rgb, photometric="rgb", compression="lzw")
  tifffile.imwrite(tmp_path / "rgba16.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
  for name, expected in [("gray16.png", gray), ("rgb16.tif", rgb), ("lzw16.tif", rgb),
                         ("rgba16.tif", rgba)]:
    got = upscale_io.read_pixels(tmp_path / name)
    assert got.dtype == np.uint16, name
    np.testing.assert_array_equal(got, expected, err_msg=name)


def test_read_pixels_decodes_jpeg_and_palette_like_pillow(tmp_path):
  rgb = _image(16, 12, 3)
  _save(tmp_path / "a.jpg", rgb, quality=95)
  np.testing.assert_array_equal(upscale_io.read_pixels(tmp_path / "a.jpg"),
                                np.asarray(Image.open(tmp_path / "a.jpg")))
  palette = Image.fromarray(rgb).convert("P")
  palette.save(tmp_path / "p.png", transparency=0)
  got = upscale_io.read_pixels(tmp_path / "p.png")
  np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / "p.png").convert("RGBA")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillows_exif_transpose(orientation):
  pixels = _image(3, 5, 3)
  image = Image.fromarray(pixels)
  exif = image.getexif()
  exif[0x0112] = orientation
  image.info["exif"] = exif.tobytes()
  expected = np.asarray(ImageOps.exif_transpose(image))
  np.testing.assert_array_equal(upscale_io.orient(pixels, orientation), expected)


def test_read_pixels_applies_the_exif_orientation_of_a_jpeg(tmp_path):
  pixels = _image(8, 16, 3)
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise for display
  _save(tmp_path / "rot.jpg", pixels, quality=95, exif=exif.tobytes())
  got = upscale_io.read_pixels(tmp_path / "rot.jpg")
  stored = np.asarray(Image.open(tmp_path / "rot.jpg"))
  assert got.shape == (16, 8, 3)
  np.testing.assert_array_equal(got, np.rot90(stored, -1))


def test_read_pixels_applies_the_exif_orientation_of_a_16bit_png(tmp_path):
  gray = _random16(4, 7, 1)
  exif = Image.Exif()
  exif[0x0112] = 8  # rotate 90 degrees counter-clockwise for display
  _save(tmp_path / "rot16.png", gray, exif=exif.tobytes())  # Pillow writes 16-bit gray + eXIf
  got = upscale_io.read_pixels(tmp_path / "rot16.png")
  assert got.dtype == np.uint16
  np.testing.assert_array_equal(got, np.rot90(gray, 1))


def test_read_pixels_names_a_corrupt_file(tmp_path):
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
  with pytest.raises(upscale_io.ImageReadError, match="bad.png"):
    upscale_io.read_pixels(bad)


def test_read_pixels_names_a_corrupt_or_truncated_16bit_png(tmp_path):
  data = _png16(_random16(8, 8, 3))
  corrupt = bytearray(data)
  corrupt[data.index(b"IDAT") + 10] ^= 0xFF
  (tmp_path / "corrupt16.png").write_bytes(bytes(corrupt))
  (tmp_path / "short16.png").write_bytes(data[: len(data) - 30])
  for name in ("corrupt16.png", "short16.png"):
    with pytest.raises(upscale_io.ImageReadError, match=name):
      upscale_io.read_pixels(tmp_path / name)


# ------------------------------------------------------------------------------- writing files
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_write_pixels_round_trips_8_and_16_bit(tmp_path, channels):
  for pixels in (_image(4, 3, channels), _image(4, 3, channels, np.uint16),
                 _random16(7, 9, channels), _random16(7, 9, channels)[:, ::-1]):
    upscale_io.write_pixels(tmp_path / "o.png", pixels)
    got = upscale_io.read_pixels(tmp_path / "o.png")
    assert got.dtype == pixels.dtype
    np.testing.assert_array_equal(got, pixels)
  assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no leftover temporary file


def test_write_pixels_16bit_files_are_standard_pngs(tmp_path):
  """Pillow reads them: gray exactly, RGB as its high bytes (Pillow truncates colour to 8 bits)."""
  gray, rgb = _random16(5, 6, 1), _random16(5, 6, 3)
  upscale_io.write_pixels(tmp_path / "g.png", gray)
  upscale_io.write_pixels(tmp_path / "c.png", rgb)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")), gray[..., 0])
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), rgb >> 8)


def test_write_pixels_rejects_what_it_cannot_write(tmp_path):
  for name, pixels in [("o.png", np.zeros((2, 2, 5), np.uint8)),
                       ("o.png", np.zeros((2, 2, 3), np.float32)),
                       ("o.jpg", np.zeros((2, 2, 3), np.uint8))]:
    with pytest.raises(ValueError):
      upscale_io.write_pixels(tmp_path / name, pixels)
  assert not list(tmp_path.iterdir())
