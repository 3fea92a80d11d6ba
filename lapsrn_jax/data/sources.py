"""Random-access sources of HR training/validation images, chosen by a string spec.

A source has `len(source)`, `source[i]` -> uint8 `[H, W]` (gray) or `[H, W, 3]` (RGB),
`source.name(i)` -> str and `source.sizes()` -> list of `(H, W)`; grain reads it as a
`RandomAccessDataSource`. Specs (`resolve_source`):

- `folder:<path>`: every PNG/JPG/BMP/TIFF directly in the folder (`lapsrn_jax.images`);
  `~` and `$VARS` in the path are expanded.
  The image headers are read when the source is made: a file that cannot be opened raises
  `ImageReadError` naming it (we fail rather than train on a silently smaller set). A file
  whose header is fine but whose pixels are truncated fails, naming it, when it is read.
- `tfds:<name>[:<split>]`: a TFDS dataset prepared in `array_record` format, read with
  `tfds.data_source` (no TensorFlow); split defaults to `train`. See `tfds_folder.py`.
- `skimage[:train|:val]`: natural photographs shipped inside scikit-image (no download);
  `skimage` alone means `skimage:train`.
- `A+B+...`: the concatenation of several specs, e.g. `folder:/d/T91+folder:/d/BSDS200`
  (a `+` only splits where a known kind follows it).
"""

import os
import pathlib
import re
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from lapsrn_jax import images

__all__ = ["ConcatSource", "FolderSource", "ImageSource", "SkimageSource", "SubsetSource",
           "SKIMAGE_SPLITS", "resolve_source"]


class ImageSource(Protocol):
  """What the pipeline needs from a source of HR images."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> np.ndarray: ...  # uint8 [H, W] or [H, W, 3]

  def name(self, index: int) -> str: ...

  def sizes(self) -> list[tuple[int, int]]: ...


def _check_index(index, length: int) -> int:
  index = int(index)
  if not -length <= index < length:
    raise IndexError(f"image index {index} out of range for a source of {length} images")
  return index % length


class FolderSource:
  """The images directly in a folder (sorted by file name)."""

  def __init__(self, folder):
    self.folder = pathlib.Path(folder)
    self.paths = images.list_images(self.folder)  # ValueError if missing or empty
    self._sizes = [_header_size(p) for p in self.paths]

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index) -> np.ndarray:
    return images.read_image(self.paths[_check_index(index, len(self))])

  def name(self, index) -> str:
    return self.paths[_check_index(index, len(self))].stem

  def sizes(self) -> list[tuple[int, int]]:
    return list(self._sizes)

  def __repr__(self) -> str:
    return f"FolderSource({str(self.folder)!r}, {len(self)} images)"


def _header_size(path: pathlib.Path) -> tuple[int, int]:
  """(H, W) from the file header, or ImageReadError naming the file."""
  try:
    with Image.open(path) as im:
      w, h = im.size
  except Exception as e:  # Pillow raises OSError, SyntaxError, ... for bad files
    raise images.ImageReadError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
  return int(h), int(w)


# Natural photographs bundled with scikit-image (no pooch download needed), split once and
# for all into training and held-out validation images. name -> (loader, index into a tuple).
_SKIMAGE_TRAIN = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "motorcycle_left", "motorcycle_right", "moon", "coins", "grass", "gravel",
                  "brick")
_SKIMAGE_VAL = ("chelsea", "camera")
SKIMAGE_SPLITS = {"train": _SKIMAGE_TRAIN, "val": _SKIMAGE_VAL}


def _load_skimage(name: str) -> np.ndarray:
  import skimage.data  # pylint: disable=g-import-not-at-top
  if name in ("motorcycle_left", "motorcycle_right"):
    left, right, _ = skimage.data.stereo_motorcycle()
    img = left if name == "motorcycle_left" else right
  else:
    img = getattr(skimage.data, name)()
  img = np.asarray(img)
  if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
    raise ValueError(f"skimage.data.{name} is not a uint8 gray or RGB image "
                     f"({img.dtype}, {img.shape})")
  return np.ascontiguousarray(img)


class SkimageSource:
  """scikit-image's bundled photographs: `split` 'train' (12 images) or 'val' (2 images)."""

  def __init__(self, split: str = "train"):
    if split not in SKIMAGE_SPLITS:
      raise ValueError(f"unknown skimage split {split!r}; use one of {sorted(SKIMAGE_SPLITS)}")
    self.split = split
    self.names = SKIMAGE_SPLITS[split]
    self._cache: dict[str, np.ndarray] = {}

  def __getstate__(self):  # workers reload the (small, local) files instead of unpickling them
    return {"split": self.split, "names": self.names, "_cache": {}}

  def _image(self, name: str) -> np.ndarray:
    if name not in self._cache:
      self._cache[name] = _load_skimage(name)
    return self._cache[name]

  def __len__(self) -> int:
    return len(self.names)

  def __getitem__(self, index) -> np.ndarray:
    return self._image(self.names[_check_index(index, len(self))]).copy()

  def name(self, index) -> str:
    return self.names[_check_index(index, len(self))]

  def sizes(self) -> list[tuple[int, int]]:
    return [tuple(self._image(n).shape[:2]) for n in self.names]

  def __repr__(self) -> str:
    return f"SkimageSource({self.split!r}, {len(self)} images)"


