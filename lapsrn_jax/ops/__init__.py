"""Pure JAX operators: the periodic stride-2 convolution, its adjoint, its Fourier inverse on a
whole grid (`inverse_conv`) and the same inverse solved locally, tile by tile (`local_inverse`)."""

from lapsrn_jax.ops.inverse_conv import (
    InverseConvFactor,
    apply,
    factorize,
    factorize_many,
    gram_scale,
    inverse_conv,
)
from lapsrn_jax.ops.local_inverse import (
    LocalInverseConvFactor,
    apply_local,
    extension_index,
    factorize_local,
    local_inverse_conv,
)
from lapsrn_jax.ops.stride2 import stride2_conv, stride2_conv_transpose

__all__ = [
    "InverseConvFactor",
    "LocalInverseConvFactor",
    "apply",
    "apply_local",
    "extension_index",
    "factorize",
    "factorize_local",
    "factorize_many",
    "gram_scale",
    "inverse_conv",
    "local_inverse_conv",
    "stride2_conv",
    "stride2_conv_transpose",
]
