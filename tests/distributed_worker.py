"""One process of a local multi-process training run (used by tests/test_train.py).

    python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR [--config.x=y ...]

One CPU device per process, gloo collectives, the coordinator on 127.0.0.1:PORT (process 0), then
`train_and_evaluate` with configs/debug.py and the given overrides (`key=value`, Python literals).
"""

import ast
import importlib.util
import pathlib
import sys

import lapsrn_jax  # noqa: F401  (its XLA CPU flag must be set before JAX starts its backend)
import jax
from absl import logging

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv):
  process_id, num_processes, port, workdir = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)  # the loop's "resumed from" line, as the CLI shows it
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                             process_id=process_id)
  spec = importlib.util.spec_from_file_location("debug_config", REPO / "configs" / "debug.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for item in argv[5:]:
    key, value = item.removeprefix("--config.").split("=", 1)
    section, field = key.split(".")
    config[section][field] = ast.literal_eval(value)
  from lapsrn_jax.training import loop  # pylint: disable=import-outside-toplevel
  summary = loop.train_and_evaluate(config, workdir)
  print(f"process {jax.process_index()} of {jax.process_count()} done at step {summary['step']}",
        flush=True)


if __name__ == "__main__":
  main(sys.argv)
