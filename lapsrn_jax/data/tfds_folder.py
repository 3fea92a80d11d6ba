"""Folders of images as TFDS datasets (`array_record`, no TensorFlow) and reading them back.

Build once (e.g. the 291 training images of LapSRN, with BSDS100 as validation):

  python -m lapsrn_jax.data.tfds_folder --name t91_bsds200 --data_dir ~/tensorflow_datasets \
      --train /data/T91 --train /data/BSDS200 --validation /data/BSDS100

then train from `tfds:t91_bsds200` (or `tfds:t91_bsds200:validation`). Each example holds the
image PNG-encoded (lossless; decoded with Pillow at read time), a `gray` flag (gray images are
stored as 3 equal channels because a TFDS image feature has a fixed channel count, and read
back as `[H, W]`), its `name` ("<folder>/<file stem>") and `height`/`width`.

`TfdsSource` reads any TFDS dataset prepared in `array_record` format (e.g. by
`tfds build --file_format=array_record`) through `tfds.data_source`: random access, numpy.
The image is the `image` feature, else `hr`, else the only image feature.
"""

import argparse
import io
import pathlib
import re
import types
from typing import Mapping, Sequence, Union

import numpy as np
from PIL import Image

from lapsrn_jax import images

__all__ = ["TfdsSource", "build_folder_dataset"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
Folders = Union[str, pathlib.Path, Sequence[Union[str, pathlib.Path]],
                Mapping[str, Union[str, pathlib.Path, Sequence[Union[str, pathlib.Path]]]]]


def _split_folders(folder: Folders) -> dict[str, list[pathlib.Path]]:
  if isinstance(folder, Mapping):
    splits = dict(folder)
  else:
    splits = {"train": folder}
  out = {}
  for split, folders in splits.items():
    if isinstance(folders, (str, pathlib.Path)):
      folders = [folders]
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9_]*$", str(split)) or not folders:
      raise ValueError(f"bad split {split!r} -> {folders!r}: splits are identifiers "
                       "('train', 'validation') mapped to one or more folders")
    out[str(split)] = [pathlib.Path(f).expanduser() for f in folders]
  return out


def _png_bytes(img: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="PNG")
  return buf.getvalue()


def _builder_class(name: str):
  """A (not registered) GeneratorBasedBuilder subclass called `name`."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class _ImageFolder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images of one or more folders per split, PNG-encoded."""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images from folders, PNG-encoded, with gray flag and size."}

    def __init__(self, *, split_folders, **kwargs):
      self._split_folders = split_folders
      super().__init__(**kwargs)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description="HR images read from local folders (lapsrn_jax.data.tfds_folder).",
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
              "gray": tfds.features.Scalar(dtype=np.bool_),
              "name": tfds.features.Text(),
              "height": tfds.features.Scalar(dtype=np.int32),
              "width": tfds.features.Scalar(dtype=np.int32),
          }))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(folders)
              for split, folders in self._split_folders.items()}

    def _generate_examples(self, folders):
      for folder in folders:
        for path in images.list_images(folder):
          img = images.read_image(path)  # ImageReadError names a bad file
          gray = img.ndim == 2
          rgb = np.repeat(img[..., None], 3, axis=2) if gray else img
          key = f"{folder.name}/{path.stem}"
          yield key, {"image": _png_bytes(rgb), "gray": gray, "name": key,
                      "height": img.shape[0], "width": img.shape[1]}

  return types.new_class(
      "".join(p.capitalize() for p in name.split("_")), (_ImageFolder,),
      {"skip_registration": True}, lambda ns: ns.update({"name": name}))


def build_folder_dataset(folder: Folders, name: str, data_dir) -> pathlib.Path:
  """Writes the images of `folder` as the TFDS dataset `name` (array_record) under `data_dir`.

  Args:
    folder: one folder or a list of folders (all go to split "train"), or a mapping
      split -> folder(s), e.g. {"train": [t91, bsds200], "validation": bsds100}.
    name: dataset name, snake_case (`[a-z][a-z0-9_]*`).
    data_dir: TFDS data directory; the dataset lands in `data_dir/name/1.0.0/`. An already
      prepared dataset there is reused (delete that folder to rebuild).

  Returns:
    The folder of the prepared dataset. Read it with `tfds.data_source(name, split=...,
    data_dir=data_dir)` or `resolve_source(f"tfds:{name}:<split>", tfds_data_dir=data_dir)`.
  """
  if not isinstance(name, str) or not _NAME_RE.match(name):
    raise ValueError(f"TFDS dataset name {name!r} must be snake_case ([a-z][a-z0-9_]*)")
  splits = _split_folders(folder)
  for folders in splits.values():
    for f in folders:
      images.list_images(f)  # fail early on a missing or empty folder
  builder = _builder_class(name)(split_folders=splits, data_dir=str(data_dir),
                                 file_format="array_record")
  builder.download_and_prepare()
  return pathlib.Path(builder.data_dir)


