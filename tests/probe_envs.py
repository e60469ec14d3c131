"""Small gymnax environments with known answers, for engine tests."""

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from cmrl_jax_envs.monty_hall import MontyHall


@struct.dataclass
class CorridorState(environment.EnvState):
    """Position on a line and the task drawn at reset."""

    pos: jax.Array  # int32
    task: jax.Array  # float32, drawn from the reset key
    time: jax.Array  # int32


@struct.dataclass
class CorridorParams(environment.EnvParams):
    """Length of the corridor (the goal is at its end) and the horizon."""

    length: int = 2
    max_steps_in_episode: int = 100


class Corridor(environment.Environment[CorridorState, CorridorParams]):
    """Actions: 0 = stay, 1 = forward. Reaching ``length`` enters goal 0 with reward 1
    and terminates; the observation is [pos, task] so the task drawn at reset is visible."""

    @property
    def default_params(self) -> CorridorParams:
        """Length 2."""
        return CorridorParams()

    def step_env(self, key, state, action, params) -> tuple[Any, ...]:
        """Move forward on action 1; terminate on reaching the end."""
        pos = state.pos + jnp.asarray(action, jnp.int32)
        done = pos >= params.length
        state = state.replace(pos=pos, time=state.time + 1)
        reward = jnp.where(done, 1.0, 0.0)
        info = {"goal": jnp.where(done, 0, -1).astype(jnp.int32)}
        return self.get_obs(state), state, reward, done, info

    def reset_env(self, key, params):
        """Draw a task value from the key; start at position 0."""
        state = CorridorState(
            pos=jnp.array(0, jnp.int32),
            task=jax.random.uniform(key),
            time=jnp.array(0, jnp.int32),
        )
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        """[pos, task]."""
        return jnp.stack([state.pos.astype(jnp.float32), state.task])

    def action_space(self, params=None):
        """Stay or forward."""
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        """[pos, task]."""
        return spaces.Box(0.0, 100.0, (2,), jnp.float32)


class FreshCorridor(Corridor):
    """A Corridor whose task (``task``) and start (``pos``) are drawn apart: ``reset_state``
    starts the same task at position 0 or 1 (``--subepisode-start fresh``)."""

    def reset_state(self, key, state, params):
        """The task of ``state`` from a start drawn from ``key``."""
        pos = jax.random.randint(key, (), 0, 2).astype(jnp.int32)
        state = state.replace(pos=pos, time=jnp.array(0, jnp.int32))
        return self.get_obs(state), state


class SplitDoors(MontyHall):
    """Monty-Hall whose gold door is one of the first N - 1 (training tasks) or the last
    (the held-out task)."""

    def __init__(self, num_doors: int, heldout: bool):
        super().__init__(num_doors)
        self.heldout = heldout

    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        gold = jax.random.randint(key, (), 0, self.num_doors - 1, dtype=jnp.int32)
        return obs, state.replace(gold=jnp.where(self.heldout, self.num_doors - 1, gold))


def split_doors(num_doors: int = 4, split: str = "train"):
    """The factory of ``SplitDoors``: (env, params) on the ``split`` tasks."""
    env = SplitDoors(num_doors, split == "test")
    return env, env.default_params


def split_heldout(options: dict):
    """``EnvSpec.heldout`` of ``split_doors``: a training env's test split."""
    return None if options.get("split") == "test" else {**options, "split": "test"}
