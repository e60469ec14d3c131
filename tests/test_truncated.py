"""Truncated backpropagation (PPO's ``window`` option): the carried window-start memories
reproduce the run, the gradient stops at a window's start, the update's windows and its
refusals; docs/design.md, "Truncated backpropagation"."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.engine import MetaEpisodeRunner
from cmrl_jax.agent.networks import make_agent
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.learners.ppo.update import PPOMetrics
from cmrl_jax.train import make_trainer
from tests.probe_envs import Corridor

H, W, K = 6, 2, 3


def _runner(arch: str):
    env = Corridor()
    params = env.default_params.replace(length=3)
    agent = make_agent(arch, 8, 2, K, "gru")
    runner = MetaEpisodeRunner(env, params, agent, concurrent=arch != "sequential",
                               k_explore=K, horizon=H)
    return runner, agent.init(jax.random.PRNGKey(0), runner.input_dim)


def _windows(a, n):
    """[T, ...] -> the n windows' slices, in order."""
    return [a[i * W:(i + 1) * W] for i in range(n)]


@pytest.mark.parametrize("arch", ["sequential", "meta_lstm"])
def test_each_window_rerun_from_its_carried_memory_reproduces_the_run(arch):
    """Window by window, re-running the stored inputs from the memory the collection carried
    into the window gives the heads the run computed (explore and exploit, sub-episodes that
    end early, the hand-off), and each derangement's windows re-run from their own carried
    memories give ``rerun_explore``'s whole-phase logits; no gradient reaches a window's
    start memory."""
    runner, p = _runner(arch)
    perms = jnp.asarray([[1, 2, 0], [2, 0, 1]], jnp.int32)

    @jax.jit
    def check(p, key):
        ep = runner.run(p, key)
        starts = runner.window_starts(p, ep, W, perms)
        e, x = ep.explore, ep.exploit
        e_steps = runner.memory_steps(e.live)
        n_e, n_x = e.x.shape[0] // W, H // W
        pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
        e_heads = [runner.replay_window(p, True, pick(starts.explore, i), *sl)
                   for i, sl in enumerate(zip(_windows(e.x, n_e), _windows(e_steps, n_e),
                                              strict=True))]
        x_heads = [runner.replay_window(p, False, pick(starts.exploit, i), *sl)
                   for i, sl in enumerate(zip(_windows(x.x, n_x), _windows(x.live, n_x),
                                              strict=True))]
        cross = []
        if runner.concurrent:
            for j, perm in enumerate(perms):
                whole = runner.rerun_explore(p, e.x[:, perm], e.live[:, perm])
                parts = [runner.replay_window(p, True, jax.tree.map(
                    lambda a, i=i, j=j: a[j, i], starts.cross), xw[:, perm], sw[:, perm])[0]
                         for i, (xw, sw) in enumerate(zip(_windows(e.x, n_e),
                                                          _windows(e_steps, n_e),
                                                          strict=True))]
                cross.append((whole, jnp.concatenate(parts)))
        # the gradient of a window's heads with respect to its start memory is zero
        first = pick(starts.explore, 1)
        g = jax.grad(lambda m: jnp.sum(runner.replay_window(
            p, True, m, e.x[W:2 * W], e_steps[W:2 * W])[1]))(first)
        return ep, e_heads, x_heads, cross, g

    ep, e_heads, x_heads, cross, g = check(p, jax.random.PRNGKey(3))
    assert not bool(jnp.all(ep.explore.live)), "no sub-episode ended early: the test is weak"
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.concatenate([h[0] for h in e_heads]), ep.explore.logits,
                               **tol)
    np.testing.assert_allclose(jnp.concatenate([h[1] for h in e_heads]), ep.explore.value,
                               **tol)
    np.testing.assert_allclose(jnp.concatenate([h[0] for h in x_heads]), ep.exploit.logits,
                               **tol)
    np.testing.assert_allclose(jnp.concatenate([h[1] for h in x_heads]), ep.exploit.value,
                               **tol)
    assert len(cross) == (2 if arch == "meta_lstm" else 0)
    for whole, parts in cross:
        np.testing.assert_allclose(parts, whole, **tol)
    assert all(float(jnp.max(jnp.abs(leaf))) == 0.0 for leaf in jax.tree.leaves(g))


