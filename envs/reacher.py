"""N-Reacher (paper section 5): the Reacher-v2 two-link arm (MuJoCo physics), N targets.

The arm is Reacher-v2's (MJCF in ``reacher_mjcf``; RK4 at 0.01 s, frame skip 2,
no contacts, no gravity). Actions: Discrete(9), torques (a // 3 - 1, a % 3 - 1)
in {-1, 0, 1} on the two joints (``envs/reacher_continuous.py``: two continuous
torques). ``reset_env`` draws the task from its key: the arm's start, N targets
in an annulus around the base (apart from each other and from the start
fingertip), and which target gives +1 (the others -1). A sub-episode ends when
the fingertip's path comes within ``DISTANCE_THRESHOLD`` = 0.04 m of a target
(``info["goal"]`` = its index). Observation float32 [8 + 4N]: joint cos / sin,
scaled velocities, the fingertip, the targets and fingertip - target vectors,
all over the reach 0.21 m; the hidden rewards are not observable.
Physics ``impl``: "analytic" (closed form, default), "jax" (``mjx.step``) or
"warp".

Every constant, and the measurement behind it (integrator accuracy and speed,
frame skip, threshold, state layout, matmul precision), is in docs/reacher.md.
"""

import contextlib
import io
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

# mujoco.mjx prints "Failed to import warp" to stdout on installs without the
# optional GPU backend; keep it out of CLI and JSON output.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from cmrl_jax.envspec import EnvSpec

from . import reacher_arm, reacher_draw  # matplotlib only when drawing
from .reacher_geometry import LINK0, LINK1, REACH, fingertip
from .recipes import NAVIGATION_RECIPE

# ------------------------------------------------------------------ the arm (Reacher-v2)
JOINT1_LIMIT = 3.0  # rad
GEAR = 200.0  # motor gear, ctrlrange +-1
ARMATURE = 1.0
DAMPING = 1.0
TIMESTEP = 0.01  # s
INTEGRATOR = "RK4"
SOLVER_ITERATIONS = 2
MAX_SPEED = GEAR / DAMPING  # rad/s, terminal joint speed under full torque
PHYSICS_IMPL = "analytic"  # the closed-form arm (envs/reacher_arm.py); see PHYSICS_IMPLS
PHYSICS_IMPLS = ("analytic", "jax", "warp")  # the closed-form arm, MJX's JAX and Warp kernels
MATMUL_PRECISION = "highest"  # float32 matmuls in the physics on every backend
MATMUL_PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")

# ------------------------------------------------------------------ the task
FRAME_SKIP = 2  # physics steps per decision
HORIZON = 15  # decisions per sub-episode
DISTANCE_THRESHOLD = 0.04  # m
TARGET_RADIUS_MIN = 0.06  # m
TARGET_RADIUS_MAX = 0.19  # m
SEPARATION_THRESHOLDS = 3.0  # targets (and the start fingertip) keep this many thresholds apart
MIN_SEPARATION = SEPARATION_THRESHOLDS * DISTANCE_THRESHOLD  # m between targets
START_CLEARANCE = MIN_SEPARATION  # m between the start fingertip and every target
START_JOINT1 = 2.5  # rad, joint-1 start range +-
NUM_CANDIDATES = 32  # draws per target for the separation rule
VELOCITY_SCALE = 50.0  # rad/s
HEATMAP_BINS = 16  # bins per axis over [-TARGET_RADIUS_MAX, TARGET_RADIUS_MAX]

