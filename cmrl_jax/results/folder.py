"""The results folder: every file name in it, its typed evaluation rows, finding a run.

A results folder (``--out``) of a table or of the generic command::

    <out>/config.json            the experiment's options (``claim_folder`` compares it)
    <out>/runtime.jsonl          one line of backend facts per session (``runtime``)
    <out>/writer.lock            the live writer's lock (``lock``)
    <out>/table.md, table.json   the table (``write_table``), sweep.json with --sweep
    <out>/<name>.png             the learning-curve figure
    <out>/figure6_<env>.png, .json, <env>_episode.png   figures made from it (``experiments``)
    <out>/continued.jsonl        configs the folder had before a continuation
    <out>/<program>/config.json  one program's ``TrainConfig`` (several runs, vmapped);
                                 <program>: its topology, cell and learner (``central_gru``)
    <out>/<program>/continued.jsonl   its configs before a continuation (``continuation``)
    <out>/<program>/eval.jsonl   one ``EvalRow`` per (update, run) (``eval_log``)
    <out>/<program>/checkpoints/<update>/   orbax checkpoints (``checkpoint``)
    <out>/<program>/damaged-checkpoints/    damaged steps, moved aside, never deleted
    <out>/<program>/tensorboard/<run>/      event files (``--log tensorboard``, ``sinks``)
    <out>/<program>/wandb/, wandb.json      W&B's files and run ids (``--log wandb``)

Everything that reads or writes these goes through the names here. Metadata
files are written whole or not at all (``write_text_atomic``), so a full disk
leaves the folder as it was.
"""

import contextlib
import dataclasses
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmrl_jax.errors import ConfigError
from cmrl_jax.results import paths

CONFIG_FILE = "config.json"
EVAL_FILE = "eval.jsonl"
RUNTIME_FILE = "runtime.jsonl"
LOCK_FILE = "writer.lock"
TABLE_MD = "table.md"
TABLE_JSON = "table.json"
SWEEP_JSON = "sweep.json"
CHECKPOINTS_DIR = "checkpoints"
DAMAGED_DIR = "damaged-checkpoints"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
WANDB_IDS = "wandb.json"


def figure_file(name: str) -> str:
    """The learning-curve figure of table ``name``."""
    return f"{name}.png"


def safe_name(text: str) -> str:
    """``text`` as part of a file name (``module:name`` -> ``module_name``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def write_text_atomic(path: Any, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then a rename.

    On an object store an upload is already atomic. A failure (a full disk)
    removes the temporary file and leaves ``path`` as it was.
    """
    if not paths.is_local(path):
        paths.write_object(path, text.encode())
        return
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the temporary file may already be gone
            os.unlink(tmp)
        raise


def config_difference(saved_json: str, wanted_json: str, limit: int = 3) -> str:
    """What differs between two configs' JSON, e.g. ``updates 500 != 1000``
    (the saved value first; at most ``limit`` keys, then how many more)."""
    try:
        saved, wanted = json.loads(saved_json), json.loads(wanted_json)
    except json.JSONDecodeError:
        return "the saved config is not JSON"
    if not isinstance(saved, dict) or not isinstance(wanted, dict):
        return "the saved config is not a JSON object"

    def short(value: Any) -> str:
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    keys = sorted(k for k in {*saved, *wanted} if saved.get(k, None) != wanted.get(k, None)
                  or (k in saved) != (k in wanted))
    parts = [f"{k} {short(saved[k]) if k in saved else '(absent)'} != "
             f"{short(wanted[k]) if k in wanted else '(absent)'}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"{len(keys) - limit} more")
    return ", ".join(parts) or "formatting only"


# ------------------------------------------------------------------ evaluation rows


@dataclass(frozen=True)
class EvalRow:
    """One evaluation of one run at one update: a line of ``eval.jsonl``."""

    update: int
    run: int  # index into the program's ``TrainConfig.runs``
    method: str
    label: str  # the table row ("" or the method: the method's own row)
    seed: int
    learning_rate: float
    lambda_div: float
    success: float  # fraction of evaluation meta-episodes
    visited_goals: float
    explore_return: float
    exploit_return: float
    train: dict[str, float] = field(default_factory=dict)  # training-batch means, by name
    # The same evaluation on the env's held-out tasks (``EnvSpec.heldout``; empty: none):
    # success, visited_goals, explore_return, exploit_return.
    heldout: dict[str, float] = field(default_factory=dict)

    @property
    def row(self) -> str:
        """The table row this evaluation belongs to: its label, else its method."""
        return self.label or self.method

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the log line (training metrics as ``train_<name>``, held-out
        results as ``heldout_<name>``, present only for an env with held-out tasks)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("train", "heldout")}
        out.update({f"train_{k}": v for k, v in self.train.items()})
        out.update({f"heldout_{k}": v for k, v in self.heldout.items()})
        return out

    def to_json(self) -> str:
        """One log line, without its newline."""
        return json.dumps(self.to_dict())

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "EvalRow":
        """Inverse of ``to_dict`` (KeyError / TypeError for a row that is not one)."""
        names = [f.name for f in dataclasses.fields(EvalRow) if f.name not in ("train", "heldout")]
        train = {k[len("train_"):]: v for k, v in d.items() if k.startswith("train_")}
        heldout = {k[len("heldout_"):]: v for k, v in d.items() if k.startswith("heldout_")}
        return EvalRow(**{n: d[n] for n in names}, train=train, heldout=heldout)


# ------------------------------------------------------------------ finding a run


