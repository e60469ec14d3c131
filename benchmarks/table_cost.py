"""Cost per update of a table's programs, as they are configured by its CLI defaults.

    python -m benchmarks.table_cost table2 --chunk 20

Prints compile time and seconds per update for each program (all its runs
vmapped), and the projected wall time of the table's full run on this machine
(programs run in parallel threads, one per core).
"""

import argparse
import dataclasses
import importlib
import json
import os
import time

import jax

from cmrl_jax.train import make_trainer
from experiments.common import TableArgs, make_plan


def main() -> None:
    """Time one chunk of every program of the table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("table", help="experiment module, e.g. table1, table2, table4")
    p.add_argument("--chunk", type=int, default=20, help="updates timed per program")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="meta-episodes per update")
    a = p.parse_args()
    spec = importlib.import_module(f"experiments.{a.table}").SPEC
    plan = make_plan(spec, TableArgs(seeds=a.seeds, batch_size=a.batch_size))
    total = {}
    for name, cfg in plan.programs:
        full_updates = cfg.num_updates
        cfg = dataclasses.replace(cfg, chunk_updates=a.chunk, num_updates=a.chunk)
        trainer = make_trainer(cfg)
        state, hp = trainer.init()
        t0 = time.perf_counter()
        compiled = trainer.train_chunk.lower(state, hp).compile()
        compile_s = time.perf_counter() - t0
        state, _ = compiled(state, hp)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        state, _ = compiled(state, hp)
        jax.block_until_ready(state)
        per_update = (time.perf_counter() - t0) / a.chunk
        total[name] = per_update * full_updates
        print(json.dumps({
            "program": name, "runs": len(cfg.runs), "compile_s": round(compile_s, 1),
            "s_per_update": round(per_update, 4),
            "s_per_update_per_run": round(per_update / len(cfg.runs), 5),
            "projected_full_run_s": round(per_update * full_updates),
        }), flush=True)
    cores = os.cpu_count() or 1
    print(json.dumps({"projected_table_wall_s_with_parallel_programs":
                      round(max(total.values()) if cores >= len(total) else sum(total.values())),
                      "note": "training only, evaluation every 250 updates adds a little"}))


if __name__ == "__main__":
    main()
