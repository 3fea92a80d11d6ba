"""Throughput of the training pipeline alone (no model): patches per second.

  D=$LAPSRN_DATA_DIR
  python -m lapsrn_jax.data.benchmark --train "folder:$D/T91+folder:$D/BSDS200" \
      --batch 64 --patch 128 --workers 0 2

Prints, per worker count, the steady-state patches/s (the first batch, which pays for start-up,
is excluded; the uint8 Y planes are cached per process after their first read, so the rate
grows once every image has been seen) and, once, the time per stage in this process (decode,
Y, scale-augmented crop, per-batch rot/flip + 3-scale pyramid).
"""

import argparse
import time

import numpy as np

from lapsrn_jax.data import patches, pipeline


def stage_times(data_cfg, *, patch_size: int, batch: int, scales, n: int = 64) -> dict:
  """Mean seconds per image of each stage, and per batch of the pyramid, in this process."""
  source = pipeline.train_source(data_cfg, patch_size=patch_size)
  rng = np.random.default_rng(0)
  idx = rng.integers(0, len(source), n)
  t0 = time.perf_counter()
  imgs = [source[int(i)] for i in idx]
  t1 = time.perf_counter()
  ys = [patches.luma_u8(im) for im in imgs]
  t2 = time.perf_counter()
  hrs = [patches.sample_patch(y, rng, patch_size) for y in ys]
  t3 = time.perf_counter()
  hr = np.stack((hrs * (batch // len(hrs) + 1))[:batch])
  sizes = pipeline.scale_batch_sizes(batch, len(scales))
  make = pipeline._MakeBatch(0, scales, sizes, True)  # pylint: disable=protected-access
  reps = 5
  t4 = time.perf_counter()
  for b in range(reps):
    make(b, hr)
  t5 = time.perf_counter()
  return {"decode_per_image": (t1 - t0) / n, "luma_per_image": (t2 - t1) / n,
          "crop_per_image": (t3 - t2) / n, "pyramid_per_batch": (t5 - t4) / reps}


def patches_per_second(data_cfg, *, patch_size: int, batch: int, scales, workers: int,
                       threads: int, batches: int) -> float:
  it = pipeline.make_train_iterator(data_cfg, global_batch_size=batch, scales=scales,
                                    patch_size=patch_size, seed=0, num_workers=workers,
                                    num_threads=threads, prefetch=2)
  try:
    next(it)  # start-up (worker spawn, first reads)
    t0 = time.perf_counter()
    for _ in range(batches):
      next(it)
    return batches * batch / (time.perf_counter() - t0)
  finally:
    it.close()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--train", default="skimage:train", help="source spec")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--patch", type=int, default=128)
  parser.add_argument("--scales", default="2,4,8")
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
  parser.add_argument("--threads", type=int, default=1, help="grain threads per process")
  parser.add_argument("--batches", type=int, default=10, help="timed batches per setting")
  args = parser.parse_args(argv)
  cfg = {"train": args.train}
  scales = tuple(int(s) for s in args.scales.split(","))
  times = stage_times(cfg, patch_size=args.patch, batch=args.batch, scales=scales)
  print("stages (this process): " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items()))
  for w in args.workers:
    rate = patches_per_second(cfg, patch_size=args.patch, batch=args.batch, scales=scales,
                              workers=w, threads=args.threads, batches=args.batches)
    print(f"workers={w} threads={args.threads}: {rate:.1f} patches/s "
          f"({rate / args.batch:.2f} batches/s of {args.batch}, patch {args.patch}, "
          f"scales {scales})")


if __name__ == "__main__":
  main()
