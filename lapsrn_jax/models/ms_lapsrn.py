"""MS-LapSRN (Lai et al., TPAMI 2018): one parameter set shared by every recursion, level and scale.

Per level: `R` recursions of a pre-activation block of `depth` convs (LReLU -> conv 3x3), each
followed by the local skip (`skip`), then the feature upsampler
`LReLU -> ConvTranspose 3x3 (upsample 2, crop [0 1 0 1])` (no activation after it), a residual
conv (64 -> 1) on the upsampled features and `image = img_up(image) + residual`. The upsampled
features are the next level's input.

`pyramid` is the level loop shared with CMS-LapSRN, which only swaps the feature upsampler.
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax
from jax import lax

from lapsrn_jax.models import layers

SKIPS = ("NS", "DS", "SS")  # no skip / distinct source (block input) / shared source (level input)


def recursive_block(source: jax.Array, convs: Sequence[tuple[jax.Array, jax.Array]],
                    recursions: int, skip: str,
                    keep: Callable[[jax.Array], jax.Array] = layers.keep_all
                    ) -> jax.Array:
  """`recursions` applications of the shared block `x -> convD(LReLU(... conv1(LReLU(x))))`.

  Args:
    source: the level input `[N, H, W, F]`.
    convs: `(kernel [3, 3, F, F], bias [F])` of conv1 .. convD (the same arrays every recursion).
    recursions: R >= 1.
    skip: "SS": `x_r = block(x_{r-1}) + source`; "DS": `+ x_{r-1}`; "NS": no skip.
    keep: applied to every conv output (`layers.valid_region`; default the identity).

  Runs as a `lax.scan` over the recursions (the same arrays every step), fully unrolled: on
  XLA-CPU the gradient of convolutions inside a rolled loop body is much slower (the block's
  gradient 13x, `block_rolled` in benchmarks/RESULTS.md, "Training step").
  """
  def body(x, _):
    h = x
    for kernel, bias in convs:
      h = keep(layers.conv3x3(layers.leaky_relu(h), kernel, bias))
    if skip == "SS":
      h = h + source
    elif skip == "DS":
      h = h + x
    return h, None

  return lax.scan(body, source, None, length=recursions, unroll=True)[0]


def pyramid(lr: jax.Array, num_levels: int, input_conv: Callable, block: Callable,
            upsample: Callable[[int, jax.Array], jax.Array], residual_conv: Callable,
            img_up: Callable, keep: Callable[[jax.Array], jax.Array] = layers.keep_all
            ) -> tuple[jax.Array, ...]:
  """The MS-LapSRN level loop; `upsample(level, LReLU(block output))` is the feature upsampler.

  `keep` (`layers.valid_region`; default the identity) is applied to the input and to the output of
  every layer here; `block` must apply it to its own conv outputs.
  """
  lr = keep(lr)
  feats, image, outputs = keep(input_conv(lr)), lr, []
  for level in range(num_levels):
    feats = keep(upsample(level, layers.leaky_relu(block(feats))))
    image = keep(img_up(image) + residual_conv(feats))
    outputs.append(image)
  return tuple(outputs)


def check_config(depth: int, recursions: int, skip: str) -> None:
  if depth < 1 or recursions < 1:
    raise ValueError(f"depth and recursions must be >= 1, got depth={depth}, "
                     f"recursions={recursions}")
  if skip not in SKIPS:
    raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")


class MSLapSRN(nn.Module):
  """MS-LapSRN D{depth}R{recursions}; 222,801 parameters for D5 (any R, any scale).

  Parameters: `input_conv`, `conv1` .. `conv{depth}` (the recursive block), `upconv`
  (kernel `[3, 3, F, F]` in MatConvNet convt layout, bias), `residual_conv`, `img_up`.
  `apply(..., lr [N, H, W, 1], scale=s)` (s = 2, 4, 8, ...) -> tuple of `[N, 2^l H, 2^l W, 1]`,
  l = 1 .. log2(s). `valid_hw=(h, w)` (int `[2]` or `[N, 2]`, may be traced): the images fill
  only the top-left `h x w` of `lr`; the outputs then equal the model on the images alone in the
  top-left `2^l h x 2^l w` and are zero elsewhere (size buckets: one compile for many sizes).
  """
  depth: int = 5
  recursions: int = 8
  skip: str = "SS"
  features: int = 64

  def setup(self):
    check_config(self.depth, self.recursions, self.skip)
    f = self.features
    self.input_conv = layers.Conv(1, f, kernel_init=layers.input_normal)
    self.convs = [layers.Conv(f, f, name=f"conv{i + 1}") for i in range(self.depth)]
    self.upconv = layers.ConvTranspose2x(f, f)
    self.residual_conv = layers.Conv(f, 1)
    self.img_up = layers.image_upsampler()

  def block(self, x: jax.Array,
            keep: Callable[[jax.Array], jax.Array] = layers.keep_all) -> jax.Array:
    """The shared recursive block, all recursions: `[N, H, W, F]` -> `[N, H, W, F]`."""
    convs = [(c.kernel, c.bias) for c in self.convs]
    return recursive_block(x, convs, self.recursions, self.skip, keep)

  max_scale = None  # any power of two (the block is shared by all levels)

  def receptive_radius(self, scale: int) -> int:
    """LR pixels of context per side that determine an output pixel at `scale` (tiling)."""
    return layers.pyramid_receptive_radius(layers.num_levels(scale), self.depth * self.recursions)

  def factor(self) -> None:
    """No image-independent precomputation (CMS-LapSRN has one): None."""
    return None

  def __call__(self, lr: jax.Array, *, scale: int, valid_hw: jax.Array | None = None,
               factor: None = None) -> tuple[jax.Array, ...]:
    del factor  # the common interface (see `lapsrn_jax.models`); MS-LapSRN has none
    layers.check_input(lr)
    keep = layers.valid_region(lr.shape[1:3], valid_hw)
    return pyramid(lr, layers.num_levels(scale), self.input_conv, lambda x: self.block(x, keep),
                   lambda level, x: self.upconv(x), self.residual_conv, self.img_up, keep)
