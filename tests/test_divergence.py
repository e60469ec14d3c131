"""Divergences and derangement sampling (cmrl_jax/divergence.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from cmrl_jax.divergence import (
    cross_divergence,
    divergence_fn,
    jensen_shannon,
    kl,
    sample_derangement,
    symmetric_kl,
)

LN2 = float(np.log(2.0))

# p = [0.5, 0.5], q = [0.9, 0.1], passed as logits = log probs.
P = jnp.log(jnp.array([0.5, 0.5]))
Q = jnp.log(jnp.array([0.9, 0.1]))

# KL(p || q) = 0.5 ln(0.5 / 0.9) + 0.5 ln(0.5 / 0.1)
#            = 0.5 (-0.5877867 + 1.6094379) = 0.5108256
KL_PQ = 0.5108256237659907
# KL(q || p) = 0.9 ln(0.9 / 0.5) + 0.1 ln(0.1 / 0.5)
#            = 0.9 * 0.5877867 - 0.1 * 1.6094379 = 0.5290080 - 0.1609438 = 0.3680642
KL_QP = 0.3680642071684971
# SKL = 0.5108256 + 0.3680642 = 0.8788898
SKL_PQ = KL_PQ + KL_QP
# m = (p + q) / 2 = [0.7, 0.3]
# KL(p || m) = 0.5 ln(0.5 / 0.7) + 0.5 ln(0.5 / 0.3) = 0.5 (-0.3364722 + 0.5108256) = 0.0871767
# KL(q || m) = 0.9 ln(0.9 / 0.7) + 0.1 ln(0.1 / 0.3) = 0.9 * 0.2513144 - 0.1 * 1.0986123
#            = 0.2261830 - 0.1098612 = 0.1163217
# JS = 0.5 * 0.0871767 + 0.5 * 0.1163217 = 0.1017492
JS_PQ = 0.10174922507919676


def test_hand_values():
    assert_allclose(float(kl(P, Q)), KL_PQ, rtol=1e-5)
    assert_allclose(float(kl(Q, P)), KL_QP, rtol=1e-5)
    assert_allclose(float(symmetric_kl(P, Q)), SKL_PQ, rtol=1e-5)
    assert_allclose(float(jensen_shannon(P, Q)), JS_PQ, rtol=1e-5)


def test_logit_shift_invariance():
    # Logits are unnormalised: adding a constant per distribution changes nothing.
    for fn, want in ((kl, KL_PQ), (symmetric_kl, SKL_PQ), (jensen_shannon, JS_PQ)):
        assert_allclose(float(fn(P + 3.0, Q - 7.0)), want, rtol=1e-5)


def test_symmetry_and_kl_asymmetry():
    assert not np.isclose(float(kl(P, Q)), float(kl(Q, P)), rtol=1e-3)
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(64, 5)) * 2.0, jnp.float32)
    b = jnp.asarray(rng.normal(size=(64, 5)) * 2.0, jnp.float32)
    assert_allclose(np.asarray(symmetric_kl(a, b)), np.asarray(symmetric_kl(b, a)),
                    rtol=1e-5, atol=1e-6)
    assert_allclose(np.asarray(jensen_shannon(a, b)), np.asarray(jensen_shannon(b, a)),
                    rtol=1e-5, atol=1e-6)
    # SKL is the sum of the two KLs.
    assert_allclose(np.asarray(symmetric_kl(a, b)), np.asarray(kl(a, b) + kl(b, a)),
                    rtol=1e-4, atol=1e-5)


def test_zero_on_equal_inputs():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.normal(size=(32, 4)) * 3.0, jnp.float32)
    for fn in (kl, symmetric_kl, jensen_shannon):
        out = np.asarray(fn(a, a))
        assert out.shape == (32,)
        assert_allclose(out, 0.0, atol=1e-6)


def test_batch_shapes():
    a = jnp.zeros((3, 2, 6))
    b = jnp.ones((3, 2, 6)).at[..., 0].set(4.0)
    for fn in (kl, symmetric_kl, jensen_shannon):
        out = fn(a, b)
        assert out.shape == (3, 2)
        assert np.all(np.asarray(out) > 0)


def test_js_bounded_by_ln2_and_skl_nonnegative():
    rng = np.random.default_rng(2)
    a = jnp.asarray(rng.normal(size=(2000, 4)) * 6.0, jnp.float32)
    b = jnp.asarray(rng.normal(size=(2000, 4)) * 6.0, jnp.float32)
    js = np.asarray(jensen_shannon(a, b))
    skl = np.asarray(symmetric_kl(a, b))
    assert np.all(np.isfinite(js)) and np.all(np.isfinite(skl))
    assert np.all(js <= LN2 + 1e-6)
    assert np.all(js >= -1e-6)
    assert np.all(skl >= -1e-6)
    # Random logits at this scale are far apart: some pairs come close to the bound.
    assert js.max() > 0.5


def test_js_approaches_ln2_for_disjoint():
    # p puts mass on action 0, q on action 1; separation s of the logits.
    seps = [1.0, 3.0, 10.0, 30.0]
    js = [float(jensen_shannon(jnp.array([s, 0.0]), jnp.array([0.0, s]))) for s in seps]
    assert all(x < y for x, y in zip(js, js[1:], strict=False))
    assert_allclose(js[-1], LN2, atol=1e-5)
    # Numerically disjoint (probabilities underflow to exactly 0): finite and ln 2.
    exact = float(jensen_shannon(jnp.array([0.0, -1e30]), jnp.array([-1e30, 0.0])))
    assert_allclose(exact, LN2, atol=1e-6)


def test_divergence_fn():
    assert divergence_fn("js") is jensen_shannon
    assert divergence_fn("skl") is symmetric_kl
    with pytest.raises(ValueError):
        divergence_fn("kl2")


@pytest.mark.parametrize("k", range(2, 11))
def test_sample_derangement_is_derangement(k):
    keys = jax.random.split(jax.random.PRNGKey(k), 256)
    perms = np.asarray(jax.vmap(lambda key: sample_derangement(key, k))(keys))
    assert perms.shape == (256, k)
    assert perms.dtype == np.int32
    # no fixed points
    assert not np.any(perms == np.arange(k))
    # each row is a permutation of range(k)
    assert np.array_equal(np.sort(perms, axis=-1), np.broadcast_to(np.arange(k), perms.shape))
    if k >= 4:
        # more than one derangement actually gets drawn
        assert len({tuple(p) for p in perms}) > 1


def test_sample_derangement_k2_is_swap():
    keys = jax.random.split(jax.random.PRNGKey(0), 32)
    perms = np.asarray(jax.vmap(lambda key: sample_derangement(key, 2))(keys))
    assert np.array_equal(perms, np.tile([1, 0], (32, 1)))


def test_sample_derangement_fallback_still_derangement():
    # With a single try, about 2/3 of keys for k = 3 need the cyclic-shift fallback.
    keys = jax.random.split(jax.random.PRNGKey(5), 200)
    perms = np.asarray(jax.vmap(lambda key: sample_derangement(key, 3, max_tries=1))(keys))
    assert not np.any(perms == np.arange(3))
    assert np.array_equal(np.sort(perms, axis=-1), np.broadcast_to(np.arange(3), perms.shape))


def test_sample_derangement_uniform_k3():
    # k = 3 has exactly two derangements: [1, 2, 0] and [2, 0, 1].
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(123), n)
    perms = np.asarray(jax.jit(jax.vmap(lambda key: sample_derangement(key, 3)))(keys))
    a = int(np.sum(np.all(perms == [1, 2, 0], axis=-1)))
    b = int(np.sum(np.all(perms == [2, 0, 1], axis=-1)))
    assert a + b == n
    # Chi-square with 1 dof against the p = 0.001 critical value 10.83.
    expected = n / 2
    chi2 = (a - expected) ** 2 / expected + (b - expected) ** 2 / expected
    assert chi2 < 10.83, (a, b, chi2)


@pytest.mark.parametrize("k", [0, 1])
def test_sample_derangement_too_small(k):
    with pytest.raises(ValueError):
        sample_derangement(jax.random.PRNGKey(0), k)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_js(a, b):
    p, q = np.exp(_np_log_softmax(a)), np.exp(_np_log_softmax(b))
    m = 0.5 * (p + q)
    return 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))


def _np_skl(a, b):
    p, q = np.exp(_np_log_softmax(a)), np.exp(_np_log_softmax(b))
    return np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p))


@pytest.mark.parametrize(
    "lib_fn,np_fn", [(jensen_shannon, _np_js), (symmetric_kl, _np_skl)], ids=["js", "skl"]
)
def test_cross_divergence_matches_loop(lib_fn, np_fn):
    rng = np.random.default_rng(3)
    t_len, k, a = 3, 3, 4
    own = rng.normal(size=(t_len, k, a)).astype(np.float32) * 2.0
    cross = rng.normal(size=(t_len, k, a)).astype(np.float32) * 2.0
    perm = np.array([2, 0, 1], np.int32)
    # rollout 0 lives 1 step, rollout 1 all 3 steps, rollout 2 the first 2 steps
    mask = np.array([[1, 1, 1], [0, 1, 1], [0, 1, 0]], bool)

    expected = 0.0
    for j in range(k):
        for t in range(t_len):
            expected += mask[t, perm[j]] * np_fn(own[t, perm[j]], cross[t, j])

    out = cross_divergence(
        jnp.asarray(own), jnp.asarray(cross), jnp.asarray(perm), jnp.asarray(mask), lib_fn
    )
    assert out.shape == ()
    assert_allclose(float(out), expected, rtol=1e-5)

    # The reference is sensitive to the indexing: pairing the wrong mask column or
    # the wrong own-rollout would give a different value.
    wrong_mask = sum(
        mask[t, j] * np_fn(own[t, perm[j]], cross[t, j]) for j in range(k) for t in range(t_len)
    )
    wrong_own = sum(
        mask[t, perm[j]] * np_fn(own[t, j], cross[t, j]) for j in range(k) for t in range(t_len)
    )
    assert not np.isclose(expected, wrong_mask, rtol=1e-3)
    assert not np.isclose(expected, wrong_own, rtol=1e-3)

    # Under jit, with the perm traced.
    jitted = jax.jit(cross_divergence, static_argnums=4)
    out_jit = jitted(
        jnp.asarray(own), jnp.asarray(cross), jnp.asarray(perm), jnp.asarray(mask), lib_fn
    )
    assert_allclose(float(out_jit), expected, rtol=1e-5)
