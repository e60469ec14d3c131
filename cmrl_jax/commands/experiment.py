"""``run_table``: one table experiment, from the command line to table.md.

Parse and validate (``cmrl_jax.commands.tables.make_plan``), claim the results folder
and take its writer lock, train every program (one thread each, resuming), then
write the table, its JSON and its figure. Every refusal is one line and an exit
status of ``cmrl_jax.commands.cli``, before anything compiles or is written.
"""

import contextlib
import os
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from cmrl_jax.commands.cli import (
    DISK_FULL_MESSAGE,
    EXIT_DISK_FULL,
    EXIT_INTERRUPTED,
    EXIT_NONFINITE,
    EXIT_USAGE,
    disk_full,
    parse_cli,
)
from cmrl_jax.commands.tables import (
    Plan,
    RunLength,
    TableArgs,
    TableSpec,
    baseline,
    claim,
    env_steps_per_run,
    make_plan,
    select_best,
)
from cmrl_jax.config import ConfigError, get_method
from cmrl_jax.reporting.metrics import clean_json, curves, improvement, render_table, summarize
from cmrl_jax.results.folder import EvalRow, figure_file, write_table
from cmrl_jax.results.sinks import factories

IMPROVEMENT_OVER = "ERL2"
"""The row every CMRL row is compared with (the paper's strongest sequential baseline)."""


def _exit_now(status: int, message: str) -> None:
    """Print ``message`` and end the process once no checkpoint is being saved.

    Worker threads cannot be interrupted; holding the save lock means every
    checkpoint on disk is whole (a torn eval-log line is cut on resume). A second
    Ctrl-C while a save finishes is ignored: it would interrupt the wait (a traceback,
    and the save cut short); SIGTERM and kill -9 still end the process.
    """
    import signal

    from cmrl_jax.results.checkpoint import SAVE_LOCK

    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    with SAVE_LOCK:
        os._exit(status)


def _wait_for(futures: list, poll_s: float = 0.25, folder="the results folder") -> list[EvalRow]:
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
        if error is not None and disk_full(error):
            _exit_now(EXIT_DISK_FULL, DISK_FULL_MESSAGE.format(folder=folder))
    return [row for f in futures for row in f.result()]


def oracle_text(oracle, env) -> str:
    """A table's oracle lines: ``oracle(env)`` with the plan's bound env, or ``oracle()`` for
    an oracle that takes no argument (tables written before the bound env)."""
    import inspect

    takes_env = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                    for p in inspect.signature(oracle).parameters.values())
    return oracle(env) if takes_env else oracle()


def run_built(build) -> dict:
    """``run_table`` on the (spec, TableArgs) that ``build()`` makes from a command's own
    arguments (the generic command, the XLand study): a ConfigError while building is one
    ``error:`` line and exit status 2, as ``run_table``'s own refusals."""
    try:
        spec, args = build()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return run_table(spec, args=args)


def run_table(spec: TableSpec, argv: list[str] | None = None,
              args: "TableArgs | None" = None) -> dict:
    """CLI entry: parse, validate, train (resuming), write table.md / table.json / figure.

    Everything is checked, and the folder's writer lock taken, before anything
    compiles or is written; the lock is held until the table is written.
    """
    from cmrl_jax.results.lock import check_writable, writer_lock

    args = args if args is not None else parse_cli(TableArgs, argv, spec.title)
    folder_lock = contextlib.ExitStack()
    try:
        from cmrl_jax.parallel import program_mesh
        from cmrl_jax.results import runtime

        if args.distributed:  # before anything touches a device
            runtime.init_distributed()
        plan = make_plan(spec, args)
        meshes = [program_mesh(cfg, args.devices, args.runs_devices) for _, cfg in plan.programs]
        check_writable(plan.folder)
        claim(plan)
        folder_lock.enter_context(writer_lock(plan.folder, primary=runtime.is_main_process()))
        continued = claim(plan)  # again: no other writer can change the folder now
        from cmrl_jax.loop import check_resumable

        for name, cfg in plan.programs:  # refused now, a refusal prints and changes nothing
            check_resumable(cfg, plan.folder / name, plan.env)
        runtime.barrier("claimed")  # every process read the folder before process 0 writes
    except ConfigError as e:
        folder_lock.close()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    with folder_lock:
        from cmrl_jax.commands.startup import training_interrupts

        training_interrupts()
        try:
            return _train_and_report(spec, args, plan, meshes, continued)
        except Exception as e:
            if not disk_full(e):
                raise
            _exit_now(EXIT_DISK_FULL, DISK_FULL_MESSAGE.format(folder=plan.folder))
        except KeyboardInterrupt:  # while training, or writing the table (rerun rewrites it)
            _exit_now(EXIT_INTERRUPTED, "\ninterrupted: run the same command again to resume")
            raise  # not reached: _exit_now ends the process


