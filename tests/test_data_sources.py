"""Image sources: folders of mixed formats, skimage's bundled photos, specs, bad input."""

import socket

import numpy as np
import pytest
from PIL import Image

from lapsrn_jax.data import sources
from lapsrn_jax.data.pipeline import train_source
from lapsrn_jax.images import ImageReadError


def _write(folder, name, img, **kw):
  Image.fromarray(img).save(folder / name, **kw)
  return img


@pytest.fixture()
def mixed_folder(tmp_path):
  rng = np.random.default_rng(0)
  written = {
      "a_gray": _write(tmp_path, "a_gray.png", rng.integers(0, 256, (20, 24), np.uint8)),
      "b_rgb": _write(tmp_path, "b_rgb.bmp", rng.integers(0, 256, (18, 22, 3), np.uint8)),
      "c_gray": _write(tmp_path, "c_gray.tiff", rng.integers(0, 256, (16, 30), np.uint8)),
      "d_rgb": _write(tmp_path, "d_rgb.jpg", np.full((21, 19, 3), (200, 40, 90), np.uint8),
                      quality=95),
  }
  (tmp_path / "notes.txt").write_text("not an image")
  return tmp_path, written


def test_folder_source_reads_every_format_gray_and_rgb(mixed_folder):
  folder, written = mixed_folder
  src = sources.resolve_source(f"folder:{folder}")
  assert len(src) == 4
  assert [src.name(i) for i in range(4)] == sorted(written)
  for i, name in enumerate(sorted(written)):
    img = src[i]
    assert img.dtype == np.uint8 and img.shape == written[name].shape
    if name == "d_rgb":  # JPEG is lossy: a flat colour comes back within a few levels
      assert np.abs(img.astype(int) - written[name]).max() <= 3
    else:
      np.testing.assert_array_equal(img, written[name])
  assert src.sizes() == [written[n].shape[:2] for n in sorted(written)]


def test_folder_source_fails_naming_a_corrupt_file(mixed_folder):
  folder, _ = mixed_folder
  (folder / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
  with pytest.raises(ImageReadError, match="e_broken.png"):
    sources.resolve_source(f"folder:{folder}")


def test_folder_source_rejects_empty_and_missing_folders(tmp_path):
  (tmp_path / "readme.md").write_text("no images here")
  with pytest.raises(ValueError, match="holds no images"):
    sources.resolve_source(f"folder:{tmp_path}")
  with pytest.raises(ValueError, match="does not exist"):
    sources.resolve_source(f"folder:{tmp_path / 'missing'}")


def test_plus_joined_spec_concatenates_sources(mixed_folder, tmp_path_factory):
  folder, written = mixed_folder
  other = tmp_path_factory.mktemp("other")
  extra = _write(other, "z.png", np.arange(12 * 12, dtype=np.uint8).reshape(12, 12))
  src = sources.resolve_source(f"folder:{folder}+folder:{other}")
  assert len(src) == len(written) + 1
  assert src.name(len(src) - 1) == "z"
  np.testing.assert_array_equal(src[-1], extra)
  np.testing.assert_array_equal(src[0], written["a_gray"])


@pytest.mark.parametrize("spec", ["", "folder:", "tfds:", "imagenet:train", "skimage:test"])
def test_bad_specs_raise_value_error(spec):
  with pytest.raises(ValueError):
    sources.resolve_source(spec)


def test_skimage_source_loads_offline_with_disjoint_splits(monkeypatch):
  def no_network(*args, **kwargs):
    raise AssertionError("the skimage source tried to use the network")
  monkeypatch.setattr(socket.socket, "connect", no_network)
  train, val = sources.resolve_source("skimage"), sources.resolve_source("skimage:val")
  train_names = {train.name(i) for i in range(len(train))}
  val_names = {val.name(i) for i in range(len(val))}
  assert len(train) >= 10 and len(val) >= 2 and not train_names & val_names
  for src in (train, val):
    for i in range(len(src)):
      img = src[i]
      assert img.dtype == np.uint8 and img.ndim in (2, 3) and min(img.shape[:2]) >= 128
      assert img.ndim == 2 or img.shape[2] == 3
      assert img.std() > 10  # a real photograph, not a blank
  kinds = {src[i].ndim for src in (train, val) for i in range(len(src))}
  assert kinds == {2, 3}  # both gray and colour photographs


def test_train_source_skips_small_images_with_a_warning(tmp_path):
  _write(tmp_path, "big.png", np.zeros((40, 50), np.uint8))
  _write(tmp_path, "small.png", np.zeros((40, 15), np.uint8))
  with pytest.warns(UserWarning, match="small"):
    src = train_source({"train": f"folder:{tmp_path}"}, patch_size=32)
  assert len(src) == 1 and src.name(0) == "big"


def test_train_source_fails_when_every_image_is_too_small(tmp_path):
  _write(tmp_path, "tiny.png", np.zeros((8, 8), np.uint8))
  with pytest.warns(UserWarning), pytest.raises(ValueError, match="min_side"):
    train_source({"train": f"folder:{tmp_path}"}, patch_size=32)
