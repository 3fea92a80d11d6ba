"""Training loss of several models on the same batches of a run's training stream.

    python scripts/train_loss.py --run runs/conv3 --model official:MSLapSRN_D5R8 \
        --model runs/conv3 --train-batches 4 --out results/train_loss/conv3_batches.json

Each `--model` (`official:<stem>` in $LAPSRN_WEIGHTS_DIR, or a training workdir / checkpoint:
its best checkpoint, or `<workdir>/checkpoints/<step>`) is scored with the run's loss
(`training.step.make_loss_fn`: Charbonnier summed over pixels and levels, divided by the batch)
on batches `--first-batch`, ... of the `--run`'s data stream (`training.sharding.run_batches`;
the default first batch lies beyond every run's steps, so no model trained on them). The models
must predict every scale the run trains. This tells whether a model fits the training data better
or worse than another, separately from its validation PSNR. CPU time (2 cores): about 20 s per
model and batch for MS-LapSRN D5R8 at the official batch.
"""

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from lapsrn_jax import load_model
from lapsrn_jax.training import sharding, step as step_lib
from lapsrn_jax.workdir import read_config, resolve_run


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--run", required=True, help="training workdir whose config gives data and loss")
  p.add_argument("--model", action="append", required=True, help="model to score (repeatable)")
  p.add_argument("--train-batches", type=int, default=1, help="number of batches")
  p.add_argument("--first-batch", type=int, default=100_000, help="index of the first batch")
  p.add_argument("--out", type=pathlib.Path, required=True, help="JSON output")
  args = p.parse_args(argv)
  if args.train_batches < 1:
    raise SystemExit("--train-batches must be >= 1")

  config = read_config(resolve_run(args.run)[0])
  batches = sharding.run_batches(config, args.first_batch, args.train_batches,
                                 sharding.make_mesh())
  rows = []
  for spec in args.model:
    t0 = time.perf_counter()
    model, params = load_model(spec)  # official:<stem>, a .mat, or a workdir / checkpoint
    loss_fn = jax.jit(step_lib.make_loss_fn(model, config.train.batch_size,
                                            config.train.charbonnier_eps))
    per_batch = [loss_fn(params, b) for b in batches]
    losses = [float(total) for total, _ in per_batch]
    by_scale = {k: float(np.mean([float(parts[k]) for _, parts in per_batch]))
                for k in per_batch[0][1]}
    rows.append({"model": spec, "train_loss": float(np.mean(losses)), "per_batch": losses,
                 **by_scale})
    print(f"{spec:40s} loss {np.mean(losses):10.3f}  " + "  ".join(
        f"{k} {v:.3f}" for k, v in by_scale.items()) + f"  ({time.perf_counter() - t0:.0f} s)",
          flush=True)
  result = {"run": str(args.run),
            "train_batches": list(range(args.first_batch, args.first_batch + len(batches))),
            "rows": rows}
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=1))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
