"""N-Reacher (envs/reacher.py), its closed-form arm (envs/reacher_arm.py) and MJX physics,
its scripted controller and its registry entry.

Conventions under test: actions a -> torques (a // 3 - 1, a % 3 - 1) on
(joint 0, joint 1); qpos / qvel are the two joint angles / velocities; targets
and the fingertip are xy in metres; info["goal"] is the target touched, -1 if none.
MJX compiles are slow: every compiled function is a module-scoped fixture.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.registry import make_env, registered_envs
from cmrl_jax_envs import reacher_arm
from cmrl_jax_envs.reacher import (
    DISTANCE_THRESHOLD,
    MAX_SPEED,
    REACH,
    TORQUES,
    EnvParams,
    EnvState,
    NReacher,
    fingertip,
    first_hit,
    reacher_mjcf,
    segment_distances,
)
from cmrl_jax_envs.reacher_oracle import (
    inverse_kinematics,
    joint_goals,
    min_time_to_rest,
    oracle_success_rate,
    random_success_rate,
)
from experiments import table3

N = 3
IDLE = 4  # torques (0, 0)
FAR = ((10.0, 10.0), (10.0, -10.0), (-10.0, 10.0))  # targets out of reach


@pytest.fixture(scope="module")
def env():
    return NReacher(num_goals=N)


@pytest.fixture(scope="module")
def mjx_env():
    return NReacher(num_goals=N, impl="jax")


@pytest.fixture(scope="module")
def params(env):
    return env.default_params


def compiled_step(env):
    """step_env compiled once; params are an argument (frame skip static in the treedef)."""
    fn = jax.jit(env.step_env)
    return lambda state, action, params: fn(jax.random.PRNGKey(0), state, jnp.int32(action), params)


@pytest.fixture(scope="module")
def step(env):
    return compiled_step(env)


@pytest.fixture(scope="module", params=["analytic", "jax"])
def physics_step(request, env, mjx_env):
    """The env step with either physics: the closed-form arm (default) or MJX."""
    return compiled_step(env if request.param == "analytic" else mjx_env)


def make_state(qpos, targets=FAR, qvel=(0.0, 0.0), positive=0) -> EnvState:
    """A hand-built state: joint angles and velocities, target xy [k, 2]."""
    return EnvState(
        qpos=jnp.asarray(qpos, jnp.float32),
        qvel=jnp.asarray(qvel, jnp.float32),
        targets=jnp.asarray(targets, jnp.float32),
        positive=jnp.int32(positive),
        goal=jnp.int32(-1),
        time=jnp.int32(0),
    )


def c_trajectory(env, qpos, qvel, actions, frame_skip):
    """MuJoCo C: qpos and qvel after each decision, float64 [T, 2] each, and after each
    physics step [T * frame_skip, 2]."""
    m = env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = qpos, qvel
    per_decision, per_step = [], []
    for a in actions:
        d.ctrl[:] = TORQUES[a]
        for _ in range(frame_skip):
            mujoco.mj_step(m, d)
            per_step.append((d.qpos.copy(), d.qvel.copy()))
        per_decision.append((d.qpos.copy(), d.qvel.copy()))
    q, v = (np.array(x) for x in zip(*per_decision, strict=True))
    return q, v, np.array([s[0] for s in per_step])


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize(
    "qpos, actions, meets_limit",
    [
        ((0.3, -1.0), [8] * 40, True),  # both torques +1: joint 1 runs into its +3 rad limit
        ((-2.0, 2.0), list(np.random.default_rng(0).integers(0, 9, 60)), True),
        ((1.0, 0.0), [0, 0, 0, 8, 8, 8, 2, 6, 4, 4, 4, 1, 7, 3, 5] * 4, False),
    ],
)
def test_physics_matches_mujoco_c(env, params, physics_step, qpos, actions, meets_limit):
    """Same model, same actions: float32 physics (closed-form arm or MJX) and float64 C
    agree on the joint angles to
    1e-4 rad away from the joint-1 limit; a limit hit at speed is an event whose onset
    float32 rounding can shift by a hair, which leaves up to ~1e-3 rad/s of velocity
    difference, so there the angles agree to 2e-3 rad over 40 decisions."""
    q_c, v_c, _ = c_trajectory(env, qpos, (0.0, 0.0), actions, params.frame_skip)
    state = make_state(qpos)
    q_mjx, v_mjx = [], []
    for a in actions:
        _, state, reward, done, info = physics_step(state, a, params)
        assert not bool(done) and float(reward) == 0.0 and int(info["goal"]) == -1
        q_mjx.append(np.asarray(state.qpos))
        v_mjx.append(np.asarray(state.qvel))
    assert (np.abs(q_c[:, 1]).max() > 3.0) == meets_limit  # soft limit: a small overshoot
    assert_allclose(np.array(q_mjx), q_c, atol=2e-3 if meets_limit else 1e-4, rtol=0)
    assert_allclose(np.array(v_mjx), v_c, atol=1e-2 if meets_limit else 1e-3, rtol=0)


def test_fingertip_matches_mujoco_site(env):
    m = env.mj_model
    d = mujoco.MjData(m)
    site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "fingertip")
    for q in np.random.default_rng(1).uniform(-3.0, 3.0, (20, 2)):
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        assert_allclose(np.asarray(fingertip(jnp.asarray(q))), d.site_xpos[site, :2], atol=1e-6)
    assert_allclose(np.asarray(fingertip(jnp.zeros(2))), [REACH, 0.0], atol=1e-7)
    assert_allclose(np.asarray(fingertip(jnp.array([np.pi / 2, 0.0]))), [0.0, REACH], atol=1e-7)


def test_model_facts(env):
    m = env.mj_model
    assert m.nq == 2 and m.nv == 2 and m.nu == 2
    assert m.opt.timestep == 0.01 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert_array_equal(m.actuator_gear[:, 0], [200.0, 200.0])
    assert_array_equal(m.actuator_ctrlrange, [[-1.0, 1.0], [-1.0, 1.0]])
    assert_array_equal(m.jnt_limited, [0, 1])
    assert_array_equal(m.jnt_range[1], [-3.0, 3.0])
    assert np.all(m.geom_contype == 0) and np.all(m.geom_conaffinity == 0)
    euler = NReacher(num_goals=N, integrator="Euler")
    assert euler.mj_model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER


# ------------------------------------------------------------------ the closed-form arm
def test_arm_mass_matrix_and_forces_match_mujoco(env):
    """M(q) equals mj_fullM and M^-1 (applied - bias - damping) equals MuJoCo's
    qacc_smooth at random states, in float64."""
    m = env.mj_model
    d = mujoco.MjData(m)
    with jax.enable_x64(True):
        for q, v, ctrl in zip(*(np.random.default_rng(2).uniform(lo, hi, (20, 2)) for lo, hi in
                                ((-2.9, 2.9), (-40.0, 40.0), (-1.0, 1.0))), strict=True):
            d.qpos[:], d.qvel[:], d.ctrl[:] = q, v, ctrl
            mujoco.mj_forward(m, d)
            full = np.zeros((2, 2))
            mujoco.mj_fullM(m, d, full)
            m00, m01, m11 = reacher_arm.mass_matrix(env.arm, jnp.asarray(q))
            assert_allclose([[m00, m01], [m01, m11]], full, rtol=1e-12, atol=0)
            acc = reacher_arm.acceleration(env.arm, jnp.asarray(q), jnp.asarray(v),
                                           jnp.asarray(ctrl))
            assert_allclose(np.asarray(acc), d.qacc_smooth, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("integrator", ["RK4", "Euler"])
def test_arm_equals_mujoco_c_in_float64(integrator):
    """In float64 the closed-form step is MuJoCo's step: 32 random 60-step trajectories,
    most of them through joint-1 limit hits at up to 40 rad/s, agree with mj_step run to
    convergence (solver tolerance 0) to 1e-12 rad."""
    env = NReacher(num_goals=N, integrator=integrator)
    m = env.mj_model
    m.opt.iterations, m.opt.tolerance = 100, 0.0
    rng = np.random.default_rng(3)
    starts = np.stack([rng.uniform(-np.pi, np.pi, 32), rng.uniform(-2.9, 2.9, 32)], axis=1)
    speeds, actions = rng.uniform(-40.0, 40.0, (32, 2)), rng.integers(0, 9, (32, 60))

    def body(carry, a):
        qs, vs = env.physics(*carry, jnp.asarray(TORQUES, jnp.float64)[a], 1)
        return (qs[0], vs[0]), qs[0]

    with jax.enable_x64(True):
        run = jax.jit(jax.vmap(lambda q, v, a: jax.lax.scan(body, (q, v), a)[1]))
        ours = np.asarray(run(jnp.asarray(starts), jnp.asarray(speeds), jnp.asarray(actions)))
    d, hits = mujoco.MjData(m), 0
    for i in range(32):
        d.qpos[:], d.qvel[:] = starts[i], speeds[i]
        for t, a in enumerate(actions[i]):
            d.ctrl[:] = TORQUES[a]
            mujoco.mj_step(m, d)
            assert_allclose(ours[i, t], d.qpos, atol=1e-12, rtol=0)
            hits += abs(d.qpos[1]) > 3.0
    assert hits > 100  # the limit's soft constraint was exercised


def test_arm_refuses_other_models():
    """The closed-form equations cover this arm only: another model is one clear error."""
    three = reacher_mjcf().replace(
        '<site name="fingertip"',
        '<body name="link2" pos="0.1 0 0"><joint name="joint2" type="hinge" axis="0 0 1"/>'
        '<geom type="capsule" fromto="0 0 0 0.1 0 0" size="0.01"/></body><site name="fingertip"')
    with pytest.raises(ValueError, match="two hinge joints"):
        reacher_arm.ArmConstants.from_model(mujoco.MjModel.from_xml_string(three))
    tilted = reacher_mjcf().replace('name="joint1" type="hinge" axis="0 0 1"',
                                    'name="joint1" type="hinge" axis="0 1 0"')
    with pytest.raises(ValueError, match="hinges about z"):
        reacher_arm.ArmConstants.from_model(mujoco.MjModel.from_xml_string(tilted))
    implicit = reacher_mjcf(integrator="implicit")
    with pytest.raises(ValueError, match="RK4 or Euler"):
        reacher_arm.ArmConstants.from_model(mujoco.MjModel.from_xml_string(implicit))
    for change, says in (("gravity", "gravity along the hinge"), ("limit", "limits, damping")):
        m = mujoco.MjModel.from_xml_string(reacher_mjcf())
        if change == "gravity":
            m.opt.gravity[:] = (0.0, -9.81, 0.0)  # a vertical arm: gravity would do work
        else:
            m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_LIMIT
        with pytest.raises(ValueError, match=says):
            reacher_arm.ArmConstants.from_model(m)


# ------------------------------------------------------------------ reaching
def test_segment_maths():
    start = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    end = jnp.array([[1.0, 0.0], [1.0, 0.0]])  # the second segment is a single point
    points = jnp.array([[0.5, 0.3], [-1.0, 0.0], [2.0, 1.0]])
    dist, along = segment_distances(start, end, points)
    # segment 0: (0.5, 0.3) projects at 0.5, distance 0.3; (-1, 0) clamps to the start;
    # (2, 1) clamps to the end, distance sqrt(2). Segment 1 is the point (1, 0).
    assert_allclose(np.asarray(dist), [[0.3, 1.0, 2**0.5], [0.34**0.5, 2.0, 2**0.5]], rtol=1e-6)
    assert_allclose(np.asarray(along[0]), [0.5, 0.0, 1.0])
    # path (0, 0) -> (1, 0) -> (2, 0): target 1 on segment 0, target 0 later on segment 1
    path = jnp.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    goal, seg = first_hit(path, jnp.array([[1.5, 0.01], [0.5, -0.01], [5.0, 5.0]]), 0.02)
    assert (int(goal), int(seg)) == (1, 0)
    # two targets on one segment: the first along the path counts
    goal, seg = first_hit(path, jnp.array([[1.9, 0.0], [1.2, 0.0]]), 0.02)
    assert (int(goal), int(seg)) == (1, 1)
    goal, seg = first_hit(path, jnp.array([[5.0, 5.0]]), 0.02)
    assert (int(goal), int(seg)) == (-1, 1)


@pytest.mark.parametrize("goal", range(N))
def test_touching_a_target_terminates(env, params, step, goal):
    """A target placed at the fingertip is touched by any action, even standing still."""
    qpos = (0.7, -1.2)
    targets = np.array(FAR)
    targets[goal] = np.asarray(fingertip(jnp.asarray(qpos)))
    state = make_state(qpos, targets, positive=1)
    assert not bool(env.is_terminated(state, params))
    _, new, reward, terminated, info = step(state, IDLE, params)
    assert bool(terminated) and bool(env.is_terminated(new, params))
    assert int(info["goal"]) == goal and info["goal"].dtype == jnp.int32
    assert float(reward) == (1.0 if goal == 1 else -1.0)
    assert int(new.goal) == goal and int(new.time) == 1


def test_target_passed_between_decisions_is_touched(env, params, step):
    """A fast arm passes a target after the first physics step of a decision: it counts,
    and the arm stops at that physics step although the decision's end is far away."""
    qpos, qvel = (0.0, 0.0), (40.0, 0.0)
    _, _, q_steps = c_trajectory(env, qpos, qvel, [IDLE], params.frame_skip)
    tips = np.asarray(fingertip(jnp.asarray(q_steps)))
    assert np.linalg.norm(tips[0] - tips[-1]) > 0.05  # the decision's end is far from the target
    state = make_state(qpos, (FAR[0], tips[0], FAR[2]), qvel=qvel, positive=0)
    _, new, reward, terminated, info = step(state, IDLE, params)
    assert bool(terminated) and int(info["goal"]) == 1 and float(reward) == -1.0
    assert_allclose(np.asarray(new.qpos), q_steps[0], atol=1e-4)


