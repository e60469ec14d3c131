"""Output sinks: where a run's typed rows go besides ``eval.jsonl``.

The loop (``cmrl_jax.loop``) appends every evaluation row (``results.EvalRow``:
the evaluation and the means of the chunk's training metrics) to the program's
``eval.jsonl`` first: that log is authoritative (resume reads it) and is never
skipped. Then it hands the same rows to each sink. A sink is made per program
by a ``SinkFactory(folder, cfg, label) -> Sink``, so a user's own sink is a
function away (``run_training(..., sinks=(my_factory,))``); the commands name
sinks with ``--log tensorboard,wandb``: the built-in ones (``SINKS``), an installed
package's ``cmrl_jax.sinks`` entry point, or ``module:name`` (a ``SinkKind`` or a
factory; ``SINK_PLUGINS``, ``cmrl_jax.plugins``).

A sink that fails (an extra that cannot start, no network, a full disk) prints
one ``warning:`` line and is switched off; training goes on. Sinks write from
process 0 only (multi-host: the loop opens none elsewhere).

No row is lost to a kill: a session starts by handing each sink every row of
``eval.jsonl`` (``Sink.resume``), and the built-in sinks read back what their own
files hold (``sink_records``) and write only the (update, tag) pairs missing, so a
row lost between the log's append and the sink's write is written on resume and no
row is written twice. A SIGTERM or SIGINT to a command closes every open sink first
(``close_all``, from ``commands.startup``): W&B runs are finished, their rows on disk.

- ``tensorboard`` (extra ``tensorboard``: tensorboardX's event-file writer, TensorBoard
  reads): one event-file folder per run under ``<program>/tensorboard/``, a file per
  session, one event per row with scalars ``eval/<field>`` and ``train/<metric>`` at
  step = update, written and flushed in the caller's thread (no writer thread).
- ``wandb`` (extra ``wandb``): one W&B run per run of the program, grouped by
  program; its id is kept in ``<program>/wandb.json`` so that a resumed folder
  continues the same W&B run; each row is committed at step = update.
  ``WANDB_MODE=offline`` writes it under
  ``<program>/wandb/`` without a network (``wandb sync`` uploads it later);
  ``WANDB_PROJECT`` names the project (default ``cmrl_jax``).
"""

import dataclasses
import importlib.util
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cmrl_jax.errors import ConfigError
from cmrl_jax.plugins import Plugins
from cmrl_jax.results.folder import (
    TENSORBOARD_DIR,
    WANDB_DIR,
    WANDB_IDS,
    EvalRow,
    safe_name,
    write_text_atomic,
)
from cmrl_jax.results.sink_records import Held, tensorboard_held, wandb_held

EVAL_FIELDS = ("success", "visited_goals", "explore_return", "exploit_return")
"""The evaluation fields every sink receives as ``eval/<field>``."""


class Sink(Protocol):
    """Receives a program's rows after they are in ``eval.jsonl``."""

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Rows of one evaluation (one per run; only rows not logged before)."""

    def close(self) -> None:
        """Flush and release (end of the session, also after a fault)."""

    # Optional: ``resume(rows)``, every row of ``eval.jsonl`` when a session starts; the
    # sink writes those it does not hold yet (a sink without it gets new rows only).


SinkFactory = Callable[[Path, Any, str], Sink]
"""``(program folder, TrainConfig, label) -> Sink``, called once per training session."""


def scalars(row: EvalRow) -> dict[str, float]:
    """A row's numbers by sink name: ``eval/<field>``, ``train/<metric>`` and, for an env
    with held-out tasks, ``heldout/<field>``."""
    out = {f"eval/{name}": float(getattr(row, name)) for name in EVAL_FIELDS}
    out.update({f"train/{name}": float(v) for name, v in row.train.items()})
    out.update({f"heldout/{name}": float(v) for name, v in row.heldout.items()})
    return out


def run_name(cfg, index: int) -> str:
    """A run's name in a sink: ``run0-Max-Until-Exploit-seed0-lr0.001``."""
    run = cfg.runs[index]
    return safe_name(f"run{index}-{run.row}-seed{run.seed}-lr{run.learning_rate:g}")


