"""The Reacher arm's link lengths and forward kinematics: what the env and its drawing share."""

import jax
import jax.numpy as jnp

LINK0 = 0.1  # m, base to joint 1
LINK1 = 0.11  # m, joint 1 to fingertip
REACH = LINK0 + LINK1  # m


def fingertip(qpos: jax.Array) -> jax.Array:
    """Planar forward kinematics: joint angles float [..., 2] -> fingertip xy (m) [..., 2]."""
    q0, q01 = qpos[..., 0], qpos[..., 0] + qpos[..., 1]
    x = LINK0 * jnp.cos(q0) + LINK1 * jnp.cos(q01)
    y = LINK0 * jnp.sin(q0) + LINK1 * jnp.sin(q01)
    return jnp.stack([x, y], axis=-1)
