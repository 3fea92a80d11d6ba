"""The upscale CLI: formats, bit depths, alpha, EXIF orientation, bad inputs, tiling (its image
I/O alone: test_upscale_io.py)."""

import functools
import hashlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import require_file, save_image, smooth_image
from lapsrn_jax import upscale, upscale_io
from lapsrn_jax.imresize import imresize
from lapsrn_jax.inference import super_resolve
from lapsrn_jax.models import create_model

RNG = np.random.default_rng(0)


def _image(h, w, c, dtype=np.uint8):
  return smooth_image(RNG, h, w, c, dtype)


_save = save_image


# ------------------------------------------------------------------------------- the pipeline
@functools.lru_cache(maxsize=None)
def _tiny_model():
  """A tiny MS-LapSRN with random weights (image branch bilinear so outputs stay in range)."""
  model = create_model("ms_lapsrn", depth=2, recursions=1, features=4)
  init = functools.partial(model.init, scale=8)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda s: (0.2 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
  bilinear = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
  params["img_up"]["kernel"] = bilinear[:, :, None, None].astype(np.float32)
  return model, params


def _tiled(pixels, scale=2, **kwargs):
  """`super_resolve` of the tiny model on windows of at most 64 pixels, 5 of overlap."""
  model, params = _tiny_model()
  return super_resolve(model, params, pixels, scale, **{"tile": 64, "overlap": 5, **kwargs})


@pytest.mark.parametrize("channels", [1, 3])
def test_tiled_super_resolve_equals_the_whole_image(channels):
  model, params = _tiny_model()
  pixels = _image(23, 17, channels)
  reference = super_resolve(model, params, pixels if channels == 3 else pixels[..., 0], 2)
  reference = reference.reshape(46, 34, channels)
  overlap = model.receptive_radius(2)
  whole = super_resolve(model, params, pixels, 2, tile=256, overlap=overlap)
  tiled = super_resolve(model, params, pixels, 2, tile=2 * overlap + 3, overlap=overlap)
  assert whole.dtype == tiled.dtype == np.uint8
  np.testing.assert_array_equal(whole, reference)
  assert np.abs(tiled.astype(int) - reference).max() <= 1  # float32 rounding at .5 only


def test_alpha_is_bicubic_and_colour_is_unchanged_by_it():
  rgba = _image(9, 11, 4)
  out = _tiled(rgba)
  rgb = _tiled(rgba[..., :3])
  np.testing.assert_array_equal(out[..., :3], rgb)
  expected_alpha = np.clip(imresize(rgba[..., 3] / 255.0, 2), 0, 1) * 255
  assert np.abs(out[..., 3] - expected_alpha).max() <= 0.5 + 1e-6
  gray_alpha = _tiled(rgba[..., [0, 3]])
  np.testing.assert_array_equal(gray_alpha[..., 1], out[..., 3])


def test_16bit_stays_16bit_and_agrees_with_8bit():
  pixels8 = _image(10, 12, 3)
  out16 = _tiled(pixels8.astype(np.uint16) * 257)
  out8 = _tiled(pixels8)
  assert out16.dtype == np.uint16
  assert np.abs(out16 / 65535.0 - out8 / 255.0).max() <= 0.5 / 255 + 1e-6
  assert np.any(out16 % 257 != 0)  # really 16-bit precision, not 8-bit values scaled


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 1), (5, 1, 4)])
def test_degenerate_sizes_work(shape):
  out = _tiled(_image(*shape))
  assert out.shape == (2 * shape[0], 2 * shape[1], shape[2]) and out.dtype == np.uint8


def test_self_ensemble_changes_the_result_but_not_the_shape():
  pixels = _image(9, 14, 3)
  plain = _tiled(pixels)
  ens = _tiled(pixels, ensemble=True)
  assert ens.shape == plain.shape and ens.dtype == np.uint8
  assert np.abs(ens.astype(int) - plain).max() > 0
  # Equivariance: the ensemble of the transposed image is the transposed ensemble.
  ens_t = _tiled(np.ascontiguousarray(pixels.transpose(1, 0, 2)), ensemble=True)
  assert np.abs(ens_t.astype(int) - ens.transpose(1, 0, 2)).max() <= 1


# ------------------------------------------------------------------------------- the CLI
@pytest.fixture
def tiny_cli(monkeypatch):
  """`main` with `load_model` returning the tiny model (whatever --model says)."""
  monkeypatch.setattr(upscale, "load_model", lambda spec, weights_dir=None: _tiny_model())
  return lambda *args: upscale.main([*map(str, args), "--no-progress", "--tile", "16"])


def _digest(path):
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_cli_upscales_every_format_and_reports_a_corrupt_file(tmp_path, tiny_cli, capsys):
  src = tmp_path / "in"
  src.mkdir()
  exif = Image.Exif()
  exif[0x0112] = 8
  _save(src / "gray.png", _image(9, 20, 1))
  _save(src / "rgba.png", _image(20, 9, 4))
  _save(src / "photo.jpg", _image(8, 13, 3), quality=90, exif=exif.tobytes())
  _save(src / "rgb.bmp", _image(7, 7, 3))
  _save(src / "scan.tif", _image(5, 21, 3))
  upscale_io.write_pixels(src / "deep.png", _image(6, 18, 3, np.uint16))
  (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
  single = tmp_path / "one.png"
  _save(single, _image(1, 1, 3))
  out = tmp_path / "out"
  assert tiny_cli(src, single, "--scale", "2", "--output", out) == 1
  err = capsys.readouterr().err
  assert "broken.jpg" in err
  expected = {"gray": (18, 40, 1, np.uint8), "rgba": (40, 18, 4, np.uint8),
              "photo": (26, 16, 3, np.uint8),  # EXIF 8: displayed rotated, 13 x 8
              "rgb": (14, 14, 3, np.uint8), "scan": (10, 42, 3, np.uint8),
              "deep": (12, 36, 3, np.uint16),
              "one": (2, 2, 3, np.uint8)}
  assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}_x2.png" for k in expected)
  for stem, (h, w, c, dtype) in expected.items():
    got = upscale_io.read_pixels(out / f"{stem}_x2.png")
    assert got.shape == (h, w, c) and got.dtype == dtype, stem


