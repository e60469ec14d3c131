"""Meta-episode engine: shared task, masking, boundaries, hand-off, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.engine import MetaEpisodeRunner
from cmrl_jax.agent.inputs import encode_input
from cmrl_jax.agent.networks import make_agent
from cmrl_jax.agent.policy import Categorical
from cmrl_jax_envs.monty_hall import MontyHall
from tests.probe_envs import Corridor, FreshCorridor

ARCHS = ("sequential", "central_lstm", "meta_lstm")


def make_runner(env, params, arch, k=3, horizon=1, hidden=8):
    """Runner with a small agent."""
    n_act = env.action_space(params).n
    agent = make_agent(arch, hidden, n_act, k)
    return MetaEpisodeRunner(
        env, params, agent, concurrent=arch != "sequential", k_explore=k, horizon=horizon
    )


@pytest.fixture(scope="module", params=ARCHS)
def corridor(request):
    """A Corridor runner (length 1: any forward step terminates), horizon 4, per architecture."""
    env = Corridor()
    params = env.default_params.replace(length=1)
    runner = make_runner(env, params, request.param, k=3, horizon=4)
    agent_params = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    episodes = jax.jit(jax.vmap(lambda k: runner.run(agent_params, k)))(
        jax.random.split(jax.random.PRNGKey(1), 64)
    )
    return request.param, runner, agent_params, jax.tree.map(np.asarray, episodes)


def test_agent_input_layout():
    """[obs, one-hot previous action (-1 -> zeros), scaled reward, done]."""
    x = encode_input(
        jnp.array([[5.0], [6.0]]), Categorical(3).features(jnp.array([2, -1])),
        jnp.array([0.1, -1.0]), jnp.array([1.0, 0.0]), 10.0,
    )
    np.testing.assert_allclose(
        x, [[5.0, 0, 0, 1, 1.0, 1.0], [6.0, 0, 0, 0, -10.0, 0.0]], rtol=1e-6
    )


def test_shapes(corridor):
    """Explore [T_e, R, ...] and exploit [H, 1, ...] for every agent."""
    arch, runner, _, ep = corridor
    b, k, h = 64, 3, 4
    t_e, r = (k * h, 1) if arch == "sequential" else (h, k)
    assert ep.explore.logits.shape == (b, t_e, r, 2)
    assert ep.explore.x.shape == (b, t_e, r, runner.input_dim)
    for leaf in (ep.explore.value, ep.explore.action, ep.explore.reward, ep.explore.live):
        assert leaf.shape == (b, t_e, r)
    assert ep.exploit.logits.shape == (b, h, 1, 2)
    assert ep.exploit.action.shape == (b, h, 1)
    assert np.all(np.isfinite(ep.explore.logits)) and np.all(np.isfinite(ep.exploit.value))


def test_same_task_and_start_everywhere(corridor):
    """Every sub-episode and rollout starts at the same state of the same task."""
    arch, runner, _, ep = corridor
    obs_dim = 2
    task = ep.exploit.x[:, 0, 0, 1]  # exploit's first observation: [pos, task]
    assert np.unique(task).size > 32  # tasks differ between meta-episodes
    starts = ep.explore.x[:, :: runner.horizon] if arch == "sequential" else ep.explore.x[:, :1]
    expected = np.broadcast_to(task[:, None, None], starts.shape[:-1])
    np.testing.assert_array_equal(starts[..., 1], expected)
    np.testing.assert_array_equal(starts[..., 0], 0.0)  # position 0
    np.testing.assert_array_equal(ep.exploit.x[:, 0, 0, :obs_dim][:, 0], 0.0)


def test_run_with_task_returns_the_task_the_agent_saw(corridor):
    """``run_with_task``: the same meta-episode as ``run``, and its task's obs0 is every start."""
    _, runner, agent_params, ep = corridor
    key = jax.random.split(jax.random.PRNGKey(1), 64)[0]
    ep1, (obs0, _) = jax.jit(lambda k: runner.run_with_task(agent_params, k))(key)
    np.testing.assert_array_equal(np.asarray(ep1.explore.x), ep.explore.x[0])
    np.testing.assert_array_equal(np.asarray(ep1.exploit.x)[0, 0, :2], np.asarray(obs0))


