"""Policy distributions: hand-computed Gaussian log-probabilities and divergences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from cmrl_jax.agent.policy import (
    Categorical,
    TanhGaussian,
    gaussian_entropy,
    gaussian_jensen_shannon,
    gaussian_log_prob,
    gaussian_symmetric_kl,
    js_points,
    make_policy,
)
from cmrl_jax.divergence import jensen_shannon
from cmrl_jax.learners.a2c import a2c_terms

LOG_2PI = math.log(2 * math.pi)


def test_make_policy():
    """Discrete -> categorical; 1-D finite Box -> tanh-Gaussian; anything else refused."""
    assert make_policy(spaces.Discrete(4)) == Categorical(4)
    pol = make_policy(spaces.Box(-2.0, 2.0, (3,), jnp.float32))
    assert isinstance(pol, TanhGaussian) and pol.d == 3 and pol.num_params == 6
    assert pol.low == (-2.0,) * 3
    with pytest.raises(ValueError):
        make_policy(spaces.Box(-1.0, 1.0, (2, 2), jnp.float32))
    with pytest.raises(ValueError):
        make_policy(spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32))


def test_gaussian_log_prob_hand_computed():
    """N(1; 0, 1): -1/2 - log(2 pi)/2 = -1.418939; N(2; 1, e^1): -1/(2 e^2) - 1 - log(2pi)/2."""
    assert float(gaussian_log_prob(jnp.array([0.0]), jnp.array([0.0]), jnp.array([1.0]))) == (
        pytest.approx(-0.5 - 0.5 * LOG_2PI, abs=1e-6))
    v = gaussian_log_prob(jnp.array([1.0]), jnp.array([1.0]), jnp.array([2.0]))
    assert float(v) == pytest.approx(-0.5 * math.exp(-2) - 1.0 - 0.5 * LOG_2PI, abs=1e-6)
    # two independent dimensions add: -1.418939 + (-0.918939)
    v = gaussian_log_prob(jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, 0.0]))
    assert float(v) == pytest.approx(-0.5 - LOG_2PI, abs=1e-6)
    # entropy of N(0, e^2) in 1-D: 1 + log(2 pi e) / 2 = 2.418939
    assert float(gaussian_entropy(jnp.array([1.0]))) == pytest.approx(
        1.0 + 0.5 * math.log(2 * math.pi * math.e), abs=1e-6)


def test_tanh_gaussian_log_prob_hand_computed():
    """Box [-2, 2]: mean 1, log std 0.5, u = 2.

    log N(2; 1, e^0.5) = -0.5 e^-1 - 0.5 - 0.918939 = -1.602879;
    da/du = 2 (1 - tanh(2)^2) = 2 * 0.0706508 = 0.1413016, log = -1.956859;
    log pi(a) = -1.602879 + 1.956859 = 0.353980.
    """
    pol = TanhGaussian((-2.0,), (2.0,))
    lp = pol.log_prob(jnp.array([1.0, 0.5]), jnp.array([2.0]))
    assert float(lp) == pytest.approx(0.353980, abs=1e-5)
    # the env receives -2 + (tanh(2) + 1) / 2 * 4 = 2 tanh(2) = 1.928055
    assert float(pol.env_action(jnp.array([2.0]))[0]) == pytest.approx(1.928055, abs=1e-5)
    # stable for large |u|: log(1 - tanh(20)^2) ~ log 4 - 40
    assert float(pol.log_det(jnp.array([20.0]))) == pytest.approx(
        math.log(2.0) + math.log(4.0) - 40.0, abs=1e-4)
    # gradient w.r.t. the head equals that of log N(u) (the Jacobian does not depend on it)
    g1 = jax.grad(lambda p: pol.log_prob(p, jnp.array([0.3])))(jnp.array([0.1, -0.2]))
    g2 = jax.grad(lambda p: gaussian_log_prob(p[:1], p[1:], jnp.array([0.3])))(
        jnp.array([0.1, -0.2]))
    np.testing.assert_allclose(g1, g2, rtol=1e-6)


def test_log_std_clipped():
    """Head log std outside [-5, 2] is clipped (no overflow, no collapse)."""
    pol = TanhGaussian((-1.0,), (1.0,))
    lp_hi = pol.log_prob(jnp.array([0.0, 50.0]), jnp.array([0.0]))
    lp_2 = pol.log_prob(jnp.array([0.0, 2.0]), jnp.array([0.0]))
    assert float(lp_hi) == pytest.approx(float(lp_2))


def test_gaussian_symmetric_kl_hand_computed():
    """p = N(0, 1), q = N(1, 2^2): KL(p||q) = log 2 + 2/8 - 1/2 = 0.443147,
    KL(q||p) = -log 2 + 5/2 - 1/2 = 1.306853; SKL = 1.75."""
    p = jnp.array([0.0, 0.0])
    q = jnp.array([1.0, math.log(2.0)])
    assert float(gaussian_symmetric_kl(p, q, 1)) == pytest.approx(1.75, abs=1e-5)
    assert float(gaussian_symmetric_kl(p, p, 1)) == 0.0
    # dimensions add: 2-D with the same pair twice -> 3.5
    pp, qq = jnp.array([0.0, 0.0, 0.0, 0.0]), jnp.array([1.0, 1.0, math.log(2.0), math.log(2.0)])
    assert float(gaussian_symmetric_kl(pp, qq, 2)) == pytest.approx(3.5, abs=1e-5)


def _js_numeric(m1, s1, m2, s2):
    """1-D JS by the trapezoid rule on a fine grid."""
    x = np.linspace(-40, 40, 800_001)
    p = np.exp(-0.5 * ((x - m1) / s1) ** 2) / (s1 * np.sqrt(2 * np.pi))
    q = np.exp(-0.5 * ((x - m2) / s2) ** 2) / (s2 * np.sqrt(2 * np.pi))
    m = 0.5 * (p + q)

    def f(a):
        return np.where(a > 0, a * np.log(np.maximum(a, 1e-300) / np.maximum(m, 1e-300)), 0.0)

    return 0.5 * np.trapezoid(f(p), x) + 0.5 * np.trapezoid(f(q), x)


@pytest.mark.parametrize("m1, l1, m2, l2, tol", [
    (0.0, 0.0, 1.0, 0.0, 1e-4),  # equal widths: exact
    (0.0, 0.0, 3.0, 0.0, 1e-4),
    (0.0, -3.0, 2.0, -3.0, 1e-4),  # far apart: log 2
    (0.0, 0.0, 0.0, 1.0, 0.03 * 0.1632),  # widths e^1 apart: 0.1588 vs 0.1632
    (0.0, -1.0, 0.5, 0.5, 0.07 * 0.2896),  # widths e^1.5 apart: 0.2716 vs 0.2896
])
def test_gaussian_js_against_quadrature(m1, l1, m2, l2, tol):
    """The Gauss-Hermite JS estimate against numerical integration (1-D)."""
    pts = js_points(1)
    est = gaussian_jensen_shannon(jnp.array([m1, l1]), jnp.array([m2, l2]), 1, pts)
    assert float(est) == pytest.approx(_js_numeric(m1, math.exp(l1), m2, math.exp(l2)), abs=tol)


def test_gaussian_js_properties():
    """0 at p = q, symmetric, below log 2, 2-D close to Monte Carlo, non-zero gradient."""
    pol = TanhGaussian((-1.0, -1.0), (1.0, 1.0))
    js = pol.divergence("js")
    p = jnp.array([0.0, 0.0, 0.0, 0.0])
    q = jnp.array([1.0, 0.5, 0.0, math.log(2.0)])
    assert float(js(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(js(p, q)) == pytest.approx(float(js(q, p)), abs=1e-6)
    assert 0 < float(js(p, q)) < math.log(2)
    # 2-D: 2e6-sample Monte Carlo gives 0.1944 (tests' comment; seed 1)
    assert float(js(p, q)) == pytest.approx(0.1944, abs=2e-3)
    g = jax.grad(lambda a: js(a, q))(p + 0.01)
    assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0


def test_categorical_divergence_unchanged():
    """The categorical policy's divergences are the library's (bit-identical tables)."""
    assert Categorical(3).divergence("js") is jensen_shannon


def test_a2c_terms_continuous():
    """Policy term = -sum mask * log pi(a) * advantage with the squashed log-prob."""
    pol = TanhGaussian((-1.0,), (1.0,))
    params = jnp.array([[0.0, 0.0], [0.5, -0.5]])
    u = jnp.array([[0.0], [0.2]])
    values, returns = jnp.array([0.0, 1.0]), jnp.array([1.0, 3.0])
    mask = jnp.array([True, False])
    t = a2c_terms(params, u, values, returns, mask, pol)
    # live step only: log pi = log N(0; 0, 1) - log(1 * (1 - 0)) = -0.918939, advantage 1
    assert float(t.policy) == pytest.approx(0.918939, abs=1e-5)
    assert float(t.value) == pytest.approx(0.5, abs=1e-6)
    # entropy estimate at u = 0 with mean 0: H(N(0,1)) + log|da/du|(0) = 1.418939 + 0
    assert float(t.entropy) == pytest.approx(0.5 * math.log(2 * math.pi * math.e), abs=1e-5)
