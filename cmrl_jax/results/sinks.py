"""Output sinks: where a run's typed rows go besides ``eval.jsonl``.

The loop (``cmrl_jax.loop``) appends every evaluation row (``results.EvalRow``:
the evaluation and the means of the chunk's training metrics) to the program's
``eval.jsonl`` first: that log is authoritative (resume reads it) and is never
skipped. Then it hands the same rows to each sink. A sink is made per program
by a ``SinkFactory(folder, cfg, label) -> Sink``, so a user's own sink is a
function away (``run_training(..., sinks=(my_factory,))``); the commands name
the built-in ones with ``--log tensorboard,wandb`` (``SINKS``).

A sink that fails (an extra that cannot start, no network, a full disk) prints
one ``warning:`` line and is switched off; training goes on. Sinks write from
process 0 only (multi-host: the loop opens none elsewhere).

- ``tensorboard`` (extra ``tensorboard``: tensorboardX writes, TensorBoard
  reads): one event-file folder per run under ``<program>/tensorboard/``,
  scalars ``eval/<field>`` and ``train/<metric>`` at step = update.
- ``wandb`` (extra ``wandb``): one W&B run per run of the program, grouped by
  program; its id is kept in ``<program>/wandb.json`` so that a resumed folder
  continues the same W&B run. ``WANDB_MODE=offline`` writes it under
  ``<program>/wandb/`` without a network (``wandb sync`` uploads it later);
  ``WANDB_PROJECT`` names the project (default ``cmrl_jax``).
"""

import importlib.util
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cmrl_jax.errors import ConfigError
from cmrl_jax.results.folder import (
    TENSORBOARD_DIR,
    WANDB_DIR,
    WANDB_IDS,
    EvalRow,
    safe_name,
    write_text_atomic,
)

EVAL_FIELDS = ("success", "visited_goals", "explore_return", "exploit_return")
"""The evaluation fields every sink receives as ``eval/<field>``."""


class Sink(Protocol):
    """Receives a program's rows after they are in ``eval.jsonl``."""

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Rows of one evaluation (one per run; only rows not logged before)."""

    def close(self) -> None:
        """Flush and release (end of the session, also after a fault)."""


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
    """One tensorboardX ``SummaryWriter`` per run, created when its first row comes."""

    def __init__(self, folder: Path, cfg, label: str):
        import tensorboardX

        self._writer = tensorboardX.SummaryWriter
        self.root = Path(folder) / TENSORBOARD_DIR
        self.cfg = cfg
        self.writers: dict[int, Any] = {}

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Each row's scalars at step = its update, flushed (readable at once)."""
        for row in rows:
            writer = self.writers.get(row.run)
            if writer is None:
                logdir = self.root / run_name(self.cfg, row.run)
                writer = self.writers[row.run] = self._writer(logdir=str(logdir), flush_secs=5)
            for tag, value in scalars(row).items():
                writer.add_scalar(tag, value, global_step=row.update)
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        """Close every writer."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


# ------------------------------------------------------------------ Weights & Biases


class WandbSink:
    """One W&B run per run of the program, resumed by the id kept in ``wandb.json``."""

    def __init__(self, folder: Path, cfg, label: str):
        import wandb

        self.wandb = wandb
        self.folder = Path(folder)
        self.cfg = cfg
        self.label = label or cfg.architecture
        self.runs: dict[int, Any] = {}
        ids_file = self.folder / WANDB_IDS
        self.ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}

    def _run(self, index: int):
        """The W&B run of run ``index`` (started, or resumed by its kept id)."""
        if index in self.runs:
            return self.runs[index]
        key = str(index)
        if key not in self.ids:
            self.ids[key] = secrets.token_hex(6)  # W&B run ids: letters and digits
            write_text_atomic(self.folder / WANDB_IDS, json.dumps(self.ids, indent=1))
        (self.folder / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        spec = self.cfg.runs[index]
        run = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT", "cmrl_jax"),
            id=self.ids[key], resume="allow", dir=str(self.folder),
            name=f"{self.label}/{run_name(self.cfg, index)}", group=self.label,
            config={"program": json.loads(self.cfg.to_json()), "run": spec.__dict__},
            reinit="create_new",
        )
        self.runs[index] = run
        return run

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Each row's scalars at step = its update."""
        for row in rows:
            self._run(row.run).log(scalars(row), step=row.update)

    def close(self) -> None:
        """Finish every W&B run (offline: its files are complete)."""
        for run in self.runs.values():
            run.finish()
        self.runs.clear()


# ------------------------------------------------------------------ by name


@dataclass(frozen=True)
class SinkKind:
    """A built-in sink: its factory and the extra (module) it needs."""

    factory: SinkFactory
    module: str  # imported by the factory; absent: the extra is not installed
    extra: str  # pip extra that installs it


SINKS: dict[str, SinkKind] = {
    "tensorboard": SinkKind(TensorBoardSink, "tensorboardX", "tensorboard"),
    "wandb": SinkKind(WandbSink, "wandb", "wandb"),
}


def parse_sinks(names: Sequence[str]) -> tuple[str, ...]:
    """``--log`` values (space- or comma-separated) -> sink names, each checked: known,
    and its extra installed (ConfigError, one line, before anything compiles)."""
    out = []
    for name in (n.strip() for item in names for n in item.split(",")):
        if not name:
            continue
        kind = SINKS.get(name)
        if kind is None:
            raise ConfigError(f"--log: unknown sink {name!r}; known: {', '.join(SINKS)}")
        if importlib.util.find_spec(kind.module) is None:
            raise ConfigError(f"--log {name} needs the {kind.extra!r} extra: "
                              f"pip install 'cmrl-jax[{kind.extra}]'")
        if name not in out:
            out.append(name)
    return tuple(out)


def factories(names: Sequence[str]) -> tuple[SinkFactory, ...]:
    """The factories of sink names (``parse_sinks`` checked them)."""
    return tuple(SINKS[n].factory for n in names)


# ------------------------------------------------------------------ failure is a warning


class GuardedSink:
    """A sink whose first failure prints one warning line and switches it off."""

    def __init__(self, name: str, make: Callable[[], Sink]):
        self.name = name
        self.sink: Sink | None = None
        self._call("start", make)

    def _call(self, what: str, fn, *args) -> None:
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - any sink failure: a warning, never a stop
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"warning: the {self.name} sink failed to {what} ({type(e).__name__}: "
                  f"{first}); it is off for this session, training goes on and eval.jsonl "
                  "is complete", file=sys.stderr, flush=True)
            self.sink = None
            return
        if what == "start":
            self.sink = result

    def write(self, rows: Sequence[EvalRow]) -> None:
        """Pass ``rows`` on, unless the sink is off."""
        if self.sink is not None and rows:
            self._call("write", self.sink.write, rows)

    def close(self) -> None:
        """Close the sink, unless it is off."""
        if self.sink is not None:
            self._call("close", self.sink.close)
            self.sink = None


def open_sinks(makers: Sequence[SinkFactory], folder: Path, cfg, label: str) -> list[GuardedSink]:
    """Start each sink for a program's session, guarded."""
    names = {kind.factory: name for name, kind in SINKS.items()}
    return [GuardedSink(names.get(make, getattr(make, "__name__", "output")),
                        lambda make=make: make(folder, cfg, label)) for make in makers]
