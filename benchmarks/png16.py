"""16-bit PNG: the `upscale` CLI's image I/O (`lapsrn_jax.upscale_io`) against PNG libraries.

    python benchmarks/png16.py [--repeats 3] [--size 2048] [--photo 4000x3000] [--codecs NAME ...]

Needs imagecodecs (a dependency: the reference decoder) and pypng (`pip install pypng`: it writes
the interlaced and tRNS files); the other libraries are measured when installed (`pip install
opencv-python-headless pyspng pyvips[binary] numpngw`; imageio comes with scikit-image).
`--codecs`: only the codecs whose names contain one of these words (all: ~7 min on 2 cores).
The `upscale_io` row is whatever this checkout's module does (the hand-written 16-bit codec
before imagecodecs replaced it). Each codec reads and writes `[H, W, C]` uint8/uint16 arrays
(C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; OpenCV's BGR order is swapped back). Prints Markdown:
  correctness  round trips of random uint16 and uint8 arrays (37x53, C = 1..4, byte-exact);
               reading the 16-bit files of every other writer; an interlaced (Adam7) 16-bit file
               and a 16-bit RGB file with a tRNS colour key (both written by pypng); an 8-bit
               palette PNG with a transparent entry (written by Pillow).
  speed        median seconds of encode and decode of a smooth 16-bit RGB image (size x size,
               noise of a 16-bit scan) and of an 8-bit RGB photo-sized image; decode of the
               codec's own file and of the same pixels written by libpng with its defaults.
  memory       peak resident memory that one 16-bit decode / encode adds (a fresh process each).
  footprint    installed size of the packages a codec brings beyond numpy/pillow.
Cell codes: ok = exact; 8-bit = values truncated to their high byte; shape = channels changed
(e.g. gray+alpha read as RGBA); wrong = other values; err = an exception (listed below the table);
- = the codec cannot do it (reader- or writer-only); n/a = not measured (it failed the check).
"""

import argparse
import importlib.metadata as md
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import imagecodecs  # libpng: the reference that checks every written file
import numpy as np
import png  # pypng: writes the interlaced and tRNS test files
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's package
from lapsrn_jax import upscale_io  # noqa: E402  pylint: disable=wrong-import-position

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------- codecs
def _hwc(a):
  a = np.asarray(a)
  return a[..., None] if a.ndim == 2 else a


class Codec:
  name, dist, extra_dists = "", "", []
  can_read = can_write = True

  def read(self, path):  # -> [H, W, C]
    raise NotImplementedError

  def write(self, path, pixels):
    raise NotImplementedError


class UpscaleIO(Codec):
  dist = "lapsrn-jax"
  name = "upscale_io (hand-written)" if hasattr(upscale_io, "decode_png16") else "upscale_io"

  def read(self, path):
    return upscale_io.read_pixels(path)

  def write(self, path, pixels):
    upscale_io.write_pixels(path, pixels)


class Pillow(Codec):
  name, dist = "Pillow", "pillow"

  def read(self, path):
    with Image.open(path) as im:
      return _hwc(np.asarray(im))

  def write(self, path, pixels):
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(path)


class ImageIO(Codec):
  name, dist = "imageio (v3, default plugin)", "imageio"

  def __init__(self):
    import imageio.v3 as iio
    self.iio = iio

  def read(self, path):
    return _hwc(self.iio.imread(path))

  def write(self, path, pixels):
    self.iio.imwrite(path, pixels[..., 0] if pixels.shape[2] == 1 else pixels)


class PyPNG(Codec):
  name, dist = "pypng", "pypng"

  def read(self, path):
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    return np.array([np.asarray(r, dtype) for r in rows]).reshape(h, w, info["planes"])

  def write(self, path, pixels, **kwargs):
    h, w, c = pixels.shape
    writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4),
                             bitdepth=8 * pixels.dtype.itemsize, **kwargs)
    with open(path, "wb") as f:
      writer.write(f, pixels.reshape(h, w * c))


