"""A table experiment as data: its rows, paper numbers and options, and the plan of programs.

A table experiment is a ``TableSpec`` (environment, rows, paper numbers,
learning-rate grid). A row is a method, possibly with its own lambda_div.
Rows that share an architecture train together as one compiled program
(seeds, learning rates, reward schemes and lambda_div vmapped); each program
has its own subfolder, checkpoints and ``eval.jsonl`` under ``--out``
(``cmrl_jax.commands.experiment.run_table`` trains them and writes the table).
"""

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmrl_jax.commands.cli import parse_assignments
from cmrl_jax.config import (
    ConfigError,
    RunSpec,
    TrainConfig,
    check_number,
    get_method,
    without_added_later,
)
from cmrl_jax.learners import get_learner
from cmrl_jax.reporting.metrics import curves, summarize
from cmrl_jax.results.folder import EvalRow
from cmrl_jax.results.sinks import parse_sinks

PAPER_METHODS = ("RL2", "ERL2", "Max-Until-Exploit", "StDev-Until-Exploit")
"""The four rows of the paper's Tables 1-3."""


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
    # What a plug-in choice changes in this table's recipe, by learner or cell name (e.g.
    # {"ppo": Recipe(learning_rate=1e-3), "gru": Recipe(hidden=32)}), measured for it
    # (docs/results.md); the command's own --learning-rate / --extra hidden=N win.
    recipes: dict[str, "Recipe"] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A table's settings for one learner or cell, where they differ from its defaults."""

    learning_rate: float | None = None  # every row's
    hidden: int | None = None  # every program's memory size


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
    """advanced TrainConfig overrides as KEY=VALUE (e.g. entropy_explore_start=0.02; hidden=N
    sets the memory size of every program)"""
    cell: str = "lstm"
    """memory cell of every program's topology: lstm or gru (cmrl_jax.agent.cells)"""
    subepisode_start: str = "same"
    """where sub-episodes start: same (the reset's state, the paper's protocol) or fresh (a
    new start in the same task each, the env's reset_state; classic RL2's)"""
    learner: str = "a2c"
    """what turns meta-episodes into updates: a2c or ppo (cmrl_jax.learners)"""
    learner_option: tuple[str, ...] = field(default_factory=tuple)
    """the learner's options as KEY=VALUE (ppo: epochs, minibatches, clip, gae_lambda,
    value_clip, normalize_advantages)"""
    log: tuple[str, ...] = field(default_factory=tuple)
    """output sinks besides eval.jsonl, e.g. --log tensorboard,wandb (each needs its extra:
    pip install 'cmrl-jax[tensorboard]'); a resumed folder may add or drop them"""


# How a run is carried out, not what it computes: not part of a results folder's identity.
RUNTIME_OPTIONS = ("out", "progress", "jobs", "devices", "runs_devices", "distributed", "log")
# Options newer than the first results folders, with the value they had: recorded only when
# they differ from it, so those folders still resume.
ADDED_LATER_OPTIONS = {"cell": "lstm", "learner": "a2c", "learner_option": (),
                       "subepisode_start": "same"}


@dataclass(frozen=True)
class Plan:
    """Validated programs of one invocation."""

    folder: Path  # or an object store's epath.Path (cmrl_jax.results.paths.results_path)
    experiment_json: str
    programs: tuple[tuple[str, TrainConfig], ...]  # (subfolder name, config)
    sinks: tuple[str, ...] = ()  # --log, checked (cmrl_jax.results.sinks.parse_sinks)


def paper_row(auc: float, final: float, std: float, visited: float,
              thresholds: tuple[float, ...], *until: int | None) -> dict:
    """A row of the paper's table; ``until`` follows ``thresholds`` (None or missing = never)."""
    keys = [f"{round(100 * t)}" for t in thresholds]
    return {
        "auc": auc, "final": final, "final_std": std, "visited": visited,
        "updates_until": {k: u for k, u in zip(keys, until, strict=False) if u is not None},
    }


