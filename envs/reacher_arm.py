"""The Reacher arm's equations of motion in closed form: MuJoCo's RK4 step without MJX.

``NReacher(impl="analytic")`` steps the arm with these functions instead of
``mjx.step``. They are the equations MuJoCo itself integrates for this model,
written out for a planar chain of two hinges about z, with every constant
read from the compiled ``mujoco.MjModel`` (``ArmConstants.from_model``), so
the MJCF in ``envs/reacher.py`` stays the one source of the arm:

- mass matrix (``mass_matrix``): link i has mass m_i, centre of mass c_i
  along its x axis and inertia I_i about z through it; with l0 the distance
  from joint 0 to joint 1, a0 = I_0 + m_0 c_0^2, a1 = I_1 + m_1 c_1^2 and
  h = m_1 l0 c_1,
      M = [[a0 + a1 + m_1 l0^2 + 2 h cos q1 + armature_0, a1 + h cos q1],
           [a1 + h cos q1,                                a1 + armature_1]];
- Coriolis and centrifugal forces (``bias_force``):
      (-h sin q1 (2 v0 v1 + v1^2), h sin q1 v0^2);
- applied forces: gear * clip(ctrl, ctrlrange) - damping * v (MuJoCo's RK4
  treats damping explicitly); no gravity work (hinges about z), no contacts;
- joint 1's limit (``limit_force``): MuJoCo's soft constraint. Past a
  limit (distance r < 0, Jacobian J = +1 at the lower limit, -1 at the upper)
  the solver minimises (a - a0)' M (a - a0) / 2 + (J a - aref)^2 / (2 R) over
  the accelerations a while J a < aref, with
      aref = -B J v - K imp(r) r,  B = 2 / (dmax tc),  K = 1 / (dmax tc dr)^2,
      R = (1 - imp) / imp * invweight0,
  (tc, dr) = solref with tc >= 2 timestep, imp the solimp impedance of |r|,
  invweight0 = ``dof_invweight0`` (MuJoCo's diagonal approximation). One
  scalar constraint is a one-dimensional quadratic: the minimiser is
  a = a0 + M^-1 J' f with f = -(J a0 - aref) / (R + J M^-1 J'), exactly what
  MuJoCo's Newton solver converges to (the force J' f enters the Euler step too);
- RK4 (``rk4_step``): the classical tableau over (q, v), as ``mj_RungeKutta``;
  Euler (``euler_step``): MuJoCo's semi-implicit Euler, damping implicit
  ((M + dt D) a = all forces, then v += dt a, q += dt v), as ``mj_Euler``.

Accuracy (tests/test_reacher.py): in float64 the mass matrix equals
``mj_fullM`` to 1e-19 and 60-step trajectories with limit hits follow
``mujoco.mj_step`` (RK4, 100 solver iterations) to ~3e-7 rad; in float32
they meet the same tolerances as MJX. Only this model's shape is covered (two
hinges about z, links along x, joint 0 unlimited, no contacts): ``from_model``
refuses any other.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

MIN_IMPEDANCE, MAX_IMPEDANCE = 1e-4, 1.0 - 1e-4  # MuJoCo's mjMINIMP / mjMAXIMP
MIN_REGULARISER = 1e-15  # MuJoCo's mjMINVAL
_D, _E = mujoco.mjtDisableBit, mujoco.mjtEnableBit
_NEEDED = (_D.mjDSBL_CONSTRAINT | _D.mjDSBL_LIMIT | _D.mjDSBL_DAMPER | _D.mjDSBL_ACTUATION
           | _D.mjDSBL_CLAMPCTRL)  # parts of the physics the equations always include
_CHANGES_CONSTRAINT = _E.mjENBL_DIAGEXACT | _E.mjENBL_OVERRIDE


@dataclasses.dataclass(frozen=True)
class ArmConstants:
    """Everything the two-link equations need, read from a MuJoCo model (Python floats:
    they enter the traced equations as constants)."""

    a0: float  # kg m^2, link 0 inertia about joint 0
    a1: float  # kg m^2, link 1 inertia about joint 1
    m1_l0_sq: float  # kg m^2, link 1 mass times l0^2
    h: float  # kg m^2, link 1 mass times l0 times its centre of mass
    armature: tuple[float, float]
    damping: tuple[float, float]
    gear: tuple[float, float]
    ctrl_low: tuple[float, float]
    ctrl_high: tuple[float, float]
    lower: float  # rad, joint 1 range
    upper: float
    invweight: float  # MuJoCo's dof_invweight0 of joint 1
    stiffness: float  # K of the limit's reference acceleration
    damping_ref: float  # B of the limit's reference acceleration
    imp_low: float  # solimp d0, dwidth, width, midpoint, power
    imp_high: float
    imp_width: float
    imp_mid: float
    imp_power: float
    timestep: float
    integrator: str  # "RK4" or "Euler"
    implicit_damping: bool  # Euler: damping integrated implicitly (MuJoCo's default)

    @classmethod
    def from_model(cls, m: mujoco.MjModel) -> ArmConstants:
        """Constants of a two-hinge planar arm; ValueError for any other model."""
        _check_shape(m)

        def izz(body: int) -> float:
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, np.asarray(m.body_iquat[body], np.float64))
            return float(np.sum(m.body_inertia[body] * rot.reshape(3, 3)[2] ** 2))

        m0, m1 = (float(x) for x in m.body_mass[1:3])
        c0, c1 = float(m.body_ipos[1, 0]), float(m.body_ipos[2, 0])
        l0 = float(m.body_pos[2, 0])
        timeconst, dampratio = (float(x) for x in m.jnt_solref[1])
        if not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_REFSAFE:
            timeconst = max(timeconst, 2.0 * float(m.opt.timestep))
        d0, dwidth, width, mid, power = (float(x) for x in m.jnt_solimp[1])
        pair = lambda x: (float(x[0]), float(x[1]))  # noqa: E731
        return cls(
            a0=izz(1) + m0 * c0**2,
            a1=izz(2) + m1 * c1**2,
            m1_l0_sq=m1 * l0**2,
            h=m1 * l0 * c1,
            armature=pair(m.dof_armature),
            damping=pair(m.dof_damping),
            gear=pair(m.actuator_gear[:, 0] * m.actuator_gainprm[:, 0]),
            ctrl_low=pair(m.actuator_ctrlrange[:, 0]),
            ctrl_high=pair(m.actuator_ctrlrange[:, 1]),
            lower=float(m.jnt_range[1, 0]),
            upper=float(m.jnt_range[1, 1]),
            invweight=float(m.dof_invweight0[1]),
            stiffness=1.0 / (dwidth * timeconst * dampratio) ** 2,
            damping_ref=2.0 / (dwidth * timeconst),
            imp_low=d0,
            imp_high=dwidth,
            imp_width=width,
            imp_mid=mid,
            imp_power=power,
            timestep=float(m.opt.timestep),
            integrator="RK4" if m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4 else "Euler",
            implicit_damping=not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
        )


def _check_shape(m: mujoco.MjModel) -> None:
    """The model is the planar two-hinge arm these equations describe."""
    z = np.array([0.0, 0.0, 1.0])
    problems = []
    if (m.nq, m.nv, m.nu, m.nbody) != (2, 2, 2, 3):
        problems.append("two hinge joints, two motors and two bodies")
    elif not (np.all(m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
              and np.allclose(m.jnt_axis, z) and np.allclose(m.jnt_pos, 0.0)):
        problems.append("hinges about z at the body origins")
    elif not (np.allclose(m.body_ipos[1:, 1:], 0.0) and np.allclose(m.body_pos[2, 1:], 0.0)):
        problems.append("links and centres of mass along x")
    elif list(m.jnt_limited) != [0, 1] or np.any(m.jnt_margin != 0.0):
        problems.append("joint 0 unlimited, joint 1 limited without margin")
    elif m.opt.integrator not in (mujoco.mjtIntegrator.mjINT_RK4, mujoco.mjtIntegrator.mjINT_EULER):
        problems.append("the RK4 or Euler integrator")
    elif not (m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT or
              np.all(m.geom_contype == 0)):
        problems.append("no contacts")
    elif np.any(m.jnt_stiffness != 0.0) or np.any(m.dof_frictionloss != 0.0):
        problems.append("no joint stiffness or friction loss")
    elif np.any(m.actuator_trntype != mujoco.mjtTrn.mjTRN_JOINT) or list(
            m.actuator_trnid[:, 0]) != [0, 1] or not np.all(m.actuator_ctrllimited) or np.any(
            m.actuator_gaintype != mujoco.mjtGain.mjGAIN_FIXED) or np.any(
            m.actuator_biastype != mujoco.mjtBias.mjBIAS_NONE) or np.any(
            m.actuator_dyntype != mujoco.mjtDyn.mjDYN_NONE):
        problems.append("one limited motor per joint, in joint order")
    elif np.any(m.opt.gravity[:2] != 0.0):
        problems.append("gravity along the hinge axes (or none)")
    elif m.opt.disableflags & _NEEDED or m.opt.enableflags & _CHANGES_CONSTRAINT:
        problems.append("limits, damping, actuation and control clamping on, MuJoCo's "
                        "approximate constraint diagonal and no override")
    if problems:
        raise ValueError(f"the closed-form arm needs {problems[0]}; use an MJX impl")


def mass_matrix(c: ArmConstants, q: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Joint-space inertia at angles q float [2]: (M00, M01, M11) float scalars."""
    hc = c.h * jnp.cos(q[1])
    return (c.a0 + c.a1 + c.m1_l0_sq + 2.0 * hc + c.armature[0], c.a1 + hc,
            c.a1 + c.armature[1])