def test_absorbing_masking(corridor):
    """After a sub-episode ends its steps are masked: no reward, no goal, no new input."""
    arch, runner, _, ep = corridor
    h = runner.horizon
    live = ep.explore.live
    if arch == "sequential":  # [B, K*H, 1] -> per sub-episode [B, K, H]
        live = live.reshape(live.shape[0], -1, h)
        reward = ep.explore.reward.reshape(live.shape)
        goal = ep.explore.goal.reshape(live.shape)
        x = ep.explore.x.reshape(live.shape + (-1,))
    else:  # [B, H, K] -> [B, K, H]
        live = live.transpose(0, 2, 1)
        reward = ep.explore.reward.transpose(0, 2, 1)
        goal = ep.explore.goal.transpose(0, 2, 1)
        x = ep.explore.x.transpose(0, 2, 1, 3)
    assert np.all(live[..., 0])  # the first decision is always live
    # once dead, dead for the rest of the sub-episode
    assert np.all(np.diff(live.astype(int), axis=-1) <= 0)
    assert np.any(~live)  # some sub-episodes did end early
    assert np.all(reward[~live] == 0) and np.all(goal[~live] == -1)
    # length-1 corridor: the goal is entered exactly by a forward step, at most once
    assert np.all((goal >= 0).sum(-1) <= 1)
    # masked steps hold the frozen input right after termination (done flag set)
    for b, kk, t in zip(*np.nonzero(~live), strict=True):
        assert x[b, kk, t, -1] == 1.0
        if not live[b, kk, t - 1]:
            np.testing.assert_array_equal(x[b, kk, t], x[b, kk, t - 1])


