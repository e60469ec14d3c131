"""``make_train``: a chunk of updates (any learner's) for many runs as one compiled program.

Runs (seeds x methods x learning rates sharing one architecture) are vmapped;
updates are a ``lax.scan``; Python only loops over chunks (see ``loop.py``).
"""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from cmrl_jax.agent.encoders import ENCODERS
from cmrl_jax.agent.engine import MetaEpisodeRunner
from cmrl_jax.agent.evaluate import EpisodeStats, episode_stats
from cmrl_jax.agent.networks import make_agent
from cmrl_jax.agent.policy import make_policy
from cmrl_jax.config import TrainConfig, get_method
from cmrl_jax.divergence import sample_derangement
from cmrl_jax.envspec import resolve_success
from cmrl_jax.learners import get_learner
from cmrl_jax.learners.a2c import UpdateMetrics
from cmrl_jax.learners.common import UpdateInputs, linear_anneal
from cmrl_jax.parallel import (
    RUNS_AXIS,
    check_config,
    put_runs,
    replicated,
    runs_sharding,
    shard_batch,
)
from cmrl_jax.registry import BoundEnv, bind_env
from cmrl_jax.rewards import scheme_id


class HParams(struct.PyTreeNode):
    """Traced per-run hyperparameters (leaves [R] when stacked over runs)."""

    learning_rate: jax.Array  # float32
    lambda_div: jax.Array  # float32
    scheme: jax.Array  # int32, index into rewards.SCHEMES
    seed: jax.Array  # int32, seeds the evaluation keys
    # the learner's traced options, float32 (``Learner.traced_values``: PPO's ``PPOTraced``)
    learner: Any = struct.field(default_factory=dict)


class RunnerState(struct.PyTreeNode):
    """Everything that changes during training (leaves [R, ...] when stacked)."""

    params: Any
    opt_state: Any
    key: jax.Array  # uint32 [2]
    update: jax.Array  # int32: updates done


__all__ = ["HParams", "RunnerState", "Trainer", "UpdateMetrics", "make_trainer"]


def all_finite(tree) -> jax.Array:
    """Scalar bool: every element of every leaf of ``tree`` is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@dataclass(frozen=True)
class Trainer:
    """Compiled-program pieces of one ``TrainConfig``."""

    cfg: TrainConfig
    runner: MetaEpisodeRunner
    init: Any  # () -> (RunnerState [R], HParams [R])
    train_chunk: Any  # (RunnerState [R], HParams [R]) -> (RunnerState, metrics [R, chunk])
    evaluate: Any  # (RunnerState [R], HParams [R]) -> EpisodeStats of means [R]
    evaluate_heldout: Any = None  # the same on the env's held-out tasks (None: it has none)


def make_runner(cfg: TrainConfig, env: BoundEnv | None = None,
                agent=None) -> MetaEpisodeRunner:
    """Environment, agent and meta-episode engine of ``cfg`` (``env``: its bound env,
    ``registry.bind_env``, or another variant of it, e.g. its held-out tasks; bound here
    if not given; ``agent``: an agent to share)."""
    bound = env if env is not None else bind_env(cfg.env, cfg.env_kwargs)
    env, env_params = bound.env, bound.params
    policy = make_policy(env.action_space(env_params))  # categorical or tanh-Gaussian head
    space = env.observation_space(env_params)
    encoder = ENCODERS[cfg.encoder].build(tuple(space.shape), getattr(space, "high", None))
    agent = agent or make_agent(cfg.architecture, cfg.hidden, policy.num_params,
                                cfg.k_explore, cfg.cell, encoder)
    return MetaEpisodeRunner(
        env,
        env_params,
        agent,
        concurrent=cfg.concurrent,
        k_explore=cfg.k_explore,
        horizon=cfg.horizon,
        reward_scale=cfg.reward_input_scale,
        success=resolve_success(bound.spec, env, env_params),  # the env's contract
        remat=cfg.remat,
        subepisode_start=cfg.subepisode_start,
    )


def make_heldout_runner(cfg: TrainConfig, runner: MetaEpisodeRunner,
                        env: BoundEnv | None = None) -> MetaEpisodeRunner | None:
    """The engine on the env's held-out tasks (``EnvSpec.heldout``), sharing ``runner``'s
    agent; None for an env without them. ``env``: the program's bound env, whose held-out
    variant is used (bound here if not given)."""
    bound = env if env is not None else bind_env(cfg.env, cfg.env_kwargs)
    held = bound.heldout
    return None if held is None else make_runner(cfg, held, runner.agent)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the (traced) learning rate is applied after."""
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                       optax.scale_by_adam(eps=cfg.adam_eps))