def test_no_target_no_reward(step, params):
    _, new, reward, terminated, info = step(make_state((0.0, 1.0)), 8, params)
    assert float(reward) == 0.0 and not bool(terminated) and int(info["goal"]) == -1
    assert int(new.goal) == -1 and int(new.time) == 1


# ------------------------------------------------------------------ reset and rollouts
@pytest.fixture(scope="module")
def rollout(env, params):
    """64 tasks from reset, 200 random decisions each (no termination: targets moved away
    after reset, so the arm keeps moving), compiled once."""
    n, steps = 64, 200

    @jax.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        obs0, state0 = jax.vmap(env.reset_env, in_axes=(0, None))(
            jax.random.split(k_reset, n), params
        )
        actions = jax.random.randint(k_act, (steps, n), 0, 9)
        far = state0.replace(targets=jnp.broadcast_to(jnp.asarray(FAR, jnp.float32), (n, N, 2)))

        def body(state, a):
            obs, state, reward, terminated, info = jax.vmap(
                env.step_env, in_axes=(None, 0, 0, None)
            )(k_act, state, a, params)
            return state, (obs, reward, terminated, info["goal"], state.qvel, state.qpos)

        _, out = jax.lax.scan(body, far, actions)
        return obs0, state0, out

    return run(jax.random.PRNGKey(42))


