"""N-Monty-Hall (paper section 4, Figure 2) as a gymnax environment.

One start state and N + 1 actions. Action 0 is a NOOP: no reward, the
sub-episode ends. Action i >= 1 opens door i - 1: +0.1 if it is the task's
gold door, -1 (a bomb) otherwise, and the sub-episode ends. The gold door is
the task; it is drawn by ``reset_env`` from its key, so a meta-episode that
reuses one reset key keeps one task. Horizon H = 1.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from cmrl_jax.envspec import EnvSpec

from . import monty_hall_draw  # matplotlib only when drawing


@struct.dataclass
class EnvState(environment.EnvState):
    """State of one Monty-Hall sub-episode."""

    gold: jax.Array  # int32 scalar: index of the +0.1 door (the task)
    time: jax.Array  # int32 scalar: decisions taken in this sub-episode


@struct.dataclass
class EnvParams(environment.EnvParams):
    """Rewards of the doors and the horizon."""

    gold_reward: float = 0.1
    bomb_reward: float = -1.0
    max_steps_in_episode: int = 1


class MontyHall(environment.Environment[EnvState, EnvParams]):
    """N doors behind one action each, action 0 = NOOP; one door holds gold."""

    def __init__(self, num_doors: int = 10):
        """Static configuration: the number of doors N (>= 1)."""
        if num_doors < 1:
            raise ValueError(f"num_doors must be >= 1, got {num_doors}")
        self.num_doors = num_doors

    @property
    def default_params(self) -> EnvParams:
        """Paper values: gold +0.1, bomb -1, H = 1."""
        return EnvParams()

    @property
    def num_goals(self) -> int:
        """Number of distinct goals (doors) reported in ``info["goal"]``."""
        return self.num_doors

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Open door ``action - 1`` (or NOOP for 0); every action ends the sub-episode."""
        del key
        action = jnp.asarray(action, jnp.int32)
        door = action - 1
        opened = action > 0
        reward = jnp.where(
            opened,
            jnp.where(door == state.gold, params.gold_reward, params.bomb_reward),
            0.0,
        ).astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        info = {"goal": jnp.where(opened, door, -1).astype(jnp.int32)}
        return self.get_obs(state, params), state, reward, jnp.array(True), info

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """Draw the task (the gold door) from ``key``."""
        gold = jax.random.randint(key, (), 0, self.num_doors, dtype=jnp.int32)
        state = EnvState(gold=gold, time=jnp.array(0, jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        """The single start state: a constant observation of shape [1]."""
        del state, params, key
        return jnp.ones((1,), jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Every decision ends the sub-episode."""
        return state.time >= 1

    @property
    def name(self) -> str:
        """Environment name, e.g. ``MontyHall-10``."""
        return f"MontyHall-{self.num_doors}"

    @property
    def num_actions(self) -> int:
        """N doors plus the NOOP."""
        return self.num_doors + 1

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """Discrete(N + 1): 0 = NOOP, i = door i - 1."""
        return spaces.Discrete(self.num_doors + 1)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """A constant vector of shape [1]."""
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)

    def state_space(self, params: EnvParams | None = None) -> spaces.Dict:
        """Gold door index and time."""
        return spaces.Dict(
            {
                "gold": spaces.Discrete(self.num_doors),
                "time": spaces.Discrete(2),
            }
        )


def oracle_success(num_doors: int, k_explore: int) -> float:
    """Best achievable success: open k distinct doors while exploring, then the gold one.

    With k >= N - 1 the gold door is always known (the last one by elimination).
    With fewer, an unknown door is worth opening only if P(gold) * 0.1 >
    (1 - P(gold)) * 1, i.e. never for N - k >= 2 doors left, so success = k / N.
    """
    return 1.0 if k_explore >= num_doors - 1 else k_explore / num_doors


def _factory(num_doors: int = 10):
    env = MontyHall(num_doors)
    return env, env.default_params


def _oracle(env, params, k_explore: int, horizon: int) -> float:
    """``oracle_success`` for this env's doors."""
    return oracle_success(env.num_doors, k_explore)


SPEC = EnvSpec(
    factory=_factory, k_explore=10, horizon=1, architecture="central_lstm",
    oracle=_oracle, oracle_text="open distinct doors, the last by elimination",
    config=(("reward_input_scale", 10.0),), learning_rate=2e-3, lambda_div=0.5,
    num_goals=lambda env: env.num_doors, renderer=monty_hall_draw.renderer(),
)
