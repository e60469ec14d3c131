"""N-Monty-Hall (envs/monty_hall.py) and the env registry (envs/registry.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from cmrl_jax.registry import make_env, registered_envs
from cmrl_jax_envs.monty_hall import MontyHall

N = 10


@pytest.fixture(scope="module")
def env():
    return MontyHall(num_doors=N)


def _reset(env, key):
    return env.reset_env(key, env.default_params)


def test_reset_same_key_same_gold(env):
    key = jax.random.PRNGKey(7)
    obs1, s1 = _reset(env, key)
    obs2, s2 = _reset(env, key)
    assert int(s1.gold) == int(s2.gold)
    assert 0 <= int(s1.gold) < N
    assert int(s1.time) == 0
    assert_allclose(np.asarray(obs1), [1.0])
    assert_allclose(np.asarray(obs2), [1.0])


def test_reset_different_keys_vary_gold(env):
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    _, states = jax.vmap(lambda k: _reset(env, k))(keys)
    gold = np.asarray(states.gold)
    assert gold.shape == (64,)
    assert np.all((gold >= 0) & (gold < N))
    # 64 uniform draws over 10 doors: practically always >= 6 distinct doors.
    assert len(np.unique(gold)) >= 6


def test_step_noop(env):
    params = env.default_params
    _, state = _reset(env, jax.random.PRNGKey(1))
    obs, new_state, reward, done, info = env.step_env(
        jax.random.PRNGKey(2), state, jnp.int32(0), params
    )
    assert float(reward) == 0.0
    assert int(info["goal"]) == -1
    assert bool(done) is True
    assert int(new_state.time) == 1
    assert int(new_state.gold) == int(state.gold)
    assert bool(env.is_terminated(new_state, params))
    assert_allclose(np.asarray(obs), [1.0])


def test_step_gold_door(env):
    params = env.default_params
    _, state = _reset(env, jax.random.PRNGKey(3))
    gold = int(state.gold)
    _, _, reward, done, info = env.step_env(
        jax.random.PRNGKey(4), state, jnp.int32(gold + 1), params
    )
    assert_allclose(float(reward), 0.1, rtol=1e-6)
    assert int(info["goal"]) == gold
    assert bool(done)


def test_step_bomb_door(env):
    params = env.default_params
    _, state = _reset(env, jax.random.PRNGKey(3))
    gold = int(state.gold)
    other = (gold + 1) % N  # a door that is not the gold one
    _, _, reward, done, info = env.step_env(
        jax.random.PRNGKey(4), state, jnp.int32(other + 1), params
    )
    assert_allclose(float(reward), -1.0)
    assert int(info["goal"]) == other
    assert bool(done)


def test_jit_vmap_step(env):
    params = env.default_params
    n = 64
    keys = jax.random.split(jax.random.PRNGKey(11), n)
    actions = jnp.arange(n, dtype=jnp.int32) % (N + 1)

    @jax.jit
    def run(keys, actions):
        obs0, states = jax.vmap(env.reset_env, in_axes=(0, None))(keys, params)
        out = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(keys, states, actions, params)
        return obs0, states, out

    obs0, states, (obs, new_states, reward, done, info) = run(keys, actions)
    assert obs0.shape == (n, 1) and obs0.dtype == jnp.float32
    assert obs.shape == (n, 1) and obs.dtype == jnp.float32
    assert reward.shape == (n,) and reward.dtype == jnp.float32
    assert done.shape == (n,) and done.dtype == jnp.bool_
    assert info["goal"].shape == (n,) and info["goal"].dtype == jnp.int32
    assert states.gold.dtype == jnp.int32
    assert not np.any(np.isnan(np.asarray(obs)))
    assert not np.any(np.isnan(np.asarray(reward)))
    assert np.all(np.asarray(done))

    a = np.asarray(actions)
    gold = np.asarray(states.gold)
    expected_reward = np.where(a == 0, 0.0, np.where(a - 1 == gold, 0.1, -1.0))
    assert_allclose(np.asarray(reward), expected_reward, rtol=1e-6)
    assert np.array_equal(np.asarray(info["goal"]), np.where(a == 0, -1, a - 1))
    assert np.array_equal(np.asarray(new_states.time), np.ones(n))


def test_spaces(env):
    params = env.default_params
    assert env.action_space(params).n == N + 1
    assert env.num_actions == N + 1
    assert env.num_goals == N
    obs, _ = _reset(env, jax.random.PRNGKey(0))
    assert bool(env.observation_space(params).contains(obs)) is True
    assert env.observation_space(params).shape == obs.shape
    space = env.action_space(params)
    assert bool(space.contains(jnp.int32(N))) is True
    assert bool(space.contains(jnp.int32(N + 1))) is False


def test_gymnax_step_autoreset(env):
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(21), params)
    gold = int(state.gold)
    out = env.step(jax.random.PRNGKey(22), state, jnp.int32(gold + 1), params)
    obs2, state2, reward, done = out[0], out[1], out[2], out[3]
    assert_allclose(float(reward), 0.1, rtol=1e-6)
    assert bool(done)
    # the sub-episode ended, so gymnax auto-reset returns a fresh state
    assert int(state2.time) == 0
    assert 0 <= int(state2.gold) < N
    assert_allclose(np.asarray(obs2), [1.0])
    # the bomb path through gymnax's wrapper too
    out = env.step(jax.random.PRNGKey(23), state, jnp.int32((gold + 1) % N + 1), params)
    assert_allclose(float(out[2]), -1.0)


def test_invalid_num_doors():
    with pytest.raises(ValueError):
        MontyHall(num_doors=0)


def test_registry():
    assert "monty_hall" in registered_envs()
    env, params = make_env("monty_hall", num_doors=5)
    assert isinstance(env, MontyHall)
    assert env.action_space(params).n == 6
    _, state = env.reset_env(jax.random.PRNGKey(0), params)
    assert 0 <= int(state.gold) < 5
    default_env, _ = make_env("monty_hall")
    assert default_env.action_space().n == 11
    with pytest.raises(KeyError):
        make_env("nope")
