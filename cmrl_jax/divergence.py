"""Divergences between rollout policies and derangement sampling (paper 4.3).

Policies are given as logits over the last axis; all divergences are in nats.
"""

import jax
import jax.numpy as jnp

DIVERGENCES: tuple[str, ...] = ("js", "skl")


def kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """KL(p || q) of categoricals given by logits: [..., A] x [..., A] -> [...]."""
    logp = jax.nn.log_softmax(logits_p, axis=-1)
    logq = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def symmetric_kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """KL(p || q) + KL(q || p): [..., A] x [..., A] -> [...]."""
    logp = jax.nn.log_softmax(logits_p, axis=-1)
    logq = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum((jnp.exp(logp) - jnp.exp(logq)) * (logp - logq), axis=-1)


def jensen_shannon(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2: [..., A] -> [...]."""
    logp = jax.nn.log_softmax(logits_p, axis=-1)
    logq = jax.nn.log_softmax(logits_q, axis=-1)
    logm = jnp.logaddexp(logp, logq) - jnp.log(2.0)
    p, q = jnp.exp(logp), jnp.exp(logq)
    return 0.5 * jnp.sum(p * (logp - logm), axis=-1) + 0.5 * jnp.sum(q * (logq - logm), axis=-1)


def divergence_fn(name: str):
    """The divergence named ``"js"`` or ``"skl"``."""
    if name == "js":
        return jensen_shannon
    if name == "skl":
        return symmetric_kl
    raise ValueError(f"unknown divergence {name!r}; known: {', '.join(DIVERGENCES)}")


def sample_derangement(key: jax.Array, k: int, max_tries: int = 48) -> jax.Array:
    """A uniformly random derangement of range(k) (no fixed points), int32 [k].

    Rejection sampling: draw ``max_tries`` uniform permutations (argsort of
    i.i.d. uniforms) and keep the first one without fixed points, which is
    uniform over derangements. About 1/e of permutations are derangements
    (1/3 for k = 3, the worst case), so all tries fail with probability below
    (2/3)^48 < 4e-9; then a cyclic shift by one is returned.
    Requires k >= 2 (k = 1 has no derangement).
    """
    if k < 2:
        raise ValueError(f"a derangement needs k >= 2 items, got {k}")
    perms = jnp.argsort(jax.random.uniform(key, (max_tries, k)), axis=-1)  # [tries, k]
    ok = jnp.all(perms != jnp.arange(k), axis=-1)  # [tries]
    first = jnp.argmax(ok)
    fallback = (jnp.arange(k) + 1) % k
    return jnp.where(jnp.any(ok), perms[first], fallback).astype(jnp.int32)


def cross_divergence(
    own_logits: jax.Array,
    cross_logits: jax.Array,
    perm: jax.Array,
    mask: jax.Array,
    divergence,
) -> jax.Array:
    """L_D for one derangement, summed over rollouts and steps.

    Args:
        own_logits: [T, K, A], policy k on its own history (from the rollout).
        cross_logits: [T, K, A], agent j re-run with slot j holding history perm[j].
        perm: int32 [K], the derangement used to build ``cross_logits``.
        mask: [T, K], live explore steps of each rollout's own history.
        divergence: function [..., A] x [..., A] -> [...].
    Returns:
        float32 scalar: sum_j sum_t mask[t, perm[j]] * D(own[t, perm[j]], cross[t, j]).
    """
    d = divergence(own_logits[:, perm], cross_logits)  # [T, K]
    return jnp.sum(d * mask[:, perm].astype(d.dtype))
