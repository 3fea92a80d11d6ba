"""The regularised inverse of the stride-2 convolution, solved locally with ONE fixed factor.

`ops.inverse_conv` solves `(C Cᵀ + λI) z = y` on the whole (padded) LR grid: its factor holds one
`C × C` matrix per frequency of that grid, so memory grows with the image and every new size needs
a new factorisation. But `(G + λI)⁻¹` is a *local* filter: for well-conditioned kernels (the trained
MS-LapSRN block convs at the regularisations used) its spatial taps fall below ~2e-6 of the largest
beyond 8 LR pixels and to float32 noise beyond 12 (`docs/inverse_convolution.md`). So the solve is
done overlap-save:

- the LR map is extended beyond its edges exactly as the global solve sees it (numpy
  `'symmetric'` padding by `pad` pixels, then periodic with the padded period; `pad = 0`:
  periodic);
- the region of `z` that `Cᵀ` needs is cut into `tile × tile` tiles; each tile is solved on its
  window with a `halo` of context on every side, a `(tile + 2 halo)²` periodic grid, with ONE factor
  shared by all windows, all images, all levels and all image sizes;
- only the tile centres are kept, then `x = Cᵀ z` as in the global solve.

Only taps beyond `halo` are lost, so the result equals the global solve up to the filter's
truncation (~1e-7 relative for the default `halo = 10` on the trained kernels;
`tests/test_local_inverse.py` checks it against the global solve and a dense-matrix oracle). The
output at a pixel depends on the input within `halo` LR pixels (plus the kernel's own reach), so
tiling and size buckets are exact to that level as well.

`valid_hw` runs the solve on the valid top-left region of a larger canvas (size buckets): the
extension is built around the valid region (gathers with traced indices), so the values there are
those of the solve on the region alone; the output outside it is garbage-but-finite, and callers
mask it (`models.layers.valid_region`).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lapsrn_jax.ops.hermitian_inverse import hermitian_inverse
from lapsrn_jax.ops.inverse_conv import (_check_lam, _gram_taps, _phase_tables, _precondition,
                                         _spectrum_at)
from lapsrn_jax.ops.stride2 import check_features, check_kernel, transpose_conv_window

# The default window: tiles of 44 LR pixels with a 10-pixel halo, a 64 x 64 periodic grid (a fast
# FFT size; 44 and 48 tiles need the same number of windows for the usual bucket sizes + 1). The
# trained kernels' inverse taps beyond 10 LR pixels are below 3.1e-7 of the largest.
DEFAULT_TILE = 44
DEFAULT_HALO = 10
# Window bytes (float32) solved per step of the sequential loop over window rows: bounds the
# transient memory of the solve (spectra, products) at any image size.
CHUNK_BYTES = 32 << 20
# At most this many frequencies (whole rows of the rfft2 grid) are factorised per step of the
# sequential loop of `factorize_local`: its transient memory is a few [FACTOR_CHUNK, C, C] slices.
FACTOR_CHUNK = 128


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("kernel", "inverse", "lam"),
    meta_fields=("tile", "halo"),
)
@dataclasses.dataclass(frozen=True)
class LocalInverseConvFactor:
  """The image-independent part of the local solve (a pytree): one factor for every size.

  Attributes:
    kernel: `[kh, kw, C_in, C_out]`, the kernel of `C`.
    inverse: `[F, C_out, C_out]` complex, `(G(m) + λI)⁻ᵀ` at the `F = L (L // 2 + 1)` rfft2
      frequencies of the `L × L` window grid, `L = tile + 2 halo` (layout of
      `InverseConvFactor.inverse`).
    lam: scalar `λ`.
    tile: static, LR pixels per side of the kept centre of a window.
    halo: static, LR pixels of context on each side of a tile.
  """

  kernel: jax.Array
  inverse: jax.Array
  lam: jax.Array
  tile: int
  halo: int

  @property
  def window(self) -> int:
    """`tile + 2 halo`: the side of the periodic grid each window is solved on."""
    return self.tile + 2 * self.halo


def _check_tile_halo(tile, halo) -> tuple[int, int]:
  for name, v, low in (("tile", tile, 1), ("halo", halo, 0)):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
      raise ValueError(f"{name} must be an integer >= {low} (LR pixels), got {v!r}")
  return int(tile), int(halo)


def factorize_local(kernel: jax.Array, lam, *, tile: int = DEFAULT_TILE,
                    halo: int = DEFAULT_HALO) -> LocalInverseConvFactor:
  """Factorises `C Cᵀ + λI` on the `(tile + 2 halo)²` window grid, for any image size.

  Args:
    kernel: `[kh, kw, C_in, C_out]`.
    lam: scalar `λ > 0` (absolute; e.g. `ρ · gram_scale(kernel)`). Traceable.
    tile: kept LR pixels per window side (44 with halo 10: a 64² window, a fast FFT size).
    halo: LR pixels of context per side; the solve is exact up to the inverse's taps beyond it.

  Returns:
    A `LocalInverseConvFactor` (`F = L (L // 2 + 1)` matrices, L = tile + 2 halo: 69 MB for
    64-channel kernels and the defaults).
  """
  check_kernel(kernel)
  _check_lam(lam)
  tile, halo = _check_tile_halo(tile, halo)
  dtype = jnp.result_type(kernel.dtype, jnp.float32)
  kernel = jnp.asarray(kernel, dtype)
  lam = jnp.asarray(lam, dtype)
  window = tile + 2 * halo
  offsets, a0, taps = _gram_taps(kernel)
  cos, sin = _phase_tables(offsets, (window, window), dtype)  # [F, S], F = window * (window//2+1)
  rows = max(r for r in range(1, window + 1)  # frequency rows per step: divides window
             if window % r == 0 and (r == 1 or r * (window // 2 + 1) <= FACTOR_CHUNK))
  chunks = window // rows
  eye = jnp.eye(kernel.shape[3], dtype=dtype)

  def invert(tables):  # (G + λI)⁻ᵀ at one chunk of frequencies: [rows * (window//2+1), C, C]
    gr, gi = _spectrum_at(a0, taps, *tables)
    p, q = hermitian_inverse(gr + lam * eye, gi)
    return lax.complex(p, -q)

  inverse = lax.map(invert, (jnp.asarray(cos.reshape(chunks, -1, cos.shape[1])),
                             jnp.asarray(sin.reshape(chunks, -1, sin.shape[1]))))
  inverse = inverse.reshape((-1,) + inverse.shape[2:])  # [F, C, C], no copy
  return LocalInverseConvFactor(kernel, inverse, lam, tile, halo)


def extension_index(positions: jax.Array, n: jax.Array, pad: int) -> jax.Array:
  """Index in `[0, n)` of each position of the LR axis as the global solve extends it.

  The extension is numpy's `'symmetric'` padding by `pad` (repeated mirrors when `pad > n`), then
  periodic with period `n + 2 pad`. `positions` (any int array, may be negative) and `n` (int,
  `>= 1`, traced is fine) broadcast together.
  """
  period = n + 2 * pad
  j = jnp.mod(positions + pad, period) - pad  # in [-pad, n + pad): the padded grid
  r = jnp.mod(j, 2 * n)
  return jnp.where(r < n, r, 2 * n - 1 - r)


def _window_positions(length: int, tile: int, halo: int, reach: int) -> tuple[int, np.ndarray]:
  """Windows over the LR positions `[-reach, length)`: `(count, positions [count, L])`."""
  count = -(-(length + reach) // tile)
  starts = -reach - halo + tile * np.arange(count)
  return count, starts[:, None] + np.arange(tile + 2 * halo)[None, :]


def _chunking(rows: int, row_bytes: int) -> tuple[int, int]:
  """`(chunks, rows per chunk)` with `chunks * per_chunk >= rows` and chunks of <= CHUNK_BYTES."""
  per_chunk = max(1, min(rows, CHUNK_BYTES // max(row_bytes, 1)))
  chunks = -(-rows // per_chunk)
  return chunks, -(-rows // chunks)


def apply_local(factor: LocalInverseConvFactor, y: jax.Array, *, pad: int = 8,
                valid_hw=None) -> jax.Array:
  """`C⁺_λ y = Cᵀ (C Cᵀ + λI)⁻¹ y`, solved in overlapping windows with one factor.

  Args:
    factor: from `factorize_local` (any image size, any batch).
    y: LR features `[N, H, W, C_out]`.
    pad: the boundary of the global solve it reproduces: numpy `'symmetric'` extension by `pad`
      LR pixels, then periodic (`0`: periodic on the bare grid).
    valid_hw: None (the whole map), or int `[2]` / `[N, 2]` `(h, w)` (traced is fine): the
      images fill the top-left `h × w` of `y`; the output then equals the solve on those pixels
      alone in its top-left `2h × 2w` (other pixels are finite garbage: mask them).

  Returns:
    HR features `[N, 2H, 2W, C_in]`.
  """
  check_features(y, "y", factor.kernel.shape[3], "C_out")
  if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
    raise ValueError(f"pad must be an integer >= 0 (LR pixels per side), got {pad!r}")
  n = y.shape[0]
  if valid_hw is None:
    valid = jnp.asarray(y.shape[1:3], jnp.int32)[None]
  else:
    valid = jnp.asarray(valid_hw, jnp.int32).reshape(-1, 2)
    if valid.shape[0] not in (1, n):
      raise ValueError(f"valid_hw must be [2] or [N, 2] with N = {n}, got shape "
                       f"{jnp.shape(valid_hw)}")
  return _apply_local(factor.kernel, factor.inverse, y.astype(factor.kernel.dtype), valid,
                      factor.tile, factor.halo, int(pad))


@functools.partial(jax.jit, static_argnames=("tile", "halo", "pad"))
def _apply_local(kernel, inverse, y, valid, tile, halo, pad):
  n, hh, ww, c = y.shape
  kh, kw = kernel.shape[:2]
  reach_h, reach_w = (kh + 1) // 2 - 1, (kw + 1) // 2 - 1  # LR cells before a window Cᵀ reads
  window = tile + 2 * halo
  kr, rows = _window_positions(hh, tile, halo, reach_h)
  kc, cols = _window_positions(ww, tile, halo, reach_w)
  chunks, per_chunk = _chunking(kr, n * kc * window * window * c * 4)
  extra = chunks * per_chunk - kr  # window rows beyond the last: solved and dropped
  rows = np.concatenate([rows, rows[-1:] + tile * np.arange(1, extra + 1)[:, None]])
  # Per-image indices into y: [N|1, kr', L] rows and [N|1, kc * L] cols.
  row_idx = extension_index(jnp.asarray(rows)[None], valid[:, 0, None, None], pad)
  col_idx = extension_index(jnp.asarray(cols).reshape(1, -1), valid[:, 1, None], pad)
  row_idx = jnp.broadcast_to(row_idx, (n,) + rows.shape)
  col_idx = jnp.broadcast_to(col_idx, (n, cols.size))
  take = jax.vmap(lambda img, r, cc: img[r][:, cc])  # [H, W, C] -> [len(r), len(cc), C]

  def solve_rows(r_idx):  # [N, per_chunk, L] -> z centres [N, per_chunk * tile, kc * tile, C]
    win = take(y, r_idx.reshape(n, -1), col_idx)  # [N, per_chunk * L, kc * L, C]
    win = win.reshape(n, per_chunk, window, kc, window, c).transpose(0, 1, 3, 2, 4, 5)
    z = _precondition(win.reshape(-1, window, window, c), inverse)
    z = z[:, halo:halo + tile, halo:halo + tile].reshape(n, per_chunk, kc, tile, tile, c)
    return z.transpose(0, 1, 3, 2, 4, 5).reshape(n, per_chunk * tile, kc * tile, c)

  row_idx = row_idx.reshape(n, chunks, per_chunk, window).transpose(1, 0, 2, 3)
  if chunks == 1:  # no loop: XLA compiles and fuses a straight-line program better
    z = solve_rows(row_idx[0])[None]
  else:
    z = lax.map(solve_rows, row_idx)  # [chunks, N, per_chunk * tile, kc * tile, C]
  z = jnp.moveaxis(z, 0, 1).reshape(n, chunks * per_chunk * tile, kc * tile, c)
  # z[p] is the solve at LR position p - reach: Cᵀ's window starts at LR cell `reach`.
  return transpose_conv_window(z, kernel, (reach_h, reach_w), (hh, ww))


def local_inverse_conv(y: jax.Array, kernel: jax.Array, lam, *, tile: int = DEFAULT_TILE,
                       halo: int = DEFAULT_HALO, pad: int = 8) -> jax.Array:
  """One-shot local `C⁺_λ y`: `[N, H, W, C_out]` -> `[N, 2H, 2W, C_in]`.

  Equals `apply_local(factorize_local(kernel, lam, tile=..., halo=...), y, pad=pad)`, and
  `inverse_conv(y, kernel, lam, boundary="symmetric", pad=pad)` up to the inverse's taps beyond
  `halo` LR pixels (`boundary="periodic"` for `pad=0`).
  """
  return apply_local(factorize_local(kernel, lam, tile=tile, halo=halo), y, pad=pad)