# action a -> (torque joint 0, torque joint 1) = (a // 3 - 1, a % 3 - 1)
TORQUES = np.array([[a // 3 - 1, a % 3 - 1] for a in range(9)], np.float32)


@struct.dataclass
class EnvState(environment.EnvState):
    """State of one N-Reacher sub-episode; the task is ``targets`` and ``positive``."""

    qpos: jax.Array  # float32 [2]   joint angles (rad)
    qvel: jax.Array  # float32 [2]   joint velocities (rad/s)
    targets: jax.Array  # float32 [N, 2] target xy (m)
    positive: jax.Array  # int32 scalar  index of the +1 target (hidden)
    goal: jax.Array  # int32 scalar  target reached by the last decision, -1 if none
    time: jax.Array  # int32 scalar  decisions taken in this sub-episode


@struct.dataclass
class EnvParams(environment.EnvParams):
    """Rewards, horizon, reach threshold and task geometry (m); frame skip is static."""

    positive_reward: float = 1.0
    negative_reward: float = -1.0
    max_steps_in_episode: int = HORIZON
    distance_threshold: float = DISTANCE_THRESHOLD
    target_radius_min: float = TARGET_RADIUS_MIN
    target_radius_max: float = TARGET_RADIUS_MAX
    min_separation: float = MIN_SEPARATION
    start_clearance: float = START_CLEARANCE
    frame_skip: int = struct.field(pytree_node=False, default=FRAME_SKIP)


def reacher_mjcf(integrator: str = INTEGRATOR, timestep: float = TIMESTEP) -> str:
    """MJCF of the Reacher-v2 arm (no targets: they live in the EnvState)."""
    return f"""
<mujoco model="n_reacher">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="{timestep}" integrator="{integrator}" gravity="0 0 0"
          solver="Newton" iterations="{SOLVER_ITERATIONS}" ls_iterations="8">
    <flag contact="disable"/>
  </option>
  <default>
    <joint armature="{ARMATURE}" damping="{DAMPING}"/>
    <geom contype="0" conaffinity="0" density="1000"/>
  </default>
  <worldbody>
    <body name="link0" pos="0 0 0.01">
      <joint name="joint0" type="hinge" axis="0 0 1"/>
      <geom type="capsule" fromto="0 0 0 {LINK0} 0 0" size="0.01"/>
      <body name="link1" pos="{LINK0} 0 0">
        <joint name="joint1" type="hinge" axis="0 0 1" limited="true"
               range="{-JOINT1_LIMIT} {JOINT1_LIMIT}"/>
        <geom type="capsule" fromto="0 0 0 0.1 0 0" size="0.01"/>
        <geom name="fingertip" type="sphere" pos="{LINK1} 0 0" size="0.01"/>
        <site name="fingertip" pos="{LINK1} 0 0"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="joint0" gear="{GEAR}" ctrllimited="true" ctrlrange="-1 1"/>
    <motor joint="joint1" gear="{GEAR}" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def segment_distances(start: jax.Array, end: jax.Array, points: jax.Array) -> tuple[jax.Array, ...]:
    """Distance from each point to each segment, and where along it the closest point is.

    Args:
      start, end: float [S, 2] segment end points.
      points: float [P, 2].
    Returns:
      (distance, along): float [S, P] each; ``along`` in [0, 1] is the closest
      point's fraction of the way from ``start`` to ``end`` (0 for a point segment).
    """
    d = (end - start)[:, None, :]  # [S, 1, 2]
    rel = points[None, :, :] - start[:, None, :]  # [S, P, 2]
    length2 = jnp.sum(d * d, axis=-1)  # [S, 1]
    along = jnp.clip(jnp.sum(rel * d, axis=-1) / jnp.maximum(length2, 1e-12), 0.0, 1.0)
    return jnp.linalg.norm(rel - along[..., None] * d, axis=-1), along


def first_hit(
    path: jax.Array, targets: jax.Array, threshold: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """First target the polyline ``path`` comes within ``threshold`` of.

    Args:
      path: float [S + 1, 2] fingertip at the start and after each physics step.
      targets: float [N, 2].
      threshold: float scalar (m).
    Returns:
      (goal, segment): int32 scalars, the target's index (-1 if none) and the
      index of the first segment touching it (S - 1 if none).
    """
    dist, along = segment_distances(path[:-1], path[1:], targets)  # [S, N]
    hit = dist <= threshold
    any_hit = jnp.any(hit, axis=1)  # [S]
    segment = jnp.where(jnp.any(any_hit), jnp.argmax(any_hit), path.shape[0] - 2)
    goal = jnp.argmin(jnp.where(hit[segment], along[segment], jnp.inf))
    return jnp.where(any_hit[segment], goal, -1).astype(jnp.int32), segment.astype(jnp.int32)


def annulus_points(key: jax.Array, shape: tuple[int, ...], r_min, r_max) -> jax.Array:
    """Points uniform by area in r_min <= |p| <= r_max: float32 [*shape, 2]."""
    k_r, k_a = jax.random.split(key)
    r = jnp.sqrt(jax.random.uniform(k_r, shape, minval=r_min**2, maxval=r_max**2))
    a = jax.random.uniform(k_a, shape, minval=-jnp.pi, maxval=jnp.pi)
    return jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], axis=-1)


def separated_targets(
    key: jax.Array, num: int, start: jax.Array, params: EnvParams
) -> jax.Array:
    """``num`` annulus targets, each the first of NUM_CANDIDATES draws that keeps
    ``min_separation`` from earlier targets and ``start_clearance`` from ``start``
    (the candidate farthest from them if none does): float32 [num, 2]."""
    cands = annulus_points(
        key, (num, NUM_CANDIDATES), params.target_radius_min, params.target_radius_max
    )  # [num, C, 2]

    def place(targets, i):
        c = cands[i]  # [C, 2]
        sep = jnp.linalg.norm(c[:, None] - targets[None], axis=-1)  # [C, num]
        sep = jnp.where(jnp.arange(num)[None] < i, sep, jnp.inf)
        clear = jnp.linalg.norm(c - start, axis=-1)  # [C]
        margin = jnp.minimum(
            jnp.min(sep, axis=1) - params.min_separation, clear - params.start_clearance
        )
        ok = margin >= 0
        pick = jnp.where(jnp.any(ok), jnp.argmax(ok), jnp.argmax(margin))
        return targets.at[i].set(c[pick]), None

    targets, _ = jax.lax.scan(place, jnp.zeros((num, 2), jnp.float32), jnp.arange(num))
    return targets


def params_for_threshold(threshold: float) -> EnvParams:
    """Default parameters with reach threshold ``threshold`` (m); targets keep
    ``SEPARATION_THRESHOLDS`` thresholds apart, and from the start fingertip."""
    sep = SEPARATION_THRESHOLDS * threshold
    return EnvParams(distance_threshold=threshold, min_separation=sep, start_clearance=sep)


class NReacher(environment.Environment[EnvState, EnvParams]):
    """Reacher-v2 arm with N look-alike targets, one hidden +1; 9 torque actions."""

    def __init__(
        self,
        num_goals: int = 3,
        integrator: str = INTEGRATOR,
        distance_threshold: float = DISTANCE_THRESHOLD,
        impl: str = PHYSICS_IMPL,
        matmul_precision: str = MATMUL_PRECISION,
    ):
        """Static configuration: N targets (>= 1), the integrator, the default reach
        threshold (m), the physics implementation and MJX's matmul precision; builds the
        MuJoCo model and the closed-form arm's constants or the MJX model once."""
        if num_goals < 1:
            raise ValueError(f"num_goals must be >= 1, got {num_goals}")
        if integrator not in ("RK4", "Euler"):
            raise ValueError(f"integrator must be 'RK4' or 'Euler', got {integrator!r}")
        if not 0.0 < distance_threshold <= 0.05:
            # above 0.05 m the controller reaches < 95 % (three separated targets crowd)
            raise ValueError(f"distance_threshold must be in (0, 0.05] m, got {distance_threshold}")
        if impl not in PHYSICS_IMPLS:
            raise ValueError(f"impl must be one of {', '.join(PHYSICS_IMPLS)}, got {impl!r}")
        if matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(
                f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
                f"got {matmul_precision!r}"
            )
        self._num_goals = num_goals
        self.distance_threshold = float(distance_threshold)
        self.integrator = integrator
        self.impl = impl
        self.matmul_precision = matmul_precision
        self.mj_model = mujoco.MjModel.from_xml_string(reacher_mjcf(integrator))
        if impl == "analytic":
            self.arm = reacher_arm.ArmConstants.from_model(self.mj_model)
        else:
            self.mjx_model = mjx.put_model(self.mj_model, impl=impl)
            self._data0 = mjx.make_data(self.mjx_model, impl=impl)

    @property
    def default_params(self) -> EnvParams:
        """H = 15, frame skip 2, the threshold given at construction (0.04 m by default)."""
        return params_for_threshold(self.distance_threshold)

    @property
    def num_goals(self) -> int:
        """Number of distinct goals (targets) reported in ``info["goal"]``."""
        return self._num_goals

    def physics(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array, steps: int):
        """``steps`` physics steps from (qpos, qvel) under constant ``ctrl`` [2]:
        (qpos, qvel) after every step, float32 [steps, 2] each. MJX's matmuls run at
        ``self.matmul_precision`` on every backend."""
        if self.impl == "analytic":
            return reacher_arm.rollout(self.arm, qpos, qvel, ctrl, steps)
        data = self._data0.replace(qpos=qpos, qvel=qvel, ctrl=ctrl)

        def body(d, _):
            d = mjx.step(self.mjx_model, d)
            return d, (d.qpos, d.qvel)

        with jax.default_matmul_precision(self.matmul_precision):
            _, (qs, vs) = jax.lax.scan(body, data, None, length=steps)
        return qs, vs

    def torques(self, action: jax.Array) -> jax.Array:
        """The two joint torques of an action (envs/reacher_continuous.py overrides it)."""
        return jnp.asarray(TORQUES)[jnp.asarray(action, jnp.int32)]

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Apply the action's torques for ``frame_skip`` physics steps; touching a
        target pays its hidden reward and terminates."""
        del key
        ctrl = self.torques(action)
        qs, vs = self.physics(state.qpos, state.qvel, ctrl, params.frame_skip)
        path = fingertip(jnp.concatenate([state.qpos[None], qs], axis=0))  # [F + 1, 2]
        goal, segment = first_hit(path, state.targets, params.distance_threshold)
        entered = goal >= 0
        reward = jnp.where(
            entered,
            jnp.where(goal == state.positive, params.positive_reward, params.negative_reward),
            0.0,
        ).astype(jnp.float32)
        state = state.replace(
            qpos=qs[segment], qvel=vs[segment], goal=goal, time=state.time + 1
        )
        return self.get_obs(state, params), state, reward, entered, {"goal": goal}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """Draw the arm start, the targets and the positive target from ``key``."""
        k_q0, k_q1, k_targets, k_pos = jax.random.split(key, 4)
        qpos = jnp.stack(
            [
                jax.random.uniform(k_q0, (), minval=-jnp.pi, maxval=jnp.pi),
                jax.random.uniform(k_q1, (), minval=-START_JOINT1, maxval=START_JOINT1),
            ]
        )
        targets = separated_targets(k_targets, self.num_goals, fingertip(qpos), params)
        state = EnvState(
            qpos=qpos,
            qvel=jnp.zeros((2,), jnp.float32),
            targets=targets,
            positive=jax.random.randint(k_pos, (), 0, self.num_goals, dtype=jnp.int32),
            goal=jnp.array(-1, jnp.int32),
            time=jnp.array(0, jnp.int32),
        )
        return self.get_obs(state, params), state

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        """float32 [8 + 4N]: cos q, sin q, qvel / VELOCITY_SCALE, then fingertip, targets
        and fingertip - target for each target, all / reach."""
        del params, key
        tip = fingertip(state.qpos)
        return jnp.concatenate(
            [
                jnp.cos(state.qpos),
                jnp.sin(state.qpos),
                state.qvel / VELOCITY_SCALE,
                tip / REACH,
                jnp.reshape(state.targets, (-1,)) / REACH,
                jnp.reshape(tip[None] - state.targets, (-1,)) / REACH,
            ]
        ).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The last decision touched a target."""
        return state.goal >= 0

    def goal_positions(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Target xy in metres: float32 [N, 2]."""
        return state.targets

    def heatmap_bins(self, params: EnvParams) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges along x and y for goal-location heatmaps: HEATMAP_BINS bins each."""
        edges = np.linspace(-params.target_radius_max, params.target_radius_max, HEATMAP_BINS + 1)
        return edges, edges.copy()

    @property
    def name(self) -> str:
        """Environment name, e.g. ``Reacher-3``."""
        return f"Reacher-{self.num_goals}"

    @property
    def num_actions(self) -> int:
        """Nine torque combinations."""
        return 9

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """Discrete(9): torques (a // 3 - 1, a % 3 - 1)."""
        return spaces.Discrete(9)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """Box of shape [8 + 4N]; velocities are bounded by the terminal speed."""
        bound = max(2.0, MAX_SPEED / VELOCITY_SCALE)
        return spaces.Box(-bound, bound, (8 + 4 * self.num_goals,), jnp.float32)

    def state_space(self, params: EnvParams | None = None) -> spaces.Dict:
        """Joint angles and velocities, targets, positive target, reached target, time."""
        params = self.default_params if params is None else params
        return spaces.Dict(
            {
                "qpos": spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32),
                "qvel": spaces.Box(-MAX_SPEED, MAX_SPEED, (2,), jnp.float32),
                "targets": spaces.Box(-REACH, REACH, (self.num_goals, 2), jnp.float32),
                "positive": spaces.Discrete(self.num_goals),
                "goal": spaces.Box(-1, self.num_goals - 1, (), jnp.int32),
                "time": spaces.Discrete(params.max_steps_in_episode + 1),
            }
        )

    def render(
        self, state: EnvState, params: EnvParams | None = None, show_positive: bool = False
    ) -> np.ndarray:
        """Top view of the arm and the targets: uint8 [RENDER_SIZE, RENDER_SIZE, 3].

        Targets are drawn as discs of the reach threshold, all in one colour unless
        ``show_positive``: then the +1 target is green and the others red.
        """
        params = self.default_params if params is None else params
        return render_state(state, params, show_positive)


# ------------------------------------------------------------------ rendering (numpy, not jitted)
RENDER_SIZE = 256  # pixels
_EXTENT = 0.23  # m, half-width of the drawn square
_BACKGROUND = np.array([245, 245, 240], np.uint8)
_RING = np.array([215, 215, 205], np.uint8)
_LINK = np.array([0, 100, 150], np.uint8)
_JOINT = np.array([40, 40, 40], np.uint8)
_TIP = np.array([0, 200, 150], np.uint8)
_TARGET = np.array([230, 150, 20], np.uint8)
_POSITIVE = np.array([40, 170, 60], np.uint8)
_NEGATIVE = np.array([210, 40, 40], np.uint8)


def _pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    """World xy (m) of every pixel centre, y up: float64 [S, S] each."""
    c = (np.arange(RENDER_SIZE) + 0.5) / RENDER_SIZE * 2 * _EXTENT - _EXTENT
    return np.meshgrid(c, -c)  # row 0 is the top of the image (largest y)


def _disc(img, x, y, centre, radius, colour) -> None:
    """Paint the pixels within ``radius`` (m) of ``centre``."""
    img[(x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2] = colour


def _segment(img, x, y, a, b, half_width, colour) -> None:
    """Paint the pixels within ``half_width`` (m) of the segment a-b."""
    d = np.asarray(b, np.float64) - a
    t = np.clip(((x - a[0]) * d[0] + (y - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
    img[(x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 <= half_width**2] = colour


def render_state(state: EnvState, params: EnvParams, show_positive: bool = False) -> np.ndarray:
    """Arm, fingertip, targets and the reachable annulus: uint8 [RENDER_SIZE, RENDER_SIZE, 3]."""
    x, y = _pixel_grid()
    img = np.empty((RENDER_SIZE, RENDER_SIZE, 3), np.uint8)
    img[:] = _BACKGROUND
    r = np.hypot(x, y)
    img[(r >= params.target_radius_min) & (r <= params.target_radius_max)] = _RING
    q = np.asarray(state.qpos, np.float64)
    elbow = LINK0 * np.array([np.cos(q[0]), np.sin(q[0])])
    tip = np.asarray(fingertip(np.asarray(q)), np.float64)
    for i, t in enumerate(np.asarray(state.targets, np.float64)):
        colour = _TARGET
        if show_positive:
            colour = _POSITIVE if i == int(state.positive) else _NEGATIVE
        _disc(img, x, y, t, params.distance_threshold, colour)
    _segment(img, x, y, np.zeros(2), elbow, 0.008, _LINK)
    _segment(img, x, y, elbow, tip, 0.008, _LINK)
    _disc(img, x, y, np.zeros(2), 0.011, _JOINT)
    _disc(img, x, y, elbow, 0.009, _JOINT)
    _disc(img, x, y, tip, 0.01, _TIP)
    return img


def given_options(**options) -> dict:
    """NReacher's keyword options that were given (None: its default)."""
    return {k: v for k, v in options.items() if v is not None}


def _factory(num_goals: int = 3, horizon: int = 15, integrator: str | None = None,
             distance_threshold: float | None = None, impl: str | None = None):
    """``integrator`` / ``distance_threshold`` / ``impl``: NReacher's (None: its default)."""
    env = NReacher(num_goals, **given_options(
        integrator=integrator, distance_threshold=distance_threshold, impl=impl))
    return env, env.default_params.replace(max_steps_in_episode=horizon)


SPEC = EnvSpec(
    factory=_factory, k_explore=3, horizon=15, architecture="meta_lstm",
    config=(*NAVIGATION_RECIPE, ("divergence", "js")), learning_rate=2.5e-3,
    lambda_div=1e-3 / 60, num_goals=lambda env: env.num_goals,
    renderer=reacher_draw.renderer(),
)
