"""Reward-sharing schemes for the explore phase (paper 4.2).

Every scheme maps the explore rewards of K rollouts (or, for the sequential
RL2 / ERL2 agents, of K explore sub-episodes) to the rewards used for
training. Exploit rewards are never changed. Schemes that aggregate over
rollouts (Shared, Max, StDev, Max+StDev) aggregate the rollouts' undiscounted
explore *returns* and credit the aggregate, identically for every rollout, at
that rollout's last live explore step. With H = 1 that is the per-step value.

All functions: ``rewards`` float32 [K, T] (masked steps hold 0), ``mask``
bool/float [K, T] (True while the sub-episode is live) -> float32 [K, T].
"""

import jax
import jax.numpy as jnp

SCHEMES: tuple[str, ...] = (
    "separate",
    "shared",
    "zero",
    "max",
    "stdev",
    "max_stdev",
)
"""Scheme names; a scheme's index here is its traced ``scheme_id``."""


def scheme_id(name: str) -> int:
    """Index of a scheme name in ``SCHEMES`` (raises ValueError if unknown)."""
    if name not in SCHEMES:
        raise ValueError(f"unknown reward scheme {name!r}; known: {', '.join(SCHEMES)}")
    return SCHEMES.index(name)


def _credit_at_last_live_step(value: jax.Array, mask: jax.Array) -> jax.Array:
    """Place scalar ``value`` at each row's last live step: [] x [K, T] -> [K, T]."""
    mask = mask.astype(jnp.float32)
    t = jnp.arange(mask.shape[-1])
    last = jnp.max(jnp.where(mask > 0, t, -1), axis=-1, keepdims=True)  # [K, 1]
    return jnp.where(t == last, value, 0.0).astype(jnp.float32)


def _explore_returns(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Undiscounted explore return of each rollout: [K, T] -> [K]."""
    return jnp.sum(rewards * mask.astype(rewards.dtype), axis=-1)


def separate(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Separate Rewards: each rollout keeps its own raw reward (RL2's scheme)."""
    return (rewards * mask.astype(rewards.dtype)).astype(jnp.float32)


def shared(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Shared Reward: every rollout gets the sum of all rollouts' explore returns."""
    return _credit_at_last_live_step(jnp.sum(_explore_returns(rewards, mask)), mask)


def zero_until_exploit(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Zero-Until-Exploit: explore rewards are dropped (ERL2's scheme)."""
    del mask
    return jnp.zeros_like(rewards, dtype=jnp.float32)


def max_until_exploit(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Max-Until-Exploit: every rollout gets the best rollout's explore return."""
    return _credit_at_last_live_step(jnp.max(_explore_returns(rewards, mask)), mask)


def stdev_until_exploit(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """StDev-Until-Exploit: every rollout gets the (population) std of the returns."""
    return _credit_at_last_live_step(jnp.std(_explore_returns(rewards, mask)), mask)


def max_stdev_until_exploit(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Max+StDev-Until-Exploit: the sum of the Max and StDev schemes."""
    returns = _explore_returns(rewards, mask)
    return _credit_at_last_live_step(jnp.max(returns) + jnp.std(returns), mask)


_BY_ID = (
    separate,
    shared,
    zero_until_exploit,
    max_until_exploit,
    stdev_until_exploit,
    max_stdev_until_exploit,
)


def apply_scheme(scheme: jax.Array | int, rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """Apply the scheme with (possibly traced) index ``scheme``: [K, T] -> [K, T]."""
    return jax.lax.switch(jnp.asarray(scheme, jnp.int32), _BY_ID, rewards, mask)
