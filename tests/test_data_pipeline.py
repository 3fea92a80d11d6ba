"""The grain training pipeline: layout, oracles, determinism, resume, multi-host, workers."""

import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from lapsrn_jax.data import pipeline
from lapsrn_jax.data.patches import rot_flip
from lapsrn_jax.data.sources import SubsetSource, resolve_source
from lapsrn_jax.imresize import imresize

P = 32  # patch size of these tests


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """8 random gray/RGB images, some exactly P x P (so no resize happens without augmentation)."""
  root = tmp_path_factory.mktemp("train_images")
  rng = np.random.default_rng(0)
  for i in range(8):
    shape = (P, P) if i < 4 else (P + 7 * i, P + 5 * i, 3)
    Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(root / f"im{i}.png")
  return root


def _cfg(folder, **kw):
  return {"train": f"folder:{folder}", **kw}


def _take(it, n):
  return [next(it) for _ in range(n)]


def _flat(batch):
  return np.concatenate([a.ravel() for k in sorted(batch) for a in
                         (batch[k]["lr"], *batch[k]["targets"])])


def _hr(batch):
  return np.concatenate([batch[k]["targets"][-1] for k in sorted(batch, key=lambda s: int(s[1:]))])


@pytest.mark.parametrize("global_batch,expected", [(64, (22, 22, 20)), (48, (16, 16, 16)),
                                                   (6, (2, 2, 2)), (7, (3, 3, 1))])
def test_scale_batch_sizes_follow_the_official_split(global_batch, expected):
  n = 3
  split = math.ceil(global_batch / n)  # MATLAB: st = (0:n-1)*split+1, ed = min((1:n)*split, B)
  official = tuple(min((s + 1) * split, global_batch) - s * split for s in range(n))
  assert pipeline.scale_batch_sizes(global_batch, n) == official == expected


def test_scale_batch_sizes_reject_an_empty_scale():
  with pytest.raises(ValueError, match="gets no patch"):
    pipeline.scale_batch_sizes(4, 3)