@dataclass(frozen=True)
class RunLocation:
    """Where one run lives in a results folder."""

    folder: Path  # the program's folder: config.json, checkpoints/, eval.jsonl
    cfg: Any  # its TrainConfig
    index: int  # position in cfg.runs (the vmapped run axis)

    @property
    def spec(self):
        """The run's ``RunSpec``: method, seed and hyperparameters."""
        return self.cfg.runs[self.index]


def is_program(folder: Path) -> bool:
    """Whether ``folder`` is one program's folder (it has a training config)."""
    return (folder / CONFIG_FILE).is_file() and (
        (folder / EVAL_FILE).exists() or (folder / CHECKPOINTS_DIR).is_dir())


def read_programs(results: Path, env: str | None = None) -> list[tuple[Path, Any]]:
    """The programs of a results folder (or the one program ``results`` is), with their
    configs; ``env``: refuse a folder of another env (None: whichever one env it holds)."""
    from cmrl_jax.config import TrainConfig

    results = paths.results_path(results, "results folder")
    if not results.is_dir():
        raise ConfigError(f"results folder {results} does not exist")
    candidates = [results] if is_program(results) else sorted(
        p for p in results.iterdir() if (p / CONFIG_FILE).is_file())
    programs = []
    for sub in candidates:
        try:
            programs.append((sub, TrainConfig.from_json((sub / CONFIG_FILE).read_text())))
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{sub / CONFIG_FILE} is not a training config ({e})") from None
    if not programs:
        raise ConfigError(f"{results} is not a table results folder (no <program>/{CONFIG_FILE})")
    envs = sorted({cfg.env for _, cfg in programs})
    if env is None and len(envs) > 1:
        raise ConfigError(f"results folder {results} holds runs of {', '.join(envs)}; "
                          "choose one with --env")
    if env is not None and envs != [env]:
        raise ConfigError(f"results folder {results} holds {', '.join(envs)} runs, not {env}")
    return programs


def same_rate(a: float, b: float) -> bool:
    """Learning rates equal up to their decimal printing (``2.5e-3`` vs ``0.0025``)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def find_run(results: Path, method: str | None = None, seed: int = 0,
             learning_rate: float | None = None, env: str | None = None) -> RunLocation:
    """Locate the run of table row ``method`` (None: the first row found) with ``seed``.

    Several matches (a ``--sweep`` folder has one per learning rate) are settled
    by ``learning_rate``, else by the rate the sweep chose (``sweep.json``);
    ConfigError (one line) if none matches or the choice stays ambiguous.
    """
    programs = read_programs(results, env)
    found = [RunLocation(folder, cfg, i) for folder, cfg in programs
             for i, run in enumerate(cfg.runs) if method in (None, run.row)]
    if not found:
        rows = sorted({run.row for _, cfg in programs for run in cfg.runs})
        raise ConfigError(f"no {method} run in {results}; its runs: {', '.join(rows)}")
    with_seed = [r for r in found if r.spec.seed == seed]
    if not with_seed:
        seeds = sorted({r.spec.seed for r in found})
        raise ConfigError(f"no {method or 'run'} with seed {seed} in {results}; seeds: {seeds}")
    if method is None:
        return with_seed[0]
    if len(with_seed) > 1 and learning_rate is None:
        sweep = paths.results_path(results, "results folder") / SWEEP_JSON
        if sweep.is_file():
            learning_rate = json.loads(sweep.read_text()).get(method, {}).get(
                "chosen_learning_rate")
    if learning_rate is not None:
        with_seed = [r for r in with_seed if same_rate(r.spec.learning_rate, learning_rate)]
        if not with_seed:
            raise ConfigError(f"no {method} seed {seed} run with learning rate {learning_rate:g}")
    if len(with_seed) > 1:
        rates = ", ".join(f"{r.spec.learning_rate:g}" for r in with_seed)
        raise ConfigError(f"{method} seed {seed} has runs at learning rates {rates}; "
                          "choose one with --learning-rate")
    return with_seed[0]


def temporaries(folder: Any, file_name: str, suffix: str = ".tmp") -> list[Path]:
    """The temporary files a write of ``folder / file_name`` makes beside it and removes
    (``write_text_atomic``: ``.<name>.XXXXXXXX.tmp``; with ``suffix`` the name's own, e.g.
    ``.png``: ``.<stem>.XXXXXXXX.png``, the figure's); any found once no writer is alive
    were left by a kill (-9) in the middle of that write."""
    if not paths.is_local(folder) or not Path(folder).is_dir():
        return []
    stem = file_name if suffix == ".tmp" else file_name.removesuffix(suffix)
    pattern = re.compile(rf"\.{re.escape(stem)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    return sorted(p for p in Path(folder).iterdir() if pattern.fullmatch(p.name))


def write_table(folder: Path, name: str, markdown: str, summary: dict,
                sweep: dict | None = None) -> tuple[Any, Any]:
    """Write ``table.md``, ``table.json`` (and ``sweep.json``), each atomically;
    returns the two table paths.

    Called under the folder's writer lock, it first removes the temporary files a
    killed writer left of these files and of figure ``name`` (a kill -9 in the middle
    of the final writes leaves the old file, or none, and its temporary file; never
    half a file)."""
    stale = [p for f in (TABLE_MD, TABLE_JSON, SWEEP_JSON) for p in temporaries(folder, f)]
    for p in stale + temporaries(folder, figure_file(name), ".png"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    md, js = folder / TABLE_MD, folder / TABLE_JSON
    write_text_atomic(md, markdown)
    write_text_atomic(js, json.dumps(summary, indent=1))
    if sweep:
        write_text_atomic(folder / SWEEP_JSON, json.dumps(sweep, indent=1))
    return md, js
