"""Train LapSRN / MS-LapSRN / CMS-LapSRN.

    python -m lapsrn_jax.train --config configs/quickstart.py --workdir /tmp/quickstart
    python -m lapsrn_jax.train --config configs/ms_lapsrn_d5r8.py --workdir runs/d5r8 \
        --config.train.num_steps=1000 --config.data.num_workers=4

`--config.<field>=value` overrides a field of the config file (unknown fields are rejected). A
workdir that already holds a checkpoint is resumed. The library entry point is
`train_and_evaluate(config, workdir)` (implemented in `lapsrn_jax.training.loop`).

Exit status: 0 trained (or already finished), 1 the run failed (e.g. NaN/Inf in the loss), 2 bad
arguments (flags, an unknown config field or bad value, bad data, an unusable workdir or
checkpoints), 3 the workdir is in use by another run (named in the message). Errors are one line
`error: ...` on stderr; `--debug` shows the traceback instead.
"""

import logging as std_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lapsrn_jax.training.loop import WorkdirInUseError, train_and_evaluate

__all__ = ["train_and_evaluate"]

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")

EXIT_FAILED, EXIT_USAGE, EXIT_IN_USE = 1, 2, 3


class _QuietCheckpointing(std_logging.Filter):
  """Drops orbax's per-save INFO chatter (and its 'no metrics' warning for periodic saves)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if "orbax" not in record.pathname:
      return True
    return (record.levelno >= std_logging.WARNING
            and "did not provide metrics" not in record.getMessage())


def _one_line(err: BaseException) -> str:
  text = " ".join(str(err).split())
  return text if len(text) <= 500 else text[:497] + "..."


def _fail(message: str, code: int):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with one-line errors (exit status 2); a traceback only with --debug."""
  try:
    return flags.FLAGS(argv)
  except Exception as err:  # pylint: disable=broad-except  (flags.Error, config overrides' errors)
    if any(a in ("--debug", "--debug=true", "--debug=True") for a in argv[1:]):
      raise
    if isinstance(err, (AttributeError, KeyError)):  # ml_collections: an unknown config field
      key = str(err).strip("'\" ")
      named = [a.split("=")[0] for a in argv if a.startswith("--config.")
               and key in a.split("=")[0].split(".")]
      _fail(f"unknown config field {key!r}{' in ' + named[0] if named else ''} (the config file "
            "lists the fields)", EXIT_USAGE)
    _fail(_one_line(err), EXIT_USAGE)


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {argv[1:]}", EXIT_USAGE)
  logging.get_absl_handler().addFilter(_QuietCheckpointing())
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except Exception as err:  # pylint: disable=broad-except  (one line unless --debug)
    if _DEBUG.value:
      raise
    if isinstance(err, WorkdirInUseError):
      code = EXIT_IN_USE
    elif isinstance(err, (ValueError, OSError)):
      code = EXIT_USAGE
    else:
      code = EXIT_FAILED
    _fail(_one_line(err), code)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=_parse_flags)
