"""Reward-sharing schemes (cmrl_jax/rewards.py) against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from cmrl_jax import rewards as R

DIRECT = {
    "separate": R.separate,
    "shared": R.shared,
    "zero": R.zero_until_exploit,
    "max": R.max_until_exploit,
    "stdev": R.stdev_until_exploit,
    "max_stdev": R.max_stdev_until_exploit,
}

# ---------------------------------------------------------------------------
# (a) K = 3 rollouts, H = 1: rewards [[0.1], [-1], [0]], every step live.
#   returns      = [0.1, -1, 0]
#   sum          = 0.1 - 1 + 0 = -0.9
#   max          = 0.1
#   mean         = -0.9 / 3 = -0.3
#   deviations   = [0.4, -0.7, 0.3]; squares = [0.16, 0.49, 0.09], sum = 0.74
#   std (ddof=0) = sqrt(0.74 / 3) = sqrt(0.24666...) = 0.4966554808...
#   max + std    = 0.1 + 0.4966554808 = 0.5966554808...
# With H = 1 every rollout's last live step is step 0, so the aggregate
# appears in every row.
# ---------------------------------------------------------------------------
REW_A = np.array([[0.1], [-1.0], [0.0]], np.float32)
MASK_A = np.ones((3, 1), bool)
STD_A = 0.4966554808583780
EXPECTED_A = {
    "separate": [[0.1], [-1.0], [0.0]],
    "shared": [[-0.9], [-0.9], [-0.9]],
    "zero": [[0.0], [0.0], [0.0]],
    "max": [[0.1], [0.1], [0.1]],
    "stdev": [[STD_A], [STD_A], [STD_A]],
    "max_stdev": [[0.1 + STD_A]] * 3,
}

# ---------------------------------------------------------------------------
# (b) K = 2 rollouts, H = 3.
#   rollout 0: rewards [0.5, -0.2, 0.0], mask [1, 1, 0] -> last live step 1
#   rollout 1: rewards [1.0, 0.25, -2.0], mask [1, 1, 1] -> last live step 2
#   returns      = [0.5 - 0.2, 1.0 + 0.25 - 2.0] = [0.3, -0.75]
#   sum          = 0.3 - 0.75 = -0.45
#   max          = 0.3
#   mean         = -0.45 / 2 = -0.225; deviations = [0.525, -0.525]
#   std (ddof=0) = sqrt((0.525^2 + 0.525^2) / 2) = 0.525
#   max + std    = 0.3 + 0.525 = 0.825
# The aggregate goes to (row 0, step 1) and (row 1, step 2); zero elsewhere.
# ---------------------------------------------------------------------------
REW_B = np.array([[0.5, -0.2, 0.0], [1.0, 0.25, -2.0]], np.float32)
MASK_B = np.array([[1, 1, 0], [1, 1, 1]], bool)


def _credited(v):
    return [[0.0, v, 0.0], [0.0, 0.0, v]]


EXPECTED_B = {
    "separate": [[0.5, -0.2, 0.0], [1.0, 0.25, -2.0]],
    "shared": _credited(-0.45),
    "zero": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    "max": _credited(0.3),
    "stdev": _credited(0.525),
    "max_stdev": _credited(0.825),
}

CASES = [
    ("a", REW_A, MASK_A, EXPECTED_A),
    ("b", REW_B, MASK_B, EXPECTED_B),
]


def test_scheme_names_cover_all_functions():
    assert tuple(R.SCHEMES) == tuple(DIRECT)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
@pytest.mark.parametrize("name", list(DIRECT))
def test_scheme_hand_values(name, case):
    _, rew, mask, expected = case
    expected = expected[name]
    out = DIRECT[name](jnp.asarray(rew), jnp.asarray(mask))
    assert out.shape == rew.shape
    assert out.dtype == jnp.float32
    assert_allclose(np.asarray(out), np.asarray(expected, np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
@pytest.mark.parametrize("name", list(DIRECT))
def test_float_mask_matches_bool_mask(name, case):
    _, rew, mask, expected = case
    expected = expected[name]
    out = DIRECT[name](jnp.asarray(rew), jnp.asarray(mask, jnp.float32))
    assert_allclose(np.asarray(out), np.asarray(expected, np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
@pytest.mark.parametrize("name", list(DIRECT))
def test_apply_scheme_matches_direct(name, case):
    _, rew, mask, expected = case
    expected = expected[name]
    rew, mask = jnp.asarray(rew), jnp.asarray(mask)
    sid = R.scheme_id(name)
    direct = np.asarray(DIRECT[name](rew, mask))
    via_switch = np.asarray(R.apply_scheme(sid, rew, mask))
    assert_allclose(via_switch, direct, rtol=1e-6, atol=1e-7)
    assert_allclose(via_switch, np.asarray(expected, np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_apply_scheme_jit_with_traced_id(case):
    _, rew, mask, expected = case
    rew, mask = jnp.asarray(rew), jnp.asarray(mask)
    jitted = jax.jit(R.apply_scheme)  # the scheme id is a traced int32, one compile
    for name, fn in DIRECT.items():
        out = jitted(jnp.int32(R.scheme_id(name)), rew, mask)
        assert_allclose(np.asarray(out), np.asarray(fn(rew, mask)), rtol=1e-6, atol=1e-7)
        assert_allclose(np.asarray(out), np.asarray(expected[name], np.float32),
                        rtol=1e-5, atol=1e-6)


def test_apply_scheme_vmapped_over_ids():
    rew, mask = jnp.asarray(REW_B), jnp.asarray(MASK_B)
    ids = jnp.arange(len(R.SCHEMES), dtype=jnp.int32)
    out = jax.vmap(R.apply_scheme, in_axes=(0, None, None))(ids, rew, mask)
    expected = np.stack([np.asarray(EXPECTED_B[n], np.float32) for n in R.SCHEMES])
    assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)


def test_scheme_id_values_and_unknown_name():
    assert [R.scheme_id(n) for n in R.SCHEMES] == list(range(len(R.SCHEMES)))
    assert R.scheme_id("separate") == 0
    assert R.scheme_id("max_stdev") == 5
    with pytest.raises(ValueError, match="unknown reward scheme"):
        R.scheme_id("nope")
    with pytest.raises(ValueError):
        R.scheme_id("Separate")
