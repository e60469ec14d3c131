"""Learners: what turns a batch of meta-episodes into parameter updates (``LEARNERS``).

A learner is a plug-in: a name, its options (defaults, which are traced, how each
is checked) and ``make_update``, which returns one update of a run's parameters.
``cmrl_jax.train`` draws the batch's keys and the derangements, anneals the
entropy bonuses, calls the learner and guards the result; the engine, the reward
schemes, the divergence loss and the absorb step are the same for every learner.

- ``A2C``: the paper's learner. Its loss is computed in the pass that collects
  the meta-episodes (``loss.meta_episode_loss``) and one Adam step is taken:
  the same numbers as collect-then-learn for one on-policy gradient step, one
  forward pass cheaper.
- ``PPO``: collect (``loss.collect``: meta-episodes, the collecting policy's
  log-probabilities, GAE advantages), then several epochs over minibatches of
  meta-episodes, each replaying the memory from the meta-episode's start
  (``loss.ppo_meta_episode_loss``).

Options that are traced (PPO's clip, GAE lambda, value clip) live in
``train.HParams.learner``, one value per run: runs that differ only in them
share one compiled program (``RunSpec.learner_options``). Static options (epochs,
minibatches) change the program.

The config checks its learner here, so this module imports neither ``cmrl_jax.config``
nor, at its top, anything that imports gymnax (importing gymnax starts JAX's backend,
which ``--distributed`` must join first): the updates import the engine's side when
they are built.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from cmrl_jax.errors import ConfigError, check_number
from cmrl_jax.learners.ppo.maths import normalize


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


# ``update(params, opt_state, hp, key, perms, entropy_explore, entropy_exploit)
#   -> (params, opt_state, metrics)``; ``metrics.finite`` is set by the caller.
UpdateFn = Callable[..., tuple[Any, Any, NamedTuple]]


@dataclass(frozen=True)
class Option:
    """One learner option: its default, whether it is traced (per run), and its check."""

    default: Any
    traced: bool
    check: Callable[[str, Any], None]  # (name, value) -> None, or ConfigError
    doc: str = ""


def positive_int(name: str, value: Any) -> None:
    """An option check: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"learner option {name} must be a positive integer, got {value!r}")


def nonnegative_int(name: str, value: Any) -> None:
    """An option check: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"learner option {name} must be an integer >= 0, got {value!r}")


def number_in(low: float, high: float = math.inf, strict: bool = False):
    """An option check: a finite number in [low, high] (> low if ``strict``)."""

    def check(name: str, value: Any) -> None:
        check_number(f"learner option {name}", value, low, high, strict)

    return check


def boolean(name: str, value: Any) -> None:
    """An option check: true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"learner option {name} must be true or false, got {value!r}")


class Learner:
    """Base of a learner: option handling. Subclasses set ``name`` and ``options`` and
    implement ``make_update``."""

    name: str = ""
    options: Mapping[str, Option] = {}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value: its default, replaced by what ``given`` sets; ConfigError
        (one line) for an unknown option or a bad value."""
        for key in given:
            if key not in self.options:
                raise ConfigError(self.unknown(key))
        values = {k: o.default for k, o in self.options.items()} | dict(given)
        for key, value in values.items():
            self.options[key].check(key, value)
        return values

    def unknown(self, key: str) -> str:
        """The one line refusing an option this learner does not have."""
        return (f"learner {self.name} has no option {key!r}; its options: "
                f"{', '.join(self.options) or 'none'}")

    def traced(self) -> tuple[str, ...]:
        """Names of the options that are traced per run (``train.HParams.learner``)."""
        return tuple(k for k, o in self.options.items() if o.traced)

    def check(self, cfg) -> None:
        """ConfigError for options ``cfg`` (a ``TrainConfig``) cannot run with: unknown or
        bad values, per-run values of an option that is not traced."""
        self.resolve(dict(cfg.learner_options))
        traced = self.traced()
        for run in cfg.runs:
            for key, value in run.learner_options:
                if key not in traced:
                    what = "not traced" if key in self.options else "unknown"
                    raise ConfigError(f"run {run.row} seed {run.seed}: learner option {key!r} "
                                      f"is {what} for {self.name}; per-run values: "
                                      f"{', '.join(traced) or 'none'}")
                self.options[key].check(key, value)

    def run_values(self, cfg) -> list[dict[str, float]]:
        """Per run, the values of the traced options (the config's, then the run's)."""
        base = self.resolve(dict(cfg.learner_options))
        return [{k: float((base | dict(r.learner_options))[k]) for k in self.traced()}
                for r in cfg.runs]

    def make_update(self, runner, cfg, tx: optax.GradientTransformation, mesh) -> UpdateFn:
        """One update of one run's parameters (pure, jittable)."""
        raise NotImplementedError


