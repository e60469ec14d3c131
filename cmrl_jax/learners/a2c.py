"""A2C, the paper's learner: Monte-Carlo returns, the A2C terms, the loss fused with
collection (``meta_episode_loss``) and the ``A2C`` learner (one optimizer step per batch)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.learners.base import Learner, Option, Update
from cmrl_jax.learners.common import (
    LossInputs,
    UpdateInputs,
    divergence_loss,
    episode_stats,
    gradient_step,
    per_slot,
    training_rewards,
    with_floor,
)
from cmrl_jax.parallel import shard_batch

if TYPE_CHECKING:
    from cmrl_jax.agent.engine import MetaEpisode, MetaEpisodeRunner
    from cmrl_jax.agent.evaluate import EpisodeStats

# ``cfg`` below is a ``config.TrainConfig`` (not imported: the config imports the learners).


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


class LossInfo(NamedTuple):
    """Diagnostics of one meta-episode's loss (scalars)."""

    a2c: jax.Array
    divergence: jax.Array  # L_D (before lambda_div)
    entropy_explore: jax.Array  # mean per live explore decision
    entropy_exploit: jax.Array  # mean per live exploit decision
    stats: EpisodeStats


def meta_episode_loss(runner: MetaEpisodeRunner, cfg, params, key: jax.Array,
                      inputs: LossInputs) -> tuple[jax.Array, LossInfo]:
    """Run one meta-episode with ``params`` and return its loss (scalar) and diagnostics.

    ``inputs.perms`` int32 [num_derangements, K] are the derangements for L_D (the
    trainer draws fresh ones each update, shared by the batch); ``inputs.scheme`` the
    reward scheme of the explore rewards.

    A2C terms are summed over all decision slots (K_explore * H explore + H
    exploit) and divided by that count, so the loss is a mean per decision.
    L_D is summed over rollouts and live explore steps and averaged over the
    sampled derangements; the loss is A2C - lambda_div * L_D.
    """
    ep = runner.run(params, key)
    explore, exploit = ep.explore, ep.exploit
    train_r = training_rewards(ep, inputs.scheme, cfg.k_explore, cfg.concurrent)
    g_explore, g_exploit = meta_episode_returns(ep, train_r, cfg.gamma)
    terms_explore = a2c_terms(explore.logits, explore.action, explore.value, g_explore,
                              explore.live, runner.policy)
    terms_exploit = a2c_terms(exploit.logits, exploit.action, exploit.value, g_exploit,
                              exploit.live, runner.policy)
    bonus_exploit = with_floor(terms_exploit, runner.policy, exploit.logits, exploit,
                               inputs.entropy_floor)
    a2c = per_slot(terms_explore, bonus_exploit, explore.live.size + exploit.live.size,
                   cfg.value_coef, inputs.entropy_explore, inputs.entropy_exploit)

    l_div = divergence_loss(runner, cfg, params, explore.logits, explore, inputs.perms)
    info = LossInfo(
        a2c=a2c,
        divergence=l_div,
        entropy_explore=terms_explore.entropy / jnp.maximum(jnp.sum(explore.live), 1),
        entropy_exploit=terms_exploit.entropy / jnp.maximum(jnp.sum(exploit.live), 1),
        stats=episode_stats(ep),
    )
    return a2c - inputs.lambda_div * l_div, info


class UpdateMetrics(NamedTuple):
    """A2C's training-batch diagnostics of one update (leaves [R, chunk] from a chunk)."""

    loss: jax.Array
    a2c: jax.Array
    divergence: jax.Array
    entropy_explore: jax.Array
    entropy_exploit: jax.Array
    grad_norm: jax.Array
    success: jax.Array
    visited_goals: jax.Array
    finite: jax.Array  # bool: loss, gradient norm and the updated parameters all finite


class A2C(Learner):
    """Advantage actor-critic with Monte-Carlo returns (the paper's): one fused
    collect-and-differentiate pass over a batch, one optimizer step."""

    name = "a2c"
    options: Mapping[str, Option] = {}

    def make_update(self, runner, cfg, optimizer, mesh) -> Update:
        loss = functools.partial(meta_episode_loss, runner, cfg)

        def update(params, opt_state, inputs: UpdateInputs):
            keys = shard_batch(jax.random.split(inputs.key, cfg.batch_size), mesh)
            loss_inputs = inputs.loss_inputs()
            (params, opt_state), (value, info, grad_norm) = gradient_step(
                optimizer, (params, opt_state), keys, lambda p, k: loss(p, k, loss_inputs),
                inputs.hp.learning_rate)
            metrics = UpdateMetrics(
                loss=value,
                a2c=info.a2c,
                divergence=info.divergence,
                entropy_explore=info.entropy_explore,
                entropy_exploit=info.entropy_exploit,
                grad_norm=grad_norm,
                success=info.stats.success,
                visited_goals=info.stats.visited_goals,
                finite=jnp.bool_(True),
            )
            return params, opt_state, metrics

        return update
