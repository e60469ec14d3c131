"""Cost of the finite-value guard on a table's programs: ms per update with and without.

    python -m benchmarks.guard_cost table1 --chunk 20 --repeats 7

Both variants of every program are compiled first, then timed interleaved
(guarded, unguarded, alternating which goes first) so that a shared, noisy
machine slows both alike; the reported cost is the median of the per-repeat
ratios guarded / unguarded - 1.
"""

import argparse
import importlib
import json
import statistics
import time

import jax

from cmrl_jax.commands.tables import TableArgs, make_plan
from cmrl_jax.config import ConfigError
from cmrl_jax.train import make_init, make_runner, make_train


def time_chunk(train, state, hp) -> tuple[float, object]:
    """Seconds for one compiled chunk, and the state it returns (inputs are donated)."""
    t0 = time.perf_counter()
    state, _ = train(state, hp)
    jax.block_until_ready(state)
    return time.perf_counter() - t0, state


def main() -> None:
    """Print one JSON line per program and a summary line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("table", nargs="?", default="table1", help="experiment module, e.g. table1")
    p.add_argument("--chunk", type=int, default=20, help="updates per timed call")
    p.add_argument("--repeats", type=int, default=7, help="interleaved timings per variant")
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    try:
        spec = importlib.import_module(f"experiments.{a.table}").SPEC
    except (ImportError, AttributeError):
        p.error(f"unknown table {a.table!r}")
    if a.repeats < 1:
        p.error(f"--repeats must be >= 1, got {a.repeats}")
    try:
        plan = make_plan(spec, TableArgs(seeds=a.seeds, updates=a.chunk, chunk_updates=a.chunk))
    except ConfigError as e:
        p.error(str(e))
    ratios_all = []
    for name, cfg in plan.programs:
        runner = make_runner(cfg)
        state0, hp = make_init(cfg, runner)()
        variants = {}
        for guard in (True, False):
            train = jax.jit(make_train(cfg, runner, guard=guard), donate_argnums=0)
            _, state = time_chunk(train, jax.tree.map(lambda x: x.copy(), state0), hp)  # compile
            variants[guard] = [train, state, []]
        for r in range(a.repeats):
            for guard in ((True, False) if r % 2 == 0 else (False, True)):
                train, state, times = variants[guard]
                seconds, variants[guard][1] = time_chunk(train, state, hp)
                times.append(seconds / a.chunk)
        on, off = variants[True][2], variants[False][2]
        ratios = [x / y for x, y in zip(on, off, strict=True)]
        ratios_all += ratios
        print(json.dumps({
            "program": name, "runs": len(cfg.runs), "batch": cfg.batch_size,
            "ms_per_update_guard": round(1000 * statistics.median(on), 3),
            "ms_per_update_no_guard": round(1000 * statistics.median(off), 3),
            "median_cost_percent": round(100 * (statistics.median(ratios) - 1), 2),
            "ratios": [round(x, 4) for x in ratios],
        }), flush=True)
    print(json.dumps({"table": a.table, "repeats": a.repeats, "chunk": a.chunk,
                      "median_cost_percent_all_programs":
                          round(100 * (statistics.median(ratios_all) - 1), 2)}))


if __name__ == "__main__":
    main()
