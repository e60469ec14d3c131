"""Rematerialised step scans (``TrainConfig.remat = "step"``): the same loss and gradients
as the plain path, for both learners, on an env whose sub-episodes end early."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.divergence import sample_derangement
from cmrl_jax.learners.a2c import meta_episode_loss
from cmrl_jax.learners.common import LossInputs
from cmrl_jax.learners.ppo.update import PPOTraced, collect, ppo_meta_episode_loss
from cmrl_jax.rewards import scheme_id
from cmrl_jax.train import make_runner

CFG = TrainConfig(env="color_choice", env_kwargs=(("num_goals", 3),), architecture="meta_lstm",
                  hidden=16, k_explore=3, horizon=15, batch_size=4,
                  runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.01),))


def _losses(cfg: TrainConfig, params, keys, perms):
    """Mean A2C and PPO losses of a batch under ``cfg``'s runner, as functions of params."""
    runner = make_runner(cfg)
    scheme, lam = jnp.int32(scheme_id("max")), jnp.float32(0.01)
    ent = jnp.float32(0.05)
    batch = jax.vmap(lambda k: collect(make_runner(CFG), CFG, params, k, scheme, 0.95))(keys)

    inputs = LossInputs(perms, scheme, lam, ent, ent, PPOTraced(0.2, 0.95, 0.0))

    def a2c(p):
        return jnp.mean(jax.vmap(lambda k: meta_episode_loss(
            runner, cfg, p, k, inputs)[0])(keys))

    def ppo(p):
        return jnp.mean(jax.vmap(lambda c: ppo_meta_episode_loss(
            runner, cfg, p, c, inputs)[0])(batch))

    return a2c, ppo, batch


@pytest.mark.slow  # four gradient programs of a 15-step Meta-LSTM: minutes on 2 cores
@pytest.mark.parametrize("learner", ["a2c", "ppo"])
def test_rematerialised_gradients_equal_the_plain_path(learner):
    runner = make_runner(CFG)
    params = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    perms = sample_derangement(jax.random.PRNGKey(2), 3)[None]
    out = []
    for remat in ("none", "step", "segments"):
        a2c, ppo, batch = _losses(dataclasses.replace(CFG, remat=remat), params, keys, perms)
        out.append(jax.jit(jax.value_and_grad(a2c if learner == "a2c" else ppo))(params))
    assert not bool(jnp.all(batch.episode.explore.live)), "no early end: the test is weak"
    (l0, g0), *others = out
    for l1, g1 in others:
        np.testing.assert_allclose(l1, l0, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_unknown_remat_is_refused():
    with pytest.raises(ConfigError, match="unknown remat 'sqrt'; known: none, step, segments"):
        dataclasses.replace(CFG, remat="sqrt")


def test_segment_lengths_are_the_divisors_nearest_the_square_root():
    from cmrl_jax.agent.engine import segment_length

    assert [segment_length(t) for t in (1, 4, 12, 15, 16, 60, 120, 13)] == [1, 2, 3, 3, 4, 6,
                                                                              10, 1]


def test_segments_scan_equals_the_plain_scan_and_its_gradient():
    """The segmented scan on a toy body: same outputs and gradients as lax.scan."""
    runner = make_runner(dataclasses.replace(CFG, remat="segments"))

    def body(c, x):
        c = jnp.tanh(c * x[0] + x[1])
        return c, c ** 2

    xs = (jnp.linspace(0.5, 1.5, 12), jnp.linspace(-1.0, 1.0, 12))

    def total(scan, c0):
        c, ys = scan(body, c0, xs)
        return c + jnp.sum(ys)

    plain = lambda b, c, x: jax.lax.scan(b, c, x)  # noqa: E731
    seg = lambda b, c, x: runner._scan(b, c, x, False)  # noqa: E731
    np.testing.assert_allclose(total(seg, 0.3), total(plain, 0.3), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda c: total(seg, c))(0.3),
                               jax.grad(lambda c: total(plain, c))(0.3), rtol=1e-6)
