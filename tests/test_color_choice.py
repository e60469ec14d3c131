"""N-Color-Choice (envs/color_choice.py), its BFS oracle and its registry entry.

Conventions under test: (row, col) with row 0 at the top; orientation 0 = N,
1 = E, 2 = S, 3 = W; actions 0 = forward, 1 = turn left, 2 = turn right;
observation [c, i, j] = cell i + 1 ahead, column j = left / ray / right.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from cmrl_jax.registry import make_env, registered_envs
from cmrl_jax_envs.color_choice import ColorChoice, EnvParams, EnvState
from cmrl_jax_envs.color_choice_oracle import (
    UNREACHABLE,
    goal_distances,
    known_goal_success,
    meta_learner_success,
    oracle_success_rate,
)

N = 3
NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3
FWD, LEFT, RIGHT = 0, 1, 2


@pytest.fixture(scope="module")
def env():
    return ColorChoice(num_goals=N)


@pytest.fixture(scope="module")
def params(env):
    """A 7 x 7 grid of free cells (the dynamics tests' coordinates assume it)."""
    return EnvParams()


@pytest.fixture(scope="module")
def step(env):
    """step_env compiled once; params are an argument (static grid size in the treedef)."""
    fn = jax.jit(env.step_env)
    return lambda state, action, params: fn(jax.random.PRNGKey(0), state, jnp.int32(action), params)


@pytest.fixture(scope="module")
def obs_of(env):
    return jax.jit(env.get_obs)


def make_state(pos, direction, goals, positive=0) -> EnvState:
    """A hand-built state: agent (row, col) and orientation, goal cells [k, 2]."""
    return EnvState(
        agent_pos=jnp.asarray(pos, jnp.int32),
        agent_dir=jnp.int32(direction),
        goal_pos=jnp.asarray(goals, jnp.int32),
        positive=jnp.int32(positive),
        time=jnp.int32(0),
    )


CORNERS = ((0, 0), (0, 6), (6, 0))  # goals out of the way of a centred agent


# ------------------------------------------------------------------ dynamics
@pytest.mark.parametrize(
    "direction, expected", [(NORTH, (2, 3)), (EAST, (3, 4)), (SOUTH, (4, 3)), (WEST, (3, 2))]
)
def test_forward_each_orientation(step, params, direction, expected):
    state = make_state((3, 3), direction, CORNERS)
    _, new, reward, terminated, info = step(state, FWD, params)
    assert_array_equal(np.asarray(new.agent_pos), expected)
    assert int(new.agent_dir) == direction
    assert float(reward) == 0.0 and not bool(terminated) and int(info["goal"]) == -1
    assert int(new.time) == 1


def test_turns_cycle(step, params):
    for action, expected in (
        (LEFT, [WEST, SOUTH, EAST, NORTH]),
        (RIGHT, [EAST, SOUTH, WEST, NORTH]),
    ):
        state = make_state((3, 3), NORTH, CORNERS)
        for want in expected:
            _, state, reward, terminated, _ = step(state, action, params)
            assert int(state.agent_dir) == want
            assert_array_equal(np.asarray(state.agent_pos), (3, 3))
            assert float(reward) == 0.0 and not bool(terminated)
        assert int(state.time) == 4


@pytest.mark.parametrize(
    "pos, direction", [((0, 3), NORTH), ((3, 6), EAST), ((6, 3), SOUTH), ((3, 0), WEST)]
)
def test_bump_outside_wall(step, params, pos, direction):
    state = make_state(pos, direction, ((1, 1), (1, 5), (5, 5)))
    _, new, reward, terminated, info = step(state, FWD, params)
    assert_array_equal(np.asarray(new.agent_pos), pos)
    assert int(new.agent_dir) == direction and int(new.time) == 1
    assert float(reward) == 0.0 and not bool(terminated) and int(info["goal"]) == -1


@pytest.mark.parametrize("goal, direction", [(0, NORTH), (1, EAST), (2, SOUTH)])
def test_enter_each_goal(env, step, params, goal, direction):
    # goals N, E and S of the agent; goal 1 is the +1 one
    state = make_state((3, 3), direction, ((2, 3), (3, 4), (4, 3)), positive=1)
    _, new, reward, terminated, info = step(state, FWD, params)
    assert float(reward) == (1.0 if goal == 1 else -1.0)
    assert bool(terminated)
    assert int(info["goal"]) == goal and info["goal"].dtype == jnp.int32
    assert bool(env.is_terminated(new, params))
    assert not bool(env.is_terminated(state, params))


def test_turning_toward_a_goal_does_not_enter_it(step, params):
    state = make_state((3, 3), NORTH, ((3, 4), (0, 0), (6, 6)))
    _, _, reward, terminated, info = step(state, RIGHT, params)
    assert float(reward) == 0.0 and not bool(terminated) and int(info["goal"]) == -1


# --------------------------------------------------------------- observation
@pytest.mark.parametrize(
    "direction, goal_cell, row, col",
    [
        (EAST, (3, 4), 0, 1),  # directly ahead, distance 1
        (EAST, (3, 6), 2, 1),  # directly ahead, distance 3
        (EAST, (2, 4), 0, 0),  # facing east, north is the agent's left
        (EAST, (4, 5), 1, 2),  # facing east, south is the agent's right
        (NORTH, (2, 2), 0, 0),  # facing north, west is left
        (NORTH, (1, 4), 1, 2),  # facing north, east is right
        (SOUTH, (4, 4), 0, 0),  # facing south, east is left
        (SOUTH, (6, 2), 2, 2),  # facing south, west is right
        (WEST, (4, 1), 1, 0),  # facing west, south is left
        (WEST, (3, 0), 2, 1),  # facing west, ahead at distance 3
    ],
)
def test_observation_goal_offsets(obs_of, params, direction, goal_cell, row, col):
    behind = {NORTH: (4, 3), EAST: (3, 2), SOUTH: (2, 3), WEST: (3, 4)}[direction]
    # goal 0 at the tested cell, goals 1 and 2 on the cell right behind the agent
    state = make_state((3, 3), direction, (goal_cell, behind, behind))
    obs = np.asarray(obs_of(state, params))
    assert obs.shape == (N + 1, 15, 3) and obs.dtype == np.float32
    expected = np.zeros((15, 3), np.float32)
    expected[row, col] = 1.0
    assert_array_equal(obs[0], expected)
    assert obs[1:N].sum() == 0.0  # behind the agent: not visible


def test_observation_behind_and_beside_not_visible(obs_of, params):
    # facing east from (3, 3): (3, 2) behind, (2, 3) / (4, 3) beside the agent's own cell
    state = make_state((3, 3), EAST, ((3, 2), (2, 3), (4, 3)))
    assert np.asarray(obs_of(state, params))[:N].sum() == 0.0


def test_observation_wall_channel(obs_of, params):
    # facing east from (3, 3) on 7 x 7: columns 4, 5, 6 inside, then the wall
    obs = np.asarray(obs_of(make_state((3, 3), EAST, CORNERS), params))
    wall = np.zeros((15, 3), np.float32)
    wall[3:] = 1.0
    assert_array_equal(obs[N], wall)
    # from the corner (0, 0) facing east: left column is row -1 (wall) everywhere;
    # the ray (row 0) and right (row 1) cover columns 1..6, then the wall
    obs = np.asarray(obs_of(make_state((0, 0), EAST, ((5, 5), (5, 6), (6, 6))), params))
    wall = np.zeros((15, 3), np.float32)
    wall[:, 0] = 1.0
    wall[6:] = 1.0
    assert_array_equal(obs[N], wall)
    # goal (0, 6) on the ray at distance 6 is row 5
    obs = np.asarray(obs_of(make_state((0, 0), EAST, ((0, 6), (5, 6), (6, 6))), params))
    assert obs[0, 5, 1] == 1.0 and obs[0].sum() == 1.0


def test_observation_range_on_big_grid(obs_of):
    big = EnvParams(height=20, width=20)
    # facing north from (19, 10): row 4 is 15 ahead (visible, obs row 14), row 3 is 16 ahead
    state = make_state((19, 10), NORTH, ((4, 10), (3, 10), (19, 0)))
    obs = np.asarray(obs_of(state, big))
    expected = np.zeros((15, 3), np.float32)
    expected[14, 1] = 1.0
    assert_array_equal(obs[0], expected)
    assert obs[1].sum() == 0.0 and obs[2].sum() == 0.0
    assert obs[N].sum() == 0.0  # rows 18..4, columns 9..11: all inside the grid


# --------------------------------------------------------------------- reset
@pytest.fixture(scope="module")
def rollout(env, params):
    """256 tasks from reset, 15 random decisions each, compiled once."""
    n, horizon = 256, 15

    @jax.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        obs0, state0 = jax.vmap(env.reset_env, in_axes=(0, None))(
            jax.random.split(k_reset, n), params
        )
        actions = jax.random.randint(k_act, (horizon, n), 0, 3)

        def body(state, a):
            obs, state, reward, terminated, info = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                jax.random.split(k_act, n), state, a, params
            )
            return state, (obs, reward, terminated, info["goal"], state.time)

        _, out = jax.lax.scan(body, state0, actions)
        return obs0, state0, out

    return run(jax.random.PRNGKey(42))


