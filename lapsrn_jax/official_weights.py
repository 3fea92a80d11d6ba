"""The official LapSRN / MS-LapSRN `.mat` files for `official:<stem>`, fetched and verified.

The authors' LapSRN repository carries no licence file, so this project does not redistribute
their weights (nor weights derived from them): on first use it downloads `<stem>.mat` from the
authors' own release, pinned to one commit (`DEFAULT_URL`), and checks it against the SHA-256 in
`SHA256` before keeping it.

`official_weights_path(stem)` looks, in this order, at:

1. `stem` itself, when it is a path to a `.mat` file;
2. `<weights_dir or $LAPSRN_WEIGHTS_DIR>/<stem>.mat` (a folder of the user's, used as it is);
3. the cache, `cache_dir()/<stem>.mat` (`$LAPSRN_CACHE_DIR`, default the platform's user cache
   for "lapsrn_jax"), used offline when its SHA-256 matches;
4. a download of `$LAPSRN_WEIGHTS_URL/<stem>.mat` (default `DEFAULT_URL`) into the cache, with
   pooch: written to a temporary file in the cache folder and moved into place only when its
   SHA-256 matches, so a failed, truncated or corrupted download leaves nothing behind.

Every failure is a `ValueError` with one line saying what was looked at and what to do.
"""

import hashlib
import os
import pathlib
import sys
from typing import TextIO

import pooch

__all__ = ["DEFAULT_URL", "SHA256", "cache_dir", "official_weights_path"]

# SHA-256 of the authors' pretrained_models/<stem>.mat at the commit in DEFAULT_URL.
SHA256 = {
    "LapSRN_x2": "e368225004e2d5e49d772c5c4eb16c3f28f7fe3b68fec7a9bb91f55e25602baa",
    "LapSRN_x4": "1d845a3efdca8848968df9e216931419e3b1122373a233d612b4f599985e6367",
    "LapSRN_x8": "a887221465fe22ebda8ad5963cf812db807e7a9aa8e9d9453aee60e237af5e10",
    "MSLapSRN_D5R2": "4b214952ef911a2ff95354c0669f3e0766bc6c5decbfca7ddb39834f3998da11",
    "MSLapSRN_D5R5": "149e78a5d7ab1024b3947b46d2b26c86759aa90b261be222cc75c60cf384b25c",
    "MSLapSRN_D5R8": "96dbabe91e964a83b545dbd98580586c5ae312b4f7294ea10519100d0dd1d52d",
}
_BYTES = {"LapSRN_x2": 1518234, "LapSRN_x4": 3032853, "LapSRN_x8": 2486279,
          "MSLapSRN_D5R2": 920148, "MSLapSRN_D5R5": 933421, "MSLapSRN_D5R8": 987015}

DEFAULT_URL = ("https://raw.githubusercontent.com/phoenix104104/LapSRN/"
               "95154bba82a3aab9bdaec8e0eedd4187babc5ed2/pretrained_models")
_HOW = "pass --weights-dir or set LAPSRN_WEIGHTS_DIR to a folder that holds"


def cache_dir() -> pathlib.Path:
  """Folder of the downloaded weights: `$LAPSRN_CACHE_DIR`, else the user cache for lapsrn_jax."""
  value = os.environ.get("LAPSRN_CACHE_DIR")
  return pathlib.Path(value).expanduser() if value else pathlib.Path(pooch.os_cache("lapsrn_jax"))


