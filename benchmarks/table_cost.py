"""Cost per update of a table's programs, as they are configured by its CLI defaults.

    python -m benchmarks.table_cost table2 --chunk 20
    python -m benchmarks.table_cost all --repeats 3      # every table (make bench)
    python -m benchmarks.table_cost table3 --chunk 4 --env-option impl=jax   # Reacher on MJX
    python -m benchmarks.table_cost table1 --learner a2c ppo   # both learners, one process

Prints compile time, seconds per update (wall, best of ``--repeats`` timed
chunks) and process CPU seconds per update (steadier than wall time on a
shared machine) for each program (all its runs vmapped), and the projected
wall time of the table's full run on this machine:
on a CPU programs run in parallel threads, one per core; on an accelerator
they share the device, so their times add up. On a CPU a second, higher
projection shares the programs' summed CPU time over the cores (XLA gives
one program more than one core, so in parallel they compete).
"""

import argparse
import dataclasses
import importlib
import json
import os
import time

import jax

from cmrl_jax.commands.generic import parse_env_options
from cmrl_jax.commands.tables import TableArgs, make_plan
from cmrl_jax.config import ConfigError
from cmrl_jax.parallel import program_mesh
from cmrl_jax.registry import make_env
from cmrl_jax.results.runtime import mesh_shape
from cmrl_jax.train import make_trainer

TABLES = ("table1", "table2", "table3", "table4")


def measure(
    table: str, chunk: int = 20, seeds: int = 3, batch_size: int = 128, repeats: int = 1,
    devices: int = 1, runs_devices: int = 0, env_options: tuple = (), learner: str = "a2c",
    learner_options: tuple[str, ...] = (),
) -> dict:
    """Compile and time one chunk of every program of ``table`` (e.g. "table2").

    Returns ``{"table", "programs": [one dict per program], "projected_table_wall_s"}``;
    a program's dict has its runs, mesh, compile seconds, seconds per update and
    the projected seconds of its full run (training only). ``devices`` /
    ``runs_devices``: the mesh, as the CLIs' ``--devices`` / ``--runs-devices``.
    ``env_options``: (key, value) pairs that replace or add to the table's env options.
    ``learner`` / ``learner_options``: as the CLIs' ``--learner`` / ``--learner-option``.
    """
    spec = importlib.import_module(f"experiments.{table}").SPEC
    if env_options:
        kwargs = {**dict(spec.base.env_kwargs), **dict(env_options)}
        spec = dataclasses.replace(spec, base=dataclasses.replace(
            spec.base, env_kwargs=tuple(kwargs.items())))
    plan = make_plan(spec, TableArgs(seeds=seeds, batch_size=batch_size, learner=learner,
                                     learner_option=tuple(learner_options)))
    programs = []
    for name, cfg in plan.programs:
        full_updates = cfg.num_updates
        cfg = dataclasses.replace(cfg, chunk_updates=chunk, num_updates=chunk)
        mesh = program_mesh(cfg, devices, runs_devices)
        trainer = make_trainer(cfg, mesh)
        state, hp = trainer.init()
        t0 = time.perf_counter()
        compiled = trainer.train_chunk.lower(state, hp).compile()
        compile_s = time.perf_counter() - t0
        state, _ = compiled(state, hp)
        jax.block_until_ready(state)
        walls, cpus = [], []
        for _ in range(max(repeats, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            state, _ = compiled(state, hp)
            jax.block_until_ready(state)
            walls.append((time.perf_counter() - t0) / chunk)
            cpus.append((time.process_time() - c0) / chunk)
        per_update = min(walls)
        programs.append({
            "program": name, "learner": learner, "runs": len(cfg.runs), "batch_size": batch_size,
            "mesh": mesh_shape(mesh),
            "compile_s": round(compile_s, 1), "s_per_update": round(per_update, 4),
            "cpu_s_per_update": round(min(cpus), 4),
            "s_per_update_per_run": round(per_update / len(cfg.runs), 5),
            "full_updates": full_updates, "projected_full_run_s": round(per_update * full_updates),
        })
    return {"table": table, "learner": learner, "programs": programs,
            **project(programs, jax.default_backend(), os.cpu_count() or 1)}


def project(programs: list[dict], backend: str, cores: int) -> dict:
    """Projected training wall time of a whole table from its programs' costs.

    ``projected_table_wall_s``: on a CPU with a core per program the programs
    run in parallel threads, so the longest one; on an accelerator (or too few
    cores) they take turns, so the sum. ``projected_table_wall_s_shared_cores``
    (CPU only): XLA spreads one program over several cores, so in parallel the
    programs compete; this bound shares their summed CPU time over the cores
    (never below the longest program). The full Tables 2 and 3 measured on the
    2-core CPU fell between the two (docs/results.md, "Throughput").
    """
    totals = [p["projected_full_run_s"] for p in programs]
    if backend != "cpu" or cores < len(totals):
        return {"projected_table_wall_s": sum(totals)}
    cpu = sum(p["cpu_s_per_update"] * p["full_updates"] for p in programs)
    return {"projected_table_wall_s": max(totals),
            "projected_table_wall_s_shared_cores": round(max(max(totals), cpu / cores))}


def main(argv: list[str] | None = None) -> None:
    """Time one chunk of every program of the table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("tables", nargs="+", choices=TABLES + ("all",), help="tables to time")
    p.add_argument("--chunk", type=int, default=20, help="updates timed per program")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="meta-episodes per update")
    p.add_argument("--repeats", type=int, default=1, help="timed chunks per program (best)")
    p.add_argument("--learner", nargs="+", default=["a2c"], help="learners to time, in turn")
    p.add_argument("--learner-option", nargs="+", default=[], metavar="KEY=VALUE",
                   help="options of the learners (e.g. epochs=2)")
    p.add_argument("--env-option", nargs="+", default=[], metavar="KEY=VALUE",
                   help="replace one of the table's env options (one table only)")
    a = p.parse_args(argv)
    for name, value in (("--chunk", a.chunk), ("--seeds", a.seeds),
                        ("--batch-size", a.batch_size), ("--repeats", a.repeats)):
        if value < 1:
            p.exit(2, f"error: {name} must be >= 1, got {value}\n")
    tables = TABLES if "all" in a.tables else tuple(dict.fromkeys(a.tables))
    options = ()
    if a.env_option:
        if len(tables) != 1:
            p.exit(2, "error: --env-option needs exactly one table\n")
        spec = importlib.import_module(f"experiments.{tables[0]}").SPEC
        try:
            options = parse_env_options(spec.base.env, tuple(a.env_option))
            make_env(spec.base.env, **{**dict(spec.base.env_kwargs), **dict(options)})
        except ConfigError as e:
            p.exit(2, f"error: {e}\n")
        except Exception as e:  # the env's own refusal of an option value
            p.exit(2, f"error: env {spec.base.env} refused its options: {e}\n")
    for table, learner in ((t, lrn) for t in tables for lrn in a.learner):
        try:
            result = measure(table, a.chunk, a.seeds, a.batch_size, a.repeats,
                             env_options=options, learner=learner,
                             learner_options=tuple(a.learner_option))
        except ConfigError as e:
            p.exit(2, f"error: {e}\n")
        for program in result["programs"]:
            print(json.dumps({"table": table, **program}), flush=True)
        projection = {k: v for k, v in result.items() if k.startswith("projected_")}
        print(json.dumps({"table": table, "learner": learner, **projection,
                          "note": "training only, evaluation every 250 updates adds a little"}),
              flush=True)


if __name__ == "__main__":
    main()
