"""lapsrn_jax.xla_cpu: the XLA-CPU flag added on import (Eigen instead of YNNPACK convolutions)."""

import os
import subprocess
import sys

import pytest

from lapsrn_jax import xla_cpu


def test_tune_appends_the_conv_flag_to_existing_flags_on_a_verified_jaxlib():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu.tune(env, version="0.10.2")
  assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {xla_cpu.CONV_FLAG}"


def test_tune_adds_the_flag_once():
  env = {}
  assert xla_cpu.tune(env, version="0.10.2")
  assert not xla_cpu.tune(env, version="0.10.2")
  assert env["XLA_FLAGS"] == xla_cpu.CONV_FLAG


def test_tune_leaves_an_unverified_jaxlib_alone():
  # XLA aborts on a flag it does not know, so other versions must get nothing.
  for version in ("0.7.1", "0.11.0", "1.0.0", None, ""):
    env = {"XLA_FLAGS": "--foo"}
    assert not xla_cpu.tune(env, version=version or "")
    assert env == {"XLA_FLAGS": "--foo"}


def test_tune_respects_the_opt_out_and_the_users_own_ynn_setting():
  env = {xla_cpu.OPT_OUT: "0"}
  assert not xla_cpu.tune(env, version="0.10.2")
  assert "XLA_FLAGS" not in env
  user = "--xla_cpu_experimental_ynn_fusion_type=+LIBRARY_FUSION_TYPE_DOT"
  env = {"XLA_FLAGS": user}
  assert not xla_cpu.tune(env, version="0.10.2")
  assert env["XLA_FLAGS"] == user


_PROBE = """
import lapsrn_jax, jax, jax.numpy as jnp
from lapsrn_jax.models import layers
x, k = jnp.ones((2, 16, 16, 64)), jnp.ones((3, 3, 64, 64))
hlo = jax.jit(layers.conv3x3).lower(x, k).compile().as_text()
print("YNN" if "ynn_fusion" in hlo else "NO-YNN")
print(float(layers.conv3x3(x, k)[0, 4, 4, 0]))
"""


def _probe(opt_out: bool) -> list[str]:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  if opt_out:
    env[xla_cpu.OPT_OUT] = "0"
  out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                       check=True)
  return out.stdout.split()


def test_importing_lapsrn_jax_moves_convolutions_off_ynnpack_with_the_same_result():
  version = xla_cpu.jaxlib_version()
  if not (version or "").startswith(xla_cpu.VERIFIED_JAXLIB):
    pytest.skip(f"jaxlib {version} is not in VERIFIED_JAXLIB {xla_cpu.VERIFIED_JAXLIB}: "
                "no flag added")
  tuned, default = _probe(opt_out=False), _probe(opt_out=True)
  assert tuned[0] == "NO-YNN"
  assert default[0] == "YNN"  # the flag is what changes the kernel (else it would be dead weight)
  assert float(tuned[1]) == float(default[1]) == 576.0
