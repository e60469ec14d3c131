"""Shared machinery of the table experiments: CLI, plan, runs, sweep, table, figure.

A table experiment is a ``TableSpec`` (environment, rows, paper numbers,
learning-rate grid). A row is a method, possibly with its own lambda_div.
Rows that share an architecture train together as one compiled program
(seeds, learning rates, reward schemes and lambda_div vmapped); each program
has its own subfolder, checkpoints and ``eval.jsonl`` under ``--out``.
"""

import contextlib
import dataclasses
import io
import json
import os
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig, check_number, get_method
from cmrl_jax.metrics import clean_json, curves, render_table, row_label, summarize

# Exit statuses of every command (docs/design.md, "Faults").
EXIT_USAGE = 2  # bad input or a results folder we may not write: one line, nothing changed
EXIT_NONFINITE = 3  # a run stopped being finite: the folder keeps its last finite update
EXIT_INTERRUPTED = 130  # SIGINT: the folder keeps its last finished chunk; rerun to resume


PAPER_METHODS = ("RL2", "ERL2", "Max-Until-Exploit", "StDev-Until-Exploit")
"""The four rows of the paper's Tables 1-3."""


# The recipe of the H = 15 environments (Color-Choice, Reacher; docs/design.md,
# "Entropy on Color-Choice and Reacher"): a low explore entropy lets the rollouts
# learn to enter goals from the shared reward; a high exploit entropy (1.0 -> 0.01)
# keeps the exploit policy from learning to avoid every goal before exploration is
# informative; rewards x10 in the agent input.
NAVIGATION_RECIPE = {
    "entropy_explore_start": 0.05,
    "entropy_exploit_start": 1.0,
    "reward_input_scale": 10.0,
}


@dataclass(frozen=True)
class Row:
    """One table row: a method, with or without the divergence loss."""

    label: str
    method: str
    divergence: bool = True  # CMRL rows: lambda_div as configured; False: lambda_div = 0
    in_paper: bool = True


@dataclass(frozen=True)
class TableSpec:
    """Everything that makes one paper table."""

    name: str  # e.g. "table1"
    title: str
    cmrl_architecture: str  # "central_lstm" or "meta_lstm" for the CMRL rows
    base: TrainConfig  # env, sizes, horizons; runs / architecture / hidden filled per group
    rows: tuple[Row, ...]  # default rows, in table order
    learning_rates: dict[str, float]  # default per row label (chosen by the sweep)
    lambda_div: float  # default for CMRL rows
    sweep_grid: tuple[float, ...]  # Appendix A learning-rate grid
    thresholds: tuple[float, ...]
    paper: dict[str, dict]  # method -> {auc, final, final_std, visited, updates_until}
    num_goals: int | None
    oracle: Any = None  # optional () -> markdown text appended under the table
    hidden: int | None = None  # LSTM size of every program (None: the method's)
    visited_goals: bool = True  # the env reports goals (False: the metric is omitted)


@dataclass(frozen=True)
class TableArgs:
    """Command-line options of a table experiment."""

    out: str | None = None
    """results folder (default results/<table>)"""
    updates: int | None = None
    """updates per run (default: the experiment's; the paper's for a table)"""
    seeds: int = 3
    """seeds per method"""
    methods: tuple[str, ...] | None = None
    """subset of the table's rows (default: all)"""
    learning_rate: float | None = None
    """override the learning rate of every selected method"""
    lambda_div: float | None = None
    """override lambda_div of every selected CMRL method"""
    sweep: bool = False
    """train the experiment's learning-rate grid (a table's: Appendix A's) for every method
    and seed; report the best mean"""
    batch_size: int = 128
    """meta-episodes per update"""
    chunk_updates: int = 250
    """updates per compiled call (evaluation and checkpoint after each)"""
    progress: bool = True
    """show progress bars"""
    jobs: int = 0
    """programs trained at once in threads (0: one per program, at most one per core)"""
    devices: int = 0
    """devices to train on (0: every device JAX finds, on every host)"""
    runs_devices: int = 0
    """devices the runs are split over (0: as many as divide runs and devices); the batch is
    split over the rest (it must divide)"""
    distributed: bool = False
    """join a multi-host cluster with jax.distributed (TPU pod, SLURM, or JAX_COORDINATOR_*)"""
    extra: tuple[str, ...] = field(default_factory=tuple)
    """advanced TrainConfig overrides as KEY=VALUE (e.g. entropy_explore_start=0.02)"""