def _step(tx, params, opt_state, grads, learning_rate):
    """One optimizer step with the (traced) learning rate applied after ``tx``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - learning_rate * u, params, updates)
    return params, opt_state


class A2C(Learner):
    """Advantage actor-critic with Monte-Carlo returns (the paper's): one fused
    collect-and-differentiate pass over a batch, one optimizer step."""

    name = "a2c"
    options: Mapping[str, Option] = {}

    def make_update(self, runner, cfg, tx, mesh) -> UpdateFn:
        from cmrl_jax.learners.loss import meta_episode_loss
        from cmrl_jax.parallel import shard_batch

        def update(params, opt_state, hp, key, perms, ent_e, ent_x):
            keys = shard_batch(jax.random.split(key, cfg.batch_size), mesh)

            def batch_loss(params):
                loss, info = jax.vmap(
                    lambda k: meta_episode_loss(
                        runner, cfg, params, k, perms, hp.scheme, hp.lambda_div, ent_e, ent_x
                    )
                )(keys)
                return jnp.mean(loss), jax.tree.map(jnp.mean, info)

            (loss, info), grads = jax.value_and_grad(batch_loss, has_aux=True)(params)
            new_params, opt_state = _step(tx, params, opt_state, grads, hp.learning_rate)
            metrics = UpdateMetrics(
                loss=loss,
                a2c=info.a2c,
                divergence=info.divergence,
                entropy_explore=info.entropy_explore,
                entropy_exploit=info.entropy_exploit,
                grad_norm=optax.tree.norm(grads),
                success=info.stats.success,
                visited_goals=info.stats.visited_goals,
                finite=jnp.bool_(True),
            )
            return new_params, opt_state, metrics

        return update


def _collect_batch(runner, cfg, params, hp, key: jax.Array, mesh):
    """PPO's batch: ``cfg.batch_size`` meta-episodes collected with ``params``
    (``loss.collect``), and the key left for the shuffles."""
    from cmrl_jax.learners.loss import collect
    from cmrl_jax.parallel import shard_batch

    k_collect, k_shuffle = jax.random.split(key)
    keys = shard_batch(jax.random.split(k_collect, cfg.batch_size), mesh)
    batch = jax.vmap(
        lambda k: collect(runner, cfg, params, k, hp.scheme, hp.learner["gae_lambda"])
    )(keys)
    return batch, k_shuffle


class PPO(Learner):
    """Proximal policy optimisation with GAE(lambda): collect a batch of meta-episodes,
    then ``epochs`` passes over ``minibatches`` shuffled minibatches of meta-episodes, one
    optimizer step each, every step replaying each meta-episode's memory from its start."""

    name = "ppo"
    options: Mapping[str, Option] = {
        "epochs": Option(2, False, positive_int, "passes over the batch per update"),
        "minibatches": Option(2, False, positive_int,
                              "minibatches per pass (of meta-episodes; must divide the batch)"),
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

    def make_update(self, runner, cfg, tx, mesh) -> UpdateFn:
        from cmrl_jax.agent.evaluate import episode_stats
        from cmrl_jax.learners.loss import ppo_meta_episode_loss

        opts = self.resolve(dict(cfg.learner_options))
        if opts["window"]:
            return self._truncated_update(runner, cfg, tx, mesh, opts)
        epochs, num_mb = opts["epochs"], opts["minibatches"]
        size = cfg.batch_size // num_mb

        def update(params, opt_state, hp, key, perms, ent_e, ent_x):
            batch, k_shuffle = _collect_batch(runner, cfg, params, hp, key, mesh)
            lp = hp.learner

            def minibatch_step(carry, idx):
                params, opt_state = carry
                mb = jax.tree.map(lambda a: a[idx], batch)  # gathered, not a shuffled copy
                e, x = mb.episode.explore, mb.episode.exploit
                adv = (mb.advantage_explore, mb.advantage_exploit)
                if opts["normalize_advantages"]:
                    adv = normalize(adv, (e.live, x.live))

                def loss_fn(p):
                    loss, info = jax.vmap(
                        lambda c, a_e, a_x: ppo_meta_episode_loss(
                            runner, cfg, p, c, (a_e, a_x), perms, hp.lambda_div, ent_e, ent_x,
                            lp["clip"], lp["value_clip"],
                        )
                    )(mb, *adv)
                    return jnp.mean(loss), jax.tree.map(jnp.mean, info)

                (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
                params, opt_state = _step(tx, params, opt_state, grads, hp.learning_rate)
                return (params, opt_state), (loss, info, optax.tree.norm(grads))

            def epoch(carry, k):
                order = jax.random.permutation(k, cfg.batch_size)
                return jax.lax.scan(minibatch_step, carry, jnp.reshape(order, (num_mb, size)))

            (params, opt_state), (loss, info, grad_norm) = jax.lax.scan(
                epoch, (params, opt_state), jax.random.split(k_shuffle, epochs)
            )
            stats = jax.tree.map(jnp.mean, jax.vmap(episode_stats)(batch.episode))
            metrics = PPOMetrics(
                loss=jnp.mean(loss),
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


    def _truncated_update(self, runner, cfg, tx, mesh, opts) -> UpdateFn:
        """PPO with truncated backpropagation (option ``window`` = W > 0).

        Collect the batch as the whole-meta-episode update does (the same advantages and
        targets), then take the carried memory at every window start
        (``MetaEpisodeRunner.window_starts``) and run the epochs over minibatches once per
        window, explore windows in order, then exploit windows: each optimizer step
        differentiates W decision slots re-run from the window's carried memory.
        """
        from cmrl_jax.agent.evaluate import episode_stats
        from cmrl_jax.learners.loss import ppo_window_loss, window_of

        epochs, num_mb, w = opts["epochs"], opts["minibatches"], opts["window"]
        size = cfg.batch_size // num_mb
        t_e = cfg.horizon * (1 if cfg.concurrent else cfg.k_explore)
        phases = ((True, t_e // w), (False, cfg.horizon // w))  # (explore?, windows)

        def update(params, opt_state, hp, key, perms, ent_e, ent_x):
            batch, k_shuffle = _collect_batch(runner, cfg, params, hp, key, mesh)
            lp = hp.learner
            starts = jax.vmap(lambda c: runner.window_starts(params, c.episode, w, perms))(
                batch)

            def phase_updates(carry, explore: bool, n: int, key):
                entropy_coef = ent_e if explore else ent_x

                def window_update(carry, ik):
                    i, k = ik
                    win = jax.vmap(lambda c, s: window_of(runner, c, s, explore, i, w))(
                        batch, starts)

                    def minibatch_step(carry, idx):
                        params, opt_state = carry
                        mb = jax.tree.map(lambda a: a[idx], win)
                        adv = mb.advantage
                        if opts["normalize_advantages"]:
                            (adv,) = normalize((adv,), (mb.steps.live,))

                        def loss_fn(p):
                            loss, info = jax.vmap(
                                lambda one, a: ppo_window_loss(
                                    runner, cfg, p, one, a, explore, perms, hp.lambda_div,
                                    entropy_coef, lp["clip"], lp["value_clip"])
                            )(mb, adv)
                            return jnp.mean(loss), jax.tree.map(jnp.mean, info)

                        (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
                        params, opt_state = _step(tx, params, opt_state, grads,
                                                  hp.learning_rate)
                        return (params, opt_state), (loss, info, optax.tree.norm(grads))

                    def epoch(carry, k):
                        order = jax.random.permutation(k, cfg.batch_size)
                        return jax.lax.scan(minibatch_step, carry,
                                            jnp.reshape(order, (num_mb, size)))

                    return jax.lax.scan(epoch, carry, jax.random.split(k, epochs))

                return jax.lax.scan(window_update, carry,
                                    (jnp.arange(n), jax.random.split(key, n)))

            k_e, k_x = jax.random.split(k_shuffle)
            carry, (loss_e, info_e, gn_e) = phase_updates((params, opt_state), *phases[0], k_e)
            (params, opt_state), (loss_x, info_x, gn_x) = phase_updates(carry, *phases[1], k_x)
            both = lambda a, b: jnp.mean(jnp.concatenate([a.ravel(), b.ravel()]))  # noqa: E731
            stats = jax.tree.map(jnp.mean, jax.vmap(episode_stats)(batch.episode))
            metrics = PPOMetrics(
                loss=both(loss_e, loss_x),
                ppo=both(info_e.ppo, info_x.ppo),
                divergence=jnp.mean(info_e.divergence),
                entropy_explore=jnp.mean(info_e.entropy_explore),
                entropy_exploit=jnp.mean(info_x.entropy_exploit),
                grad_norm=both(gn_e, gn_x),
                approx_kl=both(info_e.approx_kl, info_x.approx_kl),
                clip_fraction=both(info_e.clip_fraction, info_x.clip_fraction),
                success=stats.success,
                visited_goals=stats.visited_goals,
                finite=jnp.bool_(True),
            )
            return params, opt_state, metrics

        return update


LEARNERS: dict[str, Learner] = {learner.name: learner for learner in (A2C(), PPO())}
"""Learners by name (``--learner``; ``TrainConfig.learner``)."""


def get_learner(name: str) -> Learner:
    """The learner called ``name``; ConfigError naming the known ones if there is none."""
    if name not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; known: {', '.join(LEARNERS)}")
    return LEARNERS[name]
