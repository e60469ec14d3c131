"""PPO, whole meta-episodes: the learner (``PPO``: its options and traced options), what a
batch keeps of the collecting policy (``collect``), GAE over a meta-episode, the loss of a
meta-episode replayed from its start (``ppo_meta_episode_loss``) and the update (collect a
batch, then ``epochs`` passes over shuffled minibatches of meta-episodes). With the
``window`` option the update is ``truncated.truncated_update``'s, built on these pieces.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from cmrl_jax.errors import ConfigError
from cmrl_jax.learners.base import (
    Learner,
    Option,
    Update,
    boolean,
    int_in,
    nonnegative_int,
    number_in,
)
from cmrl_jax.learners.common import (
    LossInputs,
    UpdateInputs,
    batch_stats,
    divergence_loss,
    per_slot,
    sgd_epochs,
    training_rewards,
    with_floor,
)
from cmrl_jax.learners.ppo.maths import gae, normalize, ppo_terms
from cmrl_jax.parallel import shard_batch

if TYPE_CHECKING:
    from cmrl_jax.agent.engine import MetaEpisode, MetaEpisodeRunner, Transition

# ``cfg`` below is a ``config.TrainConfig`` (not imported: the config imports the learners).


class PPOTraced(NamedTuple):
    """PPO's traced options (``train.HParams.learner``; leaves [R] when stacked over runs)."""

    clip: jax.Array  # epsilon of the clipped surrogate
    gae_lambda: jax.Array
    value_clip: jax.Array  # 0: off


class PPOInfo(NamedTuple):
    """Diagnostics of one meta-episode's (or window's) PPO loss (scalars)."""

    ppo: jax.Array  # the PPO loss (before lambda_div * L_D)
    divergence: jax.Array
    entropy_explore: jax.Array  # mean per live explore decision
    entropy_exploit: jax.Array
    approx_kl: jax.Array  # mean per live decision
    clip_fraction: jax.Array  # fraction of live decisions whose ratio left [1 - eps, 1 + eps]


class PPOMetrics(NamedTuple):
    """PPO's diagnostics of one update: means over its epochs' minibatch steps (the loss
    terms) and over the collected batch (success, visited goals)."""

    loss: jax.Array
    ppo: jax.Array
    divergence: jax.Array
    entropy_explore: jax.Array
    entropy_exploit: jax.Array
    grad_norm: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array
    success: jax.Array
    visited_goals: jax.Array
    finite: jax.Array


def meta_episode_advantages(ep: MetaEpisode, train_rewards: jax.Array, gamma: float,
                            lam: jax.Array):
    """GAE(lambda) advantages of explore [T_e, R] and exploit [H, 1] steps (0 where masked).

    As ``a2c.meta_episode_returns``: each explore rollout's decisions continue into the
    exploit sub-episode, so its last live step bootstraps from the exploit's first value
    and advantage; the exploit sub-episode ends the meta-episode (0, 0). Explore rewards
    are the scheme's (``training_rewards``), exploit rewards raw.
    """
    exploit = ep.exploit
    adv_exploit = gae(exploit.reward, exploit.value, exploit.live, jnp.zeros((1,)),
                      jnp.zeros((1,)), gamma, lam)
    r = train_rewards.shape[1]
    adv_explore = gae(train_rewards, ep.explore.value, ep.explore.live,
                      jnp.broadcast_to(exploit.value[0, 0], (r,)),
                      jnp.broadcast_to(adv_exploit[0, 0], (r,)), gamma, lam)
    return adv_explore, adv_exploit


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
    adv_explore, adv_exploit = meta_episode_advantages(ep, train_r, cfg.gamma, gae_lambda)
    logp = runner.policy.log_prob
    return Collected(
        episode=ep,
        logp_explore=logp(ep.explore.logits, ep.explore.action),
        logp_exploit=logp(ep.exploit.logits, ep.exploit.action),
        advantage_explore=adv_explore,
        advantage_exploit=adv_exploit,
        target_explore=adv_explore + ep.explore.value,
        target_exploit=adv_exploit + ep.exploit.value,
    )


