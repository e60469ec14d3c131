"""One prepared check of an accelerator: ``make device-check`` (at most ~8 minutes on one GPU).

    python -m benchmarks.device_check                    # on a GPU / TPU VM
    python -m benchmarks.device_check --smoke            # tiny sizes, any backend (< 1 min)

Writes ``device_report.json`` and ``device_report.md`` to ``--out`` (default
``results/device_check``), one section a step, in this order (cheap and decisive
first; the first H100 run spent its budget before the physics check):
1. backend: what JAX runs on; fails unless it is an accelerator (``--smoke``: any);
2. physics precision: the closed-form arm, and MJX at full precision and at the
   backend's default matmul precision, against MuJoCo C over 60 random decisions;
3. Table 1 end to end (``experiments.table1``, paper setting): wall time, table;
4. cost per update and projected full-run time of Tables 2, 3 and 4 at their
   full batch (``benchmarks.table_cost``);
5. XLand-MiniGrid env steps/s of RL2, CMRL Central and Meta at 1k, 4k and 16k
   environments (GRU-256, PPO), compile time apart, temporary and peak device memory,
   and xland-minigrid's own trainer beside them where its checkout is (``--peer``;
   ``benchmarks.xland_throughput``): the >= 1M steps/s target;
6. closed-form and MJX Reacher decisions/s against ``mujoco.rollout`` on the host's cores
   (``benchmarks.reacher_speed``);
7. runs scaling (two or more devices): Table 1's programs on one device and
   with their runs split over two (target: >= 1.8x);
8. peak device memory of this process (steps 2, 4-7; steps 3 and 9 run apart);
9. fast tests: the backend-dependent test files (Reacher physics first, then
   maths, environments, engine, training) with ``CMRL_TEST_ACCELERATOR=1``, i.e.
   on the accelerator, in the time left (at least ``FAST_TESTS_MIN_S``).
A step that fails or runs out of the time budget is recorded as such and the
others still run; the exit status is 1 if any step failed.
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# Allocate device memory on demand: the test and Table 1 subprocesses share the device.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from cmrl_jax.results import runtime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST_TESTS = (  # their results depend on the backend's numerics; the rest is host code
    "tests/test_reacher.py", "tests/test_a2c.py", "tests/test_divergence.py",
    "tests/test_rewards.py", "tests/test_loss.py", "tests/test_engine.py",
    "tests/test_monty_hall.py", "tests/test_color_choice.py", "tests/test_generic_env.py",
    "tests/test_train.py", "tests/test_ppo.py",
)
SMOKE_TESTS = ("tests/test_rewards.py",)
# (full, smoke) sizes of each step.
TABLE1_ARGS = ([], ["--updates", "4", "--chunk-updates", "2", "--seeds", "1", "--batch-size", "8",
                    "--methods", "Max-Until-Exploit", "--extra", "k_explore=3", "eval_batches=1",
                    "eval_batch_size=8"])
# (table, batch, learner): every table with A2C, Tables 1 and 2 with PPO as well.
COST_TABLES = ((("table2", 128, "a2c"), ("table3", 128, "a2c"), ("table4", 128, "a2c"),
                ("table1", 128, "ppo"), ("table2", 128, "ppo")),
               (("table4", 8, "a2c"), ("table1", 8, "ppo")))
COST_CHUNK = (20, 2)
COST_SEEDS = (3, 1)
REACHER_ARGS = (["--batches", "128", "1024", "8192", "--decisions", "50", "--repeats", "2"],
                ["--batches", "8", "--decisions", "4", "--repeats", "1", "--threads", "1",
                 "--integrators", "Euler"])  # smoke: Euler compiles several times faster
# XLand-MiniGrid throughput (benchmarks.xland_throughput's reference task and network: R1-9x9,
# GRU-256, PPO 1 epoch x 16 minibatches, 512-step trials): (envs, hidden, horizon, chunk,
# minibatches) at full size and smoke size; every case at each size, smallest size first.
XLAND_SIZES = (((1024, 4096, 16384), 256, 128, 1, 16), ((4,), 8, 2, 1, 2))
XLAND_CASES = ("RL2", "CMRL-central", "CMRL")
XLAND_PEER = ROOT.parent / "xland-minigrid"  # the peer's checkout, where there is one
STEP_LIMIT_S = {"fast tests": 150, "table 1": 150}
FAST_TESTS_MIN_S = 45  # the last step runs this long even when the budget is spent


class Report:
    """Steps run in order within a time budget; each becomes one section of the report."""

    def __init__(self, budget_s: float):
        """``budget_s``: wall seconds for all steps together."""
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.steps: list[dict] = []

    def left(self) -> float:
        """Seconds left in the budget."""
        return self.budget_s - (time.perf_counter() - self.t0)

    def run(self, name: str, fn: Callable[[float], dict], always: bool = False) -> None:
        """Run ``fn(seconds_left)`` -> details; record ok / failed / skipped and its time.
        A step is skipped once the budget is spent, unless ``always``."""
        print(f"== {name} ({self.left():.0f} s left)", flush=True)
        step = {"step": name}
        if self.left() <= 5 and not always:
            step.update(status="skipped", reason="time budget spent")
        else:
            t0 = time.perf_counter()
            try:
                details = fn(self.left())
                status = "failed" if details.pop("failed", False) else "ok"
                if details.get("not_applicable"):
                    status = "not applicable"
                step.update(status=status, **details)
            except Exception as e:  # a broken step must not hide the others
                step.update(status="failed", error=f"{type(e).__name__}: {e}",
                            traceback=traceback.format_exc()[-2000:])
            step["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: v for k, v in step.items() if k != "traceback"})[:2000], flush=True)
        self.steps.append(step)


def check_backend(smoke: bool) -> dict:
    """Backend facts; failed unless JAX runs on an accelerator (any backend when smoke)."""
    facts = runtime.backend_facts()
    return {"facts": facts, "failed": not smoke and facts["backend"] == "cpu",
            "line": runtime.describe(facts)}


def _subprocess(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
    """Run ``cmd`` in the repository root; (return code or -1 on timeout, output tail)."""
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, (p.stdout + p.stderr)[-3000:]
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -1, out[-3000:]


def fast_tests(smoke: bool, left: float) -> dict:
    """The backend-dependent tests on this backend (CMRL_TEST_ACCELERATOR=1 unless on CPU)."""
    files = SMOKE_TESTS if smoke else FAST_TESTS
    env = dict(os.environ)
    if jax.default_backend() != "cpu":
        env["CMRL_TEST_ACCELERATOR"] = "1"
    floor = 0.0 if smoke else FAST_TESTS_MIN_S
    timeout = min(STEP_LIMIT_S["fast tests"], max(left, floor))
    code, tail = _subprocess([sys.executable, "-m", "pytest", "-q", "-m", "not slow",
                              "-p", "no:cacheprovider", *files], timeout, env)
    if code == -1:  # out of time: what ran so far, from pytest's progress lines
        marks = "".join(m.group(1) for m in re.finditer(r"^([.FEsxX]+)\s*(?:\[\s*\d+%\])?$",
                                                        tail, re.MULTILINE))
        bad = marks.count("F") + marks.count("E")
        summary = (f"stopped at the {round(timeout)} s limit: {marks.count('.')} passed, "
                   f"{bad} failed so far")
        return {"files": list(files), "summary": summary, "complete": False, "failed": bad > 0,
                "output_tail": tail[-1500:] if bad else ""}
    summary = next((line for line in reversed(tail.splitlines())
                    if " passed" in line or " failed" in line or " error" in line), "")
    return {"files": list(files), "summary": summary.strip("= "), "complete": True,
            "failed": code != 0, "output_tail": tail[-1500:] if code != 0 else ""}


def table1(smoke: bool, out: Path, left: float) -> dict:
    """Table 1 end to end in a fresh process: wall time and the table."""
    folder = out / "table1"
    timeout = min(STEP_LIMIT_S["table 1"], left)
    t0 = time.perf_counter()
    code, tail = _subprocess([sys.executable, "-m", "experiments.table1", "--no-progress",
                              "--out", str(folder), *TABLE1_ARGS[smoke]], timeout)
    wall = time.perf_counter() - t0
    table = folder / "table.json"
    return {"args": TABLE1_ARGS[smoke] or "paper setting (10k updates, 3 seeds, batch 128)",
            "wall_s": round(wall, 1), "timed_out_after_s": round(timeout) if code == -1 else None,
            "failed": code != 0 or not table.exists(),
            "table": json.loads(table.read_text()) if table.exists() else None,
            "output_tail": tail[-1500:] if code != 0 else ""}


def table_costs(smoke: bool, left: float) -> dict:
    """Seconds per update and projected full-run time of Tables 2, 3 and 4 at full batch
    (A2C), and of Tables 1 and 2 with PPO."""
    from benchmarks.table_cost import measure

    t_end = time.perf_counter() + left
    results, skipped = [], []
    for table, batch, learner in COST_TABLES[smoke]:
        if time.perf_counter() > t_end - 10:
            skipped.append(f"{table} ({learner})")
            continue
        results.append(measure(table, chunk=COST_CHUNK[smoke], seeds=COST_SEEDS[smoke],
                               batch_size=batch, learner=learner))
    return {"tables": results, "skipped_for_time": skipped}


def xland_throughput(smoke: bool, left: float, peer: Path | None = None) -> dict:
    """XLand-MiniGrid env steps/s of RL2, CMRL Central and CMRL Meta (GRU, PPO) at 1k to 16k
    environments, compile time apart, XLA's temporary memory of the update and the device's
    peak so far after each case; the peer's RL2 trainer at each size where its checkout is
    (``benchmarks.xland_throughput``, ``xland_peer``). Sizes the time left cannot reach are
    listed as skipped."""
    from benchmarks import xland_peer
    from benchmarks.xland_throughput import config, measure
    from cmrl_jax_envs import xland_benchmarks

    envs, hidden, horizon, chunk, minibatches = XLAND_SIZES[smoke]
    t_end = time.perf_counter() + left
    rows, skipped = [], []
    python, peer_error = None, None
    if peer is not None and not smoke:
        try:  # its virtualenv may need a network the device does not have: one line
            xland_peer.check_checkout(str(peer))
            python = xland_peer.peer_python(None)
        except Exception as e:  # noqa: BLE001 - any failure leaves our rows standing
            peer_error = f"{type(e).__name__}: {e}"
    for n in envs:
        for case in XLAND_CASES:
            if time.perf_counter() > t_end - 20:
                skipped.append(f"{case} at {n} envs")
                continue
            cfg = config(case, n, hidden, 3, horizon, chunk, "ppo", 1024,
                         (("epochs", 1), ("minibatches", min(minibatches, n))))
            row = {"case": case, **measure(cfg, repeats=1 if smoke else 2)}
            rows.append(row | {"device_peak_gib": peak_memory()["peak_gib"]})
            print(json.dumps(rows[-1]), flush=True)
        if python is not None and time.perf_counter() < t_end - 60:
            bench = xland_benchmarks.cached_benchmark(1024, 0, 1, 2)
            size = xland_peer.PeerSize(n, hidden, 4 * horizon, chunk * 2, minibatches, 1)
            try:
                rows.append({"case": "peer", **xland_peer.run(str(peer), python, Path(bench),
                                                              size)})
            except (RuntimeError, OSError) as e:  # one line; our rows stand
                rows.append({"case": "peer", "envs": n, "error": str(e)})
    rl2 = {r["envs"]: r.get("steps_per_s") for r in rows if r["case"] == "RL2"}
    for r in rows:  # each case's cost per env step over RL2's at the same size
        if r.get("steps_per_s") and rl2.get(r["envs"]):
            r["cost_over_rl2"] = round(rl2[r["envs"]] / r["steps_per_s"], 2)
    return {"rows": rows, "skipped_for_time": skipped, "peer": str(peer) if python else None,
            "peer_error": peer_error,
            "target_1m_steps_per_s_met": any((r.get("steps_per_s") or 0) >= 1e6 for r in rows
                                             if r["case"] == "RL2")}


def reacher_speed(smoke: bool) -> dict:
    """Closed-form arm and MJX decisions/s next to MuJoCo C's ``mujoco.rollout`` here."""
    from benchmarks.reacher_speed import main as speed

    with contextlib.redirect_stdout(io.StringIO()) as text:
        rows = speed(REACHER_ARGS[smoke])
    return {"rows": rows, "printed": text.getvalue()}