class OpenCV(Codec):
  name, dist = "OpenCV (headless)", "opencv-python-headless"

  def __init__(self):
    import cv2
    self.cv2 = cv2

  def read(self, path):
    a = _hwc(self.cv2.imread(str(path), self.cv2.IMREAD_UNCHANGED))
    return a[..., [2, 1, 0] + list(range(3, a.shape[2]))] if a.shape[2] >= 3 else a

  def write(self, path, pixels):
    a = pixels[..., [2, 1, 0] + list(range(3, pixels.shape[2]))] if pixels.shape[2] >= 3 else pixels
    if not self.cv2.imwrite(str(path), np.ascontiguousarray(a)):
      raise RuntimeError("cv2.imwrite returned False")


class ImageCodecs(Codec):
  dist = "imagecodecs"

  def __init__(self, lib="png"):
    import imagecodecs
    self.name = f"imagecodecs ({'libpng' if lib == 'png' else 'libspng'})"
    self.decode = getattr(imagecodecs, f"{lib}_decode")
    self.encode = getattr(imagecodecs, f"{lib}_encode")

  def read(self, path):
    return _hwc(self.decode(pathlib.Path(path).read_bytes()))

  def write(self, path, pixels):
    pathlib.Path(path).write_bytes(self.encode(pixels))


class PySPNG(Codec):
  name, dist, can_write = "pyspng (decoder only)", "pyspng", False

  def __init__(self):
    import pyspng
    self.pyspng = pyspng

  def read(self, path):
    return _hwc(self.pyspng.load(pathlib.Path(path).read_bytes()))


class PyVips(Codec):
  name, dist, extra_dists = "pyvips (+ pyvips-binary)", "pyvips", ["pyvips-binary"]

  def __init__(self):
    import pyvips
    self.vips = pyvips

  def read(self, path):
    return _hwc(self.vips.Image.new_from_file(str(path), access="sequential").numpy())

  def write(self, path, pixels):
    deep = pixels.dtype == np.uint16
    kind = ("grey16" if deep else "b-w") if pixels.shape[2] < 3 else ("rgb16" if deep else "srgb")
    image = self.vips.Image.new_from_array(pixels, interpretation=kind)
    image.pngsave(str(path), bitdepth=16 if deep else 8)


class NumPNGW(Codec):
  name, dist, can_read = "numpngw (encoder only)", "numpngw", False

  def __init__(self):
    import numpngw
    self.numpngw = numpngw

  def write(self, path, pixels):
    self.numpngw.write_png(str(path), pixels[..., 0] if pixels.shape[2] == 1 else pixels)


def codecs():
  found, missing = [UpscaleIO(), Pillow()], []
  for make in (ImageIO, PyPNG, OpenCV, ImageCodecs, lambda: ImageCodecs("spng"), PySPNG, PyVips,
               NumPNGW):
    try:
      found.append(make())
    except ImportError as e:
      missing.append(e.name)
  return found, missing


def version(dist):
  if dist == "lapsrn-jax":
    return "Pillow " + md.version("pillow") + " for 8-bit"
  return md.version(dist)


# ----------------------------------------------------------------------------------- correctness
ERRORS = []


def _verdict(got, expected):
  got = np.asarray(got)
  if got.shape == expected.shape and got.dtype == expected.dtype and np.array_equal(got, expected):
    return "ok"
  if got.shape == expected.shape and expected.dtype == np.uint16 and got.dtype == np.uint8:
    return "8-bit" if np.array_equal(got, expected >> 8) else "wrong"
  if got.shape[:2] == expected.shape[:2] and got.shape[2] != expected.shape[2]:
    return "shape"
  return "wrong"


def _reference_read(path):
  return _hwc(imagecodecs.png_decode(pathlib.Path(path).read_bytes()))


