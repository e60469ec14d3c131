"""The agent's input: its layout, and the features an env declares constant.

Agent input at each decision (``encode_input``): [flattened observation,
the policy's previous-action features, previous reward * reward_input_scale,
previous done flag]. An env may declare observation features that never
change (``constant_observation``, e.g. Color-Choice's view rows beyond the
grid); the engine then builds and stores only the varying ones
(``constant_inputs``), and the networks fold the constant ones' share of each
input product into a bias once per call (``InputCompaction``; each memory
cell's rule is in ``cmrl_jax.agent.cells``): the same numbers up to float
reassociation. And an env whose first observation does not depend on the
reset key lets the engine take the first decision once per update
(``constant_first_observation``).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:  # gymnax starts JAX's backend (--distributed joins before that)
    from gymnax.environments import environment


def encode_input(
    obs: jax.Array,
    action_features: jax.Array,
    prev_reward: jax.Array,
    prev_done: jax.Array,
    reward_scale: float,
) -> jax.Array:
    """[R, O], [R, F], [R], [R] -> float32 [R, O + F + 2] (F: the policy's action features)."""
    return jnp.concatenate(
        [
            obs.astype(jnp.float32),
            action_features,
            (prev_reward * reward_scale)[:, None].astype(jnp.float32),
            prev_done[:, None].astype(jnp.float32),
        ],
        axis=-1,
    )


def constant_first_observation(env: "environment.Environment", env_params: Any) -> bool:
    """Whether ``reset_env``'s observation does not depend on its key (e.g. Monty-Hall).

    Then the first explore decision (same observation, zeroed previous inputs,
    learned initial memory) is the same for every meta-episode of a batch, and
    the engine computes it outside the step loop, where ``vmap`` leaves it
    unbatched: once per update instead of once per meta-episode.
    """
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    try:
        jax.eval_shape(jax.vmap(lambda k: env.reset_env(k, env_params)[0], out_axes=None), keys)
    except ValueError:  # the observation is batched over keys
        return False
    return True


@dataclass(frozen=True)
class InputCompaction:
    """Agent-input features that never change (static; ``constant_inputs``).

    The engine then feeds the agent only the ``keep`` features of its full
    input (in that order); ``compact_params`` turns parameters made for the
    full input into parameters for that narrower one (each cell's rule:
    ``cmrl_jax.agent.cells``). For every input product, W x + b = W[keep] x[keep] +
    (b + W[const] c): the rows of the constant features leave the kernel and
    their share joins a bias, computed once per call. Gradients are those of
    the full product (d/dW[const] = c (x) d/db), up to float reassociation.
    """

    full_dim: int  # width of the full agent input (the parameters')
    keep: tuple[int, ...]  # indices of the varying features
    const: tuple[int, ...]  # indices of the constant features
    values: tuple[float, ...]  # their values

    def rows(self, blocks: int = 1, tail: int = 0):
        """Kernel rows of an input of ``blocks`` agent inputs then ``tail`` other features
        -> (kept rows int [blocks * |keep| + tail], constant rows int [blocks * |const|],
        their values float32)."""
        base = np.arange(blocks)[:, None] * self.full_dim
        keep = np.concatenate([(base + np.asarray(self.keep)).ravel(),
                               blocks * self.full_dim + np.arange(tail)])
        const = (base + np.asarray(self.const)).ravel()
        return keep, const, np.tile(np.asarray(self.values, np.float32), blocks)


def constant_inputs(env: "environment.Environment", env_params: Any, input_dim: int,
                    obs_dim: int) -> InputCompaction | None:
    """The agent-input features the env declares constant, or None.

    An env may define ``constant_observation(env_params) -> (mask, values)``
    (numpy arrays of the observation's shape: which features never change, and
    their values; e.g. ``cmrl_jax_envs.color_choice``'s view rows beyond the grid). The
    agent input is then [varying observation features, previous-* inputs] and
    the networks add the constant features' share of their input products once
    per call (``InputCompaction``): the same numbers up to float
    reassociation, with narrower step inputs and stored buffers.
    """
    declared = getattr(env, "constant_observation", None)
    if declared is None:
        return None
    mask, values = declared(env_params)
    mask = np.reshape(np.asarray(mask, bool), (-1,))
    values = np.reshape(np.asarray(values, np.float32), (-1,))
    if mask.shape != (obs_dim,) or values.shape != (obs_dim,):
        raise ValueError(f"constant_observation gives {mask.shape} / {values.shape}, "
                         f"the observation has {obs_dim} features")
    if not mask.any():
        return None
    const = np.flatnonzero(mask)
    keep = np.concatenate([np.flatnonzero(~mask), np.arange(obs_dim, input_dim)])
    return InputCompaction(input_dim, tuple(map(int, keep)), tuple(map(int, const)),
                           tuple(map(float, values[const])))