def test_reset_same_key_same_task(env, params):
    reset = jax.jit(env.reset_env)
    obs1, s1 = reset(jax.random.PRNGKey(5), params)
    obs2, s2 = reset(jax.random.PRNGKey(5), params)
    for a, b in zip(jax.tree.leaves((obs1, s1)), jax.tree.leaves((obs2, s2)), strict=True):
        assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(s1.time) == 0 and int(s1.goal) == -1
    _, s3 = reset(jax.random.PRNGKey(6), params)
    assert not np.array_equal(np.asarray(s1.targets), np.asarray(s3.targets))
    assert not np.array_equal(np.asarray(s1.qpos), np.asarray(s3.qpos))


def test_reset_task_distribution(rollout, params):
    _, state0, _ = rollout
    targets = np.asarray(state0.targets)  # [64, N, 2]
    assert targets.shape == (64, N, 2) and targets.dtype == np.float32
    assert len({tuple(t.ravel()) for t in targets}) == 64
    radius = np.linalg.norm(targets, axis=-1)
    assert np.all(radius >= params.target_radius_min - 1e-6)
    assert np.all(radius <= params.target_radius_max + 1e-6)
    pair = np.linalg.norm(targets[:, :, None] - targets[:, None], axis=-1)
    pair[:, np.arange(N), np.arange(N)] = np.inf
    assert pair.min() >= params.min_separation - 1e-6
    tip0 = np.asarray(fingertip(state0.qpos))[:, None]  # [64, 1, 2]
    assert np.linalg.norm(targets - tip0, axis=-1).min() >= params.start_clearance - 1e-6
    assert_array_equal(np.asarray(state0.qvel), 0.0)
    assert np.abs(np.asarray(state0.qpos)[:, 1]).max() <= 2.5
    assert len(np.unique(np.asarray(state0.positive))) == N


