"""The meta-episode losses: A2C or PPO over explore and exploit phases minus lambda_div * L_D.

A2C's loss is fused with collection (``meta_episode_loss``: one forward pass,
differentiated). PPO collects first (``collect``: the meta-episode, the
collecting policy's log-probabilities, GAE advantages) and differentiates a
replay of the stored inputs (``ppo_meta_episode_loss``). Both use the same
reward schemes (``training_rewards``) and the same divergence term
(``divergence_loss``).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.agent.engine import MetaEpisode, MetaEpisodeRunner, Transition, WindowStarts
from cmrl_jax.agent.evaluate import EpisodeStats, episode_stats
from cmrl_jax.divergence import cross_divergence
from cmrl_jax.learners.a2c import a2c_terms, discounted_returns
from cmrl_jax.learners.ppo.maths import gae, ppo_terms
from cmrl_jax.rewards import apply_scheme

# ``cfg`` below is a ``config.TrainConfig`` (not imported: the config imports the
# learners, which import this module).


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


def meta_episode_advantages(ep: MetaEpisode, train_rewards: jax.Array, gamma: float,
                            lam: jax.Array):
    """GAE(lambda) advantages of explore [T_e, R] and exploit [H, 1] steps (0 where masked).

    As ``meta_episode_returns``: each explore rollout's decisions continue into the
    exploit sub-episode, so its last live step bootstraps from the exploit's first value
    and advantage; the exploit sub-episode ends the meta-episode (0, 0). Explore rewards
    are the scheme's (``training_rewards``), exploit rewards raw.
    """
    x = ep.exploit
    adv_x = gae(x.reward, x.value, x.live, jnp.zeros((1,)), jnp.zeros((1,)), gamma, lam)
    r = train_rewards.shape[1]
    adv_e = gae(train_rewards, ep.explore.value, ep.explore.live,
                jnp.broadcast_to(x.value[0, 0], (r,)), jnp.broadcast_to(adv_x[0, 0], (r,)),
                gamma, lam)
    return adv_e, adv_x


def per_slot(explore, exploit, slots: int, value_coef: float, entropy_explore: jax.Array,
             entropy_exploit: jax.Array) -> jax.Array:
    """A learner's loss as a mean per decision slot (scalar): policy terms, ``value_coef``
    times value terms, minus each phase's entropy bonus, summed over the explore and exploit
    terms (``A2CTerms`` / ``PPOTerms`` of sums) and divided by ``slots`` (K_explore * H + H).
    """
    return (
        explore.policy
        + exploit.policy
        + value_coef * (explore.value + exploit.value)
        - entropy_explore * explore.entropy
        - entropy_exploit * exploit.entropy
    ) / slots


def divergence_loss(runner: MetaEpisodeRunner, cfg, params, logits: jax.Array,
                    explore: Transition, perms: jax.Array) -> jax.Array:
    """L_D of one concurrent explore phase (scalar; 0 for a sequential program).

    ``logits`` [T, K, P]: the explore heads under ``params`` (the run's own, or a
    replay's); each derangement in ``perms`` [num_derangements, K] re-runs the explore
    network on the permuted rollouts' inputs. Summed over rollouts and live explore
    steps, averaged over the derangements.
    """
    e = explore
    l_div = jnp.zeros(())
    if cfg.concurrent:
        div = runner.policy.divergence(cfg.divergence)
        for perm in perms:
            cross = runner.rerun_explore(params, e.x[:, perm], e.live[:, perm])
            l_div += cross_divergence(logits, cross, perm, e.live, div)
        l_div /= cfg.num_derangements
    return l_div


def meta_episode_loss(
    runner: MetaEpisodeRunner,
    cfg,
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
    a2c = per_slot(te, tx, e.live.size + x.live.size, cfg.value_coef, entropy_explore,
                   entropy_exploit)

    l_div = divergence_loss(runner, cfg, params, e.logits, e, perms)
    info = LossInfo(
        a2c=a2c,
        divergence=l_div,
        entropy_explore=te.entropy / jnp.maximum(jnp.sum(e.live), 1),
        entropy_exploit=tx.entropy / jnp.maximum(jnp.sum(x.live), 1),
        stats=episode_stats(ep),
    )
    return a2c - lambda_div * l_div, info


class Collected(NamedTuple):
    """A meta-episode and what PPO keeps of the policy that collected it.

    Leaves as ``MetaEpisode``'s (explore [T_e, R], exploit [H, 1]); a leading batch
    axis when vmapped.
    """

    episode: MetaEpisode
    logp_explore: jax.Array  # float32 [T_e, R]   log pi_old(a)
    logp_exploit: jax.Array  # float32 [H, 1]
    advantage_explore: jax.Array  # float32 [T_e, R]   GAE, 0 where masked
    advantage_exploit: jax.Array  # float32 [H, 1]
    target_explore: jax.Array  # float32 [T_e, R]   value target: GAE + V_old
    target_exploit: jax.Array  # float32 [H, 1]


def collect(runner: MetaEpisodeRunner, cfg, params, key: jax.Array,
            scheme: jax.Array, gae_lambda: jax.Array) -> Collected:
    """Run one meta-episode with fixed ``params`` (no gradient) and compute what PPO's
    epochs need from it: log-probabilities of the taken actions and GAE advantages."""
    params = jax.lax.stop_gradient(params)
    ep = runner.run(params, key)
    train_r = training_rewards(ep, scheme, cfg.k_explore, cfg.concurrent)
    adv_e, adv_x = meta_episode_advantages(ep, train_r, cfg.gamma, gae_lambda)
    logp = runner.policy.log_prob
    return Collected(
        episode=ep,
        logp_explore=logp(ep.explore.logits, ep.explore.action),
        logp_exploit=logp(ep.exploit.logits, ep.exploit.action),
        advantage_explore=adv_e,
        advantage_exploit=adv_x,
        target_explore=adv_e + ep.explore.value,
        target_exploit=adv_x + ep.exploit.value,
    )


class PPOInfo(NamedTuple):
    """Diagnostics of one meta-episode's PPO loss (scalars)."""

    ppo: jax.Array  # the PPO loss (before lambda_div * L_D)
    divergence: jax.Array
    entropy_explore: jax.Array  # mean per live explore decision
    entropy_exploit: jax.Array
    approx_kl: jax.Array  # mean per live decision
    clip_fraction: jax.Array  # fraction of live decisions whose ratio left [1 - eps, 1 + eps]


def ppo_meta_episode_loss(
    runner: MetaEpisodeRunner,
    cfg,
    params,
    c: Collected,
    advantages: tuple[jax.Array, jax.Array],
    perms: jax.Array,
    lambda_div: jax.Array,
    entropy_explore: jax.Array,
    entropy_exploit: jax.Array,
    clip: jax.Array,
    value_clip: jax.Array,
) -> tuple[jax.Array, PPOInfo]:
    """PPO's loss of one collected meta-episode under ``params`` (scalar) and diagnostics.

    The agent replays the stored inputs from the meta-episode's initial memory
    (``MetaEpisodeRunner.replay``). ``advantages`` (explore [T_e, R], exploit [H, 1]) are
    the ones the policy term uses (``c``'s, possibly normalised); the value targets are
    ``c``'s (raw advantages plus the collected values). Normalised per decision slot as
    A2C's loss (``meta_episode_loss``); the same divergence term.
    """
    ep = c.episode
    e, x = ep.explore, ep.exploit
    e_logits, e_value, x_logits, x_value = runner.replay(params, ep)
    policy = runner.policy

    def terms(logits, value, t: Transition, old_logp, adv, target):
        return ppo_terms(policy.log_prob(logits, t.action), old_logp, adv, value, t.value,
                         target, policy.entropy(logits, t.action), t.live, clip, value_clip)

    te = terms(e_logits, e_value, e, c.logp_explore, advantages[0], c.target_explore)
    tx = terms(x_logits, x_value, x, c.logp_exploit, advantages[1], c.target_exploit)
    ppo = per_slot(te, tx, e.live.size + x.live.size, cfg.value_coef, entropy_explore,
                   entropy_exploit)
    l_div = divergence_loss(runner, cfg, params, e_logits, e, perms)
    live = jnp.maximum(jnp.sum(e.live) + jnp.sum(x.live), 1)
    info = PPOInfo(
        ppo=ppo,
        divergence=l_div,
        entropy_explore=te.entropy / jnp.maximum(jnp.sum(e.live), 1),
        entropy_exploit=tx.entropy / jnp.maximum(jnp.sum(x.live), 1),
        approx_kl=(te.approx_kl + tx.approx_kl) / live,
        clip_fraction=(te.clipped + tx.clipped) / live,
    )
    return ppo - lambda_div * l_div, info


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
                  cross)


