"""Metrics to `workdir/metrics.jsonl` (one JSON object per line) and TensorBoard events.

Only process 0 writes; other processes get a writer that does nothing.
"""

import json
import pathlib
import time
from typing import Mapping

import jax
import numpy as np


def _scalar(value):
  value = np.asarray(value)
  return value.item() if value.size == 1 else value.tolist()


class MetricWriter:
  """`write(step, {"train/loss": ..., ...})` appends a line `{"step", "time", **metrics}` and the
  scalars to TensorBoard (`workdir/tensorboard`)."""

  def __init__(self, workdir: str | pathlib.Path, *, tensorboard: bool = True):
    self._active = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self._active:
      return
    workdir = pathlib.Path(workdir)
    self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # imported lazily: a heavy import
      self._tb = SummaryWriter(str(workdir / "tensorboard"))

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self._active:
      return
    record = {"step": int(step), "time": time.time(), **{k: _scalar(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for key, value in record.items():
        if key not in ("step", "time") and isinstance(value, (int, float)):
          self._tb.add_scalar(key, value, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
  """The records of `workdir/metrics.jsonl`, in order."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