def test_sequential_boundary_inputs():
    """RL2: sub-episode k+1's first input carries sub-episode k's last action, reward, done=1."""
    env = MontyHall(4)
    runner = make_runner(env, env.default_params, "sequential", k=4, horizon=1)
    p = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    ep = jax.tree.map(np.asarray, runner.run(p, jax.random.PRNGKey(3)))
    x, a, r = ep.explore.x[:, 0], ep.explore.action[:, 0], ep.explore.reward[:, 0]
    n = env.num_actions
    np.testing.assert_array_equal(x[0, 1 : 1 + n + 2], 0.0)  # nothing before the first step
    for k in range(1, 4):
        np.testing.assert_array_equal(x[k, 1 : 1 + n], np.eye(n)[a[k - 1]])
        assert x[k, 1 + n] == pytest.approx(r[k - 1])
        assert x[k, 2 + n] == 1.0
    # the exploit sub-episode starts with zeroed previous-* inputs
    np.testing.assert_array_equal(ep.exploit.x[0, 0, 1:], 0.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_step_keeps_memory(arch):
    """explore_step with live = False returns the recurrent state unchanged."""
    env = MontyHall(3)
    runner = make_runner(env, env.default_params, arch, k=3)
    ag = runner.agent
    p = ag.init(jax.random.PRNGKey(0), runner.input_dim)
    r = ag.num_rollouts
    x = jax.random.normal(jax.random.PRNGKey(1), (r, runner.input_dim))
    c0 = ag.explore_carry(p)
    c1, _, _ = ag.explore_step(p, c0, x, jnp.zeros((r,), bool))
    jax.tree.map(np.testing.assert_array_equal, c0, c1)
    c2, _, _ = ag.explore_step(p, c0, x, jnp.ones((r,), bool))
    pairs = zip(jax.tree.leaves(c0), jax.tree.leaves(c2), strict=True)
    assert any(not np.array_equal(a, b) for a, b in pairs)
    if arch == "meta_lstm":  # only the live rollout's own memory moves
        live = jnp.array([True, False, False])
        (roll, _), _, _ = ag.explore_step(p, c0, x, live)
        np.testing.assert_array_equal(roll[1][1:], c0[0][1][1:])
        assert not np.array_equal(roll[1][0], c0[0][1][0])


@pytest.mark.parametrize("arch", ARCHS)
def test_exploit_sees_every_final_explore_reward(arch):
    """Perturbing any rollout's final explore reward changes the exploit policy."""
    env = MontyHall(3)
    runner = make_runner(env, env.default_params, arch, k=3)
    p = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    task = runner.task(jax.random.PRNGKey(1))
    sp = runner.step_params(p)
    _, final = runner.explore(sp, task, jax.random.PRNGKey(2))

    def exploit_logits(fin):
        memory = runner.handoff(sp, fin, runner.agent_input(fin))
        return runner.exploit(sp, task, memory, jax.random.PRNGKey(3)).logits

    base = exploit_logits(final)
    for k in range(final.prev_reward.shape[0]):
        bumped = final.replace(prev_reward=final.prev_reward.at[k].add(0.5))
        assert np.max(np.abs(exploit_logits(bumped) - base)) > 1e-6, f"rollout {k} unseen"


class _FirstStepReward(Corridor):
    """Corridor whose goal pays ``params.length``-independent ``first`` when entered on the
    first step (time 1) and 1 later: changing ``first`` flips only the results of the
    rollouts that finished at step 0."""

    def step_env(self, key, state, action, params):
        """As Corridor, with the first-step reward taken from ``params.max_steps_in_episode``."""
        obs, state, reward, done, info = super().step_env(key, state, action, params)
        first = params.max_steps_in_episode.astype(jnp.float32) - 100.0  # 100 -> 0, 101 -> 1
        reward = jnp.where(done & (state.time == 1), first, reward)
        return obs, state, reward, done, info


@pytest.mark.parametrize("arch", ("central_lstm", "meta_lstm"))
def test_finished_rollouts_talk(arch):
    """Perturbing a finished rollout's final reward changes the still-live rollouts' later
    policies (docs/design.md: terminal results reach the shared memory during the explore phase);
    the absorb step itself is masked (no reward, no loss)."""
    env = _FirstStepReward()
    base = env.default_params.replace(length=1, max_steps_in_episode=jnp.array(100))
    runner = make_runner(env, base, arch, k=3, horizon=4)
    p = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    keys = jax.random.split(jax.random.PRNGKey(5), 256)

    def batch(first):
        run = lambda k: runner.run(p, k)
        runner.env_params = base.replace(max_steps_in_episode=jnp.array(first))
        return jax.tree.map(np.asarray, jax.vmap(run)(keys))

    ep0, ep1 = batch(100), batch(101)  # first-step goal pays 0 vs 1
    live0, live1 = ep0.explore.live, ep1.explore.live  # [B, H, K]
    finished_first = ~live0[:, 1]  # [B, K] ended at step 0 (same actions at step 0)
    np.testing.assert_array_equal(finished_first, ~live1[:, 1])
    some = finished_first.any(-1) & (~finished_first).any(-1)  # one ended, another explores
    assert some.sum() > 10
    # the absorb step (step 1 of a rollout that ended at step 0) adds nothing to the loss
    assert not live0[:, 1][finished_first].any()
    assert np.all(ep0.explore.reward[:, 1][finished_first] == 0)
    # the others' later logits (steps >= 2, live in both runs) move with the result
    later = live0[:, 2:] & live1[:, 2:] & some[:, None, None]
    assert later.sum() > 10
    diff = np.abs(ep0.explore.logits[:, 2:] - ep1.explore.logits[:, 2:]).max(-1)
    assert diff[later].max() > 1e-3
    # and nothing moves in meta-episodes where no rollout ended at step 0
    none = ~finished_first.any(-1)
    np.testing.assert_allclose(ep0.explore.logits[none], ep1.explore.logits[none], atol=0)


def test_rerun_reproduces_explore_logits(corridor):
    """Re-running the explore network on a meta-episode's own inputs (the divergence loss's
    identity case) reproduces its live logits, absorb steps included in the memory."""
    _, runner, agent_params, ep = corridor
    rerun = jax.jit(jax.vmap(lambda x, live: runner.rerun_explore(agent_params, x, live)))
    logits = np.asarray(rerun(ep.explore.x, ep.explore.live))
    live = ep.explore.live
    np.testing.assert_allclose(logits[live], ep.explore.logits[live], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_constant_start_computed_once_same_meta_episodes(arch):
    """Monty-Hall's first observation does not depend on the task, so the engine computes the
    first decision outside the step loop (unbatched under vmap); the meta-episodes are the same
    as with the plain loop, up to float rounding, action for action."""
    env = MontyHall(4)
    runner = make_runner(env, env.default_params, arch, k=4, horizon=1)
    assert runner.constant_start
    assert not make_runner(Corridor(), Corridor().default_params, arch).constant_start
    p = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    keys = jax.random.split(jax.random.PRNGKey(2), 32)
    run = lambda: jax.tree.map(np.asarray, jax.vmap(lambda k: runner.run(p, k))(keys))
    peeled = run()
    runner.constant_start = False
    plain = run()
    for a, b in zip(jax.tree.leaves(peeled), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module", params=ARCHS)
def fresh_corridor(request):
    """Meta-episodes of a FreshCorridor (length 3, horizon 4) under both start protocols."""
    env = FreshCorridor()
    params = env.default_params.replace(length=3)
    agent = make_agent(request.param, 8, 2, 3)
    out = {}
    for start in ("same", "fresh"):
        runner = MetaEpisodeRunner(env, params, agent, concurrent=request.param != "sequential",
                                   k_explore=3, horizon=4, subepisode_start=start)
        agent_params = agent.init(jax.random.PRNGKey(0), runner.input_dim)
        out[start] = jax.tree.map(np.asarray, jax.jit(jax.vmap(
            lambda k, r=runner, p=agent_params: r.run(p, k)))(
            jax.random.split(jax.random.PRNGKey(1), 32)))
    return request.param, out


def _first_inputs(arch, ep):
    """The first decision's input of every sub-episode / rollout: [B, S, D] (S: K explore
    starts, then the exploit start)."""
    if arch == "sequential":
        explore = ep.explore.x[:, ::4, 0]  # every H = 4 steps one sub-episode begins
    else:
        explore = ep.explore.x[:, 0]  # the K rollouts' first step
    return np.concatenate([explore, ep.exploit.x[:, :1, 0]], axis=1)


def test_fresh_starts_keep_the_task_and_draw_new_states(fresh_corridor):
    """"fresh": every sub-episode and rollout of a meta-episode sees the same task (obs[1])
    from its own start (obs[0] in {0, 1}, both seen); "same": all from the reset's (0)."""
    arch, out = fresh_corridor
    same, fresh = _first_inputs(arch, out["same"]), _first_inputs(arch, out["fresh"])
    for first in (same, fresh):
        np.testing.assert_array_equal(first[..., 1], first[:, :1, 1].repeat(first.shape[1], 1))
    assert np.all(same[..., 0] == 0)
    starts = fresh[..., 0]
    assert set(np.unique(starts)) == {0.0, 1.0}
    assert np.any(starts.min(axis=1) != starts.max(axis=1))  # starts differ within episodes


def test_fresh_start_needs_reset_state():
    """An env without reset_state cannot run the fresh protocol: one clear error."""
    env = Corridor()
    with pytest.raises(ValueError, match="needs an env with reset_state; Corridor"):
        MetaEpisodeRunner(env, env.default_params, make_agent("sequential", 8, 2, 3),
                          concurrent=False, k_explore=3, horizon=2, subepisode_start="fresh")


def test_count_unique_goals_by_hand():
    """Distinct non-negative goal ids (-1: none), any shape; a random [T, R] against a set."""
    from cmrl_jax.agent.evaluate import count_unique_goals

    assert float(count_unique_goals(jnp.asarray([-1, 3, 3, 0, -1, 7, 0]))) == 3.0
    assert float(count_unique_goals(jnp.full((5,), -1))) == 0.0
    assert float(count_unique_goals(jnp.asarray([[2, 2], [2, -1]]))) == 1.0
    g = np.random.default_rng(0).integers(-1, 9, size=(40, 3))
    assert float(count_unique_goals(jnp.asarray(g))) == len({int(v) for v in g.ravel() if v >= 0})
