"""Per-meta-episode statistics: success, visited goals, returns."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.agent.engine import MetaEpisode, goal_success


class EpisodeStats(NamedTuple):
    """Scalars per meta-episode (leading batch axes when vmapped)."""

    success: jax.Array  # float32: the exploit sub-episode entered a positive goal
    visited_goals: jax.Array  # float32: unique goals entered during exploration
    explore_return: jax.Array  # float32: raw explore reward summed over rollouts
    exploit_return: jax.Array  # float32: raw exploit reward


def count_unique_goals(goals: jax.Array) -> jax.Array:
    """Number of distinct non-negative entries: int32 [M] -> float32 scalar.

    By a sort (O(M log M) time, O(M) memory), not by comparing all pairs: an [M, M] mask
    per meta-episode was the largest buffer of long trials' updates (docs/results.md)."""
    s = jnp.sort(jnp.reshape(goals, (-1,)))
    first = jnp.concatenate([jnp.ones((1,), bool), s[1:] != s[:-1]])  # a value's first copy
    return jnp.sum(first & (s >= 0)).astype(jnp.float32)


def episode_stats(ep: MetaEpisode) -> EpisodeStats:
    """Statistics of one meta-episode.

    Success is the env's (``ep.success``, set by the engine from the env's hook,
    docs/extending.md); without it, a goal with positive reward entered in exploit.
    Visited goals count ``info["goal"]``: 0 for an env that reports none (its
    tables and figures omit the metric, ``cmrl_jax.envspec.reports_goals``).
    """
    x = ep.exploit
    success = goal_success(x, None, None) if ep.success is None else ep.success
    return EpisodeStats(
        success=success.astype(jnp.float32),
        visited_goals=count_unique_goals(ep.explore.goal),
        explore_return=jnp.sum(ep.explore.reward),
        exploit_return=jnp.sum(x.reward),
    )
