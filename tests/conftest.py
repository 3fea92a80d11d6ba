"""Shared fixtures: the real data and weights, found through environment variables.

`LAPSRN_DATA_DIR` / `LAPSRN_WEIGHTS_DIR` unset -> tests that need them are skipped with the
reason; set but pointing at missing files -> those tests fail (a broken CI set-up must not pass).

No test reaches the network: every test starts with `LAPSRN_WEIGHTS_URL` at a local address that
refuses connections and `LAPSRN_CACHE_DIR` at a temporary folder of the session (a test may
override both), so code that falls back to downloading official weights fails fast instead of
fetching them or touching the user's cache. `weights_server` serves a folder over HTTP on
127.0.0.1 at `$LAPSRN_WEIGHTS_URL`, for the tests of downloads.
"""

import functools
import http.server
import os
import pathlib
import threading

import numpy as np
import pytest


def _env_dir(var: str) -> pathlib.Path:
  value = os.environ.get(var)
  if not value:
    pytest.skip(f"{var} is not set; point it at the folder README.md describes to run this test")
  path = pathlib.Path(value)
  if not path.is_dir():
    pytest.fail(f"{var}={value} is set but is not a directory")
  return path


NO_NETWORK_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@pytest.fixture(scope="session")
def _session_cache_dir(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp("lapsrn_cache")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch, _session_cache_dir):
  """Official-weight downloads go to a refusing local address and a temporary cache."""
  monkeypatch.setenv("LAPSRN_WEIGHTS_URL", NO_NETWORK_URL)
  monkeypatch.setenv("LAPSRN_CACHE_DIR", str(_session_cache_dir))


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  """Folder with Set5/, Set14/, BSDS100/, T91/, BSDS200/ (LAPSRN_DATA_DIR)."""
  return _env_dir("LAPSRN_DATA_DIR")


@pytest.fixture(scope="session")
def weights_dir() -> pathlib.Path:
  """Folder with the official LapSRN_x*.mat and MSLapSRN_D5R*.mat (LAPSRN_WEIGHTS_DIR)."""
  return _env_dir("LAPSRN_WEIGHTS_DIR")


def require_file(folder: pathlib.Path, name: str) -> pathlib.Path:
  """Returns folder/name, failing (not skipping) when the env var is set but the file is missing."""
  path = folder / name
  if not path.exists():
    pytest.fail(f"{path} is missing although its folder was given through the environment")
  return path


def smooth_image(rng, h: int, w: int, c: int, dtype=np.uint8) -> np.ndarray:
  """A smooth random `[h, w, c]` image (photographs are smooth; keeps JPEG close to its source)."""
  from lapsrn_jax.imresize import imresize  # pylint: disable=import-outside-toplevel

  peak = np.iinfo(dtype).max
  if min(h, w) < 4:
    return (rng.random((h, w, c)) * peak).round().astype(dtype)
  smooth = imresize(rng.random((h // 4 + 1, w // 4 + 1, c)), output_shape=(h, w))
  return np.clip(smooth * peak, 0, peak).round().astype(dtype)


def save_image(path, pixels, **kwargs):
  """Writes `[h, w, c]` pixels with Pillow (gray when c = 1); returns `path`."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(path, **kwargs)
  return path


class _Handler(http.server.SimpleHTTPRequestHandler):
  """Serves the server's folder, records each path, and can cut a response after `cut` bytes."""

  def log_message(self, *args):
    pass

  def do_GET(self):
    self.server.seen.append(self.path)
    if self.server.cut is None:
      return super().do_GET()
    data = pathlib.Path(self.translate_path(self.path)).read_bytes()
    self.send_response(200)
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data[:self.server.cut])
    self.close_connection = True


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
  """A local HTTP server of `tmp_path/served`, at `$LAPSRN_WEIGHTS_URL` (`<root>/release/`)."""
  root = tmp_path / "served"
  (root / "release").mkdir(parents=True)
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(_Handler, directory=str(root)))
  httpd.seen, httpd.cut, httpd.folder = [], None, root / "release"
  thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/release/"  # trailing slash tolerated
  monkeypatch.setenv("LAPSRN_WEIGHTS_URL", httpd.url)
  yield httpd
  httpd.shutdown()
  httpd.server_close()
  thread.join()
