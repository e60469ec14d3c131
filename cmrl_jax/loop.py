"""The one impure place: the Python loop over compiled chunks.

Between chunks it checks that every run stayed finite, evaluates, appends
metrics to ``eval.jsonl``, saves a checkpoint and updates the progress bar.
Re-running with the same folder resumes from the newest intact checkpoint;
every chunk and every evaluation is a deterministic function of the restored
state, so the result equals an uninterrupted run. One process at a time
writes a folder (``lock.writer_lock``).
"""

import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np
from tqdm.auto import tqdm

from cmrl_jax.config import TrainConfig
from cmrl_jax.results import paths, runtime
from cmrl_jax.results.checkpoint import Checkpointer, write_config
from cmrl_jax.results.continuation import Continuation, claim_or_continue
from cmrl_jax.results.eval_log import (  # noqa: F401 - EVAL_FILE, read_history: the log's public API
    EVAL_FILE,
    append_rows,
    check_covers,
    cut_torn_tail,
    read_history,
)
from cmrl_jax.results.folder import CHECKPOINTS_DIR, EvalRow
from cmrl_jax.results.lock import check_writable, writer_lock
from cmrl_jax.results.sinks import SinkFactory, open_sinks
from cmrl_jax.train import make_init, make_runner, make_trainer

if TYPE_CHECKING:
    from cmrl_jax.registry import BoundEnv


class NonFiniteError(RuntimeError):
    """A run's loss, gradient norm, parameters or evaluation stopped being finite (CLI exit
    status 3)."""


def nonfinite_message(cfg: TrainConfig, finite: np.ndarray, done: int) -> str | None:
    """One line naming the earliest non-finite (update, run) of a chunk; None if all finite.

    Args:
      finite: bool [R, chunk], ``UpdateMetrics.finite`` of the chunk.
      done: updates done before the chunk (the folder's newest checkpoint).
    """
    bad = ~np.asarray(finite, bool)
    failed = [i for i in range(bad.shape[0]) if bad[i].any()]
    if not failed:
        return None
    first = bad.argmax(axis=1)  # per run, index of its first non-finite update
    i = min(failed, key=lambda r: (first[r], r))
    return (
        f"{_run_name(cfg, i)} became non-finite at update {done + int(first[i]) + 1} (loss, "
        f"gradient norm or parameters){_more(failed)}; stopped: the folder keeps update "
        f"{done}, unchanged"
    )


def _run_name(cfg: TrainConfig, i: int) -> str:
    """``run 1 (StDev-Until-Exploit, seed 1, learning rate 0.001)``."""
    run = cfg.runs[i]
    return f"run {i} ({run.row}, seed {run.seed}, learning rate {run.learning_rate:g})"


def _more(failed: list[int]) -> str:
    """How many other runs of the program failed too, if any."""
    return f" (and {len(failed) - 1} more run(s) of this program)" if len(failed) > 1 else ""


def nonfinite_eval_message(cfg: TrainConfig, stats, update: int, done: int) -> str | None:
    """One line naming the first run whose evaluation at ``update`` is not finite; None if all are.

    Training can stay finite while an evaluation is not (an environment that returns
    NaN on a state only the greedy or a fresh batch reaches); such a row would be
    logged as NaN and poison the table, so the chunk stops like a training fault.

    Args:
      stats: the evaluation's fields (success, visited goals, returns), each [R].
      done: updates the folder keeps (its newest checkpoint).
    """
    fields = {name: np.asarray(value, np.float64) for name, value in stats._asdict().items()}
    bad = {name: ~np.isfinite(v) for name, v in fields.items()}
    failed = [i for i in range(len(cfg.runs)) if any(b[i] for b in bad.values())]
    if not failed:
        return None
    i = failed[0]
    names = ", ".join(f"{name} {fields[name][i]}" for name in fields if bad[name][i])
    return (
        f"{_run_name(cfg, i)}: the evaluation at update {update} is not finite ({names})"
        f"{_more(failed)}; stopped: the folder keeps update {done}, unchanged"
    )


