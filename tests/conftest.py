"""Test-wide settings: the backend, and JAX's persistent compilation cache outside the repo.

By default the suite runs on the CPU (CI has no accelerator, and CPU results are
deterministic). ``CMRL_TEST_ACCELERATOR=1`` runs it on whatever accelerator JAX
finds instead (``make test CMRL_TEST_ACCELERATOR=1`` on a GPU or TPU VM), fails
at start-up if there is none, and sets float32 matmuls to full precision so the
hand-computed tolerances hold there too (docs/design.md, "Precision").
Tests that need several devices force host CPU devices in a subprocess.
"""

import os
from pathlib import Path

ON_ACCELERATOR = os.environ.get("CMRL_TEST_ACCELERATOR", "") not in ("", "0")
if not ON_ACCELERATOR:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path.home() / ".cache" / "cmrl_jax" / "jax-cache")
)

# Subprocesses (the CLI and multi-device tests) cache their compiles from the same size on.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
if ON_ACCELERATOR:
    if jax.default_backend() == "cpu":
        raise RuntimeError("CMRL_TEST_ACCELERATOR=1 but JAX found no accelerator "
                           "(install one with `make install DEVICE=cuda` or `DEVICE=tpu`)")
    jax.config.update("jax_default_matmul_precision", "highest")


def pytest_report_header(config) -> str:
    """Name the backend the suite runs on in pytest's header."""
    devices = jax.devices()
    backend = jax.default_backend()
    return f"jax {jax.__version__} on {backend}: {len(devices)} x {devices[0].device_kind}"
