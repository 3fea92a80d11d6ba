"""Pure JAX operators: the periodic stride-2 convolution, its adjoint and its Fourier inverse."""

from lapsrn_jax.ops.inverse_conv import (
    InverseConvFactor,
    apply,
    factorize,
    factorize_many,
    gram_scale,
    inverse_conv,
)
from lapsrn_jax.ops.stride2 import stride2_conv, stride2_conv_transpose

__all__ = [
    "InverseConvFactor",
    "apply",
    "factorize",
    "factorize_many",
    "gram_scale",
    "inverse_conv",
    "stride2_conv",
    "stride2_conv_transpose",
]
