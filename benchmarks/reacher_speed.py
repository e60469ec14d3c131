"""N-Reacher stepping speed: the closed-form arm and MJX (jit of vmap, scanned) next to
MuJoCo C (``mujoco.rollout``).

    python -m benchmarks.reacher_speed                        # batches 1, 128, 1024; RK4
    python -m benchmarks.reacher_speed --integrators RK4 Euler --decisions 100
    python -m benchmarks.reacher_speed --impls jax warp       # MJX and MuJoCo Warp (NVIDIA GPU)

JAX rows (``analytic``: envs/reacher_arm.py; ``jax`` (labelled mjx): ``mjx.step``): ``jit`` of a
``lax.scan`` over ``--decisions`` decisions of
``vmap(NReacher.step_env)`` (the whole env step: physics, target check,
observation) from ``reset_env`` states, random actions; compile timed apart
(``.lower().compile()``), then the best of ``--repeats`` timed runs.
C: ``mujoco.rollout`` on the same ``MjModel`` with one ``MjData`` per thread
(``--threads``, default every core), the same start states, the same torques
held for ``frame_skip`` physics steps per decision; physics only (no target
check, no observation). Both report decisions/s and physics steps/s
(= decisions/s x frame_skip), so the units match.
"""

import argparse
import os
import platform
import time

import jax
import mujoco
import numpy as np
from mujoco import rollout

from cmrl_jax_envs.reacher import PHYSICS_IMPL, PHYSICS_IMPLS, TORQUES, NReacher

IMPL_LABELS = {"analytic": "analytic", "jax": "mjx", "warp": "mjx-warp"}


def _best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_mjx(env: NReacher, batch: int, decisions: int, repeats: int, seed: int) -> dict:
    """JAX env steps (either physics) of ``batch`` tasks for ``decisions`` decisions."""
    params = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(seed), batch)
    _, states = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(keys, params)
    actions = jax.random.randint(jax.random.PRNGKey(seed + 1), (decisions, batch), 0, 9)
    step_keys = jax.random.split(jax.random.PRNGKey(0), batch)

    def run(states, actions):
        def body(s, a):
            obs, s, reward, done, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                step_keys, s, a, params
            )
            return s, (reward, obs)

        return jax.lax.scan(body, states, actions)

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(states, actions).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(states, actions))  # warm-up
    seconds = _best_time(lambda: jax.block_until_ready(compiled(states, actions)), repeats)
    return {"compile_s": compile_s, "seconds": seconds, "qpos0": np.asarray(states.qpos)}


def bench_c(
    env: NReacher, qpos0: np.ndarray, decisions: int, repeats: int, threads: int, seed: int
) -> dict:
    """MuJoCo C rollouts from the same start angles, torques held for frame_skip steps."""
    model = env.mj_model
    frame_skip = env.default_params.frame_skip
    batch = qpos0.shape[0]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    initial = np.empty((batch, mujoco.mj_stateSize(model, spec)))
    for i, q in enumerate(qpos0):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = q
        mujoco.mj_getState(model, data, initial[i], spec)
    actions = np.random.default_rng(seed).integers(0, 9, (batch, decisions))
    control = np.repeat(TORQUES[actions].astype(np.float64), frame_skip, axis=1)  # [B, T*F, 2]
    datas = [mujoco.MjData(model) for _ in range(threads)]

    def run():
        rollout.rollout(model, datas, initial, control, persistent_pool=True)

    run()  # warm-up (creates the thread pool)
    seconds = _best_time(run, repeats)
    rollout.shutdown_persistent_pool()
    return {"compile_s": 0.0, "seconds": seconds}


def main(argv: list[str] | None = None) -> list[dict]:
    """Print a table: backend, integrator, batch, decisions/s, physics steps/s, compile s."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 128, 1024])
    p.add_argument("--decisions", type=int, default=100, help="decisions per timed run")
    p.add_argument("--integrators", nargs="+", default=["RK4"], choices=["RK4", "Euler"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="C rollout threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impls", nargs="+", default=[PHYSICS_IMPL, "jax"], choices=PHYSICS_IMPLS,
                   help="physics: the closed-form arm and/or an MJX implementation")
    args = p.parse_args(argv)

    print(f"N-Reacher, {args.decisions} decisions per run, jax {jax.__version__} on "
          f"{jax.default_backend()}, mujoco {mujoco.__version__}, {platform.machine()} with "
          f"{os.cpu_count()} cores")
    print(f"{'backend':>8} {'integrator':>10} {'skip':>4} {'batch':>6} {'decisions/s':>12} "
          f"{'physics steps/s':>16} {'compile s':>10}", flush=True)
    rows = []
    for integrator in args.integrators:
        envs = {impl: NReacher(num_goals=3, integrator=integrator, impl=impl)
                for impl in args.impls}
        model_env = next(iter(envs.values()))
        frame_skip = model_env.default_params.frame_skip
        for batch in args.batches:
            results = {IMPL_LABELS[impl]: bench_mjx(env, batch, args.decisions, args.repeats,
                                                    args.seed) for impl, env in envs.items()}
            qpos0 = [r.pop("qpos0") for r in results.values()][0]  # same seed: same starts
            results[f"C x{args.threads}"] = bench_c(
                model_env, qpos0, args.decisions, args.repeats, args.threads, args.seed)
            for backend, r in results.items():
                per_s = batch * args.decisions / r["seconds"]
                rows.append(
                    {
                        "backend": backend,
                        "integrator": integrator,
                        "frame_skip": frame_skip,
                        "batch": batch,
                        "decisions_per_s": per_s,
                        "physics_steps_per_s": per_s * frame_skip,
                        "compile_s": r["compile_s"],
                    }
                )
                print(_format(rows[-1]), flush=True)
    return rows


def _format(r: dict) -> str:
    """One table row."""
    return (f"{r['backend']:>8} {r['integrator']:>10} {r['frame_skip']:>4} {r['batch']:>6} "
            f"{r['decisions_per_s']:>12,.0f} {r['physics_steps_per_s']:>16,.0f} "
            f"{r['compile_s']:>10.1f}")


if __name__ == "__main__":
    main()
