"""N chests, one hides the treasure: a complete user environment in ~50 lines (docs/extending.md).

    python -m experiments.train --env examples.hidden_chest:hidden_chest --env-option num_chests=4
"""

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from cmrl_jax.registry import register_env
from examples.hidden_chest_draw import renderer


@struct.dataclass
class State(environment.EnvState):
    """The task (the treasure's chest, drawn at reset) and the step counter."""

    treasure: jax.Array  # int32
    time: int


class HiddenChest(environment.Environment[State, environment.EnvParams]):
    """Open one chest per decision: the treasure pays +1, an empty chest 0; either ends."""

    def __init__(self, num_chests: int = 3):
        """``num_chests`` >= 2 chests."""
        super().__init__()
        self.num_chests = num_chests

    @property
    def default_params(self) -> environment.EnvParams:
        """One decision per sub-episode."""
        return environment.EnvParams(max_steps_in_episode=1)

    def step_env(self, key, state, action, params):
        """Open chest ``action``; report it as the goal entered (``info["goal"]``)."""
        reward = jnp.where(action == state.treasure, 1.0, 0.0)
        state = state.replace(time=state.time + 1)
        return jnp.zeros(1), state, reward, jnp.array(True), {"goal": jnp.int32(action)}

    def reset_env(self, key, params):
        """The task: which chest holds the treasure. The observation says nothing."""
        return jnp.zeros(1), State(treasure=jax.random.randint(key, (), 0, self.num_chests), time=0)

    def action_space(self, params=None):
        """One action per chest."""
        return spaces.Discrete(self.num_chests)

    def observation_space(self, params=None):
        """A constant."""
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


def _oracle(env, params, k_explore, horizon):
    """Open distinct chests while exploring; the last one by elimination."""
    return min(1.0, (k_explore + 1) / env.num_chests)


register_env(
    "hidden_chest", lambda num_chests=3: (HiddenChest(num_chests), HiddenChest().default_params),
    chance=lambda env, params, k, h: 1 / env.num_chests, chance_text="a random chest",
    oracle=_oracle, oracle_text="distinct chests, the last by elimination",
    k_explore=2, horizon=1, architecture="central_lstm", learning_rate=3e-3, lambda_div=0.5,
    num_goals=lambda env: env.num_chests, renderer=renderer(),
)