class TfdsSource:
  """A split of a TFDS dataset prepared in `array_record` format, read without TensorFlow."""

  def __init__(self, name: str, *, split: str = "train", data_dir=None):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    self.dataset, self.split = name, split
    try:
      self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # DatasetNotFoundError, missing split, wrong file format, ...
      raise ValueError(
          f"cannot open TFDS dataset {name!r} split {split!r} in data_dir={data_dir!r}: "
          f"{type(e).__name__}: {e}\nBuild a folder of images into one with `python -m "
          f"lapsrn_jax.data.tfds_folder --name {name} --data_dir DIR --train FOLDER`; other "
          "datasets must be prepared with file_format=array_record") from e
    features = self._ds.dataset_info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    for preferred in ("image", "hr"):
      if preferred in image_keys:
        self._key = preferred
        break
    else:
      if len(image_keys) != 1:
        raise ValueError(f"TFDS dataset {name!r} has image features {image_keys}; expected "
                         "one named 'image' or 'hr', or exactly one image feature")
      self._key = image_keys[0]
    self._data_dir = data_dir
    self._has_size = {"height", "width"} <= set(features.keys())
    if len(self._ds) == 0:
      raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty")

  def __len__(self) -> int:
    return len(self._ds)

  def _record(self, index) -> dict:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f"image index {index} out of range for {len(self)} images")
    return self._ds[index % len(self)]

  def _image(self, record, index) -> np.ndarray:
    img = np.asarray(record[self._key])
    if record.get("gray", False):
      img = img[..., 0]
    elif img.ndim == 3 and img.shape[2] == 1:
      img = img[..., 0]
    elif img.ndim == 3 and img.shape[2] == 4:
      img = img[..., :3]
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
      raise ValueError(f"{self.dataset}[{index}] feature {self._key!r} is not a uint8 gray or "
                       f"RGB image ({img.dtype}, {img.shape})")
    return np.ascontiguousarray(img)

  def __getitem__(self, index) -> np.ndarray:
    return self._image(self._record(index), index)

  def name(self, index) -> str:
    record = self._record(index)
    name = record.get("name", record.get("file_name"))
    if isinstance(name, bytes):
      name = name.decode("utf-8", "replace")
    return str(name) if name is not None else f"{self.dataset}_{int(index):06d}"

  def sizes(self) -> list[tuple[int, int]]:
    """(H, W) per image: stored sizes when the dataset has them, else decodes every image."""
    if self._has_size:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      raw = tfds.data_source(self.dataset, split=self.split, data_dir=self._data_dir,
                             download=False, decoders={self._key: tfds.decode.SkipDecoding()})
      return [(int(r["height"]), int(r["width"])) for r in (raw[i] for i in range(len(raw)))]
    return [tuple(self[i].shape[:2]) for i in range(len(self))]

  def __repr__(self) -> str:
    return f"TfdsSource({self.dataset!r}, split={self.split!r}, {len(self)} images)"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description="Turn folders of images into a TFDS dataset (array_record, no TensorFlow).")
  parser.add_argument("--name", required=True, help="dataset name, snake_case")
  parser.add_argument("--data_dir", required=True, help="TFDS data directory")
  parser.add_argument("--train", action="append", default=[], help="folder for split 'train'")
  parser.add_argument("--validation", action="append", default=[],
                      help="folder for split 'validation'")
  args = parser.parse_args(argv)
  splits = {k: v for k, v in (("train", args.train), ("validation", args.validation)) if v}
  if not splits:
    parser.error("give at least one --train or --validation folder")
  path = build_folder_dataset(splits, args.name, args.data_dir)
  print(f"prepared {args.name} in {path}")


if __name__ == "__main__":
  main()
