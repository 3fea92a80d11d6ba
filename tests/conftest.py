"""Shared fixtures: the real data and weights, found through environment variables.

`LAPSRN_DATA_DIR` / `LAPSRN_WEIGHTS_DIR` unset -> tests that need them are skipped with the
reason; set but pointing at missing files -> those tests fail (a broken CI set-up must not pass).
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