def test_jit_vmap_rollout(env, params, rollout):
    obs0, _, (obs, reward, terminated, goal, qvel, qpos) = rollout
    assert obs0.shape == (64, 8 + 4 * N) and obs0.dtype == jnp.float32
    assert obs.shape == (200, 64, 8 + 4 * N) and obs.dtype == jnp.float32
    assert reward.shape == (200, 64) and reward.dtype == jnp.float32
    assert terminated.shape == (200, 64) and terminated.dtype == jnp.bool_
    assert goal.shape == (200, 64) and goal.dtype == jnp.int32
    obs, qvel, qpos = np.asarray(obs), np.asarray(qvel), np.asarray(qpos)
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(qpos))
    assert np.abs(qvel).max() < MAX_SPEED  # damping caps joint speed at gear / damping
    assert np.abs(qpos[..., 1]).max() < 3.5  # the soft limit overshoots a little at speed
    assert not np.any(np.asarray(terminated)) and np.all(np.asarray(goal) == -1)
    space = env.observation_space(params)
    assert bool(space.contains(jnp.asarray(obs0[0])))
    assert np.abs(obs[..., :8]).max() <= space.high  # the arm part (targets moved out of reach)
    # layout: cos, sin, velocity / scale, fingertip / reach, targets / reach, tip - targets / reach
    assert_allclose(obs0[:, 0:2] ** 2 + obs0[:, 2:4] ** 2, 1.0, atol=1e-6)
    assert_array_equal(np.asarray(obs0[:, 4:6]), 0.0)
    tip, targets = obs0[:, 6:8], obs0[:, 8 : 8 + 2 * N].reshape(64, N, 2)
    rel = obs0[:, 8 + 2 * N :].reshape(64, N, 2)  # fingertip - target, / reach
    assert_allclose(rel, tip[:, None] - targets, atol=1e-6)
    assert np.abs(obs0[:, 6 : 8 + 2 * N]).max() <= 1.0 and np.abs(rel).max() <= 2.0