# ------------------------------------------------------------------ TensorBoard


class TensorBoardSink:
    """An event file per run and session, written synchronously; writes only the (update,
    tag) pairs the run's event files do not hold yet (``sink_records.tensorboard_held``)."""

    def __init__(self, folder: Path, cfg, label: str):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto import event_pb2, summary_pb2

        self._writer, self._event, self._summary = EventsWriter, event_pb2, summary_pb2
        self.root = folder / TENSORBOARD_DIR
        self.cfg = cfg
        self.writers: dict[int, Any] = {}
        self.held: dict[int, Held] = {}
        self._suffix = f".{os.getpid()}.{secrets.token_hex(3)}"  # a new file per session

    def _held(self, index: int) -> Held:
        """What run ``index``'s event files hold (read once a session)."""
        if index not in self.held:
            self.held[index] = tensorboard_held(self.root / run_name(self.cfg, index))
        return self.held[index]

    def _writer_of(self, index: int):
        """Run ``index``'s event file of this session (created at its first event)."""
        if index not in self.writers:
            logdir = self.root / run_name(self.cfg, index)
            logdir.mkdir(parents=True, exist_ok=True)
            self.writers[index] = self._writer(str(logdir / "events"), self._suffix)
        return self.writers[index]

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Each row's missing scalars as one event at step = its update, then flushed (on
        disk when this returns). A failure closes every file before it is raised."""
        try:
            for row in rows:
                held = self._held(row.run).setdefault(row.update, set())
                values = [self._summary.Summary.Value(tag=tag, simple_value=value)
                          for tag, value in scalars(row).items() if tag not in held]
                if values:
                    self._writer_of(row.run).write_event(self._event.Event(
                        wall_time=time.time(), step=row.update,
                        summary=self._summary.Summary(value=values)))
                    held.update(v.tag for v in values)
            for writer in self.writers.values():
                writer.flush()
        except BaseException:
            self._abandon()
            raise

    resume = write  # every row of eval.jsonl: only what the event files lack is written

    def _abandon(self) -> None:
        """Close every file, ignoring their errors (a full disk: the buffered bytes are
        dropped here, not complained about later by the garbage collector)."""
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError:
                pass
        self.writers.clear()

    def close(self) -> None:
        """Close every writer."""
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()


# ------------------------------------------------------------------ Weights & Biases


def wandb_names(cfg, index: int, folder: Path, label: str) -> dict[str, Any]:
    """How run ``index`` of a program in ``folder`` is named in W&B: ``name``, ``group``
    (the experiment, i.e. the results folder above the program's, and the program: Table 1
    and Table 4 runs never share one), ``tags`` and ``config`` (the experiment, method, env,
    cell, learner, seed and rate as top-level keys to filter on; every TrainConfig field,
    defaults included, under ``program``)."""
    spec = cfg.runs[index]
    experiment = Path(folder).absolute().parent.name
    program = dataclasses.asdict(cfg) | {"runs": None}
    facts = {"experiment": experiment, "program_folder": label, "method": spec.row,
             "env": cfg.env, "architecture": cfg.architecture, "cell": cfg.cell,
             "learner": cfg.learner, "seed": spec.seed, "learning_rate": spec.learning_rate,
             "lambda_div": spec.lambda_div}
    tags = [experiment, spec.row, cfg.env, cfg.architecture, f"cell:{cfg.cell}",
            f"learner:{cfg.learner}", f"seed:{spec.seed}"]
    return {"name": f"{experiment}/{label}/{run_name(cfg, index)}",
            "group": f"{experiment}/{label}", "tags": [t[:64] for t in tags],
            "config": facts | {"program": program, "run": dataclasses.asdict(spec)}}



class WandbSink:
    """One W&B run per run of the program, resumed by the id kept in ``wandb.json``."""

    def __init__(self, folder: Path, cfg, label: str):
        import wandb

        self.wandb = wandb
        self.folder = Path(folder)
        self.cfg = cfg
        self.label = label or cfg.architecture
        self.runs: dict[int, Any] = {}
        self.held: dict[int, Held] = {}
        self.session = f"{os.getpid()}{secrets.token_hex(3)}"
        ids_file = self.folder / WANDB_IDS
        self.ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}

    def _id(self, index: int) -> str:
        """Run ``index``'s W&B run id (made and kept in ``wandb.json`` the first time)."""
        key = str(index)
        if key not in self.ids:
            self.ids[key] = secrets.token_hex(6)  # W&B run ids: letters and digits
            write_text_atomic(self.folder / WANDB_IDS, json.dumps(self.ids, indent=1))
        return self.ids[key]

    def _held(self, index: int) -> Held:
        """What run ``index``'s earlier sessions hold (read once, before this one's log)."""
        if index not in self.held:
            self.held[index] = wandb_held(self.folder / WANDB_DIR, self._id(index))
        return self.held[index]

    def _run(self, index: int):
        """The W&B run of run ``index`` (started at its first value, or resumed by its id)."""
        if index in self.runs:
            return self.runs[index]
        self._held(index)
        (self.folder / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        names = wandb_names(self.cfg, index, self.folder, self.label)
        run = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT", "cmrl_jax"),
            id=self._id(index), resume="allow", dir=str(self.folder),
            reinit="create_new", settings=self._settings(), **names,
        )
        self.runs[index] = run
        return run

    def _settings(self):
        """A session folder of its own: W&B names it ``<mode>-<second>-<id>``, and a session
        started in the same second as the last (a quick resume) would overwrite that one's
        records; a suffix (``x_sync_dir_suffix``, where this W&B has it) keeps both."""
        if "x_sync_dir_suffix" not in getattr(self.wandb.Settings, "model_fields", {}):
            return None
        return self.wandb.Settings(x_sync_dir_suffix=self.session)

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Each row's scalars the run does not hold yet, committed at step = its update (a
        step below the run's current one, which W&B would drop, is left out)."""
        for row in rows:
            held = self._held(row.run).setdefault(row.update, set())
            values = {tag: v for tag, v in scalars(row).items() if tag not in held}
            if not values:
                continue
            run = self._run(row.run)
            if row.update >= run.step:
                run.log(values, step=row.update, commit=True)
                held.update(values)

    resume = write  # every row of eval.jsonl: only what the run's records lack is logged

    def close(self) -> None:
        """Finish every W&B run (its rows on disk; offline: its files are complete)."""
        runs, self.runs = self.runs, {}
        for run in runs.values():
            run.finish()