def _eval_rows(cfg: TrainConfig, update: int, stats, train_metrics=None,
               heldout=None) -> list[EvalRow]:
    """One row per run for an evaluation at ``update`` (``heldout``: the same on the env's
    held-out tasks, or None)."""
    stats = jax.tree.map(np.asarray, stats)
    held = None if heldout is None else jax.tree.map(np.asarray, heldout)
    rows = []
    for i, run in enumerate(cfg.runs):
        train = {} if train_metrics is None else {
            name: float(np.mean(np.asarray(values[i])))
            for name, values in train_metrics._asdict().items()
            if name != "finite"  # always true in a logged row
        }
        rows.append(EvalRow(
            update=update, run=i, method=run.method, label=run.row, seed=run.seed,
            learning_rate=run.learning_rate, lambda_div=run.lambda_div,
            success=float(stats.success[i]), visited_goals=float(stats.visited_goals[i]),
            explore_return=float(stats.explore_return[i]),
            exploit_return=float(stats.exploit_return[i]), train=train,
            heldout={} if held is None else {
                name: float(values[i]) for name, values in held._asdict().items()},
        ))
    return rows


def check_resumable(cfg: TrainConfig, folder: "Path | paths.ResultsPath",
                    env: "BoundEnv | None" = None) -> None:
    """The refusals of a resume, made before anything is written or printed: ConfigError
    (one line) if ``folder``'s checkpoints all fail to read, or its evaluation log is
    unreadable or does not cover the newest intact checkpoint. Reads only (a traced,
    not compiled, state shape and one restore). ``env``: ``cfg``'s bound env
    (``registry.bind_env``; bound here if not given)."""
    folder = paths.results_path(folder)
    history = read_history(folder)  # a corrupt line: ConfigError
    if not (folder / CHECKPOINTS_DIR).is_dir():
        return
    like, _ = jax.eval_shape(make_init(cfg, make_runner(cfg, env)))
    ckpt = Checkpointer(folder, read_only=True)
    try:
        step = ckpt.newest_intact(like).step
    finally:
        ckpt.close()
    check_covers(history, len(cfg.runs), cfg.chunk_updates, step, folder)


def run_training(
    cfg: TrainConfig,
    folder: "Path | str | paths.ResultsPath",
    *,
    label: str = "",
    progress: bool = True,
    stop_after: int | None = None,
    bar_position: int = 0,
    mesh=None,
    sinks: Sequence[SinkFactory] = (),
    env: "BoundEnv | None" = None,
) -> list[EvalRow]:
    """Train every run of ``cfg`` to ``cfg.num_updates`` in ``folder`` (resuming); return rows.

    ``stop_after`` ends the session early once that many updates are done
    (as if killed right after a checkpoint); the next call resumes.
    ``mesh`` (``parallel.device_mesh``) splits runs and each update's
    meta-episodes over devices; it is not part of the config (the results do
    not depend on it). The session's backend facts are appended to
    ``runtime.jsonl``. With several processes (``runtime.init_distributed``)
    every process trains and checkpoints its shards; only process 0 writes the
    config, the evaluation log and the runtime record, and holds the folder's
    writer lock.

    Raises ConfigError, having changed nothing, for a folder of another config,
    one another live process writes, an eval log that does not cover the
    checkpoints, or checkpoints none of which can be read; NonFiniteError when a
    run stops being finite (that chunk is neither logged nor saved). ``folder`` may
    be on an object store, e.g. ``gs://bucket/run`` (``paths.results_path``).
    ``sinks`` (``cmrl_jax.results.sinks``) receive every row after ``eval.jsonl`` has it, and
    at the start of a session the log's rows they lack (a kill between the two writes loses
    no row); a failing sink is one warning line. ``env``: ``cfg``'s bound env
    (``registry.bind_env``; bound here if not given); a config it already validated (a
    plan's) is not validated again.
    """
    env = cfg.validated(env)
    config_json = cfg.to_json()
    folder = paths.results_path(folder)
    check_writable(folder)
    claim_or_continue(folder, config_json)
    main = runtime.is_main_process()
    with writer_lock(folder, primary=main):
        # again: no other writer can change it now
        continued = claim_or_continue(folder, config_json)
        runtime.barrier(f"claimed {folder}")  # every process read it before process 0 writes
        return _train_locked(cfg, folder, main, label=label, progress=progress,
                             stop_after=stop_after, bar_position=bar_position, mesh=mesh,
                             sinks=sinks, env=env, continued=continued)