def programs_line(programs) -> str:
    """One line naming what each program ran: its folder, the rows it holds, topology, cell,
    memory size and learner (with its options) (issue 33: a GRU run is not an LSTM's)."""
    parts = []
    for name, cfg in programs:
        rows = ", ".join(dict.fromkeys(r.row for r in cfg.runs))
        opts = "".join(f" {k}={v}" for k, v in cfg.learner_options)
        parts.append(f"`{name}/` ({rows}): {cfg.architecture}, {cfg.cell} {cfg.hidden}, "
                     f"{cfg.learner}{opts}")
    return "Programs: " + "; ".join(parts) + "."


def compute_report(programs, seconds: dict[str, float], cpu_s: float, facts: dict,
                   jobs: int) -> tuple[str, dict[str, dict]]:
    """What each program trained on and took (``TableSpec.report_compute``): the line under
    the table, and per row (label -> its program's numbers, for table.json).

    ``programs``: (folder name, config) pairs; ``seconds``: each program's wall seconds in
    ``run_training`` this session (compile and evaluation included; a resumed run counts this
    session only); ``cpu_s``: the process's CPU seconds over the same span (every thread,
    XLA's included); ``facts``: ``runtime.backend_facts``; ``jobs``: programs run at once.
    """
    per_run = {name: env_steps_per_run(cfg) for name, cfg in programs}
    first = programs[0][1]
    equal = len(set(per_run.values())) == 1
    where = (f"{facts['device_count']} x {facts['device_kind']} ({facts['backend']}), "
             f"{facts['cpu_count']} CPU cores")
    parts, rows = [], {}
    for name, cfg in programs:
        labels = list(dict.fromkeys(r.row for r in cfg.runs))
        entry = {"program": name, "runs_in_program": len(cfg.runs),
                 "env_steps_per_run": per_run[name],
                 "program_env_steps": per_run[name] * len(cfg.runs),
                 "program_wall_s": round(seconds[name], 1), "backend": facts["backend"],
                 "device": f"{facts['device_count']} x {facts['device_kind']}",
                 "programs_at_once": jobs, "process_cpu_s": round(cpu_s, 1)}
        rows.update({label: entry for label in labels})
        steps = "" if equal else f", {per_run[name]:,} env steps per run"
        parts.append(f"`{name}/` ({', '.join(labels)}): {len(cfg.runs)} runs{steps}, "
                     f"{seconds[name]:.0f} s")
    steps = (f"Env steps per run: {per_run[programs[0][0]]:,} ({first.num_updates} updates x "
             f"{first.batch_size} meta-episodes x (K + 1 = {first.k_explore + 1}) x "
             f"H = {first.horizon}; early-ended sub-episodes step fewer), the same in every "
             "program." if equal else "Env steps per run differ between programs (below).")
    line = (f"{steps} Compute, wall seconds of each program's training in this command "
            f"(compile and evaluation included; a resumed run counts this session only) on "
            f"{where}, {jobs} program(s) at a time sharing it: " + "; ".join(parts)
            + f"; process CPU time {cpu_s:.0f} s.")
    return line, rows