def collect_batch(runner: MetaEpisodeRunner, cfg, mesh, params,
                  inputs: UpdateInputs) -> tuple[Collected, jax.Array]:
    """PPO's batch: ``cfg.batch_size`` meta-episodes collected with ``params``
    (``collect``), and the key left for the shuffles."""
    k_collect, k_shuffle = jax.random.split(inputs.key)
    keys = shard_batch(jax.random.split(k_collect, cfg.batch_size), mesh)
    hp = inputs.hp
    batch = jax.vmap(
        lambda k: collect(runner, cfg, params, k, hp.scheme, hp.learner.gae_lambda)
    )(keys)
    return batch, k_shuffle


def normalized(c: Collected) -> Collected:
    """``c`` (a minibatch) with its advantages normalised together (``maths.normalize``);
    the value targets stay the collected ones."""
    explore, exploit = c.episode.explore, c.episode.exploit
    adv_explore, adv_exploit = normalize((c.advantage_explore, c.advantage_exploit),
                                         (explore.live, exploit.live))
    return c._replace(advantage_explore=adv_explore, advantage_exploit=adv_exploit)


def ppo_meta_episode_loss(runner: MetaEpisodeRunner, cfg, params, c: Collected,
                          inputs: LossInputs) -> tuple[jax.Array, PPOInfo]:
    """PPO's loss of one collected meta-episode under ``params`` (scalar) and diagnostics.

    The agent replays the stored inputs from the meta-episode's initial memory
    (``MetaEpisodeRunner.replay``). The policy term uses ``c``'s advantages (possibly
    normalised: ``normalized``), the value term ``c``'s targets (raw advantages plus the
    collected values); ``inputs.options`` is a ``PPOTraced``. Normalised per decision slot
    as A2C's loss (``a2c.meta_episode_loss``); the same divergence term.
    """
    ep = c.episode
    explore, exploit = ep.explore, ep.exploit
    explore_logits, explore_value, exploit_logits, exploit_value = runner.replay(params, ep)
    policy, opts = runner.policy, inputs.options

    def terms(logits, value, t: Transition, old_logp, adv, target):
        return ppo_terms(policy.log_prob(logits, t.action), old_logp, adv, value, t.value,
                         target, policy.entropy(logits, t.action), t.live, opts.clip,
                         opts.value_clip)

    terms_explore = terms(explore_logits, explore_value, explore, c.logp_explore,
                          c.advantage_explore, c.target_explore)
    terms_exploit = terms(exploit_logits, exploit_value, exploit, c.logp_exploit,
                          c.advantage_exploit, c.target_exploit)
    bonus_exploit = with_floor(terms_exploit, policy, exploit_logits, exploit,
                               inputs.entropy_floor)
    ppo = per_slot(terms_explore, bonus_exploit, explore.live.size + exploit.live.size,
                   cfg.value_coef, inputs.entropy_explore, inputs.entropy_exploit)
    l_div = divergence_loss(runner, cfg, params, explore_logits, explore, inputs.perms)
    live = jnp.maximum(jnp.sum(explore.live) + jnp.sum(exploit.live), 1)
    info = PPOInfo(
        ppo=ppo,
        divergence=l_div,
        entropy_explore=terms_explore.entropy / jnp.maximum(jnp.sum(explore.live), 1),
        entropy_exploit=terms_exploit.entropy / jnp.maximum(jnp.sum(exploit.live), 1),
        approx_kl=(terms_explore.approx_kl + terms_exploit.approx_kl) / live,
        clip_fraction=(terms_explore.clipped + terms_exploit.clipped) / live,
    )
    return ppo - inputs.lambda_div * l_div, info


MAX_EPOCHS = 100
"""The most passes over one batch an update may make (a static option: it sizes the program)."""
MAX_MINIBATCHES = 4096
"""The most minibatches per pass (each at least one meta-episode of the batch)."""


