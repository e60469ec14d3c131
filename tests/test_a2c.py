"""Returns, A2C loss terms and the linear schedule (cmrl_jax/learners/a2c.py) by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from numpy.testing import assert_allclose

from cmrl_jax.learners.a2c import A2CTerms, a2c_terms, discounted_returns
from cmrl_jax.learners.common import linear_anneal

GAMMA = 0.9
LN2 = float(np.log(2.0))


def _returns(rewards, mask, bootstrap=0.0):
    return np.asarray(
        discounted_returns(
            jnp.asarray(rewards, jnp.float32),
            jnp.asarray(mask),
            jnp.asarray(bootstrap, jnp.float32),
            GAMMA,
        )
    )


def test_discounted_returns_all_live():
    # G2 = 3
    # G1 = 2 + 0.9 * 3   = 4.7
    # G0 = 1 + 0.9 * 4.7 = 5.23
    g = _returns([1.0, 2.0, 3.0], [True, True, True])
    assert g.dtype == np.float32 and g.shape == (3,)
    assert_allclose(g, [5.23, 4.7, 3.0], rtol=1e-6)


def test_discounted_returns_with_bootstrap():
    # G2 = 3 + 0.9 * 10  = 12
    # G1 = 2 + 0.9 * 12  = 12.8
    # G0 = 1 + 0.9 * 12.8 = 12.52
    g = _returns([1.0, 2.0, 3.0], [1, 1, 1], bootstrap=10.0)
    assert_allclose(g, [12.52, 12.8, 12.0], rtol=1e-6)


def test_discounted_returns_masked_middle_passes_through():
    # The masked step neither rewards (its 5.0 is ignored) nor discounts.
    # G2 = 3
    # G1 = G2 = 3            (masked)
    # G0 = 1 + 0.9 * 3 = 3.7 (one discount only, not 0.9^2)
    g = _returns([1.0, 5.0, 3.0], [1, 0, 1])
    assert_allclose(g, [3.7, 3.0, 3.0], rtol=1e-6)


def test_discounted_returns_masked_last_passes_bootstrap():
    # G2 = bootstrap = 10    (masked)
    # G1 = 2 + 0.9 * 10 = 11
    # G0 = 1 + 0.9 * 11 = 10.9
    g = _returns([1.0, 2.0, 7.0], [1, 1, 0], bootstrap=10.0)
    assert_allclose(g, [10.9, 11.0, 10.0], rtol=1e-6)


def test_discounted_returns_trailing_batch_dims():
    # rewards / mask are [T=3, K=2], bootstrap is [K=2].
    # column 0: r [1, 2, 3], all live, bootstrap 0  -> [5.23, 4.7, 3]
    # column 1: r [1, 5, 3], mask [1, 0, 1], bootstrap 10:
    #   G2 = 3 + 0.9 * 10 = 12; G1 = 12 (masked); G0 = 1 + 0.9 * 12 = 11.8
    rewards = np.array([[1.0, 1.0], [2.0, 5.0], [3.0, 3.0]], np.float32)
    mask = np.array([[1, 1], [1, 0], [1, 1]], bool)
    g = _returns(rewards, mask, bootstrap=np.array([0.0, 10.0], np.float32))
    assert g.shape == (3, 2)
    assert_allclose(g, [[5.23, 11.8], [4.7, 12.0], [3.0, 12.0]], rtol=1e-6)


def test_discounted_returns_long_horizon_matches_loop():
    # T > 16 takes the non-unrolled scan path; compare with a Python loop.
    rng = np.random.default_rng(0)
    t_len, k = 20, 3
    rewards = rng.normal(size=(t_len, k)).astype(np.float32)
    mask = rng.random((t_len, k)) < 0.7
    bootstrap = rng.normal(size=(k,)).astype(np.float32)
    expected = np.zeros((t_len, k))
    g = bootstrap.astype(np.float64)
    for t in reversed(range(t_len)):
        g = np.where(mask[t], rewards[t] + GAMMA * g, g)
        expected[t] = g
    assert_allclose(_returns(rewards, mask, bootstrap), expected, rtol=1e-5, atol=1e-5)


def test_discounted_returns_jit():
    fn = jax.jit(discounted_returns, static_argnums=3)
    g = fn(jnp.array([1.0, 2.0, 3.0]), jnp.array([1, 0, 1]), jnp.float32(0.0), GAMMA)
    # G2 = 3; G1 = 3 (masked); G0 = 1 + 0.9 * 3 = 3.7
    assert_allclose(np.asarray(g), [3.7, 3.0, 3.0], rtol=1e-6)


# Tiny A2C example, T = 2 steps, A = 2 actions.
#   step 0: logits [0, 0]     -> p = [0.5, 0.5];   action 1, logp = ln 0.5
#   step 1: logits [ln 3, 0]  -> p = [0.75, 0.25]; action 0, logp = ln 0.75
#   values  [1.0, 0.5], returns [2.0, 0.0] -> advantages G - V = [1.0, -0.5]
LOGITS = np.array([[0.0, 0.0], [np.log(3.0), 0.0]], np.float32)
ACTIONS = np.array([1, 0], np.int32)
VALUES = np.array([1.0, 0.5], np.float32)
RETURNS = np.array([2.0, 0.0], np.float32)
H1 = 0.75 * np.log(4.0 / 3.0) + 0.25 * np.log(4.0)  # entropy of [0.75, 0.25] = 0.5623351


def _terms(mask, logits=LOGITS, values=VALUES, returns=RETURNS):
    return a2c_terms(
        jnp.asarray(logits), jnp.asarray(ACTIONS), jnp.asarray(values), jnp.asarray(returns),
        jnp.asarray(mask),
    )


def test_a2c_terms_all_live():
    terms = _terms(np.array([True, True]))
    assert isinstance(terms, A2CTerms)
    # policy = -(ln 0.5 * 1.0 + ln 0.75 * (-0.5)) = ln 2 + 0.5 ln 0.75 = 0.5 ln 3 = 0.5493061
    assert_allclose(float(terms.policy), 0.5 * np.log(3.0), rtol=1e-5)
    # value = 0.5 * (1.0^2 + (-0.5)^2) = 0.5 * 1.25 = 0.625
    assert_allclose(float(terms.value), 0.625, rtol=1e-6)
    # entropy = ln 2 + (0.75 ln(4/3) + 0.25 ln 4) = 0.6931472 + 0.5623351 = 1.2554823
    assert_allclose(float(terms.entropy), LN2 + H1, rtol=1e-5)
    for x in terms:
        assert x.shape == () and x.dtype == jnp.float32


def test_a2c_terms_masked_step_excluded():
    terms = _terms(np.array([1.0, 0.0], np.float32))
    # only step 0: policy = -(ln 0.5 * 1) = ln 2; value = 0.5 * 1 = 0.5; entropy = ln 2
    assert_allclose(float(terms.policy), LN2, rtol=1e-5)
    assert_allclose(float(terms.value), 0.5, rtol=1e-6)
    assert_allclose(float(terms.entropy), LN2, rtol=1e-5)


def test_a2c_policy_term_stops_gradient_through_advantage():
    mask = jnp.array([1.0, 1.0])

    def policy_of(values, returns):
        return _terms(mask, values=values, returns=returns).policy

    g_values, g_returns = jax.grad(policy_of, argnums=(0, 1))(
        jnp.asarray(VALUES), jnp.asarray(RETURNS)
    )
    assert_allclose(np.asarray(g_values), [0.0, 0.0], atol=0)
    assert_allclose(np.asarray(g_returns), [0.0, 0.0], atol=0)


def test_a2c_gradients_by_hand():
    mask = jnp.array([1.0, 1.0])
    # d value / d V = -mask * (G - V) = [-1.0, 0.5]
    g_v = jax.grad(lambda v: _terms(mask, values=v).value)(jnp.asarray(VALUES))
    assert_allclose(np.asarray(g_v), [-1.0, 0.5], rtol=1e-6)
    # d policy / d logits = -adv * (onehot(a) - p)
    #   step 0: -1.0 * ([0, 1] - [0.5, 0.5])    = [0.5, -0.5]
    #   step 1: 0.5 * ([1, 0] - [0.75, 0.25])   = [0.125, -0.125]
    g_l = jax.grad(lambda lg: _terms(mask, logits=lg).policy)(jnp.asarray(LOGITS))
    assert_allclose(np.asarray(g_l), [[0.5, -0.5], [0.125, -0.125]], rtol=1e-5, atol=1e-7)


def test_a2c_terms_batched_shapes():
    # [T=2, K=2, A=2] input: the two columns are the example above and a copy with mask 0.
    logits = np.stack([LOGITS, LOGITS], axis=1)
    actions = np.stack([ACTIONS, ACTIONS], axis=1)
    values = np.stack([VALUES, VALUES], axis=1)
    returns = np.stack([RETURNS, RETURNS], axis=1)
    mask = np.array([[1, 0], [1, 0]], bool)
    terms = a2c_terms(*map(jnp.asarray, (logits, actions, values, returns, mask)))
    assert_allclose(float(terms.policy), 0.5 * np.log(3.0), rtol=1e-5)
    assert_allclose(float(terms.value), 0.625, rtol=1e-6)
    assert_allclose(float(terms.entropy), LN2 + H1, rtol=1e-5)


def test_linear_anneal_points():
    # start 1.0 -> end 0.0 over 100 steps: value = 1 - step / 100, then 0.
    assert_allclose(float(linear_anneal(0, 1.0, 0.0, 100)), 1.0)
    assert_allclose(float(linear_anneal(50, 1.0, 0.0, 100)), 0.5, rtol=1e-6)
    assert_allclose(float(linear_anneal(100, 1.0, 0.0, 100)), 0.0, atol=1e-7)
    assert_allclose(float(linear_anneal(250, 1.0, 0.0, 100)), 0.0, atol=1e-7)
    # start 0.5 -> end 0.1 over 10 steps; step 5: 0.5 + (0.1 - 0.5) * 0.5 = 0.3
    assert_allclose(float(linear_anneal(5, 0.5, 0.1, 10)), 0.3, rtol=1e-6)
    # increasing schedule, after the end stays at end: 0.0 -> 2.0
    assert_allclose(float(linear_anneal(1000, 0.0, 2.0, 10)), 2.0, rtol=1e-6)


def test_linear_anneal_traced_step():
    steps = jnp.array([0, 25, 100, 400], jnp.int32)
    out = jax.jit(jax.vmap(lambda s: linear_anneal(s, 1.0, 0.0, 100)))(steps)
    # 1 - [0, 25, 100, 100] / 100
    assert_allclose(np.asarray(out), [1.0, 0.75, 0.0, 0.0], rtol=1e-6, atol=1e-7)
