"""Shared fixtures: the real data and weights, found through environment variables.

`LAPSRN_DATA_DIR` / `LAPSRN_WEIGHTS_DIR` unset -> tests that need them are skipped with the
reason; set but pointing at missing files -> those tests fail (a broken CI set-up must not pass).

No test reaches the network: every test starts with `LAPSRN_WEIGHTS_URL` at a local address that
refuses connections and `LAPSRN_CACHE_DIR` at a temporary folder of the session (a test may
override both), so code that falls back to downloading official weights fails fast instead of
fetching them or touching the user's cache.
"""

import os
import pathlib

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