# ------------------------------------------------------------------ by name


@dataclass(frozen=True)
class SinkKind:
    """A sink by name: its factory and the extra (modules) it needs."""

    factory: SinkFactory
    modules: tuple[str, ...]  # imported by the sink; one absent: the extra is not installed
    extra: str  # pip extra that installs them


SINKS: dict[str, SinkKind] = {
    # tensorboardX writes the event files, TensorBoard's loader reads them back on resume
    "tensorboard": SinkKind(TensorBoardSink, ("tensorboardX", "tensorboard"), "tensorboard"),
    "wandb": SinkKind(WandbSink, ("wandb",), "wandb"),
}
"""The built-in sinks by name; ``SINK_PLUGINS`` resolves every other (``--log``)."""


def _sink_kind(obj: Any) -> SinkKind | None:
    """A plug-in sink as a ``SinkKind``: one as it is, a factory (any callable: a class, a
    function) with no extra; None for anything else."""
    if isinstance(obj, SinkKind):
        return obj
    return SinkKind(obj, (), "") if callable(obj) else None


SINK_PLUGINS: Plugins[SinkKind] = Plugins(
    "sink", "cmrl_jax.sinks", SINKS, _sink_kind,
    "a cmrl_jax.results.sinks.SinkKind or a sink factory (folder, cfg, label) -> sink")