def _try(fn, codec, what):
  try:
    return fn()
  except Exception as e:  # pylint: disable=broad-except  (recording what each library does)
    ERRORS.append(f"{codec.name}, {what}: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
    return None


def _random(c, dtype):
  peak = np.iinfo(dtype).max
  return RNG.integers(0, peak + 1, (37, 53, c), dtype=np.int64).astype(dtype)


def round_trip(codec, tmp, dtype):
  cells = []
  for c in (1, 2, 3, 4):
    pixels, path = _random(c, dtype), tmp / f"rt_{c}.png"
    what = f"{np.dtype(dtype).name} C={c} round trip"
    done = _try(lambda: (codec.write(path, pixels), True)[1], codec, what) and path.exists()
    got = _try(lambda: codec.read(path), codec, what) if path.exists() else None
    cells.append(_verdict(got, pixels) if done and got is not None else "err")
    path.unlink(missing_ok=True)
  return " ".join(cells)


def cross_files(all_codecs, tmp):
  """The 16-bit files (C = 1..4) of every writer that writes them exactly: {(writer, c): (path,
  pixels)}."""
  files = {}
  for w in all_codecs:
    if not w.can_write:
      continue
    for c in (1, 2, 3, 4):
      pixels, path = _random(c, np.uint16), tmp / f"x_{len(files)}.png"
      try:
        w.write(path, pixels)
        if _verdict(_reference_read(path), pixels) == "ok":
          files[w.name, c] = path, pixels  # a true 16-bit file of those pixels
      except Exception:  # pylint: disable=broad-except  (that writer cannot; seen in round trips)
        pass
  return files


def special_files(tmp):
  """An Adam7 16-bit RGB file, a 16-bit RGB file with a tRNS key, an 8-bit palette PNG."""
  out = {}
  rgb = _random(3, np.uint16)
  PyPNG().write(tmp / "adam7.png", rgb, interlace=True)
  out["adam7"] = tmp / "adam7.png", rgb
  key = tuple(int(v) for v in rgb[0, 0])
  PyPNG().write(tmp / "trns.png", rgb, transparent=key)
  alpha = np.where(np.all(rgb == key, axis=2), 0, 65535).astype(np.uint16)
  out["trns"] = tmp / "trns.png", np.concatenate([rgb, alpha[..., None]], axis=2)
  palette = Image.fromarray(_random(3, np.uint8)).quantize(16)
  palette.save(tmp / "palette.png", transparency=0)
  with Image.open(tmp / "palette.png") as im:
    out["palette"] = tmp / "palette.png", np.asarray(im.convert("RGBA"))
  return out


def palette_cell(got, rgba):
  if got is None:
    return "err"
  if got.shape == rgba.shape and np.array_equal(got, rgba):
    return "RGBA, = Pillow"
  if got.shape[2] == 3 and np.array_equal(got, rgba[..., :3]):
    return "RGB (alpha lost)"
  if got.shape[2] == 1:
    return "indices"
  return f"{got.shape[2]} ch, {got.dtype}, differs"


def correctness(all_codecs, tmp):
  files, special = cross_files(all_codecs, tmp), special_files(tmp)
  writers = sorted({w for w, _ in files})
  rows, matrix = [], []
  for r in all_codecs:
    rt16 = round_trip(r, tmp, np.uint16) if r.can_read and r.can_write else "-"
    rt8 = round_trip(r, tmp, np.uint8) if r.can_read and r.can_write else "-"
    if not r.can_read:
      rows.append([r.name, rt16, rt8, "-", "-", "-", "-"])
      continue
    cross_ok = cross_all = 0
    line = []
    for w in writers:
      good = 0
      for c in (1, 2, 3, 4):
        if (w, c) in files:
          path, pixels = files[w, c]
          got = _try(lambda: r.read(path), r, f"reading {w}'s 16-bit C={c}")
          good += got is not None and _verdict(got, pixels) == "ok"
          cross_all += w != r.name
          cross_ok += w != r.name and got is not None and _verdict(got, pixels) == "ok"
      line.append(f"{good}/{sum((w, c) in files for c in (1, 2, 3, 4))}")
    matrix.append([r.name] + line)
    cells = []
    for kind in ("adam7", "trns"):
      path, expected = special[kind]
      got = _try(lambda: r.read(path), r, f"{kind} 16-bit")
      cells.append("err" if got is None else _verdict(got, expected))
    path, rgba = special["palette"]
    cells.append(palette_cell(_try(lambda: r.read(path), r, "8-bit palette"), rgba))
    rows.append([r.name, rt16, rt8, f"{cross_ok}/{cross_all}"] + cells)
  return rows, ["reader \\ writer"] + writers, matrix


# ------------------------------------------------------------------------------------------ speed
def smooth_image(h, w, dtype, noise):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
  base = np.stack([0.5 + 0.4 * np.cos(6 * xx + 4 * yy * (c + 1) + c) * np.cos(3 * yy - xx)
                   for c in range(3)], axis=-1)
  peak = np.iinfo(dtype).max
  values = base * peak + RNG.normal(0, noise, base.shape).astype(np.float32)
  return np.clip(values.round(), 0, peak).astype(dtype)


def _median(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
    if times[0] > 10:  # a slow codec: one run says enough
      break
  return statistics.median(times), len(times)


def _timed(fn, codec, what, repeats):
  """'median' text, or None when `fn` raises (recorded)."""
  if _try(lambda: (fn(), True)[1], codec, what) is None:
    return None
  t, n = _median(fn, repeats)
  return f"{t:.2f}" + ("" if n == repeats else f" ({n}x)")


def speed(all_codecs, tmp, size, photo, repeats):
  deep, photo8 = smooth_image(size, size, np.uint16, 200), smooth_image(*photo, np.uint8, 2)
  reference = {}
  for name, pixels in (("deep", deep), ("photo", photo8)):  # libpng's default filters and level
    reference[name] = tmp / f"ref_{name}.png"
    reference[name].write_bytes(imagecodecs.png_encode(pixels))
  rows = []
  for c in all_codecs:
    row = [c.name]
    for name, pixels in (("deep", deep), ("photo", photo8)):
      own = tmp / f"own_{name}.png"
      if c.can_write:
        t = _timed(lambda: c.write(own, pixels), c, f"{name} encode", repeats)
        ok = t is not None and own.exists() and _verdict(_reference_read(own), pixels) == "ok"
        row += [t, f"{own.stat().st_size / 1e6:.1f}"] if ok else ["n/a", "n/a"]
      else:
        ok = False
        row += ["-", "-"]
      for src, exists in ((own, ok), (reference[name], True)):
        if not (c.can_read and exists):
          row.append("-" if not c.can_read or not c.can_write else "n/a")
          continue
        got = _try(lambda: c.read(src), c, f"{name} decode")
        if got is None or _verdict(got, pixels) != "ok":
          row.append("n/a" if got is None else _verdict(got, pixels))
          continue
        row.append(_timed(lambda: c.read(src), c, f"{name} decode", repeats))
      own.unlink(missing_ok=True)
    rows.append(row)
  np.save(tmp / "deep.npy", deep)  # for peak_memory
  return rows, {name: reference[name].stat().st_size / 1e6 for name in reference}


# ----------------------------------------------------------------------------------------- memory
def _status_mb(key):
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith(key + ":"):
      return int(line.split()[1]) / 1024
  raise KeyError(key)


def peak_child(name, op, tmp):
  """In a fresh process: the peak resident MB one 16-bit decode or encode adds (Linux)."""
  tmp = pathlib.Path(tmp)
  codec = next(c for c in codecs()[0] if c.name == name)
  pixels = np.load(tmp / "deep.npy")
  base = _status_mb("VmRSS")
  pathlib.Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) := current RSS
  if op == "decode":
    got = codec.read(tmp / "ref_deep.png")
  else:
    codec.write(tmp / "peak.png", pixels)
  peak = _status_mb("VmHWM") - base
  got = got if op == "decode" else _reference_read(tmp / "peak.png")
  print(f"{peak:.0f}" if _verdict(got, pixels) == "ok" else "n/a")


def peak_memory(all_codecs, tmp):
  rows = []
  for c in all_codecs:
    row = [c.name]
    for op, able in (("decode", c.can_read), ("encode", c.can_write)):
      if not able:
        row.append("-")
        continue
      run = subprocess.run([sys.executable, __file__, "--peak", c.name, op, str(tmp)],
                           capture_output=True, text=True, check=False)
      row.append(run.stdout.split()[-1] if run.returncode == 0 and run.stdout.split() else "err")
    rows.append(row)
  return rows


# -------------------------------------------------------------------------------------- footprint
def _dist_size(dist):
  files = md.distribution(dist).files or []
  return sum(f.locate().stat().st_size for f in files if f.locate().exists())


def _requires(dist):
  """Names of the non-extra requirements of `dist` (markers for other Pythons dropped)."""
  out = []
  for r in md.requires(dist) or []:
    name, _, marker = r.partition(";")
    if "extra ==" in marker or (marker and not _marker_holds(marker)):
      continue
    name = name.split("[")[0]
    for sep in "<>=!~ (":
      name = name.split(sep)[0]
    out.append(name.strip())
  return list(dict.fromkeys(out))


def _marker_holds(marker):
  try:
    from packaging.markers import Marker
    return Marker(marker).evaluate()
  except ImportError:
    return True


def _closure(dists):
  """`dists` and everything they require, installed ones only, numpy and pillow left out."""
  seen, todo = [], list(dists)
  while todo:
    d = todo.pop()
    if d.lower() in ("numpy", "pillow") or d in seen or not _has_dist(d):
      continue
    seen.append(d)
    todo += _requires(d)
  return seen


def footprint(all_codecs):
  rows, done = [], set()
  for c in all_codecs:
    if c.dist in done:
      continue
    done.add(c.dist)
    if c.dist in ("lapsrn-jax", "pillow"):
      rows.append([c.name, "- (already required)", "0", "numpy, pillow" if c.dist != "pillow"
                   else "none"])
      continue
    dists = _closure([c.dist] + c.extra_dists)
    size = sum(_dist_size(d) for d in dists)
    rows.append([c.name, ", ".join(f"{d} {md.version(d)}" for d in dists), f"{size / 1e6:.1f}",
                 ", ".join(_requires(c.dist)) or "none"])
  return rows


def _has_dist(name):
  try:
    md.distribution(name)
    return True
  except md.PackageNotFoundError:
    return False


# ------------------------------------------------------------------------------------------- main
def table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--size", type=int, default=2048, help="16-bit RGB speed image side")
  parser.add_argument("--photo", default="4000x3000", help="8-bit RGB speed image, WxH")
  parser.add_argument("--codecs", nargs="+", help="name words, e.g. upscale_io imagecodecs")
  parser.add_argument("--peak", nargs=3, help=argparse.SUPPRESS)  # the child of peak_memory
  args = parser.parse_args()
  if args.peak:
    return peak_child(*args.peak)
  pw, ph = map(int, args.photo.split("x"))
  all_codecs, missing = codecs()
  if args.codecs:
    all_codecs = [c for c in all_codecs if any(w.lower() in c.name.lower() for w in args.codecs)]
  print(f"python {platform.python_version()}, numpy {np.__version__}; "
        + ", ".join(f"{c.name} {version(c.dist)}" for c in all_codecs)
        + (f"; not installed: {', '.join(missing)}" if missing else ""))
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    rows, header, matrix = correctness(all_codecs, tmp)
    print("\n### Correctness (37x53 random arrays; codes in the script's docstring)\n")
    print(table(["codec", "16-bit round trip G GA RGB RGBA", "8-bit round trip G GA RGB RGBA",
                 "reads others' 16-bit", "Adam7 16-bit", "16-bit tRNS key",
                 "8-bit palette + tRNS"], rows))
    print("\n### Reading the 16-bit files (G, GA, RGB, RGBA) of each writer: exact of 4\n")
    print(table(header, matrix))
    if ERRORS:
      print("\nExceptions:\n")
      print("\n".join(f"- {e}" for e in dict.fromkeys(ERRORS)))
    ERRORS.clear()
    rows, ref_mb = speed(all_codecs, tmp, args.size, (ph, pw), args.repeats)
    print(f"\n### Speed: median of {args.repeats} (s; '(1x)': one run), file size (MB)\n")
    print(f"16-bit: {args.size}x{args.size} RGB, smooth + noise sigma 200; 8-bit: {pw}x{ph} RGB, "
          f"smooth + noise sigma 2. 'libpng file': the same pixels by libpng's defaults "
          f"(imagecodecs), {ref_mb['deep']:.1f} MB and {ref_mb['photo']:.1f} MB.\n")
    print(table(["codec", "16-bit encode", "MB", "16-bit decode own", "16-bit decode libpng file",
                 "8-bit encode", "MB", "8-bit decode own", "8-bit decode libpng file"], rows))
    if ERRORS:
      print("\nExceptions:\n")
      print("\n".join(f"- {e}" for e in dict.fromkeys(ERRORS)))
    print(f"\n### Peak memory: MB of resident memory that one 16-bit decode (of the libpng file) "
          f"or encode adds, {args.size}x{args.size} RGB ({args.size**2 * 6 / 1e6:.1f} MB of "
          "pixels), fresh process each\n")
    print(table(["codec", "decode", "encode"], peak_memory(all_codecs, tmp)))
  print("\n### Install footprint (installed MB of the packages it installs beyond numpy/pillow)\n")
  print(table(["codec", "installs", "installed MB", "requires"], footprint(all_codecs)))


if __name__ == "__main__":
  main()
