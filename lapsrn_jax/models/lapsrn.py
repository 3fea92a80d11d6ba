"""LapSRN (Lai et al., CVPR 2017): a Laplacian pyramid with separate parameters per level.

Per level (post-activation, no sharing): `depth` x (conv 3x3 -> LReLU), ConvTranspose 3x3
(upsample 2, crop [0 1 0 1]) -> LReLU, then a residual conv (64 -> 1) on the upsampled features
and `image = img_up(image) + residual` with a per-level 4x4 image upsampler.
"""

from typing import Callable

import flax.linen as nn
import jax

from lapsrn_jax.models import layers


class LapSRNLevel(nn.Module):
  """One 2x pyramid level: `(features [N,H,W,F], image [N,H,W,1])` -> the same at `2H x 2W`."""
  depth: int
  features: int = 64

  def setup(self):
    f = self.features
    self.convs = [layers.Conv(f, f, name=f"conv{i + 1}") for i in range(self.depth)]
    self.upconv = layers.ConvTranspose2x(f, f)
    self.residual_conv = layers.Conv(f, 1)
    self.img_up = layers.image_upsampler()

  def __call__(self, feats: jax.Array, image: jax.Array,
               keep: Callable[[jax.Array], jax.Array] = layers.keep_all
               ) -> tuple[jax.Array, jax.Array]:
    """`keep` (`layers.valid_region`) is applied to every layer's output."""
    for conv in self.convs:
      feats = keep(layers.leaky_relu(conv(feats)))
    feats = keep(layers.leaky_relu(self.upconv(feats)))
    return feats, keep(self.img_up(image) + self.residual_conv(feats))


class LapSRN(nn.Module):
  """LapSRN with `levels` pyramid levels (largest scale `2**levels`), `depth` convs per level.

  Parameters: `input_conv`, then `level_2x`, `level_4x`, ... (named by the scale they output;
  the official files number the same levels `level{L}`, ..., `level1`).
  `apply(..., lr [N, H, W, 1], scale=None)` (keyword) -> tuple of `[N, 2^l H, 2^l W, 1]` for
  l = 1 .. log2(scale) (`scale=None`: every level). `valid_hw=(h, w)` (int `[2]` or `[N, 2]`, may be
  traced): the images fill only the top-left `h x w` of `lr`; the outputs then equal the model on
  the images alone in the top-left `2^l h x 2^l w` and are zero elsewhere (size buckets).
  """
  levels: int = 2
  depth: int = 10
  features: int = 64

  def setup(self):
    if self.levels < 1 or self.depth < 1:
      raise ValueError(f"LapSRN needs levels >= 1 and depth >= 1, got {self.levels}, {self.depth}")
    self.input_conv = layers.Conv(1, self.features, kernel_init=layers.input_normal)
    self.pyramid = [LapSRNLevel(self.depth, self.features, name=f"level_{2 ** (i + 1)}x")
                    for i in range(self.levels)]

  @property
  def max_scale(self) -> int:
    """The largest scale the pyramid reaches: `2**levels`."""
    return 2 ** self.levels

  def receptive_radius(self, scale: int) -> int:
    """LR pixels of context per side that determine an output pixel at `scale` (tiling)."""
    return layers.pyramid_receptive_radius(layers.num_levels(scale, self.levels), self.depth)

  def factor(self) -> None:
    """No image-independent precomputation (CMS-LapSRN has one): None."""
    return None

  def __call__(self, lr: jax.Array, *, scale: int | None = None,
               valid_hw: jax.Array | None = None, factor: None = None) -> tuple[jax.Array, ...]:
    del factor  # the common interface (see `lapsrn_jax.models`); LapSRN has none
    layers.check_input(lr)
    n = self.levels if scale is None else layers.num_levels(scale, self.levels)
    keep = layers.valid_region(lr.shape[1:3], valid_hw)
    lr = keep(lr)
    feats, image, outputs = keep(layers.leaky_relu(self.input_conv(lr))), lr, []
    for level in self.pyramid[:n]:
      feats, image = level(feats, image, keep)
      outputs.append(image)
    return tuple(outputs)