# ------------------------------------------------------------------ scripted controller
def test_controller_maths():
    # x = 1, v = 0, a = 2: accelerate half-way, brake: 2 sqrt(x / a)
    assert_allclose(float(min_time_to_rest(jnp.float32(1.0), jnp.float32(0.0), 2.0)), 2**0.5,
                    rtol=1e-6)
    # x = 0, v = 2 (away from the goal): brake 1 s to x = 1, then sqrt(2) s back
    assert_allclose(float(min_time_to_rest(jnp.float32(0.0), jnp.float32(2.0), 2.0)), 1 + 2**0.5,
                    rtol=1e-6)
    # x = -1, v = 2: on the braking parabola, brake for 1 s
    assert_allclose(float(min_time_to_rest(jnp.float32(-1.0), jnp.float32(2.0), 2.0)), 1.0,
                    rtol=1e-6)
    target = jnp.array([0.05, -0.12])
    ik = inverse_kinematics(target)
    assert ik[0, 1] > 0 > ik[1, 1]
    assert_allclose(np.asarray(fingertip(ik)), np.tile(np.asarray(target), (2, 1)), atol=1e-6)
    goals = np.asarray(joint_goals(jnp.array([10.0, 0.0]), target))  # [4, 2]
    assert_allclose(np.asarray(fingertip(jnp.asarray(goals))), np.tile(target, (4, 1)), atol=1e-5)
    assert np.all(np.abs(goals[:2, 0] - 10.0) <= np.pi)  # short way
    assert_allclose(np.abs(goals[2:, 0] - goals[:2, 0]), 2 * np.pi, rtol=1e-6)  # long way


