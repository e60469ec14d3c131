"""The meta-episode loss: returns through the hand-off, divergence at initialisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.engine import MetaEpisode, Transition
from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.learners.a2c import meta_episode_loss, meta_episode_returns
from cmrl_jax.learners.common import LossInputs, training_rewards
from cmrl_jax.rewards import scheme_id
from cmrl_jax.train import make_runner


def _transition(reward, live):
    """A Transition with only rewards and live flags filled in."""
    reward = jnp.asarray(reward, jnp.float32)
    z = jnp.zeros(reward.shape)
    return Transition(z[..., None], z[..., None], z, z.astype(jnp.int32), reward,
                      jnp.asarray(live, bool), z.astype(jnp.int32) - 1)


def test_explore_returns_include_discounted_exploit_return():
    """CMRL, K = 3, H = 1, Max-Until-Exploit: every rollout's return = max + gamma * exploit."""
    ep = MetaEpisode(
        explore=_transition([[0.1, -1.0, 0.0]], [[True, True, True]]),  # [H=1, K=3]
        exploit=_transition([[0.1]], [[True]]),  # [H=1, 1]
    )
    r = training_rewards(ep, jnp.int32(scheme_id("max")), 3, concurrent=True)
    np.testing.assert_allclose(r, [[0.1, 0.1, 0.1]], rtol=1e-6)
    g_e, g_x = meta_episode_returns(ep, r, gamma=0.5)
    np.testing.assert_allclose(g_x, [[0.1]], rtol=1e-6)
    np.testing.assert_allclose(g_e, [[0.1 + 0.5 * 0.1] * 3], rtol=1e-6)


def test_sequential_returns_chain_through_sub_episodes():
    """RL2, K = 2 sub-episodes, H = 2 (second step of the first one masked), Separate rewards.

    flat explore rewards [1, 0(masked), -1, 2], exploit [3, 0], gamma 0.5:
    exploit G = [3, 0]; explore G_3 = 2 + 0.5*3 = 3.5, G_2 = -1 + 0.5*3.5 = 0.75,
    G_1 = G_2 (masked) = 0.75, G_0 = 1 + 0.5*0.75 = 1.375.
    """
    ep = MetaEpisode(
        explore=_transition([[1.0], [0.0], [-1.0], [2.0]], [[True], [False], [True], [True]]),
        exploit=_transition([[3.0], [0.0]], [[True], [True]]),
    )
    r = training_rewards(ep, jnp.int32(scheme_id("separate")), 2, concurrent=False)
    g_e, g_x = meta_episode_returns(ep, r, gamma=0.5)
    np.testing.assert_allclose(g_x[:, 0], [3.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(g_e[:, 0], [1.375, 0.75, 0.75, 3.5], rtol=1e-6)
    r_zero = training_rewards(ep, jnp.int32(scheme_id("zero")), 2, concurrent=False)
    g_e, _ = meta_episode_returns(ep, r_zero, gamma=0.5)  # ERL2: only the exploit return
    np.testing.assert_allclose(g_e[:, 0], [0.375, 0.75, 0.75, 1.5], rtol=1e-6)


@pytest.mark.parametrize("arch", ["central_lstm", "meta_lstm"])
@pytest.mark.parametrize("divergence", ["js", "skl"])
def test_divergence_positive_with_gradient_at_init(arch, divergence):
    """The symmetry between rollouts is broken at initialisation: L_D > 0, grad != 0."""
    cfg = TrainConfig(
        env_kwargs=(("num_doors", 5),), k_explore=5, architecture=arch, hidden=8,
        divergence=divergence, runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1.0),),
    )
    runner = make_runner(cfg)
    params = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    perms = jnp.array([[1, 2, 3, 4, 0]], jnp.int32)

    def l_div(p):
        loss0, info = meta_episode_loss(runner, cfg, p, jax.random.PRNGKey(1), LossInputs(
            perms, jnp.int32(3), jnp.float32(0.0), jnp.float32(0.01), jnp.float32(0.1)))
        return info.divergence

    value, grad = jax.value_and_grad(l_div)(params)
    assert float(value) > 1e-4
    assert float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))) > 1e-6


def _three_doors():
    """3-Monty-Hall, K = 3, Central-LSTM-8 at initialisation: (cfg, runner, params, a
    derangement [1, 3], a meta-episode key)."""
    cfg = TrainConfig(env_kwargs=(("num_doors", 3),), k_explore=3, hidden=8,
                      runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1.0),))
    runner = make_runner(cfg)
    params = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    return cfg, runner, params, jnp.array([[2, 0, 1]], jnp.int32), jax.random.PRNGKey(1)


def test_lambda_div_enters_the_loss():
    """loss = A2C - lambda_div * L_D."""
    cfg, runner, params, perms, key = _three_doors()
    ent = (jnp.float32(0.01), jnp.float32(0.1))
    l0, info = meta_episode_loss(runner, cfg, params, key,
                                 LossInputs(perms, jnp.int32(3), jnp.float32(0.0), *ent))
    l2, _ = meta_episode_loss(runner, cfg, params, key,
                              LossInputs(perms, jnp.int32(3), jnp.float32(2.0), *ent))
    np.testing.assert_allclose(l0, info.a2c, rtol=1e-6)
    np.testing.assert_allclose(l2, info.a2c - 2.0 * info.divergence, rtol=1e-5)


def test_floored_entropy_counts_each_decision_up_to_the_floor():
    """sum mask * min(H, floor): H = [0.5, 2.0, 1.0], live [1, 1, 0], floor 1 -> 0.5 + 1.0;
    its gradient is 1 where H is under the floor on a live step, else 0."""
    from cmrl_jax.learners.common import floored_entropy

    h = jnp.array([0.5, 2.0, 1.0])
    live = jnp.array([True, True, False])
    value, grad = jax.value_and_grad(floored_entropy)(h, live, jnp.float32(1.0))
    np.testing.assert_allclose(value, 1.5, rtol=1e-6)
    np.testing.assert_allclose(grad, [1.0, 0.0, 0.0])


def test_an_exploit_floor_only_changes_the_bonus_under_it():
    """Monty-Hall (3 doors, 4 actions): at initialisation each exploit decision's entropy is
    near ln 4 = 1.386. A floor above it leaves the loss as it was; a floor of 0.5 under it
    replaces the exploit bonus's sum by 0.5 per live exploit decision (H = 1 here):
    loss(floor) - loss = coef * (H_sum - 0.5) / slots, slots = K * H + H = 4."""
    cfg, runner, params, perms, key = _three_doors()
    coef = 0.3
    base = LossInputs(perms, jnp.int32(3), jnp.float32(0.0), jnp.float32(0.01),
                      jnp.float32(coef))
    loss, info = meta_episode_loss(runner, cfg, params, key, base)
    high, _ = meta_episode_loss(runner, cfg, params, key,
                                base._replace(entropy_floor=jnp.float32(10.0)))
    low, low_info = meta_episode_loss(runner, cfg, params, key,
                                      base._replace(entropy_floor=jnp.float32(0.5)))
    h = float(info.entropy_exploit)  # one live exploit decision: its entropy
    assert 1.2 < h < np.log(4) + 1e-6
    np.testing.assert_allclose(high, loss, rtol=1e-6)
    np.testing.assert_allclose(low - loss, coef * (h - 0.5) / 4, rtol=1e-4)
    np.testing.assert_allclose(low_info.entropy_exploit, h, rtol=1e-6)  # diagnostics: true H
