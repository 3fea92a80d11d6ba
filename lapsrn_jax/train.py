"""Train LapSRN / MS-LapSRN / CMS-LapSRN.

    python -m lapsrn_jax.train --config configs/quickstart.py --workdir /tmp/quickstart
    python -m lapsrn_jax.train --config configs/ms_lapsrn_d5r8.py --workdir runs/d5r8 \
        --config.train.num_steps=1000 --config.data.num_workers=4

`--config.<field>=value` overrides a field of the config file (unknown fields are rejected). A
workdir that already holds a checkpoint is resumed. The library entry point is
`train_and_evaluate(config, workdir)` (implemented in `lapsrn_jax.training.loop`).
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from lapsrn_jax.training.loop import train_and_evaluate

__all__ = ["train_and_evaluate"]

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")


class _QuietCheckpointing(std_logging.Filter):
  """Drops orbax's per-save INFO chatter (and its 'no metrics' warning for periodic saves)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if "orbax" not in record.pathname:
      return True
    return (record.levelno >= std_logging.WARNING
            and "did not provide metrics" not in record.getMessage())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietCheckpointing())
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