def test_cli_never_overwrites_inputs_and_skips_existing_outputs(tmp_path, tiny_cli, capsys):
  _save(tmp_path / "a.png", _image(6, 6, 3))
  _save(tmp_path / "a_x2.png", _image(6, 6, 3))  # an input that is also a's output name
  before = {p.name: _digest(p) for p in tmp_path.iterdir()}
  assert tiny_cli(tmp_path, "--scale", "2", "--output", tmp_path) == 1
  assert "refusing to overwrite an input" in capsys.readouterr().err
  after = {p.name: _digest(p) for p in tmp_path.iterdir()}
  assert {k: after[k] for k in before} == before  # inputs untouched
  assert set(after) == {"a.png", "a_x2.png", "a_x2_x2.png"}
  # An existing output is kept unless --overwrite.
  out = tmp_path / "out"
  assert tiny_cli(tmp_path / "a.png", "--scale", "2", "--output", out) == 0
  (out / "a_x2.png").write_bytes(b"old")
  assert tiny_cli(tmp_path / "a.png", "--scale", "2", "--output", out) == 0
  assert (out / "a_x2.png").read_bytes() == b"old"
  assert tiny_cli(tmp_path / "a.png", "--scale", "2", "--output", out, "--overwrite") == 0
  assert upscale_io.read_pixels(out / "a_x2.png").shape == (12, 12, 3)


def test_cli_rejects_bad_arguments(tmp_path, capsys):
  assert upscale.main([str(tmp_path / "missing.png"), "--scale", "2", "--output", str(tmp_path),
                       "--model", "official:MSLapSRN_D5R8", "--weights-dir", str(tmp_path)]) == 2
  assert "does not exist" in capsys.readouterr().err
  _save(tmp_path / "a.png", _image(4, 4, 3))
  assert upscale.main([str(tmp_path / "a.png"), "--scale", "2", "--output", str(tmp_path / "o"),
                       "--model", str(tmp_path / "nowhere")]) == 2
  assert "unknown model" in capsys.readouterr().err
  assert upscale.main([str(tmp_path / "a.png"), "--scale", "2", "--output", str(tmp_path / "o"),
                       "--model", str(tmp_path)]) == 2  # a folder that is no training workdir
  assert "training workdir" in capsys.readouterr().err
  assert upscale.main([str(tmp_path / "a.png"), "--scale", "2", "--output",
                       str(tmp_path / "a.png")]) == 2  # output is a file
  assert "not a folder" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    upscale.main([str(tmp_path / "a.png"), "--scale", "3", "--output", str(tmp_path)])


def test_cli_with_official_weights_upscales_a_real_crop(tmp_path, weights_dir, data_dir):
  weights = require_file(weights_dir, "MSLapSRN_D5R8.mat")
  hr = upscale_io.read_pixels(require_file(data_dir / "Set5", "butterfly.png"))[:48, :48]
  lr = np.floor(np.clip(imresize(hr / 255.0, 0.5), 0, 1) * 255 + 0.5).astype(np.uint8)
  _save(tmp_path / "lr.png", lr)
  assert upscale.main([str(tmp_path / "lr.png"), "--scale", "2", "--output", str(tmp_path / "o"),
                       "--model", f"official:{weights.stem}", "--weights-dir", str(weights_dir),
                       "--no-progress"]) == 0
  sr = upscale_io.read_pixels(tmp_path / "o" / "lr_x2.png")
  bicubic = np.floor(np.clip(imresize(lr / 255.0, 2), 0, 1) * 255 + 0.5)

  def psnr(x):  # on the interior, RGB: a sanity check, not the paper protocol
    d = (x[4:-4, 4:-4].astype(float) - hr[4:-4, 4:-4]) / 255
    return -10 * np.log10(np.mean(d ** 2))

  assert sr.shape == (48, 48, 3)
  assert psnr(sr) > psnr(bicubic) + 0.5


def test_cli_checks_the_output_folder_before_loading_the_model(tmp_path, capsys, monkeypatch):
  def no_work(*args, **kwargs):
    raise AssertionError("the model was loaded although the output cannot be written")

  monkeypatch.setattr(upscale, "load_model", no_work)
  _save(tmp_path / "a.png", _image(4, 4, 3))
  (tmp_path / "a_file").write_text("")
  readonly = [pathlib.Path("/proc") / "lapsrn_out"] if pathlib.Path("/proc/self").is_dir() else []
  for output in [tmp_path / "a_file" / "out", *readonly]:  # below a file; a read-only file system
    assert upscale.main([str(tmp_path / "a.png"), "--scale", "2", "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--output" in err[0], err


def test_an_unreadable_input_does_not_block_a_good_one_of_the_same_stem(tmp_path, tiny_cli, capsys):
  src = tmp_path / "in"
  src.mkdir()
  (src / "a.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # listed (and processed) first
  _save(src / "a.png", _image(6, 6, 3))
  assert tiny_cli(src, "--scale", "2", "--output", tmp_path / "out") == 1
  err = capsys.readouterr().err
  assert "a.jpg" in err and "also the output of" not in err
  assert upscale_io.read_pixels(tmp_path / "out" / "a_x2.png").shape == (12, 12, 3)
