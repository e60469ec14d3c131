"""Training throughput: updates/s and meta-episodes/s per architecture, compile time apart.

    python -m benchmarks.throughput                 # 10-Monty-Hall, 6 runs vmapped
    python -m benchmarks.throughput --runs 12 --chunk 100
"""

import argparse
import json
import platform
import time

import jax

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.train import make_trainer

CASES = {
    "sequential": ("RL2", 32),
    "central_lstm": ("Max-Until-Exploit", 16),
    "meta_lstm": ("Max-Until-Exploit", 16),
}


def bench(arch: str, runs: int, chunk: int, batch: int) -> dict:
    """Compile once, then time one chunk of ``chunk`` updates for ``runs`` vmapped runs."""
    method, hidden = CASES[arch]
    cfg = TrainConfig(
        architecture=arch,
        hidden=hidden,
        batch_size=batch,
        chunk_updates=chunk,
        num_updates=chunk,
        runs=tuple(RunSpec(method, s, 1e-3, 0.2 if arch != "sequential" else 0.0)
                   for s in range(runs)),
    )
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    compiled = trainer.train_chunk.lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    state, _ = compiled(state, hp)  # warm-up
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state, _ = compiled(state, hp)
    jax.block_until_ready(state)
    run_s = time.perf_counter() - t0
    return {
        "architecture": arch,
        "runs": runs,
        "batch": batch,
        "compile_s": round(compile_s, 2),
        "ms_per_update_all_runs": round(1000 * run_s / chunk, 2),
        "ms_per_update_per_run": round(1000 * run_s / chunk / runs, 3),
        "meta_episodes_per_s": round(runs * batch * chunk / run_s),
    }


def main() -> None:
    """Print one JSON line per architecture."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--arch", nargs="*", default=list(CASES), choices=list(CASES))
    a = p.parse_args()
    for name in ("runs", "chunk", "batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    print(json.dumps({"device": str(jax.devices()[0]), "machine": platform.machine(),
                      "devices": jax.local_device_count()}))
    for arch in a.arch:
        print(json.dumps(bench(arch, a.runs, a.chunk, a.batch)), flush=True)


if __name__ == "__main__":
    main()