class ConcatSource:
  """Several sources one after the other."""

  def __init__(self, sources: Sequence[ImageSource]):
    if not sources:
      raise ValueError("ConcatSource needs at least one source")
    self.sources = tuple(sources)
    self._offsets = np.cumsum([0] + [len(s) for s in self.sources])

  def _locate(self, index) -> tuple[ImageSource, int]:
    index = _check_index(index, len(self))
    k = int(np.searchsorted(self._offsets, index, side="right")) - 1
    return self.sources[k], index - int(self._offsets[k])

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, index) -> np.ndarray:
    source, i = self._locate(index)
    return source[i]

  def name(self, index) -> str:
    source, i = self._locate(index)
    return source.name(i)

  def sizes(self) -> list[tuple[int, int]]:
    return [hw for s in self.sources for hw in s.sizes()]

  def __repr__(self) -> str:
    return f"ConcatSource({list(self.sources)!r})"


class SubsetSource:
  """The images of `source` at `indices` (in that order)."""

  def __init__(self, source: ImageSource, indices: Sequence[int]):
    self.source = source
    self.indices = tuple(int(i) for i in indices)
    if not self.indices:
      raise ValueError(f"empty subset of {source!r}")

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index) -> np.ndarray:
    return self.source[self.indices[_check_index(index, len(self))]]

  def name(self, index) -> str:
    return self.source.name(self.indices[_check_index(index, len(self))])

  def sizes(self) -> list[tuple[int, int]]:
    all_sizes = self.source.sizes()
    return [all_sizes[i] for i in self.indices]

  def __repr__(self) -> str:
    return f"SubsetSource({self.source!r}, {len(self)} images)"


_KINDS = ("folder", "tfds", "skimage")
_SPLIT_RE = re.compile(r"\+(?=(?:%s)(?::|$))" % "|".join(_KINDS))
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


def resolve_source(spec: str, *, tfds_data_dir=None) -> ImageSource:
  """The image source named by `spec` (see the module doc for the syntax).

  Args:
    spec: e.g. "skimage:train", "folder:/data/T91+folder:/data/BSDS200", "tfds:t91_bsds200".
    tfds_data_dir: where `tfds:` datasets live (None: TFDS's default, `$TFDS_DATA_DIR` or
      ~/tensorflow_datasets).
  """
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"a data source spec must be a non-empty string, got {spec!r}; "
                     "e.g. 'skimage:train', 'folder:/path/to/images' or 'tfds:name:train'")
  parts = _SPLIT_RE.split(spec.strip())
  if len(parts) > 1:
    return ConcatSource([resolve_source(p, tfds_data_dir=tfds_data_dir) for p in parts])
  kind, _, arg = spec.strip().partition(":")
  if kind == "folder":
    if not arg:
      raise ValueError("'folder:' needs a path, e.g. 'folder:/data/T91'")
    return FolderSource(pathlib.Path(os.path.expandvars(arg)).expanduser())
  if kind == "skimage":
    return SkimageSource(arg or "train")
  if kind == "tfds":
    name, split = arg, "train"
    if ":" in arg:
      head, _, tail = arg.rpartition(":")
      if not _VERSION_RE.match(tail):  # 'name:1.0.0' is a version, not a split
        name, split = head, tail
    if not name:
      raise ValueError("'tfds:' needs a dataset name, e.g. 'tfds:t91_bsds200:train'")
    from lapsrn_jax.data import tfds_folder  # pylint: disable=g-import-not-at-top
    return tfds_folder.TfdsSource(name, split=split, data_dir=tfds_data_dir)
  raise ValueError(f"unknown data source {spec!r}: it must start with one of "
                   f"{', '.join(k + ':' for k in _KINDS)} (or be 'skimage')")