# How a run is carried out, not what it computes: not part of a results folder's identity.
RUNTIME_OPTIONS = ("out", "progress", "jobs", "devices", "runs_devices", "distributed")


@dataclass(frozen=True)
class Plan:
    """Validated programs of one invocation."""

    folder: Path  # or an object store's epath.Path (cmrl_jax.paths.results_path)
    experiment_json: str
    programs: tuple[tuple[str, TrainConfig], ...]  # (subfolder name, config)


def paper_row(auc: float, final: float, std: float, visited: float,
              thresholds: tuple[float, ...], *until: int | None) -> dict:
    """A row of the paper's table; ``until`` follows ``thresholds`` (None or missing = never)."""
    keys = [f"{round(100 * t)}" for t in thresholds]
    return {
        "auc": auc, "final": final, "final_std": std, "visited": visited,
        "updates_until": {k: u for k, u in zip(keys, until, strict=False) if u is not None},
    }


def _override(base: TrainConfig, extra: tuple[str, ...]) -> TrainConfig:
    """Apply KEY=VALUE overrides, typed like the field they replace."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes: dict[str, Any] = {}
    for item in extra:
        if "=" not in item:
            raise ConfigError(f"--extra expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if key not in fields or key in ("runs", "env", "env_kwargs", "architecture"):
            raise ConfigError(f"--extra: unknown or fixed config key {key!r}")
        current = getattr(base, key)
        try:
            if isinstance(current, bool):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                changes[key] = value.lower() in ("true", "1")
            else:
                changes[key] = type(current)(value)
        except ValueError:
            raise ConfigError(
                f"--extra: {key} expects {type(current).__name__}, got {value!r}"
            ) from None
    return dataclasses.replace(base, **changes)


def make_plan(spec: TableSpec, args: TableArgs) -> Plan:
    """Validate the arguments and build every program's config (nothing is written)."""
    by_label = {r.label: r for r in spec.rows}
    if args.methods is not None and not args.methods:
        raise ConfigError(
            f"--methods needs at least one method; choose from: {', '.join(by_label)}"
        )
    methods = args.methods or tuple(by_label)
    for m in methods:
        if m not in by_label:
            raise ConfigError(f"unknown method {m!r}; choose from: {', '.join(by_label)}")
    if len(set(methods)) != len(methods):
        raise ConfigError("--methods lists a method twice")
    if args.jobs < 0:
        raise ConfigError(f"--jobs must be >= 0, got {args.jobs}")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.chunk_updates < 1:
        raise ConfigError(f"--chunk-updates must be >= 1, got {args.chunk_updates}")
    updates = spec.base.num_updates if args.updates is None else args.updates
    if updates < 1:
        raise ConfigError(f"--updates must be >= 1, got {args.updates}")
    chunk = min(args.chunk_updates, updates)
    if updates % chunk:
        raise ConfigError(f"--updates ({updates}) must be a multiple of --chunk-updates ({chunk})")
    if args.learning_rate is not None:
        check_number("--learning-rate", args.learning_rate, strict=True)
    if args.lambda_div is not None:
        check_number("--lambda-div", args.lambda_div)
    if args.sweep and args.learning_rate is not None:
        raise ConfigError("--sweep and --learning-rate exclude each other")
    base = _override(spec.base, args.extra)
    base = dataclasses.replace(base, num_updates=updates, chunk_updates=chunk,
                               batch_size=args.batch_size)

    groups: dict[str, list[Row]] = {}
    for m in methods:
        row = by_label[m]
        arch = spec.cmrl_architecture if get_method(row.method).concurrent else "sequential"
        groups.setdefault(arch, []).append(row)
    programs = []
    for arch, rows in groups.items():
        runs = []
        for row in rows:
            lam = 0.0
            if get_method(row.method).concurrent and row.divergence:
                lam = spec.lambda_div if args.lambda_div is None else args.lambda_div
            if args.sweep:
                rates = spec.sweep_grid
            elif args.learning_rate is not None:
                rates = (args.learning_rate,)
            else:
                rates = (spec.learning_rates[row.label],)
            label = "" if row.label == row.method else row.label
            for lr in rates:
                for seed in range(args.seeds):
                    runs.append(RunSpec(row.method, seed, float(lr), float(lam), label))
        cfg = dataclasses.replace(
            base, architecture=arch, hidden=spec.hidden or get_method(rows[0].method).hidden,
            runs=tuple(runs),
        )
        cfg.validate()
        programs.append((arch, cfg))

    from cmrl_jax.paths import results_path

    folder = results_path(args.out or f"results/{spec.name}")
    exp = {k: v for k, v in dataclasses.asdict(args).items() if k not in RUNTIME_OPTIONS}
    exp.update(updates=updates, chunk_updates=chunk, methods=list(methods), table=spec.name)
    return Plan(folder, json.dumps(exp, sort_keys=True, indent=1), tuple(programs))