def physics_precision(smoke: bool) -> dict:
    """Largest joint-angle difference (rad) from MuJoCo C over 60 random decisions from 16
    starts: the closed-form arm, and MJX at full precision and at the backend default."""
    import mujoco
    from mujoco import rollout

    from cmrl_jax_envs.reacher import TORQUES, NReacher

    decisions, starts = (8, 2) if smoke else (60, 16)
    integrator, precisions = ("Euler", ("highest",)) if smoke else ("RK4", ("highest", "default"))
    out = {}
    for name, impl, precision in [("analytic", "analytic", "highest")] + [
            (f"mjx {p}", "jax", p) for p in precisions]:
        env = NReacher(integrator=integrator, impl=impl, matmul_precision=precision)
        params = env.default_params
        rng = np.random.default_rng(0)
        qpos0 = np.stack([rng.uniform(-np.pi, np.pi, starts), rng.uniform(-2.5, 2.5, starts)], 1)
        actions = rng.integers(0, 9, (starts, decisions))

        def run(q0, acts, env=env, params=params):
            def body(q_v, a):
                q, v = q_v
                qs, vs = env.physics(q, v, jnp.asarray(TORQUES)[a], params.frame_skip)
                return (qs[-1], vs[-1]), qs[-1]
            return jax.lax.scan(body, (q0, jnp.zeros(2)), acts)[1]

        q_jax = np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(qpos0, jnp.float32),
                                                  jnp.asarray(actions)))
        model, data = env.mj_model, mujoco.MjData(env.mj_model)
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        initial = np.empty((starts, mujoco.mj_stateSize(model, spec)))
        for i, q in enumerate(qpos0):
            mujoco.mj_resetData(model, data)
            data.qpos[:] = q
            mujoco.mj_getState(model, data, initial[i], spec)
        control = np.repeat(TORQUES[actions].astype(np.float64), params.frame_skip, axis=1)
        state, _ = rollout.rollout(model, data, initial, control)
        q_c = state[:, params.frame_skip - 1::params.frame_skip, 1:3]  # after each decision
        out[name] = float(np.max(np.abs(q_jax - q_c)))
    return {"max_abs_angle_error_rad": out, "integrator": integrator, "decisions": decisions,
            "starts": starts}