def test_reset_same_key_same_task(env, params):
    key = jax.random.PRNGKey(5)
    reset = jax.jit(env.reset_env)
    obs1, s1 = reset(key, params)
    obs2, s2 = reset(key, params)
    for a, b in zip(jax.tree.leaves((obs1, s1)), jax.tree.leaves((obs2, s2)), strict=True):
        assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(s1.time) == 0


def test_reset_keys_vary_task(rollout):
    _, state0, _ = rollout
    goals = np.asarray(state0.goal_pos).reshape(256, -1)
    assert len({tuple(g) for g in goals}) > 200
    assert len(np.unique(np.asarray(state0.positive))) == N
    assert len(np.unique(np.asarray(state0.agent_dir))) == 4


def test_jit_vmap_rollout(env, params, rollout):
    obs0, state0, (obs, reward, terminated, goal, time) = rollout
    n = 256
    assert obs0.shape == (n, N + 1, 15, 3) and obs0.dtype == jnp.float32
    assert obs.shape == (15, n, N + 1, 15, 3) and obs.dtype == jnp.float32
    assert reward.shape == (15, n) and reward.dtype == jnp.float32
    assert terminated.shape == (15, n) and terminated.dtype == jnp.bool_
    assert goal.shape == (15, n) and goal.dtype == jnp.int32
    assert not np.any(np.isnan(np.asarray(obs))) and not np.any(np.isnan(np.asarray(reward)))
    assert bool(env.observation_space(params).contains(obs0[0]))
    assert_array_equal(np.asarray(time[-1]), np.full(n, 15))
    # rewards only when a goal is entered; +1 exactly for the positive goal
    goal, reward = np.asarray(goal), np.asarray(reward)
    assert_array_equal(np.asarray(terminated), goal >= 0)
    positive = np.asarray(state0.positive)[None]
    assert_array_equal(reward, np.where(goal < 0, 0.0, np.where(goal == positive, 1.0, -1.0)))
    # the task: N distinct goal cells on the grid, none on the start cell
    g, start = np.asarray(state0.goal_pos), np.asarray(state0.agent_pos)
    assert g.shape == (n, N, 2) and g.dtype == np.int32
    assert np.all((g >= 0) & (g < 7)) and np.all((start >= 0) & (start < 7))
    for i in range(n):
        cells = {tuple(c) for c in g[i]}
        assert len(cells) == N and tuple(start[i]) not in cells


