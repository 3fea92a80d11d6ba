"""Folders -> TFDS array_record datasets -> tfds.data_source, without TensorFlow."""

import sys

import numpy as np
import pytest
from PIL import Image

from lapsrn_jax.data import sources, tfds_folder
from lapsrn_jax.images import read_image


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A tiny dataset: train = 2 folders (gray PNG, RGB BMP, RGB JPG), validation = 1 image."""
  root = tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(1)
  train_a, train_b, val = root / "A", root / "B", root / "V"
  for f in (train_a, train_b, val):
    f.mkdir()
  Image.fromarray(rng.integers(0, 256, (14, 17), np.uint8)).save(train_a / "g.png")
  Image.fromarray(rng.integers(0, 256, (13, 11, 3), np.uint8)).save(train_a / "c.bmp")
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(train_b / "g.jpg")
  Image.fromarray(rng.integers(0, 256, (9, 12, 3), np.uint8)).save(val / "v.png")
  data_dir = root / "tfds_data"
  path = tfds_folder.build_folder_dataset(
      {"train": [train_a, train_b], "validation": val}, "tiny_images", data_dir)
  return root, data_dir, path


def test_build_writes_array_record_files(built):
  _, _, path = built
  assert sorted(p.name for p in path.glob("*.array_record*"))  # train and validation shards
  assert (path / "dataset_info.json").exists()


def test_round_trip_returns_the_decoded_pixels_and_names(built):
  root, data_dir, _ = built
  src = sources.resolve_source("tfds:tiny_images", tfds_data_dir=data_dir)
  expected = {"A/g": read_image(root / "A" / "g.png"), "A/c": read_image(root / "A" / "c.bmp"),
              "B/g": read_image(root / "B" / "g.jpg")}  # stored decoded, so JPG is exact too
  got = {src.name(i): src[i] for i in range(len(src))}
  assert sorted(got) == sorted(expected)
  for name, img in expected.items():
    assert got[name].dtype == np.uint8
    np.testing.assert_array_equal(got[name], img)  # gray comes back 2-D
  sizes = dict(zip((src.name(i) for i in range(len(src))), src.sizes()))
  assert sizes == {n: im.shape[:2] for n, im in expected.items()}
  val = sources.resolve_source("tfds:tiny_images:validation", tfds_data_dir=data_dir)
  assert len(val) == 1 and val.name(0) == "V/v"
  np.testing.assert_array_equal(val[0], read_image(root / "V" / "v.png"))
  assert "tensorflow" not in sys.modules


def test_any_array_record_dataset_with_an_image_feature_is_readable(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  pixels = [rng.integers(0, 256, (6 + i, 5, 1), np.uint8) for i in range(2)]

  class OtherGray(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("0.1.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {"hr": tfds.features.Image(shape=(None, None, 1)), "label": np.int64}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, p in enumerate(pixels):
        png = tfds_folder._png_bytes(p[..., 0])  # pylint: disable=protected-access
        yield i, {"hr": png, "label": i}

  OtherGray(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  src = sources.resolve_source("tfds:other_gray", tfds_data_dir=tmp_path)
  got = sorted((src[i] for i in range(len(src))), key=lambda a: a.shape[0])
  for img, p in zip(got, pixels):
    np.testing.assert_array_equal(img, p[..., 0])
  assert sorted(src.sizes()) == [(6, 5), (7, 5)]


def test_missing_dataset_and_bad_name_raise_value_error(tmp_path):
  with pytest.raises(ValueError, match="tfds_folder"):
    sources.resolve_source("tfds:no_such_dataset_here", tfds_data_dir=tmp_path)
  with pytest.raises(ValueError, match="snake_case"):
    tfds_folder.build_folder_dataset(tmp_path, "Bad-Name", tmp_path)
