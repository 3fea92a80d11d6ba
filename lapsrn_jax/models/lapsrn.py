"""LapSRN (Lai et al., CVPR 2017): a Laplacian pyramid with separate parameters per level.

Per level (post-activation, no sharing): `depth` x (conv 3x3 -> LReLU), ConvTranspose 3x3
(upsample 2, crop [0 1 0 1]) -> LReLU, then a residual conv (64 -> 1) on the upsampled features
and `image = img_up(image) + residual` with a per-level 4x4 image upsampler.
"""

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

  def __call__(self, feats: jax.Array, image: jax.Array) -> tuple[jax.Array, jax.Array]:
    for conv in self.convs:
      feats = layers.leaky_relu(conv(feats))
    feats = layers.leaky_relu(self.upconv(feats))
    return feats, self.img_up(image) + self.residual_conv(feats)


class LapSRN(nn.Module):
  """LapSRN with `levels` pyramid levels (largest scale `2**levels`), `depth` convs per level.

  Parameters: `input_conv`, then `level_2x`, `level_4x`, ... (named by the scale they output;
  the official files number the same levels `level{L}`, ..., `level1`).
  `apply(..., lr [N, H, W, 1], scale=None)` -> tuple of `[N, 2^l H, 2^l W, 1]` for l = 1 ..
  log2(scale) (`scale=None`: every level).
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

  def __call__(self, lr: jax.Array, scale: int | None = None) -> tuple[jax.Array, ...]:
    layers.check_input(lr)
    n = self.levels if scale is None else layers.num_levels(scale, self.levels)
    feats, image, outputs = layers.leaky_relu(self.input_conv(lr)), lr, []
    for level in self.pyramid[:n]:
      feats, image = level(feats, image)
      outputs.append(image)
    return tuple(outputs)
