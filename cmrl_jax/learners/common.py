"""What every learner shares, written once: an update's inputs (``UpdateInputs``) and a
loss's (``LossInputs``), the explore rewards after the reward scheme, the loss as a mean
per decision slot, the divergence term, the optimizer step and the epoch / minibatch loop.

Like every module of ``cmrl_jax.learners`` this one imports nothing at its top that imports
gymnax (the config imports the learners; docs/extending.md, "Learners"): the engine's
types are for annotations only, and ``episode_stats`` imports the engine's side when it is
traced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from cmrl_jax.divergence import cross_divergence
from cmrl_jax.rewards import apply_scheme

if TYPE_CHECKING:
    from cmrl_jax.agent.engine import MetaEpisode, MetaEpisodeRunner, Transition
    from cmrl_jax.agent.evaluate import EpisodeStats

# ``cfg`` below is a ``config.TrainConfig`` (not imported: the config imports the learners).


class LossInputs(NamedTuple):
    """What a meta-episode loss reads besides the parameters and its batch item: one run's
    traced values for one update, shared by the batch."""

    perms: jax.Array  # int32 [num_derangements, K]: the update's derangements (L_D)
    scheme: jax.Array  # int32, index into rewards.SCHEMES
    lambda_div: jax.Array  # float32
    entropy_explore: jax.Array  # float32, the annealed entropy coefficients
    entropy_exploit: jax.Array
    options: Any = None  # the learner's traced options (``Learner.traced_values``)
    entropy_floor: jax.Array | None = None  # float32 nats, the exploit bonus's floor, or off


class UpdateInputs(NamedTuple):
    """One update's inputs (one run's; ``train.make_train`` builds them each update)."""

    hp: Any  # train.HParams: learning_rate, lambda_div, scheme, seed, learner
    key: jax.Array  # the update's batch key
    perms: jax.Array  # int32 [num_derangements, K]: fresh derangements, shared by the batch
    entropy_explore: jax.Array  # float32, annealed (``linear_anneal``)
    entropy_exploit: jax.Array
    entropy_floor: jax.Array | None = None  # float32 nats, annealed; None: no floor

    def loss_inputs(self) -> LossInputs:
        """What the update's losses read of it."""
        return LossInputs(self.perms, self.hp.scheme, self.hp.lambda_div,
                          self.entropy_explore, self.entropy_exploit, self.hp.learner,
                          self.entropy_floor)


def linear_anneal(step: jax.Array, start: float, end: float, duration: float) -> jax.Array:
    """Linear schedule from ``start`` to ``end`` over ``duration`` steps, then ``end``."""
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / jnp.maximum(duration, 1.0), 0.0, 1.0)
    return start + (end - start) * frac


def episode_stats(ep: MetaEpisode) -> EpisodeStats:
    """``agent.evaluate.episode_stats`` of one meta-episode; imported here when traced,
    the learners' one way into the engine's side."""
    from cmrl_jax.agent.evaluate import episode_stats as stats

    return stats(ep)


def batch_stats(episodes: MetaEpisode) -> EpisodeStats:
    """Means of ``episode_stats`` over a batch of meta-episodes (leading axis)."""
    return jax.tree.map(jnp.mean, jax.vmap(episode_stats)(episodes))