def ppo_window_loss(
    runner: MetaEpisodeRunner,
    cfg,
    params,
    w: Window,
    advantage: jax.Array,
    explore: bool,
    perms: jax.Array,
    lambda_div: jax.Array,
    entropy_coef: jax.Array,
    clip: jax.Array,
    value_clip: jax.Array,
) -> tuple[jax.Array, PPOInfo]:
    """PPO's loss of one window (scalar) and diagnostics: truncated backpropagation.

    The agent re-runs the window's stored inputs from its carried start memory
    (``MetaEpisodeRunner.replay_window``: no gradient flows to earlier windows);
    ``advantage`` [W, R] is the window's (possibly normalised), the value targets are
    ``w``'s. A mean per decision slot of the window, as ``ppo_meta_episode_loss`` is of a
    meta-episode; an explore window of a concurrent program also carries the divergence
    term over its steps, each derangement's re-run from its own carried memory.
    """
    t, policy = w.steps, runner.policy
    logits, value = runner.replay_window(params, explore, w.memory, t.x, w.memory_steps)
    terms = ppo_terms(policy.log_prob(logits, t.action), w.logp, advantage, value, t.value,
                      w.target, policy.entropy(logits, t.action), t.live, clip, value_clip)
    loss = (terms.policy + cfg.value_coef * terms.value - entropy_coef * terms.entropy) \
        / t.live.size
    l_div = jnp.zeros(())
    if explore and cfg.concurrent:
        div = runner.policy.divergence(cfg.divergence)
        for j, perm in enumerate(perms):
            start = jax.tree.map(lambda a: a[j], w.cross_memory)  # noqa: B023
            cross, _ = runner.replay_window(params, True, start, t.x[:, perm],
                                            w.memory_steps[:, perm])
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
    return loss - lambda_div * l_div, info