def runs_scaling(smoke: bool) -> dict:
    """Speed-up of Table 1's programs from one device to runs split over two."""
    if jax.local_device_count() < 2:
        return {"not_applicable": f"{jax.local_device_count()} device: nothing to split"}
    from benchmarks.table_cost import measure

    chunk, batch = (2, 8) if smoke else (50, 128)
    per_update = {}
    for devices in (1, 2):
        result = measure("table1", chunk=chunk, batch_size=batch, repeats=2, devices=devices,
                         runs_devices=devices)
        per_update[devices] = sum(p["s_per_update"] for p in result["programs"])
    speedup = per_update[1] / per_update[2]
    return {"s_per_update": per_update, "speedup": round(speedup, 2),
            "target_met": speedup >= 1.8}


def peak_memory() -> dict:
    """Peak bytes in use on each local device (None where the backend does not say)."""
    peaks = []
    for d in jax.local_devices():
        stats = d.memory_stats() or {}
        peaks.append(stats.get("peak_bytes_in_use"))
    known = [p for p in peaks if p is not None]
    return {"peak_bytes_per_device": peaks,
            "peak_gib": round(max(known) / 2**30, 3) if known else None}


def render(report: dict) -> str:
    """The Markdown page of a report."""
    facts = report["facts"]
    verdict = "all steps ok" if report["ok"] else "SOME STEPS FAILED"
    lines = [f"# Device check: {facts['device_kind']} ({facts['backend']})", "",
             f"{runtime.describe(facts)}", "",
             f"Mode: {'smoke' if report['smoke'] else 'full'}; total "
             f"{report['total_s']:.0f} s; {verdict}.",
             "", "| step | status | seconds | result |", "|---|---|---|---|"]
    for s in report["steps"]:
        lines.append(f"| {s['step']} | {s['status']} | {s.get('seconds', '')} | {_summary(s)} |")
    return "\n".join(lines) + "\n"