def make_train(cfg: TrainConfig, runner: MetaEpisodeRunner | None = None, mesh=None,
               guard: bool = True):
    """Return ``train(states, hparams) -> (states, metrics)``: ``chunk_updates`` updates.

    Each update is the learner's (``cfg.learner``, ``cmrl_jax.learners``); ``metrics`` is
    its metrics tuple (A2C: ``UpdateMetrics``). ``metrics.finite`` [R, chunk] says, per
    run and update, whether the loss, the gradient norm and the updated parameters were
    all finite (``guard=False``: always True, for measuring the guard's cost).

    Pure and jittable; leaves of ``states`` / ``hparams`` carry a leading run axis [R].
    With a ``mesh`` (``parallel.device_mesh``) runs are split over its ``runs``
    axis and each update's meta-episodes over its ``data`` axis
    (``parallel.shard_batch``).
    """
    runner = runner or make_runner(cfg)
    optimizer = make_optimizer(cfg)
    anneal_steps = cfg.entropy_anneal_fraction * cfg.num_updates
    learn = get_learner(cfg.learner).make_update(runner, cfg, optimizer, mesh)

    def update(state: RunnerState, hp: HParams):
        key, k_batch, k_perm = jax.random.split(state.key, 3)
        # Fresh derangements each update, shared by the batch (each one uniform).
        perms = jnp.zeros((cfg.num_derangements, cfg.k_explore), jnp.int32)
        if cfg.concurrent and cfg.k_explore >= 2:
            perms = jax.vmap(lambda k: sample_derangement(k, cfg.k_explore))(
                jax.random.split(k_perm, cfg.num_derangements)
            )
        entropy_explore = linear_anneal(
            state.update, cfg.entropy_explore_start, cfg.entropy_explore_end, anneal_steps
        )
        entropy_exploit = linear_anneal(
            state.update, cfg.entropy_exploit_start, cfg.entropy_exploit_end, anneal_steps
        )

        floor = None
        if cfg.exploit_floor:  # static: no floor, no trace of one
            floor = linear_anneal(state.update, cfg.entropy_exploit_floor_start,
                                  cfg.entropy_exploit_floor_end, anneal_steps)
        inputs = UpdateInputs(hp, k_batch, perms, entropy_explore, entropy_exploit, floor)
        params, opt_state, metrics = learn(state.params, state.opt_state, inputs)
        if guard:  # the finite-value guard (docs/design.md, "Faults"): ~3 reductions
            finite = (jnp.isfinite(metrics.loss) & jnp.isfinite(metrics.grad_norm)
                      & all_finite(params))
            metrics = metrics._replace(finite=finite)
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
    optimizer = make_optimizer(cfg)
    learner = get_learner(cfg.learner)

    def init_one(seed: int) -> RunnerState:
        k_init, k_train = jax.random.split(jax.random.PRNGKey(seed))
        params = runner.agent.init(k_init, runner.input_dim)
        return RunnerState(params, optimizer.init(params), k_train, jnp.zeros((), jnp.int32))

    def init():
        states = [init_one(r.seed) for r in cfg.runs]
        state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        hp = HParams(
            learning_rate=jnp.array([r.learning_rate for r in cfg.runs], jnp.float32),
            lambda_div=jnp.array([r.lambda_div for r in cfg.runs], jnp.float32),
            scheme=jnp.array([scheme_id(get_method(r.method).scheme) for r in cfg.runs], jnp.int32),
            seed=jnp.array([r.seed for r in cfg.runs], jnp.int32),
            learner=learner.traced_values(cfg),
        )
        return state, hp

    return init


def make_trainer(cfg: TrainConfig, mesh=None, env: BoundEnv | None = None) -> Trainer:
    """Validate ``cfg`` and build its jitted init / train_chunk / evaluate.

    ``mesh`` (``parallel.device_mesh``): split runs and each update's batch over
    its devices; states then live sharded along ``runs`` and metrics come back
    replicated (every process can read them). ``env``: ``cfg``'s bound env
    (``registry.bind_env``; bound here if not given); a config it already validated
    (``TrainConfig.validated``) is not validated again.
    """
    env = cfg.validated(env)
    check_config(mesh, cfg)
    runner = make_runner(cfg, env)
    heldout = make_heldout_runner(cfg, runner, env)
    init = make_init(cfg, runner)
    train, evaluate = make_train(cfg, runner, mesh), make_evaluate(cfg, runner, mesh)
    held = None if heldout is None else make_evaluate(cfg, heldout, mesh)
    if mesh is None:
        return Trainer(cfg, runner, init, jax.jit(train, donate_argnums=0), jax.jit(evaluate),
                       None if held is None else jax.jit(held))
    runs, whole = runs_sharding(mesh), replicated(mesh)
    on_mesh = lambda f: jax.jit(f, in_shardings=(runs, runs), out_shardings=whole)  # noqa: E731
    return Trainer(
        cfg=cfg,
        runner=runner,
        init=lambda: put_runs(init(), mesh),
        train_chunk=jax.jit(train, in_shardings=(runs, runs), out_shardings=(runs, whole),
                            donate_argnums=0),
        evaluate=on_mesh(evaluate),
        evaluate_heldout=None if held is None else on_mesh(held),
    )