def test_batches_have_the_agreed_layout(folder):
  it = pipeline.make_train_iterator(_cfg(folder), global_batch_size=7, patch_size=P, seed=0)
  batch = next(it)
  assert sorted(batch) == ["x2", "x4", "x8"]
  for key, n in (("x2", 3), ("x4", 3), ("x8", 1)):
    s = int(key[1:])
    assert batch[key]["lr"].shape == (n, P // s, P // s, 1)
    assert [t.shape for t in batch[key]["targets"]] == [
        (n, P // 2 ** l, P // 2 ** l, 1) for l in reversed(range(int(math.log2(s))))]
    for a in (batch[key]["lr"], *batch[key]["targets"]):
      assert a.dtype == np.float32 and np.isfinite(a).all()
  hr = _hr(batch)  # bicubic scale augmentation may overshoot [0, 1] a little (as official)
  assert -0.2 < hr.min() < hr.max() < 1.2 and hr.std() > 0.05


def test_lr_and_targets_equal_imresize_of_the_hr_target(folder):
  batch = next(pipeline.make_train_iterator(_cfg(folder), global_batch_size=6, patch_size=P,
                                            seed=3))
  for key in ("x2", "x4", "x8"):
    s = int(key[1:])
    for n, hr in enumerate(batch[key]["targets"][-1][..., 0].astype(np.float64)):
      np.testing.assert_allclose(batch[key]["lr"][n, ..., 0], imresize(hr, 1 / s), atol=2e-6)
      for level, target in enumerate(batch[key]["targets"][:-1]):
        factor = 2 ** (len(batch[key]["targets"]) - 1 - level)
        np.testing.assert_allclose(target[n, ..., 0], imresize(hr, 1 / factor), atol=2e-6)


def test_without_augmentation_hr_patches_are_the_y_of_whole_images(folder):
  """P x P gray images need no resize: the HR patch must be the image / 255 exactly."""
  cfg = _cfg(folder, scale_augmentation=False, data_augmentation=False)
  source = SubsetSource(resolve_source(cfg["train"]), range(4))  # the P x P gray ones
  ds = pipeline.make_train_dataset(cfg, global_batch_size=6, patch_size=P, seed=1, source=source)
  images = [source[i] / 255.0 for i in range(4)]
  for b in range(3):
    for hr in _hr(ds[b])[..., 0]:
      assert any(np.array_equal(hr, im.astype(np.float32)) for im in images)


def test_rot_flip_is_one_transform_per_batch(folder):
  common = dict(global_batch_size=6, patch_size=P, seed=5)
  plain = pipeline.make_train_dataset(_cfg(folder, data_augmentation=False), **common)
  augmented = pipeline.make_train_dataset(_cfg(folder), **common)
  seen = set()
  for b in range(8):
    hr0, hr1 = _hr(plain[b])[..., 0], _hr(augmented[b])[..., 0]
    matches = [(k, f) for k in range(4) for f in (False, True)
               if np.array_equal(rot_flip(hr0, k, f), hr1)]
    assert len(matches) == 1  # the whole batch (all scales) got the same single transform
    seen.add(matches[0])
  assert len(seen) >= 3


def test_same_seed_same_batches_other_seed_other_batches(folder):
  make = lambda seed, threads: pipeline.make_train_iterator(  # noqa: E731
      _cfg(folder), global_batch_size=6, patch_size=P, seed=seed, num_threads=threads)
  a, b, c = _take(make(11, 0), 3), _take(make(11, 2), 3), _take(make(12, 0), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(_flat(x), _flat(y))
  assert not any(np.array_equal(_flat(x), _flat(z)) for x, z in zip(a, c))


def test_iterator_state_restores_the_exact_future_batches(folder):
  make = lambda: pipeline.make_train_iterator(  # noqa: E731
      _cfg(folder), global_batch_size=6, patch_size=P, seed=2)
  it = make()
  _take(it, 3)
  state = json.loads(json.dumps(it.get_state()))  # checkpointable as JSON
  expected = _take(it, 3)
  resumed = make()
  resumed.set_state(state)
  for x, y in zip(expected, _take(resumed, 3)):
    np.testing.assert_array_equal(_flat(x), _flat(y))


def test_start_batch_continues_the_stream_where_step_k_left_it(folder):
  common = dict(global_batch_size=6, patch_size=P, seed=2)
  reference = _take(pipeline.make_train_iterator(_cfg(folder), **common), 5)
  resumed = _take(pipeline.make_train_iterator(_cfg(folder), start_batch=3, **common), 2)
  for x, y in zip(reference[3:], resumed):
    np.testing.assert_array_equal(_flat(x), _flat(y))
  assert not np.array_equal(_flat(reference[0]), _flat(resumed[0]))


def test_two_processes_together_give_the_single_process_batch(folder):
  common = dict(global_batch_size=12, patch_size=P, seed=4)
  single = _take(pipeline.make_train_iterator(_cfg(folder), **common), 2)
  hosts = [_take(pipeline.make_train_iterator(_cfg(folder), process_index=p, process_count=2,
                                              **common), 2) for p in range(2)]
  for b in range(2):
    for key in ("x2", "x4", "x8"):
      assert hosts[0][b][key]["lr"].shape[0] == 2
      for part in range(len(single[b][key]["targets"]) + 1):
        get = lambda x: (x[key]["lr"], *x[key]["targets"])[part]  # noqa: E731
        np.testing.assert_array_equal(
            np.concatenate([get(hosts[0][b]), get(hosts[1][b])]), get(single[b]))
  with pytest.raises(ValueError, match="divisible by process_count=3"):
    pipeline.make_train_iterator(_cfg(folder), process_index=0, process_count=3, **common)


def test_worker_processes_give_the_same_batches_and_resume_with_any_worker_count(folder,
                                                                                 monkeypatch):
  monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # what the pipeline would set (kept local)
  monkeypatch.setenv("MKL_NUM_THREADS", "1")
  common = dict(global_batch_size=6, patch_size=P, seed=9)
  reference = _take(pipeline.make_train_iterator(_cfg(folder), **common), 3)
  it = pipeline.make_train_iterator(_cfg(folder), num_workers=2, **common)
  try:
    first = next(it)
    state = it.get_state()
    rest = _take(it, 2)
  finally:
    it.close()
  for x, y in zip(reference, [first, *rest]):
    np.testing.assert_array_equal(_flat(x), _flat(y))
  resumed = pipeline.make_train_iterator(_cfg(folder), num_workers=2, **common)
  try:
    resumed.set_state(state)
    again = _take(resumed, 2)
  finally:
    resumed.close()
  for x, y in zip(reference[1:], again):
    np.testing.assert_array_equal(_flat(x), _flat(y))
  other_count = pipeline.make_train_iterator(_cfg(folder), num_workers=1, start_batch=1, **common)
  try:  # what a resumed training run does, with another number of workers
    again = _take(other_count, 2)
  finally:
    other_count.close()
  for x, y in zip(reference[1:], again):
    np.testing.assert_array_equal(_flat(x), _flat(y))


def test_bad_arguments_raise_value_error(folder):
  for kw in (dict(patch_size=30), dict(scales=(2, 3)), dict(seed=-1), dict(num_workers=-1),
             dict(start_batch=-1)):
    args = dict(global_batch_size=6, patch_size=P, seed=0) | kw
    with pytest.raises(ValueError):
      pipeline.make_train_iterator(_cfg(folder), **args)


def test_validation_set_centre_crops_and_names():
  full = pipeline.load_validation_set({"val": "skimage:val"})
  cropped = pipeline.load_validation_set({"val": "skimage:val"}, crop=64)
  assert [n for n, _ in full] == [n for n, _ in cropped] == ["chelsea", "camera"]
  for (_, img), (_, small) in zip(full, cropped):
    assert small.shape[:2] == (64, 64) and small.dtype == np.uint8
    top, left = (img.shape[0] - 64) // 2, (img.shape[1] - 64) // 2
    np.testing.assert_array_equal(small, img[top:top + 64, left:left + 64])
  with pytest.warns(UserWarning, match="chelsea"):
    partly = pipeline.load_validation_set({"val": "skimage:val"}, crop=(400, 400))
  assert [n for n, _ in partly] == ["camera"]
  with pytest.warns(UserWarning), pytest.raises(ValueError):
    pipeline.load_validation_set({"val": "skimage:val"}, crop=4000)


def test_real_t91_patches(data_dir):
  t91 = data_dir / "T91"
  if not t91.is_dir():
    pytest.fail(f"{t91} is missing although LAPSRN_DATA_DIR is set")
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no T91 image is skipped (the smallest short side is 78)
    source = pipeline.train_source({"train": f"folder:{t91}"}, patch_size=128)
  assert len(source) == 91
  it = pipeline.make_train_iterator({"train": f"folder:{t91}"}, global_batch_size=3,
                                    patch_size=128, seed=0)
  batch = next(it)
  assert batch["x8"]["lr"].shape == (1, 16, 16, 1)
  assert batch["x2"]["targets"][-1].shape == (1, 128, 128, 1)
  hr = _hr(batch)
  assert 0.0 <= hr.min() and hr.max() <= 1.0 and hr.std() > 0.01
  np.testing.assert_allclose(batch["x4"]["lr"][0, ..., 0],
                             imresize(batch["x4"]["targets"][-1][0, ..., 0].astype(np.float64),
                                      1 / 4), atol=2e-6)