def training_rewards(ep: MetaEpisode, scheme: jax.Array, k_explore: int, concurrent: bool):
    """Explore rewards after the reward scheme: [T_e, R] -> [T_e, R].

    The scheme sees a [K, T] view: K concurrent rollouts x H steps (CMRL), or
    K sub-episodes x H steps of the single sequential rollout (RL2 / ERL2).
    """
    explore = ep.explore
    if concurrent:
        return apply_scheme(scheme, explore.reward.T, explore.live.T).T
    t_e = explore.reward.shape[0]
    view = lambda a: jnp.reshape(a, (k_explore, t_e // k_explore))
    return jnp.reshape(apply_scheme(scheme, view(explore.reward), view(explore.live)),
                       (t_e, 1))


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


def floored_entropy(entropy: jax.Array, mask: jax.Array, floor: jax.Array) -> jax.Array:
    """The exploit entropy bonus's sum with a floor: sum over live steps of min(H, floor).

    Args:
        entropy: float32 [...], each decision's H(pi); mask: bool/float [...];
        floor: float32 scalar, in nats.
    Returns:
        float32 scalar. Its gradient is H's on the live steps whose entropy is under the
        floor and 0 elsewhere: the bonus holds the policy's entropy up at the floor and
        leaves the policy gradient alone above it.
    """
    return jnp.sum(mask.astype(jnp.float32) * jnp.minimum(entropy, floor))


def with_floor(terms, policy, logits: jax.Array, t: Transition, floor: jax.Array | None):
    """``terms`` (``A2CTerms`` / ``PPOTerms`` of an exploit phase under ``logits``) with its
    entropy sum floored (``floored_entropy``) for the loss; ``terms`` itself if ``floor``
    is None. The diagnostics keep the unfloored entropy."""
    if floor is None:
        return terms
    return terms._replace(
        entropy=floored_entropy(policy.entropy(logits, t.action), t.live, floor))


def divergence_loss(runner: MetaEpisodeRunner, cfg, params, logits: jax.Array,
                    explore: Transition, perms: jax.Array) -> jax.Array:
    """L_D of one concurrent explore phase (scalar; 0 for a sequential program).

    ``logits`` [T, K, P]: the explore heads under ``params`` (the run's own, or a
    replay's); each derangement in ``perms`` [num_derangements, K] re-runs the explore
    network on the permuted rollouts' inputs. Summed over rollouts and live explore
    steps, averaged over the derangements.
    """
    l_div = jnp.zeros(())
    if cfg.concurrent:
        div = runner.policy.divergence(cfg.divergence)
        for perm in perms:
            cross = runner.rerun_explore(params, explore.x[:, perm], explore.live[:, perm])
            l_div += cross_divergence(logits, cross, perm, explore.live, div)
        l_div /= cfg.num_derangements
    return l_div


# A loss of one batch item: ``loss(params, item) -> (scalar, info of scalars)``.
ItemLoss = Callable[[Any, Any], tuple[jax.Array, Any]]


def gradient_step(optimizer: optax.GradientTransformation, carry, batch, loss: ItemLoss,
                  learning_rate: jax.Array):
    """One optimizer step on the mean of ``loss`` over ``batch`` (vmapped over its leading
    axis), the (traced) learning rate applied after ``optimizer``.

    ``carry`` is (params, opt_state); -> (params, opt_state), (loss, info, gradient norm),
    the loss and each leaf of ``info`` the batch's mean.
    """
    params, opt_state = carry

    def batch_loss(params):
        value, info = jax.vmap(lambda item: loss(params, item))(batch)
        return jnp.mean(value), jax.tree.map(jnp.mean, info)

    (value, info), grads = jax.value_and_grad(batch_loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - learning_rate * u, params, updates)
    return (params, opt_state), (value, info, optax.tree.norm(grads))


def sgd_epochs(optimizer: optax.GradientTransformation, carry, batch, loss: ItemLoss,
               key: jax.Array, learning_rate: jax.Array, *, epochs: int,
               num_minibatches: int, prepare: Callable[[Any], Any] | None = None):
    """``epochs`` passes over ``batch`` (leading axis B), each in ``num_minibatches``
    minibatches of a fresh shuffle: one ``gradient_step`` per minibatch.

    ``prepare`` (optional) maps each gathered minibatch before its step (PPO: normalise its
    advantages). ``carry`` is (params, opt_state); -> carry, (loss, info, gradient norm)
    with leaves [epochs, num_minibatches].
    """
    n = jax.tree.leaves(batch)[0].shape[0]
    size = n // num_minibatches

    def minibatch_step(carry, idx):
        minibatch = jax.tree.map(lambda a: a[idx], batch)  # gathered, not a shuffled copy
        if prepare is not None:
            minibatch = prepare(minibatch)
        return gradient_step(optimizer, carry, minibatch, loss, learning_rate)

    def epoch(carry, k):
        order = jax.random.permutation(k, n)
        return jax.lax.scan(minibatch_step, carry, jnp.reshape(order, (num_minibatches, size)))

    return jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