def bias_force(c: ArmConstants, q: jax.Array, v: jax.Array) -> jax.Array:
    """Coriolis and centrifugal forces at (q, v) float [2] each: float [2]."""
    hs = c.h * jnp.sin(q[1])
    return jnp.stack([-hs * (2.0 * v[0] * v[1] + v[1] ** 2), hs * v[0] ** 2])


def impedance(c: ArmConstants, r: jax.Array) -> jax.Array:
    """MuJoCo's solimp impedance of a constraint violated by r: float scalar in (0, 1)."""
    x = jnp.abs(r) / c.imp_width
    xc = jnp.clip(x, 0.0, 1.0)
    p, mid = c.imp_power, c.imp_mid
    y = jnp.where(xc <= mid, xc**p / mid ** (p - 1.0),
                  1.0 - (1.0 - xc) ** p / (1.0 - mid) ** (p - 1.0))
    imp = jnp.where(x >= 1.0, c.imp_high, c.imp_low + y * (c.imp_high - c.imp_low))
    return jnp.clip(imp, MIN_IMPEDANCE, MAX_IMPEDANCE)


def limit_force(c: ArmConstants, q: jax.Array, v: jax.Array, acc: jax.Array,
                inv_m11: jax.Array) -> jax.Array:
    """Joint 1's soft-limit force (on joint 1; 0 within the range): float scalar.

    acc: the accelerations without it, float [2]; inv_m11: entry [1, 1] of M^-1.
    """
    lower = q[1] < c.lower
    jac = jnp.where(lower, 1.0, -1.0)
    r = jnp.where(lower, q[1] - c.lower, c.upper - q[1])  # < 0 past the limit
    imp = impedance(c, r)
    reg = jnp.maximum(MIN_REGULARISER, (1.0 - imp) / imp * c.invweight)
    aref = -c.damping_ref * jac * v[1] - c.stiffness * imp * r
    jar = jac * acc[1] - aref
    return jnp.where((r < 0.0) & (jar < 0.0), -jac * jar / (reg + inv_m11), 0.0)


