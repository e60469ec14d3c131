"""PPO with truncated backpropagation (option ``window`` = W > 0; docs/design.md,
"Truncated backpropagation").

Collect the batch as the whole-meta-episode update does (the same advantages and targets),
then take the carried memory at every window start (``MetaEpisodeRunner.window_starts``)
and run the epochs over minibatches once per window, explore windows in order, then
exploit windows: each optimizer step differentiates W decision slots re-run from the
window's carried memory.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.divergence import cross_divergence
from cmrl_jax.learners.base import Update
from cmrl_jax.learners.common import LossInputs, UpdateInputs, batch_stats, with_floor
from cmrl_jax.learners.ppo.maths import normalize, ppo_terms
from cmrl_jax.learners.ppo.update import Collected, PPOInfo, PPOMetrics, collect_batch

if TYPE_CHECKING:
    from cmrl_jax.agent.engine import MetaEpisodeRunner, Transition, WindowStarts


class Window(NamedTuple):
    """One window of a collected meta-episode's phase: what truncated backpropagation
    differentiates in one step (``window_of``). Leaves [W, R, ...] (a leading batch axis
    when vmapped); R is the phase's rollouts (K or 1 explore, 1 exploit)."""

    steps: Transition
    memory_steps: jax.Array  # bool [W, R]: where the memory steps (``memory_steps``)
    logp: jax.Array  # float32 [W, R]   log pi_old(a)
    advantage: jax.Array  # float32 [W, R]   GAE over the whole meta-episode
    target: jax.Array  # float32 [W, R]
    memory: Any  # the carried memory at the window's start
    cross_memory: Any  # [num_derangements, ...] the divergence re-runs' starts, or None
    first: jax.Array  # bool: the explore phase's first window (starts from the initial memory)


def window_of(runner: MetaEpisodeRunner, c: Collected, starts: WindowStarts, explore: bool,
              i: jax.Array, window: int) -> Window:
    """Window ``i`` (traced) of ``window`` slots of ``c``'s explore or exploit phase."""
    ep = c.episode
    cut = lambda a: jax.lax.dynamic_slice_in_dim(a, i * window, window, axis=0)  # noqa: E731
    pick = lambda tree: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
    if explore:
        t, logp, adv, target = (ep.explore, c.logp_explore, c.advantage_explore,
                                c.target_explore)
        steps, memory = runner.memory_steps(t.live), pick(starts.explore)
        cross = None if starts.cross is None else jax.tree.map(lambda a: a[:, i], starts.cross)
    else:
        t, logp, adv, target = (ep.exploit, c.logp_exploit, c.advantage_exploit,
                                c.target_exploit)
        steps, memory, cross = t.live, pick(starts.exploit), None
    return Window(jax.tree.map(cut, t), cut(steps), cut(logp), cut(adv), cut(target), memory,
                  cross, jnp.logical_and(explore, i == 0))


def normalized_window(w: Window) -> Window:
    """``w`` (a minibatch of windows) with its advantages normalised (``maths.normalize``)."""
    (advantage,) = normalize((w.advantage,), (w.steps.live,))
    return w._replace(advantage=advantage)


