"""Exact fast paths: the same numbers as the plain computation, up to float reassociation.

Constant input features (``inputs.constant_inputs``, ``inputs.InputCompaction``):
Color-Choice declares the view features that never change; the engine leaves
them out of the agent input and the networks fold their share of the LSTM
input products into the biases. Compared here with the full-input path
(``use_constant_inputs=False``) on Table 2's two programs at a small size.
"""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.cells import CELL_PLUGINS
from cmrl_jax.agent.engine import MetaEpisodeRunner
from cmrl_jax.agent.inputs import constant_inputs
from cmrl_jax.agent.networks import ARCHITECTURES, make_agent
from cmrl_jax.commands.tables import TableArgs, make_plan
from cmrl_jax.config import get_method
from cmrl_jax.divergence import sample_derangement
from cmrl_jax.learners.a2c import meta_episode_loss
from cmrl_jax.learners.common import LossInputs
from cmrl_jax.rewards import scheme_id
from cmrl_jax.train import make_runner
from cmrl_jax_envs.color_choice import ColorChoice, EnvState, grid_params
from cmrl_jax_envs.monty_hall import MontyHall

RTOL = 1e-5  # relative, of the loss and of each gradient leaf's largest entry


@pytest.mark.parametrize(
    "num_goals,params",
    [(3, grid_params()), (3, grid_params(layout="free")), (2, grid_params(4, 8, "free")),
     (1, grid_params(3, 1, "free"))],
)
def test_constant_observation_is_constant(num_goals, params):
    """Every declared feature has its declared value in every observation: each agent cell and
    orientation (goals drawn at random), and the states of random walks from random resets."""
    env = ColorChoice(num_goals)
    mask, values = env.constant_observation(params)
    assert mask.shape == values.shape == env.observation_space(params).shape
    h, w = params.height, params.width
    states = [
        EnvState(agent_pos=jnp.array([r, c], jnp.int32), agent_dir=jnp.array(o, jnp.int32),
                 goal_pos=jnp.asarray(np.random.default_rng(r * w + c).integers(
                     0, (h, w), (num_goals, 2)), jnp.int32),
                 positive=jnp.array(0, jnp.int32), time=jnp.array(0, jnp.int32))
        for r in range(h) for c in range(w) for o in range(4)
    ]
    grid = jax.vmap(lambda s: env.get_obs(s, params))(jax.tree.map(lambda *a: jnp.stack(a),
                                                                    *states))

    def walk(key):
        k_reset, k_act = jax.random.split(key)
        obs0, s = env.reset_env(k_reset, params)

        def step(s, k):
            obs, s, _, _, _ = env.step_env(k, s, jax.random.randint(k, (), 0, 3), params)
            return s, obs

        _, obs = jax.lax.scan(step, s, jax.random.split(k_act, 30))
        return jnp.concatenate([obs0[None], obs])

    walks = jax.vmap(walk)(jax.random.split(jax.random.PRNGKey(0), 256))
    for obs in (np.asarray(grid), np.asarray(walks).reshape((-1,) + mask.shape)):
        np.testing.assert_array_equal(obs[:, mask], np.broadcast_to(values[mask],
                                                                    obs[:, mask].shape))
        # the declaration is complete: every other feature takes both values somewhere
        varying = obs.min(0) != obs.max(0)
        assert not np.any(varying & mask)
    if (h, w) == (5, 5):  # the paper's grid: 11 of the 15 view rows lie beyond it
        assert mask.sum() == 4 * 11 * 3


def test_no_declaration_no_change():
    """An env without ``constant_observation`` keeps the full input (the plain path)."""
    env = MontyHall(3)
    runner = MetaEpisodeRunner(env, env.default_params, make_agent("sequential", 8, 3, 3),
                               concurrent=False, k_explore=3, horizon=1)
    assert constant_inputs(env, env.default_params, runner.input_dim, runner.obs_dim) is None
    assert runner.compaction is None and runner.x_dim == runner.input_dim
    p = {"params": {"a": jnp.ones(3)}}
    assert runner.step_params(p) is p


# Every cell the resolver knows (the built-ins, installed entry points: the minGRU) and the
# documented example of a cell from outside the library.
EVERY_CELL = (*CELL_PLUGINS.names(), "examples.elman_cell:ELMAN")


@pytest.mark.parametrize("cell", EVERY_CELL)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_compact_step_equals_full_step(arch, cell):
    """One explore and one exploit step of every agent and cell: compact input with folded
    parameters (the cell's own rule) == full input with the original ones; a wrong constant
    value would show."""
    env, params = ColorChoice(3), grid_params()
    k = 3
    agent = make_agent(arch, 16, 3, k, cell)
    full = MetaEpisodeRunner(env, params, agent, concurrent=arch != "sequential", k_explore=k,
                             horizon=15, use_constant_inputs=False)
    fast = MetaEpisodeRunner(env, params, agent, concurrent=arch != "sequential", k_explore=k,
                             horizon=15)
    c = fast.compaction
    p = agent.init(jax.random.PRNGKey(0), full.input_dim)
    r = agent.num_rollouts
    x = jax.random.normal(jax.random.PRNGKey(1), (r, full.input_dim))
    x = x.at[:, np.asarray(c.const)].set(jnp.asarray(c.values))
    live = jnp.ones((r,), bool)

    def steps(params, x):
        carry, logits, value = agent.explore_step(params, agent.explore_carry(params), x, live)
        carry2, logits2, value2 = agent.exploit_step(
            params, agent.exploit_carry(params, carry), x[:1], live[:1])
        return carry, carry2, logits, value, logits2, value2

    want = steps(p, x)
    got = steps(fast.step_params(p), x[:, np.asarray(c.keep)])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6)
    # sensitivity: the same comparison fails if the constant features read 0 instead
    wrong = dataclasses.replace(c, values=(0.0,) * len(c.values))
    bad = steps(agent.compact_params(p, wrong), x[:, np.asarray(c.keep)])
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(bad), jax.tree.leaves(want), strict=True)) > 1e-3