def claim(plan: Plan) -> None:
    """Refuse folders of other configs before anything compiles or is written."""
    from cmrl_jax.checkpoint import claim_folder

    claim_folder(plan.folder, plan.experiment_json, what="experiment config")
    for name, cfg in plan.programs:
        claim_folder(plan.folder / name, cfg.to_json())


def select_best(rows: list[dict], thresholds) -> tuple[list[dict], dict]:
    """Per method, keep the learning rate with the best mean final success (AuC breaks ties)."""
    by_lr: dict[str, dict[float, list[dict]]] = {}
    for r in rows:
        by_lr.setdefault(row_label(r), {}).setdefault(r["learning_rate"], []).append(r)
    chosen, report = [], {}
    for method, groups in by_lr.items():
        scores = {}
        for lr, rs in groups.items():
            s = summarize(curves(rs)[method], thresholds)
            scores[lr] = (s["final_success_mean"], s["auc"])
        best = max(scores, key=lambda lr: scores[lr])
        report[method] = {
            "chosen_learning_rate": best,
            "grid": {f"{lr:g}": {"final_success_mean": v[0], "auc": v[1]}
                     for lr, v in sorted(scores.items())},
        }
        chosen.extend(groups[best])
    return chosen, report


def parse_cli(cls: type, argv: list[str] | None, description: str) -> Any:
    """``tyro.cli``, with its usage errors (unknown flag, bad value) as one line and exit 2."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=argv, description=description)
    except SystemExit as e:
        if not e.code:  # --help
            sys.stderr.write(captured.getvalue())
            raise
        # tyro draws a box (unicode or ASCII): keep its message line, the one with ": "
        lines = [line.strip(" │╭╮╰╯─┃━┏┓┗┛|+-") for line in captured.getvalue().splitlines()]
        lines = [line for line in lines if line and "--help" not in line]
        message = next((line for line in lines if ": " in line),
                       lines[0] if lines else "bad command line")
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _exit_now(status: int, message: str) -> None:
    """Print ``message`` and end the process once no checkpoint is being saved.

    Worker threads cannot be interrupted; holding the save lock means every
    checkpoint on disk is whole (a torn eval-log line is cut on resume).
    """
    from cmrl_jax.checkpoint import SAVE_LOCK

    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    with SAVE_LOCK:
        os._exit(status)


def _wait_for(futures: list, poll_s: float = 0.25) -> list[dict]:
    """Every program's rows; exits at the first program that fails (statuses above).

    Waits in short slices: a SIGINT that lands on another thread (a worker or XLA
    thread: Linux prefers the main thread but does not promise it, and
    ``pthread_kill`` aims anywhere) only flags it for the main thread, which would
    not look while blocked in one long lock wait, i.e. until a program's chunk
    ended; waking every ``poll_s`` lets Python raise the KeyboardInterrupt at once.
    (A command started in the background with ``&`` ignores SIGINT altogether:
    stop it with SIGTERM.)
    """
    from cmrl_jax.loop import NonFiniteError

    while True:
        done, pending = wait(futures, timeout=poll_s, return_when=FIRST_EXCEPTION)
        if not pending or any(f.exception() is not None for f in done):
            break
    for f in futures:
        error = f.exception() if f.done() else None
        if isinstance(error, ConfigError):
            _exit_now(EXIT_USAGE, f"error: {error}")
        if isinstance(error, NonFiniteError):
            _exit_now(EXIT_NONFINITE, f"error: {error}; no table written")
    return [row for f in futures for row in f.result()]


def run_table(spec: TableSpec, argv: list[str] | None = None,
              args: "TableArgs | None" = None) -> dict:
    """CLI entry: parse, validate, train (resuming), write table.md / table.json / figure.

    Everything is checked, and the folder's writer lock taken, before anything
    compiles or is written; the lock is held until the table is written.
    """
    from cmrl_jax.lock import check_writable, writer_lock

    args = args if args is not None else parse_cli(TableArgs, argv, spec.title)
    folder_lock = contextlib.ExitStack()
    try:
        from cmrl_jax import runtime
        from cmrl_jax.parallel import program_mesh

        if args.distributed:  # before anything touches a device
            runtime.init_distributed()
        plan = make_plan(spec, args)
        meshes = [program_mesh(cfg, args.devices, args.runs_devices) for _, cfg in plan.programs]
        check_writable(plan.folder)
        claim(plan)
        folder_lock.enter_context(writer_lock(plan.folder, primary=runtime.is_main_process()))
        claim(plan)  # again: no other writer can change the folder now
        runtime.barrier("claimed")  # every process read the folder before process 0 writes
    except ConfigError as e:
        folder_lock.close()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    with folder_lock:
        try:
            return _train_and_report(spec, args, plan, meshes)
        except KeyboardInterrupt:  # while training, or writing the table (rerun rewrites it)
            _exit_now(EXIT_INTERRUPTED, "\ninterrupted: run the same command again to resume")
            raise  # not reached: _exit_now ends the process


def _train_and_report(spec: TableSpec, args: TableArgs, plan: Plan, meshes: list) -> dict:
    """Train every program (resuming) and write the table, its JSON and figure."""
    from cmrl_jax import runtime
    from cmrl_jax.checkpoint import write_config
    from cmrl_jax.loop import run_training
    from cmrl_jax.plots import plot_curves

    t0 = time.perf_counter()
    main = runtime.is_main_process()
    facts = runtime.backend_facts(
        {name: mesh for (name, _), mesh in zip(plan.programs, meshes, strict=True)}
    )
    if main:
        print(runtime.describe(facts), flush=True)
        write_config(plan.folder, plan.experiment_json)
        runtime.record(plan.folder, facts)
    # Programs are independent XLA computations; JAX releases the GIL while they
    # run, so one thread per program keeps every core busy (2 programs, 2 cores).
    # Several processes must launch their collectives in the same order: one at a time.
    jobs = max(1, min(len(plan.programs), args.jobs or os.cpu_count() or 1))
    if facts["process_count"] > 1:
        jobs = 1
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [
        pool.submit(run_training, cfg, plan.folder / name, label=name,
                    progress=args.progress and main, bar_position=i, mesh=mesh)
        for i, ((name, cfg), mesh) in enumerate(zip(plan.programs, meshes, strict=True))
    ]
    rows = _wait_for(futures)
    pool.shutdown()
    sweep_report = None
    if args.sweep:
        rows, sweep_report = select_best(rows, spec.thresholds)
    cs = curves(rows)
    methods = [r.label for r in spec.rows if r.label in cs]
    ours = {m: summarize(cs[m], spec.thresholds) for m in methods}
    not_in_paper = [r.label for r in spec.rows if not r.in_paper and r.label in ours]
    # The paper's rows and the oracle hold for the table's K and H only (--extra may change them).
    first = plan.programs[0][1]  # every program shares the base's K and H
    changed = [f"{k} = {getattr(first, k)} (the table's {getattr(spec.base, k)})"
               for k in ("k_explore", "horizon") if getattr(first, k) != getattr(spec.base, k)]
    paper = {} if changed else spec.paper
    table = render_table(ours, paper, spec.thresholds, spec.title, not_in_paper,
                         visited=spec.visited_goals)
    if changed:
        table += (f"\nPaper rows and oracle omitted: {', '.join(changed)}; they hold for the "
                  "table's setting only.\n")
    elif spec.oracle is not None:
        table += "\n" + spec.oracle() + "\n"
    result = {"methods": ours, "sweep": sweep_report}
    if not main:  # process 0 writes the table, the figure and the report
        return result
    (plan.folder / "table.md").write_text(table)
    (plan.folder / "table.json").write_text(json.dumps(clean_json(ours), indent=1))
    if sweep_report:
        (plan.folder / "sweep.json").write_text(json.dumps(clean_json(sweep_report), indent=1))
    fig = plot_curves({m: cs[m] for m in methods}, plan.folder / f"{spec.name}.png",
                      spec.title, spec.num_goals, visited=spec.visited_goals)
    print()
    print(table)
    if sweep_report:
        for m, r in sweep_report.items():
            print(f"sweep {m}: chosen learning rate {r['chosen_learning_rate']:g}")
            print(f"  grid {r['grid']}")
    print(f"wrote {plan.folder / 'table.md'}, {plan.folder / 'table.json'}, {fig}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    return result