def _solve(m00, m01, m11, f: jax.Array) -> jax.Array:
    """[[m00, m01], [m01, m11]]^-1 f for f float [2]: float [2]."""
    det = m00 * m11 - m01 * m01
    return jnp.stack([m11 * f[0] - m01 * f[1], m00 * f[1] - m01 * f[0]]) / det


def total_force(c: ArmConstants, q: jax.Array, v: jax.Array, ctrl: jax.Array
                ) -> tuple[tuple[jax.Array, jax.Array, jax.Array], jax.Array]:
    """Mass matrix (M00, M01, M11) and all joint forces float [2] at (q, v) under motor
    controls ctrl float [2]: motors, damping, Coriolis and centrifugal, joint 1's limit."""
    m00, m01, m11 = mass_matrix(c, q)
    ctrl = jnp.clip(ctrl, jnp.asarray(c.ctrl_low), jnp.asarray(c.ctrl_high))
    force = jnp.asarray(c.gear) * ctrl - jnp.asarray(c.damping) * v - bias_force(c, q, v)
    inv_m11 = m00 / (m00 * m11 - m01 * m01)
    limit = limit_force(c, q, v, _solve(m00, m01, m11, force), inv_m11)
    return (m00, m01, m11), force.at[1].add(limit)


def acceleration(c: ArmConstants, q: jax.Array, v: jax.Array, ctrl: jax.Array) -> jax.Array:
    """Joint accelerations float [2] at (q, v) under motor controls ctrl float [2]."""
    (m00, m01, m11), force = total_force(c, q, v, ctrl)
    return _solve(m00, m01, m11, force)