def test_controller_reaches_targets(env, params):
    """The scripted controller touches >= 95 % of sampled positive targets within H = 15;
    uniform random actions touch some target in well under half of the tasks (27 % of 2000;
    36 % of these 256)."""
    assert oracle_success_rate(env, params, num_tasks=64, seed=0) >= 0.95
    rates = random_success_rate(env, params, num_tasks=256, seed=0)
    assert 0.0 < rates.positive <= rates.any_target < 0.45


# ------------------------------------------------------------------ render, registry, training
def test_render_and_heatmap(env, params):
    _, state = env.reset_env(jax.random.PRNGKey(3), params)
    img = env.render(state, params)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    marked = env.render(state, params, show_positive=True)
    assert marked.shape == img.shape and not np.array_equal(marked, img)
    edges_x, edges_y = env.heatmap_bins(params)
    assert len(edges_x) == len(edges_y) == 17
    pos = np.asarray(env.goal_positions(state, params))
    assert pos.shape == (N, 2) and pos.dtype == np.float32
    assert np.all((pos >= edges_x[0]) & (pos <= edges_x[-1]))


def test_registry_and_spaces():
    assert "reacher" in registered_envs()
    env, params = make_env("reacher")
    assert isinstance(env, NReacher) and env.name == "Reacher-3"
    assert env.num_actions == 9 and env.num_goals == 3 and env.action_space(params).n == 9
    assert env.observation_space(params).shape == (20,)
    assert params.max_steps_in_episode == 15 and isinstance(params, EnvParams)
    env, params = make_env("reacher", num_goals=5, horizon=20)
    assert env.observation_space(params).shape == (28,) and params.max_steps_in_episode == 20
    assert params.distance_threshold == 0.04 and params.min_separation == pytest.approx(0.12)
    env, params = make_env("reacher", distance_threshold=0.02)
    assert params.distance_threshold == 0.02 and env.default_params == params
    assert params.min_separation == pytest.approx(0.06) == params.start_clearance
    assert table3.REACH_THRESHOLD == DISTANCE_THRESHOLD  # Table 3 trains at the env's default
    with pytest.raises(ValueError):
        NReacher(num_goals=0)
    with pytest.raises(ValueError):
        NReacher(integrator="implicit")
    with pytest.raises(ValueError):
        NReacher(distance_threshold=-0.01)
    with pytest.raises(ValueError, match="impl"):
        NReacher(impl="mpi")
    assert NReacher().impl == "analytic" and make_env("reacher", impl="jax")[0].impl == "jax"
    with pytest.raises(ValueError, match="matmul_precision"):
        NReacher(matmul_precision="fp8")


@pytest.mark.parametrize("global_precision", [None, "bfloat16"])
def test_physics_matmuls_run_at_full_precision(env, mjx_env, global_precision):
    """Whatever the global setting (TPU default: bfloat16 passes), every matmul of the
    MJX physics is HIGHEST, so the tolerances above hold on any backend; the closed-form
    arm has no matmul at all (its 2 x 2 algebra is written out)."""
    import contextlib
    import re

    scope = (jax.default_matmul_precision(global_precision) if global_precision
             else contextlib.nullcontext())
    with scope:
        text, closed_form = (jax.jit(lambda q, v, c, e=e: e.physics(q, v, c, 2)).lower(
            jnp.zeros(2), jnp.zeros(2), jnp.zeros(2)).as_text() for e in (mjx_env, env))
    dots = re.findall(r"dot_general[^\n]*", text)
    assert dots and all("precision = [HIGHEST, HIGHEST]" in d for d in dots)
    assert "dot_general" not in closed_form


def test_tiny_training_through_engine():
    """Two Max-Until-Exploit updates of a Meta-LSTM on 3-Reacher: finite loss."""
    from cmrl_jax.train import make_trainer

    cfg = TrainConfig(
        env="reacher", env_kwargs=(("num_goals", 3),), architecture="meta_lstm", k_explore=3,
        horizon=15, batch_size=2, num_updates=2, chunk_updates=2, eval_batches=1,
        eval_batch_size=2, runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1e-3),),
    )
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    state, metrics = trainer.train_chunk(state, hp)
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    assert int(state.update[0]) == 2