def compile_ahead(trainer, state, hp) -> None:
    """Compile a program's pieces side by side: its evaluations in threads while this
    thread compiles the training chunk (one XLA compile keeps about one core busy; an
    XLand program's three take about as long each). The calls that follow find them in
    jit's cache."""
    jitted = lambda f: hasattr(f, "lower")  # noqa: E731 - a wrapped piece compiles on call
    pieces = [f for f in (trainer.evaluate, trainer.evaluate_heldout) if jitted(f)]
    with ThreadPoolExecutor(max(len(pieces), 1)) as pool:
        futures = [pool.submit(lambda f=f: f.lower(state, hp).compile()) for f in pieces]
        if jitted(trainer.train_chunk):
            trainer.train_chunk.lower(state, hp).compile()
        for future in futures:
            future.result()


def _train_locked(cfg: TrainConfig, folder: Path, main: bool, *, label: str, progress: bool,
                  stop_after: int | None, bar_position: int, mesh,
                  sinks: Sequence[SinkFactory], env: "BoundEnv",
                  continued: Continuation | None = None) -> list[EvalRow]:
    """``run_training`` once the folder is ours; ``main``: this process writes files;
    ``continued``: the folder's run continued to ``cfg``'s length, recorded once the folder
    is known to resume."""
    trainer = make_trainer(cfg, mesh, env)
    state, hp = trainer.init()
    ckpt = Checkpointer(folder)
    outputs = []
    try:
        start, state, damaged = ckpt.newest_intact(state)
        history = read_history(folder)
        check_covers(history, len(cfg.runs), cfg.chunk_updates, start, folder)
        if main and continued is not None:
            print(f"{folder}: {continued.line}", file=sys.stderr, flush=True)
            continued.record(folder)
        if main:
            write_config(folder, cfg.to_json())
            runtime.record(folder, runtime.backend_facts({label or cfg.architecture: mesh}))
            ckpt.set_aside(damaged)
            cut_torn_tail(folder)
            outputs = open_sinks(sinks, folder, cfg, label)
            for sink in outputs:  # the log's rows a kill kept from a sink, before new ones
                sink.resume(history)
        logged = {(row.update, row.run) for row in history}
        if start < cfg.num_updates:
            compile_ahead(trainer, state, hp)

        def log(update: int, evaluated, metrics=None) -> None:
            stats, heldout = evaluated
            rows = [r for r in _eval_rows(cfg, update, stats, metrics, heldout)
                    if (r.update, r.run) not in logged]
            if main:
                append_rows(folder, rows)  # first: the log resume trusts
                for sink in outputs:
                    sink.write(rows)
            history.extend(rows)
            logged.update((r.update, r.run) for r in rows)

        def evaluate(state, update: int, done: int):
            """(stats, held-out stats or None); NonFiniteError if either is not finite."""
            stats = trainer.evaluate(state, hp)
            heldout = (None if trainer.evaluate_heldout is None
                       else trainer.evaluate_heldout(state, hp))
            for got in (stats, heldout):
                fault = None if got is None else nonfinite_eval_message(cfg, got, update, done)
                if fault is not None:
                    raise NonFiniteError(f"{folder}: {fault}")  # the program's folder
            return stats, heldout

        if start == 0:
            log(0, evaluate(state, 0, 0))
        chunks = cfg.num_updates // cfg.chunk_updates
        bar = tqdm(
            total=cfg.num_updates,
            initial=start,
            desc=label or cfg.architecture,
            unit="upd",
            position=bar_position,
            disable=not progress,
            dynamic_ncols=True,
        )
        for chunk in range(start // cfg.chunk_updates, chunks):
            t0 = time.perf_counter()
            state, metrics = trainer.train_chunk(state, hp)
            fault = nonfinite_message(cfg, np.asarray(metrics.finite), chunk * cfg.chunk_updates)
            if fault is not None:
                bar.close()
                raise NonFiniteError(f"{folder}: {fault}")  # the program's folder
            # Every run advances together; counted here, since with several processes
            # the runs' own counters are shards no single process holds.
            update = (chunk + 1) * cfg.chunk_updates
            try:
                evaluated = evaluate(state, update, chunk * cfg.chunk_updates)
            except NonFiniteError:
                bar.close()
                raise
            log(update, evaluated, metrics)
            stats = evaluated[0]
            ckpt.save(update, state)
            bar.update(cfg.chunk_updates)
            bar.set_postfix(
                success=f"{float(np.mean(np.asarray(stats.success))):.3f}",
                goals=f"{float(np.mean(np.asarray(stats.visited_goals))):.2f}",
                s_per_chunk=f"{time.perf_counter() - t0:.1f}",
            )
            if stop_after is not None and update >= stop_after:
                break
        bar.close()
    finally:
        for sink in outputs:
            sink.close()
        ckpt.close()
    return history
