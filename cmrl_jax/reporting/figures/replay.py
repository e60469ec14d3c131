"""A recorded meta-episode's env states, rebuilt by re-stepping the env with its actions.

The engine records agent inputs, not env states. Every sub-episode and rollout
starts from the task's initial state (one reset key per meta-episode); an env
whose ``step_env`` is deterministic given state and action (it ignores its key)
can be re-stepped with the recorded actions. The replay is checked against the
recorded observations, goals and rewards. Physics that ran vmapped in the
engine and runs one state at a time here may differ in the last float bits, so
observations are compared within an absolute tolerance (the renderer's
``Strip.obs_atol``).
"""

import functools
from typing import NamedTuple

import numpy as np


class Replay(NamedTuple):
    """One sub-episode or rollout rebuilt from its recorded actions."""

    states: list  # env states: the start state, then one after each real decision
    actions: np.ndarray  # [T, ...] the real decisions' actions, as the env received them
    goal: int  # last goal entered (-1: none, or the env reports no goals)
    reward: float  # summed raw reward


def split_rollouts(tr, concurrent: bool, k: int, horizon: int) -> list[dict]:
    """Transition leaves [T, R, ...] -> one dict of numpy arrays [H, ...] per rollout.

    Concurrent: T = H, R = K (rollout r is column r). Sequential: T = K * H, R = 1
    (sub-episode k is steps k * H .. (k + 1) * H - 1).
    """
    names = ("x", "action", "reward", "live", "goal")
    leaves = {name: np.asarray(getattr(tr, name)) for name in names}
    if concurrent:
        n = leaves["action"].shape[1]
        return [{name: a[:, r] for name, a in leaves.items()} for r in range(n)]
    return [{n: a[i * horizon:(i + 1) * horizon, 0] for n, a in leaves.items()} for i in range(k)]


@functools.cache
def _jitted_step(env):
    """``env``'s step_env, compiled once per env."""
    import jax

    return jax.jit(env.step_env)


def replay(env, params, obs0, state0, rollout: dict, obs_dim: int, atol: float = 1e-8,
           env_action=None, obs_keep=None) -> Replay:
    """Re-step ``env`` from the task (``obs0``, ``state0``) with a rollout's live actions,
    checking the record (observations within ``atol`` and np.allclose's relative 1e-5).

    ``env_action``: the policy's map from a recorded action to the env's (a continuous
    policy records the pre-squash ``u``); None: the identity. ``obs_keep``: the flattened
    observation's features the agent input holds (``runner.obs_keep``; None: all), the
    first ``obs_dim`` of ``rollout["x"]``. RuntimeError if the replay departs from the record.
    """

    def seen(obs):
        flat = np.reshape(np.asarray(obs), -1)
        return flat if obs_keep is None else flat[obs_keep]

    step = _jitted_step(env)
    to_env = env_action if env_action is not None else np.asarray
    actions = []
    key = np.zeros(2, np.uint32)  # a replayable env's step ignores its key
    states, state = [state0], state0
    goal, total = -1, 0.0
    live = rollout["live"]
    if not np.allclose(seen(obs0), rollout["x"][0, :obs_dim], atol=atol):
        raise RuntimeError("replay starts from another state than the recorded meta-episode")
    for t in np.flatnonzero(live):
        actions.append(np.asarray(to_env(rollout["action"][t])))
        obs, state, reward, _, info = step(key, state, actions[-1], params)
        states.append(state)
        entered = int(info["goal"]) if "goal" in info else -1
        same = entered == int(rollout["goal"][t])
        same &= np.isclose(float(reward), float(rollout["reward"][t]))
        if t + 1 < len(live) and live[t + 1]:  # the next decision saw this observation
            same &= np.allclose(seen(obs), rollout["x"][t + 1, :obs_dim], atol=atol)
        if not same:
            raise RuntimeError(f"replay differs from the recorded meta-episode at step {t}")
        goal = entered if entered >= 0 else goal
        total += float(reward)
    shape = np.shape(rollout["action"])[1:]
    return Replay(states, np.array(actions).reshape((len(actions),) + shape), goal, total)


def replay_meta_episode(runner, ep, obs0, state0, atol: float) -> tuple[list[Replay], Replay]:
    """Every explore rollout (or sub-episode) and the exploit sub-episode of ``ep``
    (an ``engine.MetaEpisode`` on the host), replayed: (explore [K], exploit)."""
    env, params = runner.env, runner.env_params
    rollouts = split_rollouts(ep.explore, runner.concurrent, runner.k_explore, runner.horizon)
    import jax

    to_env = jax.jit(runner.policy.env_action)
    seen = runner.x_dim - (runner.input_dim - runner.obs_dim)  # observation features in x
    explore = [replay(env, params, obs0, state0, r, seen, atol, to_env, runner.obs_keep)
               for r in rollouts]
    exploit = replay(env, params, obs0, state0, split_rollouts(ep.exploit, True, 1, 0)[0],
                     seen, atol, to_env, runner.obs_keep)
    return explore, exploit
