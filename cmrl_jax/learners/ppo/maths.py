"""PPO's maths: GAE(lambda) with masked steps passed through, the clipped surrogate, value
clipping, advantage normalisation (Schulman et al. 2017; the GAE paper, Schulman et al. 2016).

Pure functions; ``ppo.update`` and ``ppo.truncated`` apply them to a meta-episode or a window and
``ppo.update`` / ``ppo.truncated`` run the epochs and minibatches (``common.sgd_epochs``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    mask: jax.Array,
    next_value: jax.Array,
    next_advantage: jax.Array,
    gamma: float,
    lam: jax.Array,
) -> jax.Array:
    """Generalised advantage estimates, masked (absorbed) steps passed through.

    On a live step, delta_t = r_t + gamma * V' - V_t and A_t = delta_t + gamma * lam * A',
    where V' and A' are the value and advantage of the next *live* step (or
    ``next_value`` / ``next_advantage`` after the last one). A masked step is not a
    decision: it neither rewards nor discounts, its advantage is 0 and it hands V' and
    A' through unchanged. With lam = 1, A_t = G_t - V_t for the returns of
    ``a2c.discounted_returns`` bootstrapped with ``next_value + next_advantage``.

    Args:
        rewards, values: float32 [T, ...]; mask: bool/float [T, ...], True on live steps.
        next_value, next_advantage: float32 [...], what follows step T - 1 (0, 0 at the
            end of a meta-episode; the exploit sub-episode's first step for an explore
            rollout).
        gamma: discount factor; lam: GAE lambda (may be traced).
    Returns:
        float32 [T, ...], 0 on masked steps.
    """
    mask = mask.astype(jnp.float32)

    def back(carry, rvm):
        v_next, a_next = carry
        r, v, m = rvm
        a = r + gamma * v_next - v + gamma * lam * a_next
        carry = (m * v + (1.0 - m) * v_next, m * a + (1.0 - m) * a_next)
        return carry, m * a

    start = (jnp.asarray(next_value, jnp.float32), jnp.asarray(next_advantage, jnp.float32))
    _, adv = jax.lax.scan(back, start, (rewards, values, mask), reverse=True,
                          unroll=rewards.shape[0] <= 16)
    return adv


class PPOTerms(NamedTuple):
    """Sums over live steps of PPO's loss terms and diagnostics (scalars)."""

    policy: jax.Array  # -sum mask * min(rho A, clip(rho, 1 - eps, 1 + eps) A)
    value: jax.Array  # 0.5 * sum mask * (V - target)^2 (the larger of clipped and not)
    entropy: jax.Array  # sum mask * H(pi)
    approx_kl: jax.Array  # sum mask * ((rho - 1) - log rho), an estimate of KL(old || new)
    clipped: jax.Array  # sum mask * [|rho - 1| > eps]


def ppo_terms(
    logp: jax.Array,
    old_logp: jax.Array,
    advantage: jax.Array,
    value: jax.Array,
    old_value: jax.Array,
    target: jax.Array,
    entropy: jax.Array,
    mask: jax.Array,
    clip: jax.Array,
    value_clip: jax.Array,
) -> PPOTerms:
    """PPO's terms summed over live steps.

    Args:
        logp, old_logp: float32 [...], log pi(a) under the current and the collecting
            parameters; advantage: float32 [...] (a constant); value, old_value, target:
            float32 [...], the value head now, when collected, and its target (A + V_old);
            entropy: float32 [...], H(pi) now; mask: bool/float [...].
        clip: epsilon of the clipped surrogate (> 0); value_clip: the value's step is
            clipped to [-value_clip, value_clip] around old_value and the larger loss
            taken; 0 turns value clipping off. Both may be traced.
    Returns:
        ``PPOTerms`` of scalars.
    """
    mask = mask.astype(jnp.float32)
    advantage = jax.lax.stop_gradient(advantage)
    log_ratio = logp - old_logp
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(ratio * advantage,
                            jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantage)
    unclipped = jnp.square(value - target)
    moved = old_value + jnp.clip(value - old_value, -value_clip, value_clip)
    value_loss = jnp.where(value_clip > 0, jnp.maximum(unclipped, jnp.square(moved - target)),
                           unclipped)
    ratio_c = jax.lax.stop_gradient(ratio)
    return PPOTerms(
        policy=-jnp.sum(mask * surrogate),
        value=0.5 * jnp.sum(mask * value_loss),
        entropy=jnp.sum(mask * entropy),
        approx_kl=jnp.sum(mask * ((ratio_c - 1.0) - jax.lax.stop_gradient(log_ratio))),
        clipped=jnp.sum(mask * (jnp.abs(ratio_c - 1.0) > clip)),
    )


def normalize(advantages: tuple[jax.Array, ...], masks: tuple[jax.Array, ...],
              eps: float = 1e-8) -> tuple[jax.Array, ...]:
    """Advantages shifted and scaled to mean 0, std 1 over the live steps of all of them
    together (a minibatch's explore and exploit decisions); masked steps stay 0.

    Args:
        advantages: float32 arrays of any shapes; masks: bool arrays of the same shapes.
    Returns:
        the normalised arrays, in order.
    """
    ms = [m.astype(jnp.float32) for m in masks]
    count = jnp.maximum(sum(jnp.sum(m) for m in ms), 1.0)
    mean = sum(jnp.sum(a * m) for a, m in zip(advantages, ms, strict=True)) / count
    var = sum(jnp.sum(m * jnp.square(a - mean)) for a, m in zip(advantages, ms, strict=True))
    std = jnp.sqrt(var / count)
    return tuple(m * (a - mean) / (std + eps) for a, m in zip(advantages, ms, strict=True))