TINY = TrainConfig(
    env_kwargs=(("num_doors", 3),), k_explore=3, architecture="meta_lstm", hidden=8,
    batch_size=8, num_updates=2, chunk_updates=2, eval_batches=1, eval_batch_size=8,
    learner="ppo", cell="gru",
    learner_options=(("epochs", 2), ("minibatches", 2), ("window", 1)),
    runs=(RunSpec("Max-Until-Exploit", 0, 1e-2, 0.5),),
)


def test_a_truncated_update_walks_its_windows():
    """A chunk of the truncated update on a Color-Choice of H = 4 in windows of 2 (two
    explore and two exploit windows, K = 3 concurrent rollouts): finite metrics of both
    phases, parameters that move, and the divergence term of the explore windows."""
    cfg = dataclasses.replace(TINY, env="color_choice", env_kwargs=(), horizon=4,
                              learner_options=(("epochs", 1), ("minibatches", 2),
                                               ("window", 2)))
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    before = jax.tree.map(np.asarray, state.params)  # the chunk donates its state
    new, metrics = trainer.train_chunk(state, hp)
    assert isinstance(metrics, PPOMetrics) and np.all(np.asarray(metrics.finite))
    for name in ("loss", "entropy_explore", "entropy_exploit", "divergence", "grad_norm"):
        assert np.all(np.isfinite(np.asarray(getattr(metrics, name)))), name
    assert float(np.min(np.asarray(metrics.entropy_explore))) > 0
    assert float(np.min(np.asarray(metrics.divergence))) > 0
    assert any(float(jnp.max(jnp.abs(a - b))) > 0 for a, b in zip(
        jax.tree.leaves(before), jax.tree.leaves(new.params), strict=True))


@pytest.mark.parametrize("options, message", [
    ((("window", 2),), r"learner option window \(2\) must divide the horizon H \(1\)"),
    ((("window", -1),), "learner option window must be an integer >= 0, got -1"),
    ((("window", 1.5),), "learner option window must be an integer >= 0, got 1.5"),
])
def test_bad_windows_are_refused_on_construction(options, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY, learner_options=options)
    with pytest.raises(ConfigError, match="learner a2c has no option 'window'"):
        dataclasses.replace(TINY, learner="a2c", learner_options=(("window", 1),))


UPDATES = 1000
# Measured with this test's config on 2 CPU cores (docs/results.md, "Truncated
# backpropagation"): success 0.60 / 0.99 (the whole-meta-episode update: 0.61 / 0.54);
# a blind exploit pick gets 0.2 at best.
MIN_SUCCESS = 0.4


@pytest.mark.slow
def test_ppo_with_truncated_backpropagation_learns_five_door_monty_hall():
    """CMRL (Central-LSTM) with PPO in windows of 1 (the gradient cut at the hand-off:
    the exploit losses never reach the explore memory) on 5-Monty-Hall, 1000 updates:
    both seeds well above the 1/5 of a blind exploit pick."""
    from tests.test_ppo import TINY as PPO_TINY

    cfg = dataclasses.replace(
        PPO_TINY, batch_size=64, num_updates=UPDATES, chunk_updates=UPDATES, eval_batches=2,
        eval_batch_size=128, learner_options=(("window", 1),),
        runs=tuple(RunSpec("Max-Until-Exploit", s, 1e-3, 0.5) for s in range(2)))
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    state, _ = trainer.train_chunk(state, hp)
    success = np.asarray(trainer.evaluate(state, hp).success)
    assert success.min() >= MIN_SUCCESS, success
