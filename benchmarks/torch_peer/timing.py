"""Threads: before the first JAX computation or torch op the whole process (every
existing thread) is pinned to ``--threads`` cores with ``sched_setaffinity``; XLA's
CPU thread pool is sized from that affinity, torch gets ``set_num_threads`` and
``set_num_interop_threads``. Timing is interleaved: each repeat times ``--updates``
updates of ours (one compiled chunk), then torch eager, then torch.compile; the
table reports the best repeat of each, wall and process-CPU time.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import benchmarks.torch_peer.model as model
from benchmarks.torch_peer.checks import run_checks
from benchmarks.torch_peer.model import LoopedPeer, TorchPeer, table1_config, table1_program

try:  # optional: without torch, main says how to install it
    import torch
except ImportError:  # pragma: no cover - CI has no torch
    torch = None


def pin_threads(threads: int) -> list[int]:
    """Pin every thread of this process (and the ones started later) to ``threads`` cores."""
    cores = sorted(os.sched_getaffinity(0))[:threads]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that just ended
            pass
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set (parallel work has started)
        pass
    return cores


def timed(fn):
    """(wall s, process CPU s) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def measure(updates: int = 20, repeats: int = 3, threads: int = 1, batch_size: int = 128,
            compile: bool = True, warm_caches: bool = False, loop_runs: bool = False) -> dict:
    """Interleaved timing of ours, torch eager and torch.compile on this process's cores
    (``loop_runs``: also eager with the runs as separate models in a Python loop).

    Compile times are cold unless ``warm_caches``: JAX's persistent compilation cache is
    off and inductor compiles into a fresh temporary cache folder."""
    import jax

    from cmrl_jax.train import make_trainer

    cores = pin_threads(threads)
    if not warm_caches:
        import tempfile

        jax.config.update("jax_enable_compilation_cache", False)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="torch_peer_inductor_")
    pc = table1_config(batch_size=batch_size)
    cfg = dataclasses.replace(table1_program(batch_size=batch_size), chunk_updates=updates,
                              num_updates=updates)
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    chunk = trainer.train_chunk.lower(state, hp).compile()
    compile_s = {"ours": time.perf_counter() - t0}
    holder = {"state": chunk(state, hp)[0]}  # warm-up
    jax.block_until_ready(holder["state"])

    def ours():
        holder["state"], metrics = chunk(holder["state"], hp)
        jax.block_until_ready((holder["state"], metrics))

    impls = {"ours (JAX/XLA)": ours}
    peers = {"torch eager": TorchPeer(pc)}
    if loop_runs:
        peers["torch eager, runs in a loop"] = LoopedPeer(pc)
    if compile:
        peers["torch.compile"] = TorchPeer(pc, compile=True)
    errors = {}
    for name, peer in list(peers.items()):
        try:
            t0 = time.perf_counter()
            peer.update()  # compiles the loss, its backward and the optimizer step
            first = time.perf_counter() - t0
            peer.update()
            if name == "torch.compile":
                compile_s[name] = first
        except Exception as e:  # noqa: BLE001 - report and keep eager
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            del peers[name]
            continue

        def run(peer=peer):
            for _ in range(updates):
                info = peer.update()
            float(info["loss"].sum())

        impls[name] = run
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            times[name].append(timed(fn))
    runs = pc.runs
    rows = {}
    for name, ts in times.items():
        wall = min(w for w, _ in ts) / updates
        cpu = min(c for _, c in ts) / updates
        rows[name] = {"wall_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu,
                      "wall_ms_per_run": 1e3 * wall / runs, "cpu_ms_per_run": 1e3 * cpu / runs}
    base = rows["ours (JAX/XLA)"]
    for row in rows.values():
        row["wall_ratio"] = row["wall_ms"] / base["wall_ms"]
        row["cpu_ratio"] = row["cpu_ms"] / base["cpu_ms"]
    return {"program": "Table 1 sequential program (RL2 + ERL2)", "runs": runs,
            "batch_size": pc.batch_size, "updates": updates, "repeats": repeats,
            "threads": threads, "cores": cores, "torch": torch.__version__,
            "jax": jax.__version__, "compile_s": {k: round(v, 1) for k, v in compile_s.items()},
            "compile_caches": "warm" if warm_caches else "cold",
            "rows": rows, "errors": errors}


def render(result: dict) -> str:
    """The benchmark's table (markdown)."""
    lines = [
        f"{result['program']}: {result['runs']} runs, batch "
        f"{result['batch_size']}, best of {result['repeats']} x {result['updates']} updates, "
        f"{result['threads']} thread(s) pinned to cores {result['cores']}; "
        f"torch {result['torch']}, jax {result['jax']}",
        "",
        "| implementation | ms / update (6 runs), wall | CPU | ms / update / run, wall | CPU "
        "| x ours, wall | x ours, CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['wall_ms']:.1f} | {r['cpu_ms']:.1f} | "
                     f"{r['wall_ms_per_run']:.2f} | {r['cpu_ms_per_run']:.2f} | "
                     f"{r['wall_ratio']:.2f} | {r['cpu_ratio']:.2f} |")
    lines.append("")
    compiles = ", ".join(f"{k} {v}" for k, v in result["compile_s"].items())
    lines.append(f"compile s ({result['compile_caches']} caches): {compiles}")
    for name, err in result["errors"].items():
        lines.append(f"{name} FAILED: {err}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Checks, then the interleaved timing; prints the table and one JSON line."""
    package = sys.modules[__package__]  # the help: the package's, model's and our docstring
    p = argparse.ArgumentParser(description="\n".join((package.__doc__, model.__doc__, __doc__)),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=20, help="updates per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best reported)")
    p.add_argument("--threads", type=int, default=1, help="cores both libraries are pinned to")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument("--loop-runs", action="store_true",
                   help="also time eager torch with the 6 runs as separate models in a loop")
    p.add_argument("--warm-caches", action="store_true",
                   help="keep JAX's persistent and inductor's compilation caches (default: cold)")
    a = p.parse_args(argv)
    if torch is None:
        p.exit(2, "error: torch is not installed: pip install -e '.[peer]' (make bench-peer)\n")
    for name in ("updates", "repeats", "threads", "batch_size"):
        if getattr(a, name) < 1:
            p.exit(2, f"error: --{name.replace('_', '-')} must be >= 1\n")
    pin_threads(a.threads)  # before the first JAX computation and torch op
    if not a.skip_checks:
        print("checks: " + json.dumps(run_checks(table1_config(batch_size=a.batch_size))),
              flush=True)
    result = measure(a.updates, a.repeats, a.threads, a.batch_size, not a.no_compile,
                     a.warm_caches, a.loop_runs)
    print(render(result))
    print(json.dumps(result), flush=True)
    return result