# -------------------------------------------------------------------- oracle
def _grid(h, w, horizon=15):
    return EnvParams(height=h, width=w, max_steps_in_episode=horizon)


@pytest.mark.parametrize(
    "pos, direction, goal, want",
    [
        ((1, 0), EAST, (1, 2), 2),  # forward, enter
        ((1, 1), EAST, (1, 0), 3),  # behind: turn, turn, enter
        ((1, 1), NORTH, (1, 2), 2),  # on the right: turn right, enter
        ((1, 1), NORTH, (0, 1), 1),  # directly ahead
        ((0, 0), NORTH, (2, 2), 6),  # R, F, F, R, F, enter
    ],
)
def test_bfs_distances_3x3(pos, direction, goal, want):
    state = make_state(pos, direction, (goal,))
    assert_array_equal(goal_distances(state, _grid(3, 3)), [want])


def test_bfs_blocked_by_another_goal():
    # 1 x 3 corridor: goal 0 in the way of goal 1, which can never be entered
    state = make_state((0, 0), EAST, ((0, 1), (0, 2)), positive=1)
    assert_array_equal(goal_distances(state, _grid(1, 3)), [1, UNREACHABLE])
    assert not known_goal_success(state, _grid(1, 3))
    assert not meta_learner_success(state, _grid(1, 3), k_explore=5)
    # 3 x 3: goal 1 behind goal 0 is reached around it: L, F, R, F, F, R, enter = 7
    state = make_state((1, 0), EAST, ((1, 1), (1, 2)), positive=1)
    assert_array_equal(goal_distances(state, _grid(3, 3)), [1, 7])
    assert known_goal_success(state, _grid(3, 3, horizon=7))
    assert not known_goal_success(state, _grid(3, 3, horizon=6))


