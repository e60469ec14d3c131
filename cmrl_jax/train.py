"""``make_train``: a chunk of A2C updates for many runs as one compiled program.

Runs (seeds x methods x learning rates sharing one architecture) are vmapped;
updates are a ``lax.scan``; Python only loops over chunks (see ``loop.py``).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from cmrl_jax.a2c import linear_anneal
from cmrl_jax.config import TrainConfig, get_method
from cmrl_jax.divergence import sample_derangement
from cmrl_jax.engine import MetaEpisodeRunner
from cmrl_jax.envspec import resolve_success
from cmrl_jax.evaluate import EpisodeStats, episode_stats
from cmrl_jax.loss import meta_episode_loss
from cmrl_jax.networks import make_agent
from cmrl_jax.parallel import (
    RUNS_AXIS,
    check_config,
    put_runs,
    replicated,
    runs_sharding,
    shard_batch,
)
from cmrl_jax.policy import make_policy
from cmrl_jax.registry import env_spec, make_env
from cmrl_jax.rewards import scheme_id


class HParams(struct.PyTreeNode):
    """Traced per-run hyperparameters (leaves [R] when stacked over runs)."""

    learning_rate: jax.Array  # float32
    lambda_div: jax.Array  # float32
    scheme: jax.Array  # int32, index into rewards.SCHEMES
    seed: jax.Array  # int32, seeds the evaluation keys


class RunnerState(struct.PyTreeNode):
    """Everything that changes during training (leaves [R, ...] when stacked)."""

    params: Any
    opt_state: Any
    key: jax.Array  # uint32 [2]
    update: jax.Array  # int32: updates done


class UpdateMetrics(NamedTuple):
    """Training-batch diagnostics of one update (leaves [R, chunk] from a chunk)."""

    loss: jax.Array
    a2c: jax.Array
    divergence: jax.Array
    entropy_explore: jax.Array
    entropy_exploit: jax.Array
    grad_norm: jax.Array
    success: jax.Array
    visited_goals: jax.Array
    finite: jax.Array  # bool: loss, gradient norm and the updated parameters all finite


def all_finite(tree) -> jax.Array:
    """Scalar bool: every element of every leaf of ``tree`` is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@dataclass(frozen=True)
class Trainer:
    """Compiled-program pieces of one ``TrainConfig``."""

    cfg: TrainConfig
    runner: MetaEpisodeRunner
    init: Any  # () -> (RunnerState [R], HParams [R])
    train_chunk: Any  # (RunnerState [R], HParams [R]) -> (RunnerState, UpdateMetrics [R, chunk])
    evaluate: Any  # (RunnerState [R], HParams [R]) -> EpisodeStats of means [R]