def _summary(step: dict) -> str:
    """One table cell: the step's headline numbers."""
    name = step["step"]
    if step["status"] != "ok":
        return (step.get("error") or step.get("reason") or step.get("not_applicable")
                or step.get("summary") or "")
    if name == "backend":
        return step["line"]
    if name == "fast tests":
        return step["summary"]
    if name == "table 1":
        finals = {m: r["final_success_mean"] for m, r in (step["table"] or {}).items()}
        return f"wall {step['wall_s']} s; final success % {finals}"
    if name == "table costs":
        return "; ".join(
            f"{t['table']} ({t['learner']}): "
            + ", ".join(f"{p['program']} {p['s_per_update']} s/update" for p in t["programs"])
            + f", projected {t['projected_table_wall_s'] / 60:.1f} min"
            for t in step["tables"]) + (f"; skipped {step['skipped_for_time']}"
                                        if step["skipped_for_time"] else "")
    if name == "reacher speed":
        return "; ".join(f"{r['backend']} batch {r['batch']}: {r['decisions_per_s']:,.0f} dec/s"
                         for r in step["rows"])
    if name == "xland throughput":
        return "; ".join(
            f"{r['case']} {r['envs']} envs: " + (
                f"{r['steps_per_s']:,} steps/s (compile {r.get('compile_s')} s"
                + (f", {r['cost_over_rl2']}x RL2's cost" if "cost_over_rl2" in r else "")
                + (f", peak {r['device_peak_gib']} GiB" if r.get("device_peak_gib") else "")
                + ")" if r.get("steps_per_s") else r.get("error", "no timing"))
            for r in step["rows"]) + (f"; skipped {step['skipped_for_time']}"
                                      if step["skipped_for_time"] else "")
    if name == "physics precision":
        return ", ".join(f"{k}: {v:.1e} rad" for k, v in step["max_abs_angle_error_rad"].items())
    if name == "runs scaling":
        return f"2 devices {step['speedup']}x one device (target 1.8x)"
    if name == "peak memory":
        return f"{step['peak_gib']} GiB" if step["peak_gib"] is not None else "not reported"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run every step, write the report, return 0 if every step passed."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes; any backend (CPU in tests)")
    p.add_argument("--out", default="results/device_check", help="report folder")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-time budget of the steps before the fast tests, which then get\n"
                        f"what is left or {FAST_TESTS_MIN_S} s (default 430 s, smoke 300 s)")
    p.add_argument("--xland-s", type=float, default=180.0,
                   help="seconds the XLand throughput step may take (default 180)")
    p.add_argument("--peer", default=None, help="a checkout of dunnolab/xland-minigrid for\n"
                   f"the XLand step's peer rows (default: {XLAND_PEER} if present)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(a.budget_s or (300.0 if a.smoke else 430.0))
    rep.run("backend", lambda left: check_backend(a.smoke))
    rep.run("physics precision", lambda left: physics_precision(a.smoke))
    rep.run("table 1", lambda left: table1(a.smoke, out, left))
    rep.run("table costs", lambda left: table_costs(a.smoke, left))
    peer = Path(a.peer) if a.peer else (XLAND_PEER if XLAND_PEER.is_dir() else None)
    rep.run("xland throughput",
            lambda left: xland_throughput(a.smoke, min(left, a.xland_s), peer))
    rep.run("reacher speed", lambda left: reacher_speed(a.smoke))
    rep.run("runs scaling", lambda left: runs_scaling(a.smoke))
    rep.run("peak memory", lambda left: peak_memory(), always=True)
    rep.run("fast tests", lambda left: fast_tests(a.smoke, left), always=True)
    ok = all(s["status"] in ("ok", "not applicable") for s in rep.steps)
    report = {"smoke": a.smoke, "ok": ok, "total_s": round(time.perf_counter() - rep.t0, 1),
              "facts": runtime.backend_facts(), "steps": rep.steps}
    (out / "device_report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "device_report.md").write_text(render(report))
    print(render(report))
    print(f"wrote {out / 'device_report.json'}, {out / 'device_report.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
