"""PPO: GAE and the clipped loss against hand-computed values, the memory replay, the learner
seam (traced options share a program) and a short real learning run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.engine import MetaEpisode, MetaEpisodeRunner, Transition
from cmrl_jax.agent.networks import make_agent
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.learners import LEARNERS, get_learner
from cmrl_jax.learners.a2c import discounted_returns, meta_episode_returns
from cmrl_jax.learners.common import training_rewards
from cmrl_jax.learners.ppo.maths import gae, normalize, ppo_terms
from cmrl_jax.learners.ppo.update import PPOMetrics, meta_episode_advantages
from cmrl_jax.rewards import scheme_id
from cmrl_jax.train import make_trainer
from cmrl_jax_envs.color_choice import ColorChoice, grid_params

# ----------------------------------------------------------------------------- GAE


def test_gae_by_hand():
    """rewards [1, 0, 2], values [0.5, 0.2, 0.1], gamma 0.9, lambda 0.8, nothing after:
    delta_2 = 1.9, A_2 = 1.9; delta_1 = 0.09 - 0.2 = -0.11, A_1 = -0.11 + 0.72 * 1.9 = 1.258;
    delta_0 = 1 + 0.18 - 0.5 = 0.68, A_0 = 0.68 + 0.72 * 1.258 = 1.58576."""
    a = gae(jnp.array([1.0, 0.0, 2.0]), jnp.array([0.5, 0.2, 0.1]), jnp.ones(3, bool),
            jnp.float32(0), jnp.float32(0), 0.9, jnp.float32(0.8))
    np.testing.assert_allclose(a, [1.58576, 1.258, 1.9], rtol=1e-6)


def test_gae_masked_steps_pass_through():
    """A goal at step 1 masks steps 2-3 (an early end); a masked step in the middle (a
    sequential sub-episode that ended early) links the live steps around it. gamma 0.5,
    lambda 0.5, bootstrap V' = 2, A' = 1.

    [live, live, masked, masked]: A_1 = r_1 + 0.5 * 2 - v_1 + 0.25 * 1 = 1 + 1 - 0.5 + 0.25
    = 1.75; A_0 = 0 + 0.5 * 0.5 - 1 + 0.25 * 1.75 = -0.3125; masked: 0.
    [live, masked, live]: A_2 = 3 + 1 - 1 + 0.25 = 3.25; A_0 = 1 + 0.5 * 1 - 0 + 0.25 * 3.25
    = 2.3125 (V' of step 0 is step 2's value; the masked step's reward and value are ignored).
    """
    a = gae(jnp.array([0.0, 1.0, 9.0, 9.0]), jnp.array([1.0, 0.5, 7.0, 7.0]),
            jnp.array([1, 1, 0, 0], bool), jnp.float32(2), jnp.float32(1), 0.5, 0.5)
    np.testing.assert_allclose(a, [-0.3125, 1.75, 0.0, 0.0], rtol=1e-6)
    a = gae(jnp.array([1.0, 9.0, 3.0]), jnp.array([0.0, 7.0, 1.0]),
            jnp.array([1, 0, 1], bool), jnp.float32(2), jnp.float32(1), 0.5, 0.5)
    np.testing.assert_allclose(a, [2.3125, 0.0, 3.25], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_gae_lambda_one_is_monte_carlo_and_zero_is_td(seed):
    """lambda = 1: A = G - V on live steps (returns bootstrapped with V' + A'); lambda = 0:
    A = r + gamma * V(next live step) - V."""
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    r = jax.random.normal(k[0], (12, 3))
    v = jax.random.normal(k[1], (12, 3))
    mask = jax.random.bernoulli(k[2], 0.7, (12, 3)).at[0].set(True)
    nv, na = jnp.array([0.3, -1.0, 2.0]), jnp.array([0.5, 0.0, -0.25])
    a1 = gae(r, v, mask, nv, na, 0.9, 1.0)
    g = discounted_returns(r, mask, nv + na, 0.9)
    np.testing.assert_allclose(np.where(mask, g - v, 0), a1, rtol=1e-5, atol=1e-5)
    a0 = np.asarray(gae(r, v, mask, nv, na, 0.9, 0.0))
    r, v, m = np.asarray(r), np.asarray(v), np.asarray(mask)
    for j in range(3):
        v_next = float(nv[j])
        for t in reversed(range(12)):
            if m[t, j]:
                np.testing.assert_allclose(a0[t, j], r[t, j] + 0.9 * v_next - v[t, j],
                                           rtol=1e-5, atol=1e-6)
                v_next = v[t, j]
            else:
                assert a0[t, j] == 0


def _transition(reward, live, value):
    reward = jnp.asarray(reward, jnp.float32)
    z = jnp.zeros(reward.shape)
    return Transition(z[..., None], z[..., None], jnp.asarray(value, jnp.float32),
                      z.astype(jnp.int32), reward, jnp.asarray(live, bool),
                      z.astype(jnp.int32) - 1)


@pytest.mark.parametrize("concurrent", [True, False])
def test_meta_episode_advantages_chain_into_the_exploit_sub_episode(concurrent):
    """With lambda = 1 every explore rollout's advantage is its return through the exploit
    sub-episode minus its value (``meta_episode_returns``), masked steps included."""
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    shape = (4, 3) if concurrent else (6, 1)
    live = jax.random.bernoulli(k[0], 0.7, shape).at[0].set(True)
    explore = _transition(jax.random.normal(k[1], shape), live, jax.random.normal(k[2], shape))
    exploit = _transition([[1.0], [0.5]], [[True], [False]], [[0.25], [0.75]])
    ep = MetaEpisode(explore, exploit)
    r = training_rewards(ep, jnp.int32(scheme_id("separate")), 3, concurrent)
    g_e, g_x = meta_episode_returns(ep, r, 0.9)
    a_e, a_x = meta_episode_advantages(ep, r, 0.9, 1.0)
    np.testing.assert_allclose(a_x, np.where(exploit.live, g_x - exploit.value, 0), atol=1e-6)
    np.testing.assert_allclose(a_e, np.where(live, g_e - explore.value, 0), rtol=1e-5,
                               atol=1e-5)


# ------------------------------------------------------------------ the clipped loss


def test_clipped_surrogate_by_hand():
    """clip 0.2. ratio 1.5, A = +1: min(1.5, 1.2) = 1.2 (clipped, no gradient);
    ratio 0.5, A = +1: 0.5 (gradient -ratio * A = -0.5); ratio 0.5, A = -1: min(-0.5, -0.8)
    = -0.8 (clipped); ratio 1.5, A = -1: -1.5 (gradient 1.5); a masked fifth step ignored.
    Policy term = -(1.2 + 0.5 - 0.8 - 1.5) = 0.6; all four live ratios are outside
    [0.8, 1.2] (clipped = 4); approx KL = sum (rho - 1) - log rho."""
    ratio = jnp.array([1.5, 0.5, 0.5, 1.5, 3.0])
    old = jnp.zeros(5)
    adv = jnp.array([1.0, 1.0, -1.0, -1.0, 5.0])
    mask = jnp.array([1, 1, 1, 1, 0], bool)
    z = jnp.zeros(5)

    def policy_term(logp):
        return ppo_terms(logp, old, adv, z, z, z, z, mask, 0.2, 0.0).policy

    t = ppo_terms(jnp.log(ratio), old, adv, z, z, z, jnp.ones(5), mask, 0.2, 0.0)
    np.testing.assert_allclose(t.policy, 0.6, rtol=1e-6)
    np.testing.assert_allclose(t.entropy, 4.0)
    assert float(t.clipped) == 4.0
    rho = np.array([1.5, 0.5, 0.5, 1.5])
    np.testing.assert_allclose(t.approx_kl, np.sum(rho - 1 - np.log(rho)), rtol=1e-6)
    grad = jax.grad(policy_term)(jnp.log(ratio))
    # d(-min(...))/d logp: 0 where the clipped branch is taken, -rho * A otherwise
    np.testing.assert_allclose(grad, [0.0, -0.5, 0.0, 1.5, 0.0], atol=1e-6)
    # inside the clip range the surrogate is A2C's: -rho * A, gradient -A at rho = 1
    g1 = jax.grad(policy_term)(jnp.zeros(5))
    np.testing.assert_allclose(g1, [-1.0, -1.0, 1.0, 1.0, 0.0], atol=1e-6)


def test_value_clipping_by_hand():
    """value 1, collected 0.5, target 2, value_clip 0.2: unclipped (1 - 2)^2 = 1, clipped
    (0.7 - 2)^2 = 1.69, the larger taken: 0.5 * 1.69 = 0.845. value_clip 0: 0.5 * 1 = 0.5.
    A value step inside the clip range is not changed: value 0.6 -> 0.5 * 1.96 = 0.98."""
    one = lambda a: jnp.array([a])  # noqa: E731
    z, m = one(0.0), jnp.array([True])

    def value(v, vc):
        return ppo_terms(z, z, z, one(v), one(0.5), one(2.0), z, m, 0.2, vc).value

    np.testing.assert_allclose(value(1.0, 0.2), 0.845, rtol=1e-6)
    np.testing.assert_allclose(value(1.0, 0.0), 0.5, rtol=1e-6)
    np.testing.assert_allclose(value(0.6, 0.2), 0.98, rtol=1e-6)


def test_normalize_uses_live_steps_of_both_phases():
    """Live advantages [1, 3] (explore) and [5] (exploit), a masked 100 ignored: mean 3, std
    sqrt(8/3); masked entries stay 0."""
    a, b = normalize((jnp.array([1.0, 100.0, 3.0]), jnp.array([5.0])),
                     (jnp.array([1, 0, 1], bool), jnp.array([True])))
    s = np.sqrt(8 / 3)
    np.testing.assert_allclose(a, [-2 / s, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(b, [2 / s], rtol=1e-6)


# --------------------------------------------------------------------- the replay


@pytest.mark.slow  # four programs of a 15-step Color-Choice: kept out of make test's 10 minutes
@pytest.mark.parametrize("arch, cell", [("sequential", "gru"), ("central_lstm", "lstm"),
                                        ("meta_lstm", "lstm"), ("meta_lstm", "gru")])
def test_replay_reproduces_the_run(arch, cell):
    """Replaying a meta-episode's stored inputs from its initial memory gives the heads the
    run computed, for every topology and cell, on an env whose sub-episodes end early (goals
    absorb, the concurrent absorb step, the hand-off of pending results); a replay with other
    parameters does not."""
    env, params = ColorChoice(3), grid_params()
    concurrent = arch != "sequential"
    k = 3
    agent = make_agent(arch, 16, 3, k, cell)
    runner = MetaEpisodeRunner(env, params, agent, concurrent=concurrent, k_explore=k,
                               horizon=15)
    p = agent.init(jax.random.PRNGKey(0), runner.input_dim)

    @jax.jit
    def check(p, key, other):
        ep = jax.vmap(lambda k: runner.run(p, k))(jax.random.split(key, 16))
        same = jax.vmap(lambda e: runner.replay(p, e))(ep)
        moved = jax.vmap(lambda e: runner.replay(other, e))(ep)
        return ep, same, moved

    other = jax.tree.map(lambda a: a * 1.1, p)
    ep, (el, ev, xl, xv), moved = check(p, jax.random.PRNGKey(1), other)
    assert not bool(jnp.all(ep.explore.live)), "no sub-episode ended early: the test is weak"
    for got, want in ((el, ep.explore.logits), (ev, ep.explore.value),
                      (xl, ep.exploit.logits), (xv, ep.exploit.value)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(moved[2], ep.exploit.logits, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------- the learner seam

TINY = TrainConfig(
    env_kwargs=(("num_doors", 5),), k_explore=5, architecture="central_lstm", hidden=16,
    batch_size=32, num_updates=4, chunk_updates=4, reward_input_scale=10.0, eval_batches=1,
    eval_batch_size=32, learner="ppo",
    learner_options=(("epochs", 2), ("minibatches", 2)),
    runs=(RunSpec("Max-Until-Exploit", 0, 1e-2, 0.5),
          RunSpec("Max-Until-Exploit", 0, 1e-2, 0.5, learner_options=(("clip", 0.05),))),
)


@pytest.fixture(scope="module")
def tiny_chunk():
    """One chunk of the tiny PPO program: two runs, same seed, clip 0.2 and 0.05."""
    trainer = make_trainer(TINY)
    state, hp = trainer.init()
    return trainer, hp, trainer.train_chunk(state, hp)


def test_traced_options_share_one_program(tiny_chunk):
    """Runs that differ only in a traced option (clip) are one program: the two runs of
    ``TINY`` (same seed) start equal, their clip values reach the program, and they part."""
    trainer, hp, (state, metrics) = tiny_chunk
    assert isinstance(metrics, PPOMetrics)
    np.testing.assert_allclose(hp.learner.clip, [0.2, 0.05])
    np.testing.assert_allclose(hp.learner.gae_lambda, [0.95, 0.95])
    assert np.all(np.asarray(metrics.finite))
    first, second = (jax.tree.map(lambda a, i=i: a[i], state.params) for i in (0, 1))
    assert any(float(jnp.max(jnp.abs(a - b))) > 0
               for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True))
    # the tighter clip clips a larger share of the decisions
    assert float(np.mean(metrics.clip_fraction[1])) > float(np.mean(metrics.clip_fraction[0]))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learner": "sgd"}, "unknown learner 'sgd'; known: a2c, ppo"),
        ({"learner_options": (("clip", 0.0),)}, "clip must be a finite number > 0"),
        ({"learner_options": (("clip", -0.1),)}, "clip must be a finite number > 0"),
        ({"learner_options": (("gae_lambda", 1.5),)}, "gae_lambda must be"),
        ({"learner_options": (("epochs", 0),)}, "epochs must be an integer from 1 to 100"),
        ({"learner_options": (("minibatches", 3),)}, "must divide the batch size"),
        ({"learner_options": (("momentum", 0.9),)}, "learner ppo has no option 'momentum'"),
        ({"runs": (RunSpec("Max-Until-Exploit", 0, 1e-3, learner_options=(("epochs", 2),)),)},
         "'epochs' is not traced"),
        ({"learner": "a2c", "learner_options": ()}, "learner option 'clip' is unknown for a2c"),
    ],
)
def test_bad_learner_config_is_refused_on_construction(change, message):
    """An impossible learner config cannot be built; the message names the problem."""
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TINY, **change)


def test_registry_names_the_learners():
    assert list(LEARNERS) == ["a2c", "ppo"]
    assert get_learner("ppo").traced() == ("clip", "gae_lambda", "value_clip")
    with pytest.raises(ConfigError, match="unknown learner 'adam'"):
        get_learner("adam")


# ------------------------------------------------------------------ a real run

UPDATES = 1000
# Measured with this test's config on 2 CPU cores (docs/results.md, "Learning test
# calibration"): success 0.61 / 0.54, 4.0 / 4.0 doors visited; a blind exploit pick gets
# 0.2 at best.
PPO_MIN_SUCCESS = 0.4


@pytest.mark.slow
def test_ppo_learns_five_door_monty_hall():
    """CMRL with PPO (its defaults) on 5-Monty-Hall, 1000 updates as the A2C test: both
    seeds well above the 1/5 of a blind exploit pick."""
    cfg = dataclasses.replace(
        TINY, batch_size=64, num_updates=UPDATES, chunk_updates=UPDATES, eval_batches=2,
        eval_batch_size=128, learner_options=(),
        runs=tuple(RunSpec("Max-Until-Exploit", s, 1e-3, 0.5) for s in range(2)))
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    state, _ = trainer.train_chunk(state, hp)
    success = np.asarray(trainer.evaluate(state, hp).success)
    assert success.min() >= PPO_MIN_SUCCESS, success


def test_a_tables_recipe_for_a_plug_in_and_what_overrides_it():
    """Table 1's recipes: PPO at 1e-3 for every row, a GRU with 32 units in every program;
    --learning-rate and --extra hidden=N win over them; A2C + LSTM keep the paper's sizes
    with A2C's own entropy recipe."""
    from cmrl_jax.commands.tables import TableArgs, make_plan
    from experiments.table1 import SPEC

    def programs(**kw):
        return dict(make_plan(SPEC, TableArgs(seeds=1, **kw)).programs)

    def rates(progs):
        return {r.learning_rate for cfg in progs.values() for r in cfg.runs}

    a2c, ppo = programs(), programs(learner="ppo")
    assert rates(a2c) == {2e-3} and rates(ppo) == {1e-3}
    lambdas = {r.method: r.lambda_div for cfg in a2c.values() for r in cfg.runs}
    assert lambdas["Max-Until-Exploit"] == 0.25 and lambdas["ERL2"] == 0.0
    assert {r.lambda_div for cfg in ppo.values() for r in cfg.runs} == {0.0, SPEC.lambda_div}
    assert {c.learner for c in ppo.values()} == {"ppo"}
    # A2C's entropy recipe per kind of memory; PPO keeps the table's base
    assert {(arch, c.entropy_explore_start, c.entropy_anneal_fraction)
            for arch, c in a2c.items()} == {("sequential", 1.0, 0.4), ("central_lstm", 0.01, 0.4)}
    assert {(c.entropy_explore_start, c.entropy_anneal_fraction) for c in ppo.values()} \
        == {(1.0, 0.6)}
    assert rates(programs(learner="ppo", learning_rate=3e-4)) == {3e-4}
    assert {c.hidden for c in a2c.values()} == {32, 16}
    assert {c.hidden for c in programs(cell="gru").values()} == {32}
    assert {c.hidden for c in programs(cell="gru", extra=("hidden=8",)).values()} == {8}
