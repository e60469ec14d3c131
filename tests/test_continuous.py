"""Continuous actions end to end: gymnax Box envs and the continuous-torque N-Reacher."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.policy import TanhGaussian
from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.registry import make_env
from cmrl_jax.train import make_trainer


@pytest.mark.parametrize("arch, method", [("sequential", "ERL2"),
                                          ("central_lstm", "Max-Until-Exploit"),
                                          ("meta_lstm", "StDev-Until-Exploit")])
def test_point_robot_trains(arch, method):
    """gymnax's PointRobot (Box actions) trains with every architecture; actions in bounds."""
    cfg = TrainConfig(env="gymnax:PointRobot-misc", env_kwargs=(), architecture=arch, hidden=8,
                      k_explore=2, horizon=3, batch_size=4, num_updates=2, chunk_updates=2,
                      eval_batches=1, eval_batch_size=8, runs=(RunSpec(method, 0, 1e-3, 0.1),))
    trainer = make_trainer(cfg)
    assert isinstance(trainer.runner.policy, TanhGaussian)
    state, hp = trainer.init()
    state, metrics = trainer.train_chunk(state, hp)
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    assert np.all(np.isfinite(np.asarray(metrics.divergence)))
    if arch != "sequential":
        assert float(np.asarray(metrics.divergence).mean()) > 0
    params = jax.tree.map(lambda a: a[0], state.params)
    ep = trainer.runner.run(params, jax.random.PRNGKey(0))
    assert ep.explore.action.shape[-1] == 2 and ep.explore.action.dtype == jnp.float32
    assert ep.explore.logits.shape[-1] == 4  # mean and log std per torque
    a = trainer.runner.policy.env_action(ep.explore.action)
    assert np.all(np.abs(np.asarray(a)) <= 0.1 + 1e-6)  # PointRobot's max_force


def test_continuous_reacher_torques():
    """The continuous Reacher applies the torques themselves (clipped); the discrete one is
    unchanged: action 8 = torques (1, 1) equals the continuous action (1, 1)."""
    env_c, params = make_env("reacher_continuous", num_goals=2)
    env_d, _ = make_env("reacher", num_goals=2)
    assert env_c.action_space(params).shape == (2,)
    np.testing.assert_allclose(env_c.torques(jnp.array([2.0, -0.3])), [1.0, -0.3])
    np.testing.assert_allclose(env_d.torques(jnp.array(8)), [1.0, 1.0])
    _, state = env_c.reset_env(jax.random.PRNGKey(0), params)
    step = jax.jit(env_c.step_env)
    oc, sc, *_ = step(jax.random.PRNGKey(1), state, jnp.array([1.0, 1.0]), params)
    od, sd, *_ = jax.jit(env_d.step_env)(jax.random.PRNGKey(1), state, jnp.array(8), params)
    np.testing.assert_allclose(oc, od, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(oc)))