def _table2_programs():
    """Table 2's two programs (sequential RL2 / ERL2, meta_lstm CMRL), small hidden size."""
    spec = importlib.import_module("experiments.table2").SPEC
    plan = make_plan(spec, TableArgs(seeds=1, batch_size=8))
    return {name: dataclasses.replace(cfg, hidden=16) for name, cfg in plan.programs}


@pytest.mark.parametrize("program", ["sequential", "meta_lstm"])
def test_table2_program_same_actions_loss_and_gradients(program):
    """Table 2's program on the fast path: identical sampled actions and goals, the same loss
    and gradients (rtol 1e-5) as the full-input path, from the same parameters and keys."""
    cfg = _table2_programs()[program]
    fast = make_runner(cfg)
    assert fast.compaction is not None and fast.x_dim == 53 and fast.input_dim == 185
    full = MetaEpisodeRunner(
        fast.env, fast.env_params, fast.agent, concurrent=fast.concurrent,
        k_explore=fast.k_explore, horizon=fast.horizon, reward_scale=fast.reward_scale,
        success=fast.success_fn, use_constant_inputs=False,
    )
    run = cfg.runs[-1]  # ERL2 / StDev-Until-Exploit: a reward scheme and (CMRL) L_D
    params = fast.agent.init(jax.random.PRNGKey(3), fast.input_dim)
    keys = jax.random.split(jax.random.PRNGKey(4), 8)
    perms = jax.vmap(lambda k: sample_derangement(k, cfg.k_explore))(
        jax.random.split(jax.random.PRNGKey(5), cfg.num_derangements))
    scheme = jnp.int32(scheme_id(get_method(run.method).scheme))

    @jax.jit
    def both(params):
        out = []
        for runner in (fast, full):
            def batch_loss(p, runner=runner):
                loss, info = jax.vmap(lambda k: meta_episode_loss(runner, cfg, p, k, LossInputs(
                    perms, scheme, jnp.float32(run.lambda_div), jnp.float32(0.05),
                    jnp.float32(0.05))))(keys)
                return jnp.mean(loss), info
            (loss, info), grads = jax.value_and_grad(batch_loss, has_aux=True)(params)
            eps = jax.vmap(lambda k, runner=runner: runner.run(params, k))(keys)
            out.append((loss, info, grads, eps))
        return out

    (loss_f, info_f, g_f, ep_f), (loss_r, info_r, g_r, ep_r) = both(params)
    for part in ("explore", "exploit"):
        a, b = getattr(ep_f, part), getattr(ep_r, part)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.goal, b.goal)
        np.testing.assert_array_equal(a.live, b.live)
        np.testing.assert_allclose(a.logits, b.logits, rtol=RTOL, atol=1e-6)
    assert ep_f.explore.x.shape[-1] == 53 and ep_r.explore.x.shape[-1] == 185
    np.testing.assert_allclose(loss_f, loss_r, rtol=RTOL)
    if cfg.concurrent:
        assert float(jnp.mean(info_r.divergence)) > 0
        np.testing.assert_allclose(info_f.divergence, info_r.divergence, rtol=RTOL, atol=1e-7)
    flat_f, flat_r = jax.tree.leaves_with_path(g_f), jax.tree.leaves(g_r)
    for (path, a), b in zip(flat_f, flat_r, strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * scale + 1e-9,
                                   err_msg=jax.tree_util.keystr(path))
    kernel = g_r["params"]["exploit"]["exploit_lstm"]["ii"]["kernel"]
    assert float(jnp.max(jnp.abs(kernel[-5:]))) > 0  # the gradients are not trivially zero


def test_fused_gru_is_flax_gru():
    """``FusedGRUCell`` (two products a step) has ``nn.GRUCell``'s parameter tree and initial
    values, and its outputs and gradients, at perturbed parameters."""
    import flax.linen as nn

    from cmrl_jax.agent.cells import FusedGRUCell

    x = jax.random.normal(jax.random.PRNGKey(3), (5, 7))
    h = jax.random.normal(jax.random.PRNGKey(4), (5, 6))
    ours, ref = FusedGRUCell(6), nn.GRUCell(6)
    p, q = ours.init(jax.random.PRNGKey(0), h, x), ref.init(jax.random.PRNGKey(0), h, x)
    assert jax.tree.structure(p) == jax.tree.structure(q)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q), strict=True):
        np.testing.assert_array_equal(a, b)
    leaves, tree = jax.tree.flatten(q)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    q = jax.tree.unflatten(tree, [a + 0.3 * jax.random.normal(k, a.shape)
                                  for a, k in zip(leaves, keys, strict=True)])
    np.testing.assert_allclose(ours.apply(q, h, x)[0], ref.apply(q, h, x)[0], rtol=RTOL,
                               atol=1e-6)
    grad = lambda m: jax.grad(lambda p: jnp.sum(m.apply(p, h, x)[0] ** 2))(q)  # noqa: E731
    for a, b in zip(jax.tree.leaves(grad(ours)), jax.tree.leaves(grad(ref)), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6)