def rk4_step(c: ArmConstants, q: jax.Array, v: jax.Array, ctrl: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    """One timestep of classical RK4 from (q, v) float [2] each: the new (q, v)."""
    dt = c.timestep
    a1 = acceleration(c, q, v, ctrl)
    v2 = v + 0.5 * dt * a1
    a2 = acceleration(c, q + 0.5 * dt * v, v2, ctrl)
    v3 = v + 0.5 * dt * a2
    a3 = acceleration(c, q + 0.5 * dt * v2, v3, ctrl)
    v4 = v + dt * a3
    a4 = acceleration(c, q + dt * v3, v4, ctrl)
    return (q + dt / 6.0 * (v + 2.0 * v2 + 2.0 * v3 + v4),
            v + dt / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4))


def euler_step(c: ArmConstants, q: jax.Array, v: jax.Array, ctrl: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """One timestep of MuJoCo's semi-implicit Euler from (q, v) float [2] each: damping
    implicit, a = (M + dt D)^-1 (all forces), then v += dt a and q += dt v (new v)."""
    dt = c.timestep
    (m00, m01, m11), force = total_force(c, q, v, ctrl)
    if c.implicit_damping:
        m00, m11 = m00 + dt * c.damping[0], m11 + dt * c.damping[1]
    v = v + dt * _solve(m00, m01, m11, force)
    return q + dt * v, v


def rollout(c: ArmConstants, q: jax.Array, v: jax.Array, ctrl: jax.Array, steps: int
            ) -> tuple[jax.Array, jax.Array]:
    """``steps`` timesteps (RK4 or Euler, the model's) under constant ctrl float [2]:
    (q, v) after each, float [steps, 2] each."""
    step = rk4_step if c.integrator == "RK4" else euler_step
    qs, vs = [], []
    for _ in range(steps):  # static and small (the frame skip): unrolled
        q, v = step(c, q, v, ctrl)
        qs.append(q)
        vs.append(v)
    return jnp.stack(qs), jnp.stack(vs)
