"""read_image / list_images / mod_crop on small files written in tmp_path."""

import numpy as np
import pytest
from PIL import Image

from lapsrn_jax.images import ImageReadError, from_float, list_images, mod_crop, read_image


@pytest.fixture(scope="module")
def rgb():
  return np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)


def test_rgb_png_and_bmp_round_trip(tmp_path, rgb):
  for name in ("a.png", "a.bmp", "a.tif"):
    Image.fromarray(rgb).save(tmp_path / name)
    out = read_image(tmp_path / name)
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, rgb)


def test_gray_stays_two_dimensional(tmp_path, rgb):
  Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
  out = read_image(tmp_path / "g.png")
  assert out.shape == (7, 9)
  np.testing.assert_array_equal(out, rgb[..., 0])


def test_alpha_is_dropped(tmp_path, rgb):
  alpha = np.full((7, 9, 1), 10, np.uint8)
  Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA").save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
  Image.fromarray(np.stack([rgb[..., 0], alpha[..., 0]], -1), "LA").save(tmp_path / "la.png")
  np.testing.assert_array_equal(read_image(tmp_path / "la.png"), rgb[..., 0])


def test_palette_expands_to_rgb(tmp_path):
  pal = Image.new("P", (4, 3))
  pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
  pal.putpixel((1, 2), 1)
  pal.save(tmp_path / "p.png")
  out = read_image(tmp_path / "p.png")
  assert out.shape == (3, 4, 3)
  np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
  np.testing.assert_array_equal(out[2, 1], [200, 100, 50])


def test_16_bit_gray_uses_im2uint8_rule(tmp_path):
  # v / 257 = 0, .498, .502, 1, 1.498, 1.502, 255
  values = np.array([[0, 128, 129, 257, 385, 386, 65535]], np.uint16)
  Image.fromarray(values).save(tmp_path / "g16.png")
  out = read_image(tmp_path / "g16.png")
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, [[0, 0, 1, 1, 1, 2, 255]])


def test_corrupt_and_missing_files_name_the_file(tmp_path, rgb):
  Image.fromarray(rgb).save(tmp_path / "good.png")
  data = (tmp_path / "good.png").read_bytes()
  (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
  (tmp_path / "text.jpg").write_text("not an image")
  for name in ("truncated.png", "text.jpg", "missing.png"):
    with pytest.raises(ImageReadError, match=name):
      read_image(tmp_path / name)


def test_list_images_filters_and_sorts(tmp_path):
  for name in ("b.PNG", "a.jpg", "c.JpEg", "d.bmp", "e.tiff", "f.tif", "notes.txt", ".hidden.png"):
    (tmp_path / name).write_bytes(b"")
  (tmp_path / "sub.png").mkdir()
  names = [p.name for p in list_images(tmp_path)]
  assert names == ["a.jpg", "b.PNG", "c.JpEg", "d.bmp", "e.tiff", "f.tif"]


def test_list_images_rejects_missing_or_empty_folders(tmp_path):
  with pytest.raises(ValueError, match="nowhere.*does not exist"):
    list_images(tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "readme.txt").write_text("x")
  with pytest.raises(ValueError, match="empty.*holds no images"):
    list_images(tmp_path / "empty")


def test_mod_crop_crops_bottom_right(rgb):
  out = mod_crop(rgb, 4)
  assert out.shape == (4, 8, 3)
  np.testing.assert_array_equal(out, rgb[:4, :8])
  assert mod_crop(rgb[..., 0], 3).shape == (6, 9)
  assert mod_crop(rgb, 1).shape == rgb.shape


def test_mod_crop_rejects_bad_scales(rgb):
  for scale in (0, -2, 2.5, True):
    with pytest.raises(ValueError, match="positive integer"):
      mod_crop(rgb, scale)
  with pytest.raises(ValueError, match="smaller than the scale"):
    mod_crop(rgb, 8)


def test_from_float_is_matlab_rounding_half_up_and_saturating():
  """The one rounding rule (MATLAB im2uint8 / im2uint16), against exact integer arithmetic."""
  x = np.array([-0.1, 0.0, 0.5 / 255, 1.49 / 255, 1.5 / 255, 254.5 / 255, 1.0, 1.2])
  np.testing.assert_array_equal(from_float(x, np.uint8), [0, 0, 1, 1, 2, 255, 255, 255])
  k = np.arange(0, 65536, 97)
  np.testing.assert_array_equal(from_float((k + 0.5) / 65535, np.uint16),
                                np.minimum(k + 1, 65535))  # halves round up
  np.testing.assert_array_equal(from_float((k + 0.49) / 65535, np.uint16), k)
  assert from_float(x, np.float32).dtype == np.float32  # floats: a plain cast, no clipping
  with pytest.raises(ValueError, match="uint8, uint16 or float"):
    from_float(x, np.int32)
