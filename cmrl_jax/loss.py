"""The meta-episode loss: A2C over explore and exploit phases minus lambda_div * L_D."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.a2c import a2c_terms, discounted_returns
from cmrl_jax.config import TrainConfig
from cmrl_jax.divergence import cross_divergence
from cmrl_jax.engine import MetaEpisode, MetaEpisodeRunner
from cmrl_jax.evaluate import EpisodeStats, episode_stats
from cmrl_jax.rewards import apply_scheme


class LossInfo(NamedTuple):
    """Diagnostics of one meta-episode's loss (scalars)."""

    a2c: jax.Array
    divergence: jax.Array  # L_D (before lambda_div)
    entropy_explore: jax.Array  # mean per live explore decision
    entropy_exploit: jax.Array  # mean per live exploit decision
    stats: EpisodeStats


def training_rewards(ep: MetaEpisode, scheme: jax.Array, k_explore: int, concurrent: bool):
    """Explore rewards after the reward scheme: [T_e, R] -> [T_e, R].

    The scheme sees a [K, T] view: K concurrent rollouts x H steps (CMRL), or
    K sub-episodes x H steps of the single sequential rollout (RL2 / ERL2).
    """
    e = ep.explore
    if concurrent:
        return apply_scheme(scheme, e.reward.T, e.live.T).T
    t_e = e.reward.shape[0]
    view = lambda a: jnp.reshape(a, (k_explore, t_e // k_explore))
    return jnp.reshape(apply_scheme(scheme, view(e.reward), view(e.live)), (t_e, 1))


def meta_episode_returns(ep: MetaEpisode, train_rewards: jax.Array, gamma: float):
    """Returns of explore [T_e, R] and exploit [H, 1] steps.

    Exploit returns use raw rewards and end at 0. Every explore step's return
    continues into the discounted exploit return, for every rollout.
    """
    g_exploit = discounted_returns(ep.exploit.reward, ep.exploit.live, jnp.zeros((1,)), gamma)
    r = train_rewards.shape[1]
    g_explore = discounted_returns(
        train_rewards, ep.explore.live, jnp.broadcast_to(g_exploit[0, 0], (r,)), gamma
    )
    return g_explore, g_exploit


def meta_episode_loss(
    runner: MetaEpisodeRunner,
    cfg: TrainConfig,
    params,
    key: jax.Array,
    perms: jax.Array,
    scheme: jax.Array,
    lambda_div: jax.Array,
    entropy_explore: jax.Array,
    entropy_exploit: jax.Array,
) -> tuple[jax.Array, LossInfo]:
    """Run one meta-episode with ``params`` and return its loss (scalar) and diagnostics.

    ``perms`` int32 [num_derangements, K] are the derangements for L_D (the
    trainer draws fresh ones each update, shared by the batch).

    A2C terms are summed over all decision slots (K_explore * H explore + H
    exploit) and divided by that count, so the loss is a mean per decision.
    L_D is summed over rollouts and live explore steps and averaged over the
    sampled derangements; the loss is A2C - lambda_div * L_D.
    """
    ep = runner.run(params, key)
    e, x = ep.explore, ep.exploit
    train_r = training_rewards(ep, scheme, cfg.k_explore, cfg.concurrent)
    g_e, g_x = meta_episode_returns(ep, train_r, cfg.gamma)
    te = a2c_terms(e.logits, e.action, e.value, g_e, e.live, runner.policy)
    tx = a2c_terms(x.logits, x.action, x.value, g_x, x.live, runner.policy)
    slots = e.live.size + x.live.size
    a2c = (
        te.policy
        + tx.policy
        + cfg.value_coef * (te.value + tx.value)
        - entropy_explore * te.entropy
        - entropy_exploit * tx.entropy
    ) / slots

    l_div = jnp.zeros(())
    if cfg.concurrent:
        div = runner.policy.divergence(cfg.divergence)
        for perm in perms:
            cross = runner.rerun_explore(params, e.x[:, perm], e.live[:, perm])
            l_div += cross_divergence(e.logits, cross, perm, e.live, div)
        l_div /= cfg.num_derangements

    info = LossInfo(
        a2c=a2c,
        divergence=l_div,
        entropy_explore=te.entropy / jnp.maximum(jnp.sum(e.live), 1),
        entropy_exploit=tx.entropy / jnp.maximum(jnp.sum(x.live), 1),
        stats=episode_stats(ep),
    )
    return a2c - lambda_div * l_div, info