def _url(name: str) -> str:
  return f"{(os.environ.get('LAPSRN_WEIGHTS_URL') or DEFAULT_URL).rstrip('/')}/{name}"


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def official_weights_path(stem: str, weights_dir: str | os.PathLike | None = None, *,
                          download: bool = True, progress: bool = True,
                          log: TextIO | None | str = "stderr") -> pathlib.Path:
  """The `.mat` file for `official:<stem>` (`stem` e.g. "MSLapSRN_D5R8", or a `.mat` path).

  Looks at a `.mat` path, then `weights_dir` (default `$LAPSRN_WEIGHTS_DIR`), then the verified
  cache, then (`download=True`) downloads into the cache, printing one line on `log` (None: quiet;
  "stderr": the `sys.stderr` of the call, not of the import) and a progress bar on stderr
  (`progress`). ValueError with one line on any failure.
  """
  if log == "stderr":
    log = sys.stderr
  stem = os.fspath(stem)
  candidate = pathlib.Path(stem)
  if candidate.suffix == ".mat":
    if candidate.is_file():
      return candidate
    if candidate.name != stem:  # a path, not a bare "<stem>.mat"
      raise ValueError(f"no weights file at {stem}")
    stem = candidate.stem
  folder = weights_dir or os.environ.get("LAPSRN_WEIGHTS_DIR") or None
  local = []
  if folder is not None:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
      raise ValueError(f"weights folder {str(folder)!r} does not exist")
    if (folder / f"{stem}.mat").is_file():
      return folder / f"{stem}.mat"
    local = sorted(p.stem for p in folder.glob("*.mat") if not p.stem.endswith("_opts"))
  if stem not in SHA256:
    where = f"; in {str(folder)!r}: {', '.join(local) or 'none'}" if folder is not None else ""
    raise ValueError(f"unknown official weights {stem!r}: not a .mat file, not in a weights folder "
                     f"and not one of the official files ({', '.join(SHA256)}){where}")
  cache, expected = cache_dir(), SHA256[stem]
  cached = cache / f"{stem}.mat"
  stale = cached.is_file()
  if stale and _sha256(cached) == expected:
    return cached
  url = _url(f"{stem}.mat")
  if not download:
    looked = f"{str(folder)!r} and " if folder is not None else ""
    state = " (the cached copy does not match its pinned SHA-256)" if stale else ""
    raise ValueError(f"official weights {stem}.mat are not in {looked}the cache {str(cache)!r}"
                     f"{state} and downloads are off; allow downloads to fetch {url}, or "
                     f"{_HOW} {stem}.mat")
  _download(url, stem, cache, expected, stale, progress, log)
  return cached


def _download(url: str, stem: str, cache: pathlib.Path, expected: str, stale: bool,
              progress: bool, log: TextIO | None) -> None:
  """Fetches `url` into `cache/<stem>.mat` through pooch; ValueError (one line) on failure."""
  import requests  # pooch's own dependency; imported here to keep this module light

  source = ("the authors' release" if url.startswith(DEFAULT_URL + "/")
            else "a LAPSRN_WEIGHTS_URL mirror")
  if log is not None:
    again = "again (the cached copy does not match its pinned SHA-256) " if stale else ""
    print(f"downloading {stem}.mat {again}({source}, {_BYTES[stem] / 1e6:.1f} MB) from {url} "
          f"to {cache}", file=log, flush=True)
  received = {}
  inner = pooch.HTTPDownloader(progressbar=progress)

  def downloader(url, output_file, pooch_instance):
    inner(url, output_file, pooch_instance)
    received.update(sha256=_sha256(pathlib.Path(output_file)),
                    size=os.path.getsize(output_file))

  logger = pooch.get_logger()
  level = logger.level
  logger.setLevel("WARNING")  # our own line above replaces pooch's "Downloading data from ..."
  try:
    pooch.retrieve(url, known_hash=f"sha256:{expected}", fname=f"{stem}.mat", path=cache,
                   progressbar=progress, downloader=downloader)
  except (requests.exceptions.RequestException, ValueError, OSError) as e:
    if stale:  # the mismatching cached copy is useless: it goes too
      (cache / f"{stem}.mat").unlink(missing_ok=True)
    if isinstance(e, ValueError) and received.get("sha256", expected) != expected:
      raise ValueError(f"refused: {url} ({received['size']} bytes) does not match its pinned "
                       f"SHA-256 (got {received['sha256']}, expected {expected}); nothing was "
                       f"kept in {cache}") from None
    if isinstance(e, requests.exceptions.RequestException):
      raise ValueError(f"could not download {url}: {_reason(e)}; {_HOW} {stem}.mat") from None
    raise ValueError(f"could not download {url} into {cache}: {_reason(e)}; set "
                     f"LAPSRN_CACHE_DIR to a writable folder, or {_HOW} {stem}.mat") from None
  finally:
    logger.setLevel(level)


def _reason(error: BaseException) -> str:
  """One line on why a download failed: the HTTP status, the innermost OS error, or a message."""
  response = getattr(error, "response", None)
  if response is not None and response.status_code >= 400:
    return f"HTTP {response.status_code} {response.reason}"
  chain, i = [error], 0
  while i < len(chain):  # breadth-first through args / reason / cause: urllib3 nests its errors
    e, i = chain[i], i + 1
    links = [*e.args, getattr(e, "reason", None), e.__cause__, e.__context__]
    chain += [x for x in links if isinstance(x, BaseException) and all(x is not c for c in chain)]
  os_errors = [e for e in chain if isinstance(e, OSError) and isinstance(e.errno, int)
               and e.strerror]
  if os_errors:  # the last found is the innermost: "Connection refused", "Permission denied"
    e = os_errors[-1]
    return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
  e, text = next(((e, a) for e in chain for a in e.args if isinstance(a, str)), (error, str(error)))
  return " ".join(f"{type(e).__name__}: {text}".split())[:300]