def ppo_window_loss(runner: MetaEpisodeRunner, cfg, params, w: Window, inputs: LossInputs, *,
                    explore: bool) -> tuple[jax.Array, PPOInfo]:
    """PPO's loss of one window (scalar) and diagnostics: truncated backpropagation.

    The agent re-runs the window's stored inputs from its carried start memory
    (``MetaEpisodeRunner.replay_window``: no gradient flows to earlier windows; the explore
    phase's first window starts from the learned initial memory); the policy term uses
    ``w``'s advantages (possibly normalised: ``normalized_window``), the value term ``w``'s
    targets, with the phase's entropy coefficient; an explore window of a concurrent
    program also carries the divergence term over its steps, each derangement's re-run
    from its own carried memory (the first window's from the initial memory).

    Scaled as the window's share of ``ppo_meta_episode_loss``: the PPO terms are divided
    by the meta-episode's decision slots, (K + 1) H, and L_D (a sum over steps) is the
    window's steps' part, so at the collecting parameters the windows' losses sum to the
    whole meta-episode's and lambda_div weighs L_D against PPO as it does there.
    """
    t, policy, opts = w.steps, runner.policy, inputs.options
    entropy_coef = inputs.entropy_explore if explore else inputs.entropy_exploit
    logits, value = runner.replay_window(params, explore, w.memory, t.x, w.memory_steps,
                                         w.first)
    terms = ppo_terms(policy.log_prob(logits, t.action), w.logp, w.advantage, value, t.value,
                      w.target, policy.entropy(logits, t.action), t.live, opts.clip,
                      opts.value_clip)
    bonus = terms if explore else with_floor(terms, policy, logits, t, inputs.entropy_floor)
    slots = (cfg.k_explore + 1) * cfg.horizon  # the meta-episode's: T_e R + H
    loss = (terms.policy + cfg.value_coef * terms.value - entropy_coef * bonus.entropy) / slots
    l_div = jnp.zeros(())
    if explore and cfg.concurrent:
        div = runner.policy.divergence(cfg.divergence)
        for j, perm in enumerate(inputs.perms):
            start = jax.tree.map(lambda a: a[j], w.cross_memory)  # noqa: B023
            cross, _ = runner.replay_window(params, True, start, t.x[:, perm],
                                            w.memory_steps[:, perm], w.first)
            l_div += cross_divergence(logits, cross, perm, t.live, div)
        l_div /= cfg.num_derangements
    live = jnp.maximum(jnp.sum(t.live), 1)
    entropy = terms.entropy / live
    info = PPOInfo(
        ppo=loss,
        divergence=l_div,
        entropy_explore=entropy if explore else jnp.zeros(()),
        entropy_exploit=jnp.zeros(()) if explore else entropy,
        approx_kl=terms.approx_kl / live,
        clip_fraction=terms.clipped / live,
    )
    return loss - inputs.lambda_div * l_div, info


def truncated_update(runner, cfg, mesh, epochs, window: int,
                     normalize_advantages: bool) -> Update:
    """PPO's update in windows of ``window`` decision slots. ``epochs`` is
    ``common.sgd_epochs`` with the optimizer and the static options bound."""
    t_e = cfg.horizon * (1 if cfg.concurrent else cfg.k_explore)
    prepare = normalized_window if normalize_advantages else None

    def update(params, opt_state, inputs: UpdateInputs):
        batch, k_shuffle = collect_batch(runner, cfg, mesh, params, inputs)
        starts = jax.vmap(
            lambda c: runner.window_starts(params, c.episode, window, inputs.perms))(batch)
        loss_inputs = inputs.loss_inputs()

        def phase(carry, explore: bool, n: int, key):
            """The epochs of the phase's ``n`` windows, in order."""
            loss = functools.partial(ppo_window_loss, runner, cfg, explore=explore)

            def window_epochs(carry, ik):
                i, k = ik
                win = jax.vmap(lambda c, s: window_of(runner, c, s, explore, i, window))(
                    batch, starts)
                return epochs(carry, win, lambda p, one: loss(p, one, loss_inputs), k,
                              inputs.hp.learning_rate, prepare=prepare)

            return jax.lax.scan(window_epochs, carry, (jnp.arange(n), jax.random.split(key, n)))

        k_explore, k_exploit = jax.random.split(k_shuffle)
        carry, (loss_explore, info_explore, norm_explore) = phase(
            (params, opt_state), True, t_e // window, k_explore)
        (params, opt_state), (loss_exploit, info_exploit, norm_exploit) = phase(
            carry, False, cfg.horizon // window, k_exploit)
        both = lambda a, b: jnp.mean(jnp.concatenate([a.ravel(), b.ravel()]))  # noqa: E731
        # a meta-episode's loss and L_D are its windows' sum (each window's: the mean over
        # its epochs' steps), comparable with the whole-meta-episode update's
        per_window = lambda a: jnp.mean(jnp.reshape(a, (a.shape[0], -1)), axis=1)  # noqa: E731
        total = lambda *parts: sum(jnp.sum(per_window(a)) for a in parts)  # noqa: E731
        stats = batch_stats(batch.episode)
        metrics = PPOMetrics(
            loss=total(loss_explore, loss_exploit),
            ppo=total(info_explore.ppo, info_exploit.ppo),
            divergence=total(info_explore.divergence),
            entropy_explore=jnp.mean(info_explore.entropy_explore),
            entropy_exploit=jnp.mean(info_exploit.entropy_exploit),
            grad_norm=both(norm_explore, norm_exploit),
            approx_kl=both(info_explore.approx_kl, info_exploit.approx_kl),
            clip_fraction=both(info_explore.clip_fraction, info_exploit.clip_fraction),
            success=stats.success,
            visited_goals=stats.visited_goals,
            finite=jnp.bool_(True),
        )
        return params, opt_state, metrics

    return update
