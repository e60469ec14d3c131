"""Returns and the A2C loss terms (paper 2, A2C with Monte-Carlo returns)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp


def discounted_returns(
    rewards: jax.Array, mask: jax.Array, bootstrap: jax.Array, gamma: float
) -> jax.Array:
    """Discounted returns with masked (absorbed) steps passed through.

    G_t = r_t + gamma * G_{t+1} on live steps; on masked steps G_t = G_{t+1}
    (a masked step is not a decision, so it neither rewards nor discounts).

    Args:
        rewards: float32 [T, ...].
        mask: bool/float [T, ...], True on live steps.
        bootstrap: float32 [...], the return that follows step T - 1.
        gamma: discount factor.
    Returns:
        float32 [T, ...].
    """
    mask = mask.astype(jnp.float32)

    def back(g_next, rm):
        r, m = rm
        g = m * (r + gamma * g_next) + (1.0 - m) * g_next
        return g, g

    _, g = jax.lax.scan(back, jnp.asarray(bootstrap, jnp.float32), (rewards, mask), reverse=True,
                        unroll=rewards.shape[0] <= 16)
    return g


class A2CTerms(NamedTuple):
    """Per-meta-episode sums of the A2C loss terms (scalars)."""

    policy: jax.Array  # -sum mask * log pi(a) * stop_grad(G - V)
    value: jax.Array  # 0.5 * sum mask * (G - V)^2
    entropy: jax.Array  # sum mask * H(pi)


def a2c_terms(
    logits: jax.Array, actions: jax.Array, values: jax.Array, returns: jax.Array, mask: jax.Array,
    policy=None,
) -> A2CTerms:
    """A2C terms summed over live steps.

    Args:
        logits: float32 [..., P] policy head; actions: [...] (int32) or [..., d]; values,
            returns: float32 [...]; mask: bool/float [...].
        policy: the action distribution (``policy.Categorical`` or ``policy.TanhGaussian``:
            ``log_prob`` and ``entropy`` of the head and the taken actions); None: a
            softmax over ``logits``.
    Returns:
        ``A2CTerms`` of scalars.
    """
    if policy is None:
        from cmrl_jax.agent.policy import Categorical

        policy = Categorical(logits.shape[-1])
    mask = mask.astype(jnp.float32)
    advantage = jax.lax.stop_gradient(returns - values)
    return A2CTerms(
        policy=-jnp.sum(mask * policy.log_prob(logits, actions) * advantage),
        value=0.5 * jnp.sum(mask * jnp.square(returns - values)),
        entropy=jnp.sum(mask * policy.entropy(logits, actions)),
    )


def linear_anneal(step: jax.Array, start: float, end: float, duration: float) -> jax.Array:
    """Linear schedule from ``start`` to ``end`` over ``duration`` steps, then ``end``."""
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / jnp.maximum(duration, 1.0), 0.0, 1.0)
    return start + (end - start) * frac