def test_meta_learner_needs_n_minus_one_explorations():
    # goals ahead (1), right (turn, enter: 2), left (2) of (1, 1) facing north on 3 x 3
    state = make_state((1, 1), NORTH, ((0, 1), (1, 2), (1, 0)), positive=2)
    params = _grid(3, 3)
    assert_array_equal(goal_distances(state, params), [1, 2, 2])
    assert known_goal_success(state, params)
    solved = [meta_learner_success(state, params, k) for k in range(4)]
    assert solved == [False, False, True, True]
    # with H = 1 only goal 0 is reachable and the positive goal 2 is not
    assert not known_goal_success(state, _grid(3, 3, horizon=1))
    assert not meta_learner_success(state, _grid(3, 3, horizon=1), 3)


def test_oracle_rates(env, params):
    rates = oracle_success_rate(env, params, n_tasks=200, k_explore=N, seed=0)
    assert 0.0 <= rates.meta_learner <= rates.known_goal <= 1.0
    assert rates.known_goal > 0.9  # a 7 x 7 grid is crossed in at most 15 decisions
    low = oracle_success_rate(env, params, n_tasks=200, k_explore=0, seed=0)
    assert low.known_goal == rates.known_goal
    assert 0.0 <= low.meta_learner <= rates.meta_learner


# ------------------------------------------------------- render and registry
def test_render(env, params):
    obs, state = env.reset_env(jax.random.PRNGKey(3), params)
    img = env.render(state, params)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert img.shape[0] > 9 and img.shape[1] > 9  # 7 x 7 grid plus its wall border
    view = env.render_observation(obs)
    assert view.ndim == 3 and view.shape[2] == 3 and view.dtype == np.uint8
    big = ColorChoice(num_goals=8)
    obs, state = big.reset_env(jax.random.PRNGKey(0), EnvParams(height=5, width=9))
    assert big.render(state, EnvParams(height=5, width=9)).dtype == np.uint8
    assert big.render_observation(obs).dtype == np.uint8


def test_registry_and_spaces():
    assert "color_choice" in registered_envs()
    env, params = make_env("color_choice")
    assert isinstance(env, ColorChoice) and env.name == "ColorChoice-3"
    assert env.num_actions == 3 and env.num_goals == 3 and env.action_space(params).n == 3
    assert env.observation_space(params).shape == (4, 15, 3)
    # the paper's 7 x 7 includes the border walls: 5 x 5 free cells (docs/design.md)
    assert (params.height, params.width, params.max_steps_in_episode) == (5, 5, 15)
    assert env.default_params == params
    env, params = make_env("color_choice", num_goals=5, height=9, width=8, layout="free")
    assert env.observation_space(params).shape == (6, 15, 3)
    assert (params.height, params.width) == (9, 8)
    _, params = make_env("color_choice", height=9, width=8, horizon=20)
    assert (params.height, params.width, params.max_steps_in_episode) == (7, 6, 20)
    with pytest.raises(ValueError, match="layout"):
        make_env("color_choice", layout="open")
    with pytest.raises(ValueError, match="no free cell"):
        make_env("color_choice", height=2, width=7)
    with pytest.raises(ValueError):
        ColorChoice(num_goals=0)
    with pytest.raises(ValueError):
        ColorChoice(num_goals=3).reset_env(jax.random.PRNGKey(0), EnvParams(height=1, width=3))


# ------------------------------------------------------------ heatmap interface
def test_goal_positions_are_goal_cells_as_floats(env):
    state = make_state((3, 3), NORTH, ((0, 1), (6, 2), (4, 5)))
    pos = env.goal_positions(state, EnvParams())
    assert pos.dtype == jnp.float32 and pos.shape == (N, 2)
    assert_array_equal(pos, [[0.0, 1.0], [6.0, 2.0], [4.0, 5.0]])
    pos = jax.jit(env.goal_positions)(state, EnvParams())  # traceable
    assert_array_equal(pos, [[0.0, 1.0], [6.0, 2.0], [4.0, 5.0]])


def test_heatmap_bins_one_per_cell(env):
    rows, cols = env.heatmap_bins(EnvParams(height=3, width=5))
    assert_array_equal(rows, [-0.5, 0.5, 1.5, 2.5])
    assert_array_equal(cols, [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5])
    # each cell (r, c) falls in bin (r, c)
    cells = np.array([[r, c] for r in range(3) for c in range(5)], np.float64)
    hist, _, _ = np.histogram2d(cells[:, 0], cells[:, 1], bins=[rows, cols])
    assert_array_equal(hist, np.ones((3, 5)))
