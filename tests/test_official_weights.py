"""Fetching the official weights: lookup order, the verified cache, pooch downloads from a local
HTTP server (never the internet), and the one-line errors."""

import hashlib
import io
import pathlib
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import require_file
from lapsrn_jax import official_weights as ow

STEM = "MSLapSRN_D5R2"  # the smallest official file (0.9 MB)


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(weights_server):
  return weights_server


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty `$LAPSRN_CACHE_DIR`, with `$LAPSRN_WEIGHTS_DIR` unset so that downloads happen."""
  monkeypatch.setenv("LAPSRN_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.delenv("LAPSRN_WEIGHTS_DIR", raising=False)
  return tmp_path / "cache"


def _serve(server, weights_dir, stem=STEM, mutate=None) -> bytes:
  data = require_file(weights_dir, f"{stem}.mat").read_bytes()
  data = mutate(data) if mutate else data
  (server.folder / f"{stem}.mat").write_bytes(data)
  return data


def _fetch(stem=STEM, **kwargs) -> tuple[pathlib.Path, str]:
  log = io.StringIO()
  path = ow.official_weights_path(stem, progress=False, log=log, **kwargs)
  return path, log.getvalue()


def _refused_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]  # closed on exit: nothing listens there


def _empty(folder: pathlib.Path) -> bool:
  return not folder.exists() or not any(folder.iterdir())


def test_pinned_hashes_match_the_official_files(weights_dir):
  for stem, sha in ow.SHA256.items():
    assert _sha256(require_file(weights_dir, f"{stem}.mat")) == sha, stem


def test_module_is_light():
  code = ("import sys, lapsrn_jax.official_weights; "
          "print(sorted(m for m in ('jax', 'flax', 'lapsrn_jax.training') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=pathlib.Path(__file__).parents[1])
  assert out.stdout.strip() == "[]"


def test_conftest_keeps_downloads_off_the_network(monkeypatch):
  monkeypatch.delenv("LAPSRN_WEIGHTS_DIR", raising=False)
  assert ow.cache_dir().name.startswith("lapsrn_cache")  # the session's temporary folder
  with pytest.raises(ValueError, match=r"^could not download http://127\.0\.0\.1:9/.* refused"):
    _fetch()
  monkeypatch.delenv("LAPSRN_WEIGHTS_URL")
  assert ow._url("x.mat") == f"{ow.DEFAULT_URL}/x.mat"  # only the string: nothing is fetched


def test_first_use_downloads_then_the_cache_is_used_offline(server, cache, weights_dir):
  _serve(server, weights_dir)
  path, log = _fetch()
  url = f"{server.url}{STEM}.mat"
  assert server.seen == [f"/release/{STEM}.mat"]
  assert path == cache / f"{STEM}.mat" and _sha256(path) == ow.SHA256[STEM]
  assert log == (f"downloading {STEM}.mat (a LAPSRN_WEIGHTS_URL mirror, 0.9 MB) from {url} to "
                 f"{cache}\n")
  assert sorted(p.name for p in cache.iterdir()) == [f"{STEM}.mat"]  # no temporary file left
  again, log = _fetch()
  assert again == path and log == "" and len(server.seen) == 1  # offline: no new request
  server.shutdown()
  assert _fetch()[0] == path  # nor a server needed


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_corrupted_download_is_refused_and_nothing_is_kept(server, cache, weights_dir, damage):
  flip = lambda d: d[:1000] + bytes([d[1000] ^ 1]) + d[1001:]  # noqa: E731
  data = _serve(server, weights_dir, mutate=flip if damage == "flipped byte" else lambda d: d[:-1])
  with pytest.raises(ValueError) as e:
    _fetch()
  message = str(e.value)
  assert message.startswith(f"refused: {server.url}{STEM}.mat ({len(data)} bytes) does not "
                            "match its pinned SHA-256")
  assert f"got {hashlib.sha256(data).hexdigest()}, expected {ow.SHA256[STEM]}" in message
  assert f"nothing was kept in {cache}" in message and "\n" not in message
  assert _empty(cache)


def test_broken_connection_leaves_nothing(server, cache, weights_dir):
  data = _serve(server, weights_dir)
  server.cut = len(data) // 2
  with pytest.raises(ValueError, match=rf"^could not download {server.url}{STEM}\.mat: .*"
                     r"IncompleteRead.*LAPSRN_WEIGHTS_DIR"):
    _fetch()
  assert _empty(cache)


def test_http_404_and_refused_connection_are_one_line(server, cache, monkeypatch):
  with pytest.raises(ValueError) as e:
    _fetch()
  assert str(e.value) == (f"could not download {server.url}{STEM}.mat: HTTP 404 File not found; "
                          f"pass --weights-dir or set LAPSRN_WEIGHTS_DIR to a folder that holds "
                          f"{STEM}.mat")
  url = f"http://127.0.0.1:{_refused_port()}"
  monkeypatch.setenv("LAPSRN_WEIGHTS_URL", url)
  with pytest.raises(ValueError) as e:
    _fetch()
  assert str(e.value).startswith(f"could not download {url}/{STEM}.mat: Connection refused; pass")
  assert _empty(cache)


def test_local_files_win_and_nothing_is_downloaded(server, cache, weights_dir, monkeypatch):
  expected = weights_dir / f"{STEM}.mat"
  assert _fetch(weights_dir=weights_dir) == (expected, "")
  assert _fetch(f"{STEM}.mat", weights_dir=str(weights_dir)) == (expected, "")
  assert _fetch(str(expected)) == (expected, "")  # a .mat path
  monkeypatch.setenv("LAPSRN_WEIGHTS_DIR", str(weights_dir))
  assert _fetch() == (expected, "")
  assert server.seen == [] and _empty(cache)
  with pytest.raises(ValueError, match="^no weights file at nowhere/x.mat$"):
    _fetch("nowhere/x.mat")
  with pytest.raises(ValueError, match="^weights folder '/nonexistent' does not exist$"):
    _fetch(weights_dir="/nonexistent")


def test_download_false_says_where_it_looked(server, cache, tmp_path):
  with pytest.raises(ValueError) as e:
    _fetch(weights_dir=tmp_path, download=False)
  assert str(e.value) == (
      f"official weights {STEM}.mat are not in {str(tmp_path)!r} and the cache {str(cache)!r} and "
      f"downloads are off; allow downloads to fetch {server.url}{STEM}.mat, or pass --weights-dir "
      f"or set LAPSRN_WEIGHTS_DIR to a folder that holds {STEM}.mat")
  assert server.seen == []


def test_unknown_stem_lists_the_known_and_local_ones(server, cache, weights_dir):
  with pytest.raises(ValueError) as e:
    _fetch("MSLapSRN_D5R9", weights_dir=weights_dir)
  message = str(e.value)
  assert message.startswith("unknown official weights 'MSLapSRN_D5R9'")
  assert ", ".join(ow.SHA256) in message and f"in {str(weights_dir)!r}: LapSRN_x2, " in message
  assert "_opts" not in message and server.seen == []


def test_a_corrupted_cache_is_replaced_by_a_verified_download(server, cache, weights_dir):
  cache.mkdir()
  (cache / f"{STEM}.mat").write_bytes(b"not the weights")
  with pytest.raises(ValueError, match="does not match its pinned SHA-256"):
    _fetch(download=False)
  _serve(server, weights_dir)
  path, log = _fetch()
  assert "again (the cached copy does not match its pinned SHA-256)" in log
  assert _sha256(path) == ow.SHA256[STEM] and len(server.seen) == 1
  # a stale copy and a fresh download that also mismatches: both refused, nothing kept
  path.write_bytes(b"stale")
  shutil.copy(path, server.folder / f"{STEM}.mat")
  with pytest.raises(ValueError, match="^refused: .*nothing was kept"):
    _fetch()
  assert _empty(cache)