def override_config(base: TrainConfig, extra: tuple[str, ...]) -> tuple[TrainConfig, set[str]]:
    """Apply ``--extra`` KEY=VALUE overrides, typed like the field they replace; returns the
    config and the keys set."""
    fixed = ("runs", "env", "env_kwargs", "architecture", "learner", "learner_options")
    known = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)
             if f.name not in fixed}
    changes = parse_assignments("--extra", extra, known,
                                lambda key: f"--extra: unknown or fixed config key {key!r}")
    return dataclasses.replace(base, **dict(changes)), {k for k, _ in changes}


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
    sinks = parse_sinks(args.log)  # unknown, or its extra missing: one line now
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
    learner = get_learner(args.learner)
    learner_options = parse_assignments(
        "--learner-option", args.learner_option,
        {k: o.default for k, o in learner.options.items()}, learner.unknown)
    base = dataclasses.replace(spec.base, cell=args.cell, learner=args.learner,
                               learner_options=learner_options,
                               subepisode_start=args.subepisode_start)  # checks their values
    base, extra_keys = override_config(base, args.extra)  # --extra hidden=N: every program
    base = dataclasses.replace(base, num_updates=updates, chunk_updates=chunk,
                               batch_size=args.batch_size)

    recipe = [spec.recipes[n] for n in (args.learner, args.cell) if n in spec.recipes]
    recipe_rate = next((r.learning_rate for r in recipe if r.learning_rate is not None), None)
    recipe_hidden = next((r.hidden for r in recipe if r.hidden is not None), None)
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
                rates = (recipe_rate or spec.learning_rates[row.label],)
            label = "" if row.label == row.method else row.label
            for lr in rates:
                for seed in range(args.seeds):
                    runs.append(RunSpec(row.method, seed, float(lr), float(lam), label))
        hidden = base.hidden if "hidden" in extra_keys else (
            recipe_hidden or spec.hidden or get_method(rows[0].method).hidden)
        cfg = dataclasses.replace(base, architecture=arch, hidden=hidden, runs=tuple(runs))
        cfg.validate()
        programs.append((arch, cfg))

    from cmrl_jax.results.paths import results_path

    folder = results_path(args.out or f"results/{spec.name}")
    exp = without_added_later({k: v for k, v in dataclasses.asdict(args).items()
                               if k not in RUNTIME_OPTIONS}, ADDED_LATER_OPTIONS)
    exp.update(updates=updates, chunk_updates=chunk, methods=list(methods), table=spec.name)
    return Plan(folder, json.dumps(exp, sort_keys=True, indent=1), tuple(programs), sinks)


def claim(plan: Plan) -> None:
    """Refuse folders of other configs before anything compiles or is written."""
    from cmrl_jax.results.checkpoint import claim_folder

    claim_folder(plan.folder, plan.experiment_json, what="experiment config")
    for name, cfg in plan.programs:
        claim_folder(plan.folder / name, cfg.to_json())


def select_best(rows: list[EvalRow], thresholds) -> tuple[list[EvalRow], dict]:
    """Per method, keep the learning rate with the best mean final success (AuC breaks ties)."""
    by_lr: dict[str, dict[float, list[EvalRow]]] = {}
    for r in rows:
        by_lr.setdefault(r.row, {}).setdefault(r.learning_rate, []).append(r)
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


# ------------------------------------------------------------------ under every table


@dataclass(frozen=True)
class Baseline:
    """What success means in a table's env, and what acting blindly scores there."""

    success: str  # one sentence: "Success: ..."
    policy: str  # the action head whose outputs the neutral policy zeroes
    neutral: float  # the neutral policy's success rate in the exploit sub-episode (fraction)
    episodes: int  # meta-episodes behind ``neutral``

    def lines(self) -> str:
        """The two lines under the table."""
        from cmrl_jax.envspec import percent

        return (f"{self.success}\nNeutral policy (zero head outputs, {self.policy}) in the "
                f"exploit sub-episode: {percent(self.neutral)}.")

    def warnings(self, ours: dict[str, dict], eval_episodes: int) -> list[str]:
        """One line per row whose mean final success is under the neutral policy's by more
        than two standard errors of the difference (both are sample means: ``eval_episodes``
        meta-episodes per seed for a row, ``episodes`` for the neutral rate)."""
        out = []
        p = self.neutral
        for label, row in ours.items():
            q = row["final_success_mean"] / 100
            n = eval_episodes * max(1, row["seeds"])
            se = math.sqrt(p * (1 - p) / self.episodes + q * (1 - q) / n)
            if q < p - 2 * se:
                out.append(
                    f"warning: {label} ends at {100 * q:.1f} % success, under the neutral "
                    f"policy's {100 * p:.1f} %: it learned to do worse than acting blindly, or "
                    f"the success definition does not fit this env ({self.success})")
        return out


@functools.lru_cache(maxsize=8)
def _baseline(cfg: TrainConfig) -> Baseline:
    from cmrl_jax.envspec import describe_success, neutral_rate
    from cmrl_jax.registry import env_spec
    from cmrl_jax.train import make_runner

    runner = make_runner(cfg)
    episodes = 4096
    return Baseline(
        success=describe_success(env_spec(cfg.env), runner.env, runner.env_params),
        policy=runner.policy.__class__.__name__,
        neutral=neutral_rate(runner, num=episodes),
        episodes=episodes,
    )


def baseline(cfg: TrainConfig) -> Baseline:
    """The ``Baseline`` of ``cfg``'s env, K and H (one small compiled program, computed once
    per process for each: nothing else of ``cfg`` changes what acting blindly scores)."""
    return _baseline(TrainConfig(env=cfg.env, env_kwargs=cfg.env_kwargs, k_explore=cfg.k_explore,
                                 horizon=cfg.horizon, architecture="sequential", hidden=1))