"""Every sink by name: ``SINKS``, then the ``cmrl_jax.sinks`` entry points, then
``module:name`` (``cmrl_jax.plugins``)."""


def parse_sinks(names: Sequence[str]) -> tuple[str, ...]:
    """``--log`` values (space- or comma-separated) -> sink names, each checked: known
    (``SINK_PLUGINS``), and its extra installed (ConfigError, one line, before anything
    compiles)."""
    out = []
    for name in (n.strip() for item in names for n in item.split(",")):
        if not name:
            continue
        try:
            kind = SINK_PLUGINS.resolve(name)
        except ConfigError as e:
            raise ConfigError(f"--log: {e}") from None
        if any(importlib.util.find_spec(m) is None for m in kind.modules):
            raise ConfigError(f"--log {name} needs the {kind.extra!r} extra: "
                              f"pip install 'cmrl-jax[{kind.extra}]'")
        if name not in out:
            out.append(name)
    return tuple(out)


def factories(names: Sequence[str]) -> tuple[SinkFactory, ...]:
    """The factories of sink names (``parse_sinks`` checked them)."""
    return tuple(SINK_PLUGINS.resolve(n).factory for n in names)


# ------------------------------------------------------------------ failure is a warning


_OPEN: set["GuardedSink"] = set()
_OPEN_LOCK = threading.RLock()  # a handler may interrupt its holder


class GuardedSink:
    """A sink whose first failure prints one warning line and switches it off. Its calls
    hold a lock, so that ``close_all`` (a signal handler) never cuts one in half."""

    def __init__(self, name: str, make: Callable[[], Sink]):
        self.name = name
        self.sink: Sink | None = None
        self._lock = threading.RLock()  # re-entrant: a handler may run in the writing thread
        self._call("start", make)
        if self.sink is not None:
            with _OPEN_LOCK:
                _OPEN.add(self)

    def _call(self, what: str, fn, *args) -> None:
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - any sink failure: a warning, never a stop
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"warning: the {self.name} sink failed to {what} ({type(e).__name__}: "
                  f"{first}); it is off for this session, training goes on and eval.jsonl "
                  "is complete", file=sys.stderr, flush=True)
            self._off()
            return
        if what == "start":
            self.sink = result

    def _off(self) -> None:
        """Forget the sink (failed or closed)."""
        self.sink = None
        with _OPEN_LOCK:
            _OPEN.discard(self)

    def resume(self, rows: Sequence[EvalRow]) -> None:
        """Every row of ``eval.jsonl`` at the start of a session: to the sink's ``resume``
        (it writes the rows it lacks); a sink without one gets only new rows."""
        with self._lock:
            resume = getattr(self.sink, "resume", None)
            if resume is not None and rows:
                self._call("write", resume, rows)

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Pass ``rows`` on, unless the sink is off."""
        with self._lock:
            if self.sink is not None and rows:
                self._call("write", self.sink.write, rows)

    def close(self) -> None:
        """Close the sink, unless it is off."""
        with self._lock:
            sink, self.sink = self.sink, None  # a second signal meanwhile finds it closed
            if sink is not None:
                self._call("close", sink.close)
                self._off()


def close_all() -> None:
    """Close every open sink of the process (a SIGTERM / SIGINT handler calls it: W&B runs
    finish, event files are closed); a row logged after it reaches the sink on resume."""
    with _OPEN_LOCK:
        sinks = list(_OPEN)
    for sink in sinks:
        sink.close()


def open_sinks(makers: Sequence[SinkFactory], folder: Path, cfg, label: str) -> list[GuardedSink]:
    """Start each sink for a program's session, guarded."""
    names = {kind.factory: name for name, kind in SINKS.items()}
    return [GuardedSink(names.get(make, getattr(make, "__name__", "output")),
                        lambda make=make: make(folder, cfg, label)) for make in makers]