class PPO(Learner):
    """Proximal policy optimisation with GAE(lambda): collect a batch of meta-episodes,
    then ``epochs`` passes over ``minibatches`` shuffled minibatches of meta-episodes, one
    optimizer step each, every step replaying each meta-episode's memory from its start."""

    name = "ppo"
    options: Mapping[str, Option] = {
        "epochs": Option(2, False, int_in(1, MAX_EPOCHS),
                         f"passes over the batch per update (1 to {MAX_EPOCHS})"),
        "minibatches": Option(2, False, int_in(1, MAX_MINIBATCHES),
                              "minibatches per pass (of meta-episodes; must divide the batch; "
                              f"1 to {MAX_MINIBATCHES})"),
        "clip": Option(0.2, True, number_in(0.0, strict=True),
                       "epsilon of the clipped surrogate (> 0)"),
        "gae_lambda": Option(0.95, True, number_in(0.0, 1.0), "GAE lambda in [0, 1]"),
        "value_clip": Option(0.0, True, number_in(0.0),
                             "clip the value's step to +-value_clip (0: off)"),
        # Off by default: the loss then has A2C's scale, so an env's entropy coefficients
        # and lambda_div mean the same for both learners (on Table 1, normalised
        # advantages let the exploit policy collapse: docs/results.md).
        "normalize_advantages": Option(False, False, boolean,
                                       "advantages to mean 0, std 1 per minibatch"),
        # Truncated backpropagation (docs/design.md, "Truncated backpropagation"): the
        # update's epochs and minibatches run once per window, in order, each window
        # re-run from the memory the collection carried into it.
        "window": Option(0, False, nonnegative_int,
                         "decision slots per truncated-backpropagation window (0: whole "
                         "meta-episodes; must divide H)"),
    }

    def check(self, cfg) -> None:
        super().check(cfg)
        opts = self.resolve(dict(cfg.learner_options))
        m, w = opts["minibatches"], opts["window"]
        if cfg.batch_size % m:
            raise ConfigError(f"learner option minibatches ({m}) must divide the batch size "
                              f"({cfg.batch_size})")
        if w and cfg.horizon % w:
            raise ConfigError(f"learner option window ({w}) must divide the horizon H "
                              f"({cfg.horizon}): windows never straddle a sub-episode")

    def traced_values(self, cfg) -> PPOTraced:
        return PPOTraced(**super().traced_values(cfg))

    def make_update(self, runner, cfg, optimizer, mesh) -> Update:
        opts = self.resolve(dict(cfg.learner_options))
        epochs = functools.partial(sgd_epochs, optimizer, epochs=opts["epochs"],
                                   num_minibatches=opts["minibatches"])
        if opts["window"]:
            # The truncated variant builds on this module's collection and types.
            from cmrl_jax.learners.ppo.truncated import truncated_update

            return truncated_update(runner, cfg, mesh, epochs, opts["window"],
                                    opts["normalize_advantages"])
        return whole_episode_update(runner, cfg, mesh, epochs, opts["normalize_advantages"])


def whole_episode_update(runner, cfg, mesh, epochs, normalize_advantages: bool) -> Update:
    """PPO's update of whole meta-episodes. ``epochs`` is ``common.sgd_epochs`` with the
    optimizer and the static options bound."""
    loss = functools.partial(ppo_meta_episode_loss, runner, cfg)
    prepare = normalized if normalize_advantages else None

    def update(params, opt_state, inputs: UpdateInputs):
        batch, k_shuffle = collect_batch(runner, cfg, mesh, params, inputs)
        loss_inputs = inputs.loss_inputs()
        (params, opt_state), (value, info, grad_norm) = epochs(
            (params, opt_state), batch, lambda p, c: loss(p, c, loss_inputs), k_shuffle,
            inputs.hp.learning_rate, prepare=prepare)
        stats = batch_stats(batch.episode)
        metrics = PPOMetrics(
            loss=jnp.mean(value),
            ppo=jnp.mean(info.ppo),
            divergence=jnp.mean(info.divergence),
            entropy_explore=jnp.mean(info.entropy_explore),
            entropy_exploit=jnp.mean(info.entropy_exploit),
            grad_norm=jnp.mean(grad_norm),
            approx_kl=jnp.mean(info.approx_kl),
            clip_fraction=jnp.mean(info.clip_fraction),
            success=stats.success,
            visited_goals=stats.visited_goals,
            finite=jnp.bool_(True),
        )
        return params, opt_state, metrics

    return update