def _train_and_report(spec: TableSpec, args: TableArgs, plan: Plan, meshes: list,
                      continued=None) -> dict:
    """Train every program (resuming) and write the table, its JSON and figure;
    ``continued``: the table folder's ``Continuation`` (``claim``), recorded here."""
    from cmrl_jax.loop import run_training
    from cmrl_jax.reporting.plots import plot_curves
    from cmrl_jax.results import runtime
    from cmrl_jax.results.checkpoint import write_config

    t0 = time.perf_counter()
    main = runtime.is_main_process()
    facts = runtime.backend_facts(
        {name: mesh for (name, _), mesh in zip(plan.programs, meshes, strict=True)}
    )
    if main:
        print(runtime.describe(facts), flush=True)
        if continued is not None:
            continued.record(plan.folder)
        write_config(plan.folder, plan.experiment_json)
        runtime.record(plan.folder, facts)
    # Programs are independent XLA computations; JAX releases the GIL while they
    # run, so one thread per program keeps every core busy (2 programs, 2 cores).
    # Several processes must launch their collectives in the same order: one at a time.
    jobs = max(1, min(len(plan.programs), args.jobs or os.cpu_count() or 1))
    if facts["process_count"] > 1:
        jobs = 1
    pool = ThreadPoolExecutor(max_workers=jobs)
    sinks = factories(plan.sinks)
    seconds: dict[str, float] = {}  # each program's wall seconds in run_training

    def train(i: int, name: str, cfg, mesh) -> list[EvalRow]:
        t_start = time.perf_counter()
        out = run_training(cfg, plan.folder / name, label=name, progress=args.progress and main,
                           bar_position=i, mesh=mesh, sinks=sinks,
                           env=plan.env)  # validated by the plan: not again
        seconds[name] = time.perf_counter() - t_start
        return out

    cpu0 = time.process_time()
    futures = [pool.submit(train, i, name, cfg, mesh)
               for i, ((name, cfg), mesh) in enumerate(zip(plan.programs, meshes, strict=True))]
    rows = _wait_for(futures, folder=plan.folder)
    cpu_s = time.process_time() - cpu0
    pool.shutdown()
    sweep_report = None
    if args.sweep:
        rows, sweep_report = select_best(rows, spec.thresholds)
    cs = curves(rows)
    methods = [r.label for r in spec.rows if r.label in cs]
    ours = {m: summarize(cs[m], spec.thresholds) for m in methods}
    if IMPROVEMENT_OVER in ours:  # CMRL rows against ERL2: the probability of improvement
        for r in spec.rows:
            if r.label in ours and get_method(r.method).concurrent:
                better = improvement(cs[r.label], cs[IMPROVEMENT_OVER], IMPROVEMENT_OVER)
                if better is not None:
                    ours[r.label]["probability_of_improvement"] = better
    compute = None
    if spec.report_compute:
        compute, by_row = compute_report(plan.programs, seconds, cpu_s, facts, jobs)
        for label in methods:
            ours[label]["compute"] = by_row[label]
    not_in_paper = [r.label for r in spec.rows if not r.in_paper and r.label in ours]
    # The paper's rows and the oracle hold for the table's K and H only (--extra may change them).
    first = plan.programs[0][1]  # every program shares the base's K and H
    changed = [f"{k} = {getattr(first, k)} (the table's {getattr(spec.base, k)})"
               for k in ("k_explore", "horizon") if getattr(first, k) != getattr(spec.base, k)]
    paper = {} if changed else spec.paper
    table = render_table(ours, paper, spec.thresholds, spec.title, not_in_paper,
                         visited=spec.visited_goals)
    result = {"methods": ours, "sweep": sweep_report}
    if not main:  # process 0 writes the table, the figure and the report
        return result
    reference = baseline(first, plan.env)  # under every table: what success means, acting blindly
    table += "\n" + programs_line(plan.programs) + "\n" + reference.lines() + "\n"
    if compute is not None:
        table += "\n" + compute + "\n"
    if changed:
        table += (f"\nPaper rows and oracle omitted: {', '.join(changed)}; they hold for the "
                  "table's setting only.\n")
    elif spec.oracle is not None:
        table += "\n" + oracle_text(spec.oracle, plan.env) + "\n"
    md, js = write_table(plan.folder, spec.name, table, clean_json(ours),
                         clean_json(sweep_report) if sweep_report else None)
    fig = plot_curves({m: cs[m] for m in methods}, plan.folder / figure_file(spec.name),
                      spec.title, spec.num_goals, visited=spec.visited_goals,
                      paper={m: paper[m] for m in methods if m in paper})
    print()
    print(table, flush=True)
    length = RunLength.of(spec, plan.programs)
    for line in reference.warnings(ours, first.eval_batches * first.eval_batch_size, length):
        print(line, file=sys.stderr, flush=True)  # after the table, where it is read
    if sweep_report:
        for m, r in sweep_report.items():
            print(f"sweep {m}: chosen learning rate {r['chosen_learning_rate']:g}")
            print(f"  grid {r['grid']}")
    print(f"wrote {md}, {js}, {fig}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    return result