def make_runner(cfg: TrainConfig) -> MetaEpisodeRunner:
    """Environment, agent and meta-episode engine of ``cfg``."""
    env, env_params = make_env(cfg.env, **dict(cfg.env_kwargs))
    policy = make_policy(env.action_space(env_params))  # categorical or tanh-Gaussian head
    agent = make_agent(cfg.architecture, cfg.hidden, policy.num_params, cfg.k_explore,
                       cfg.cell)
    return MetaEpisodeRunner(
        env,
        env_params,
        agent,
        concurrent=cfg.concurrent,
        k_explore=cfg.k_explore,
        horizon=cfg.horizon,
        reward_scale=cfg.reward_input_scale,
        success=resolve_success(env_spec(cfg.env), env, env_params),  # the env's contract
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the (traced) learning rate is applied after."""
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.scale_by_adam())


def make_train(cfg: TrainConfig, runner: MetaEpisodeRunner | None = None, mesh=None,
               guard: bool = True):
    """Return ``train(states, hparams) -> (states, metrics)``: ``chunk_updates`` updates.

    ``metrics.finite`` [R, chunk] says, per run and update, whether the loss, the
    gradient norm and the updated parameters were all finite (``guard=False``:
    always True, for measuring the guard's cost).

    Pure and jittable; leaves of ``states`` / ``hparams`` carry a leading run axis [R].
    With a ``mesh`` (``parallel.device_mesh``) runs are split over its ``runs``
    axis and each update's meta-episodes over its ``data`` axis
    (``parallel.shard_batch``).
    """
    runner = runner or make_runner(cfg)
    tx = make_optimizer(cfg)
    anneal_steps = cfg.entropy_anneal_fraction * cfg.num_updates

    def update(state: RunnerState, hp: HParams) -> tuple[RunnerState, UpdateMetrics]:
        key, k_batch, k_perm = jax.random.split(state.key, 3)
        keys = shard_batch(jax.random.split(k_batch, cfg.batch_size), mesh)
        # Fresh derangements each update, shared by the batch (each one uniform).
        perms = jnp.zeros((cfg.num_derangements, cfg.k_explore), jnp.int32)
        if cfg.concurrent and cfg.k_explore >= 2:
            perms = jax.vmap(lambda k: sample_derangement(k, cfg.k_explore))(
                jax.random.split(k_perm, cfg.num_derangements)
            )
        ent_e = linear_anneal(
            state.update, cfg.entropy_explore_start, cfg.entropy_explore_end, anneal_steps
        )
        ent_x = linear_anneal(
            state.update, cfg.entropy_exploit_start, cfg.entropy_exploit_end, anneal_steps
        )

        def batch_loss(params):
            loss, info = jax.vmap(
                lambda k: meta_episode_loss(
                    runner, cfg, params, k, perms, hp.scheme, hp.lambda_div, ent_e, ent_x
                )
            )(keys)
            return jnp.mean(loss), jax.tree.map(jnp.mean, info)

        (loss, info), grads = jax.value_and_grad(batch_loss, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: p - hp.learning_rate * u, state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.bool_(True)
        if guard:  # the finite-value guard (docs/design.md, "Faults"): ~3 reductions
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite(params)
        metrics = UpdateMetrics(
            loss=loss,
            a2c=info.a2c,
            divergence=info.divergence,
            entropy_explore=info.entropy_explore,
            entropy_exploit=info.entropy_exploit,
            grad_norm=grad_norm,
            success=info.stats.success,
            visited_goals=info.stats.visited_goals,
            finite=finite,
        )
        return RunnerState(params, opt_state, key, state.update + 1), metrics

    def train_one(state: RunnerState, hp: HParams):
        return jax.lax.scan(lambda s, _: update(s, hp), state, None, length=cfg.chunk_updates)

    return jax.vmap(train_one, spmd_axis_name=RUNS_AXIS if mesh is not None else None)


def make_evaluate(cfg: TrainConfig, runner: MetaEpisodeRunner, mesh=None):
    """Return ``evaluate(states, hparams) -> EpisodeStats`` of means over
    ``eval_batches * eval_batch_size`` meta-episodes per run (leaves [R]).

    Evaluation keys depend only on the run's seed and its update count, so a
    resumed run evaluates exactly as an uninterrupted one.
    """

    def evaluate_one(state: RunnerState, hp: HParams) -> EpisodeStats:
        base = jax.random.fold_in(jax.random.PRNGKey(hp.seed), 0x5EED)
        key = jax.random.fold_in(base, state.update)
        keys = jax.random.split(key, cfg.eval_batches * cfg.eval_batch_size)
        keys = jnp.reshape(keys, (cfg.eval_batches, cfg.eval_batch_size) + keys.shape[1:])

        def batch(_, ks):
            ks = shard_batch(ks, mesh)
            eps = jax.vmap(lambda k: runner.run(state.params, k, greedy=cfg.eval_greedy))(ks)
            return None, jax.vmap(episode_stats)(eps)

        _, stats = jax.lax.scan(batch, None, keys)
        return jax.tree.map(jnp.mean, stats)

    return jax.vmap(evaluate_one, spmd_axis_name=RUNS_AXIS if mesh is not None else None)


def make_init(cfg: TrainConfig, runner: MetaEpisodeRunner):
    """Return ``init() -> (RunnerState [R], HParams [R])`` for ``cfg.runs``."""
    tx = make_optimizer(cfg)

    def init_one(seed: int) -> RunnerState:
        k_init, k_train = jax.random.split(jax.random.PRNGKey(seed))
        params = runner.agent.init(k_init, runner.input_dim)
        return RunnerState(params, tx.init(params), k_train, jnp.zeros((), jnp.int32))

    def init():
        states = [init_one(r.seed) for r in cfg.runs]
        state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        hp = HParams(
            learning_rate=jnp.array([r.learning_rate for r in cfg.runs], jnp.float32),
            lambda_div=jnp.array([r.lambda_div for r in cfg.runs], jnp.float32),
            scheme=jnp.array([scheme_id(get_method(r.method).scheme) for r in cfg.runs], jnp.int32),
            seed=jnp.array([r.seed for r in cfg.runs], jnp.int32),
        )
        return state, hp

    return init


def make_trainer(cfg: TrainConfig, mesh=None) -> Trainer:
    """Validate ``cfg`` and build its jitted init / train_chunk / evaluate.

    ``mesh`` (``parallel.device_mesh``): split runs and each update's batch over
    its devices; states then live sharded along ``runs`` and metrics come back
    replicated (every process can read them).
    """
    cfg.validate()
    check_config(mesh, cfg)
    runner = make_runner(cfg)
    init = make_init(cfg, runner)
    train, evaluate = make_train(cfg, runner, mesh), make_evaluate(cfg, runner, mesh)
    if mesh is None:
        return Trainer(cfg, runner, init, jax.jit(train, donate_argnums=0), jax.jit(evaluate))
    runs, whole = runs_sharding(mesh), replicated(mesh)
    return Trainer(
        cfg=cfg,
        runner=runner,
        init=lambda: put_runs(init(), mesh),
        train_chunk=jax.jit(train, in_shardings=(runs, runs), out_shardings=(runs, whole),
                            donate_argnums=0),
        evaluate=jax.jit(evaluate, in_shardings=(runs, runs), out_shardings=whole),
    )
