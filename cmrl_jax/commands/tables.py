"""A table experiment as data: its rows, paper numbers and options, and the plan of programs.

A table experiment is a ``TableSpec`` (environment, rows, paper numbers,
learning-rate grid). A row is a method, possibly with its own lambda_div, and possibly with
its own topology and memory size (``Row.architecture``, ``Row.hidden``).
Rows that share an architecture and memory size train together as one compiled program
(seeds, learning rates, reward schemes and lambda_div vmapped); each program
has its own subfolder, checkpoints and ``eval.jsonl`` under ``--out``
(``cmrl_jax.commands.experiment.run_table`` trains them and writes the table).
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from cmrl_jax.commands.cli import parse_assignments
from cmrl_jax.config import (
    ARCHITECTURES,
    CELL_PLUGINS,
    DIVERGENCES,
    ENCODERS,
    LEARNER_PLUGINS,
    REMAT,
    ConfigError,
    RunSpec,
    TrainConfig,
    check_number,
    get_learner,
    get_method,
    without_added_later,
)
from cmrl_jax.reporting.metrics import curves, summarize
from cmrl_jax.results.folder import EvalRow, safe_name
from cmrl_jax.results.sinks import SINK_PLUGINS, parse_sinks

PAPER_METHODS = ("RL2", "ERL2", "Max-Until-Exploit", "StDev-Until-Exploit")
"""The four rows of the paper's Tables 1-3."""


@dataclass(frozen=True)
class Row:
    """One table row: a method, with or without the divergence loss, on the table's topology
    and memory size or on its own (e.g. a study of CMRL on the Central and the Meta topology
    at 16 and 32 units: rows that differ in either train in programs of their own)."""

    label: str
    method: str
    divergence: bool = True  # CMRL rows: lambda_div as configured; False: lambda_div = 0
    in_paper: bool = True
    # This row's topology (None: the table's ``cmrl_architecture`` for a CMRL method,
    # "sequential" for RL2 / ERL2); a CMRL method needs a concurrent one, RL2 / ERL2
    # "sequential".
    architecture: str | None = None
    # This row's memory size, fixed: the command line may not change it (None: the command
    # line's, the recipe's, the table's, else the method's, as every program's).
    hidden: int | None = None

    def __post_init__(self):
        """A row whose topology cannot run its method, or a memory size under 1, is refused
        where the table is written (ValueError)."""
        if self.architecture is not None:
            if self.architecture not in ARCHITECTURES:
                raise ValueError(f"Row {self.label!r}: unknown architecture "
                                 f"{self.architecture!r}; known: {', '.join(ARCHITECTURES)}")
            if ARCHITECTURES[self.architecture].concurrent != get_method(self.method).concurrent:
                raise ValueError(f"Row {self.label!r}: {self.method} cannot run on "
                                 f"{self.architecture}")
        if self.hidden is not None and self.hidden < 1:
            raise ValueError(f"Row {self.label!r}: hidden must be >= 1, got {self.hidden}")

    def topology(self, table_architecture: str) -> str:
        """The architecture this row's program runs (``table_architecture``: the table's
        ``cmrl_architecture``)."""
        if self.architecture is not None:
            return self.architecture
        return table_architecture if get_method(self.method).concurrent else "sequential"


@dataclass(frozen=True)
class TableSpec:
    """Everything that makes one paper table."""

    name: str  # e.g. "table1"
    title: str
    cmrl_architecture: str  # "central_lstm" or "meta_lstm" for the CMRL rows (a Row's wins)
    base: TrainConfig  # env, sizes, horizons; runs / architecture / hidden filled per group
    rows: tuple[Row, ...]  # default rows, in table order
    learning_rates: dict[str, float]  # default per row label (chosen by the sweep)
    lambda_div: float  # default for CMRL rows
    sweep_grid: tuple[float, ...]  # Appendix A learning-rate grid
    thresholds: tuple[float, ...]
    paper: dict[str, dict]  # method -> {auc, final, final_std, visited, updates_until}
    num_goals: int | None
    oracle: Any = None  # optional (bound env) -> markdown text appended under the table
    hidden: int | None = None  # LSTM size of every program (None: the method's; a Row's wins)
    visited_goals: bool = True  # the env reports goals (False: the metric is omitted)
    # Under the table, and per row in table.json: env steps per run and the wall seconds of
    # each program's training (``experiment.compute_report``); off for the paper tables,
    # whose table.json is the same on every machine and resume.
    report_compute: bool = False
    # What a plug-in choice changes in this table's recipe, by learner or cell name (e.g.
    # {"ppo": Recipe(learning_rate=1e-3), "gru": Recipe(hidden=32)}), measured for it
    # (docs/results.md); the command's own --learning-rate / --train.hidden N win.
    recipes: dict[str, "Recipe"] = field(default_factory=dict)
    # ``base``'s env already bound (``cmrl_jax.registry.bind_env``; the generic command's,
    # which checked it): the plan uses it rather than resolving the name again.
    env: Any = None
    # Where ``base``'s values came from, by field, where the spec knows better than
    # ``origin`` (the generic command's: {"k_explore": "--k-explore", "gamma": "env spec"});
    # ``resolve_options`` reports them.
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = "table spec"  # the source of ``base``'s other values off TrainConfig's


@dataclass(frozen=True)
class Recipe:
    """A table's settings for one learner or cell, where they differ from its defaults.

    ``train`` holds TrainConfig values (field, value) of every program; ``sequential`` and
    ``concurrent`` those of the RL2 / ERL2 programs or of the CMRL programs only (they win
    over ``train``). E.g. an entropy schedule tuned per kind of memory:
    ``Recipe(concurrent=(("entropy_explore_start", 0.01),))``.
    """

    learning_rate: float | None = None  # every row's
    hidden: int | None = None  # every program's memory size
    lambda_div: float | None = None  # every CMRL row's with the divergence loss
    train: tuple[tuple[str, Any], ...] = ()
    sequential: tuple[tuple[str, Any], ...] = ()
    concurrent: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        for group in ("train", "sequential", "concurrent"):
            for key, _ in getattr(self, group):
                if key in _RECIPE_FIXED or key not in _TRAIN_FIELDS:
                    raise ValueError(f"Recipe.{group}: {key!r} is not a TrainConfig field a "
                                     "recipe may set")

    def values(self, kind: str) -> dict[str, Any]:
        """The TrainConfig values of a program of ``kind`` ("sequential" or
        "concurrent")."""
        return dict(self.train) | dict(getattr(self, kind))


# Decided by the table, the command or per program, never by a recipe's ``train`` values
# (``hidden`` and the learning rate have their own recipe fields).
_RECIPE_FIXED = ("runs", "env", "env_kwargs", "architecture", "learner", "learner_options",
                 "cell", "hidden", "num_updates", "chunk_updates", "batch_size")
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


_TRAIN_DEFAULTS = TrainConfig()


def _unset(kind: type, metavar: str, hint: str) -> Any:
    """An optional typed option: None means "not set" (``hint`` says what applies then)."""
    return Annotated[kind | None, tyro.conf.arg(metavar=metavar, help_behavior_hint=hint)]


def _train(kind: type, name: str, metavar: str | None = None) -> Any:
    default = getattr(_TRAIN_DEFAULTS, name)
    return _unset(kind, metavar or kind.__name__.upper(),
                  f"(default: the table's, else {default})")


def _ppo(kind: type, name: str, metavar: str | None = None) -> Any:
    return _unset(kind, metavar or kind.__name__.upper(),
                  f"(default: {get_learner('ppo').options[name].default})")


def _choices(names) -> str:
    return "{" + ",".join(names) + "}"


def _described(text: str) -> Any:
    """A help text made when the command is imported (e.g. with the plug-ins installed)."""
    return tyro.conf.arg(help=text)


@dataclass(frozen=True)
class TrainOptions:
    """TrainConfig fields; each unset is the table's recipe's, else the table's (an env's
    spec's), else TrainConfig's; --extra KEY=VALUE sets the others"""

    entropy_explore_start: _train(float, "entropy_explore_start") = None
    """entropy bonus of explore decisions at the start (annealed to its end)"""
    entropy_explore_end: _train(float, "entropy_explore_end") = None
    """entropy bonus of explore decisions after the anneal"""
    entropy_exploit_start: _train(float, "entropy_exploit_start") = None
    """entropy bonus of exploit decisions at the start (annealed to its end)"""
    entropy_exploit_end: _train(float, "entropy_exploit_end") = None
    """entropy bonus of exploit decisions after the anneal"""
    entropy_exploit_floor_start: _train(float, "entropy_exploit_floor_start") = None
    """exploit entropy floor in nats at the start (0 and 0: off): the exploit bonus counts
    each decision's entropy only up to it"""
    entropy_exploit_floor_end: _train(float, "entropy_exploit_floor_end") = None
    """exploit entropy floor in nats after the anneal (a floor of 0 counts no entropy: the
    exploit bonus is then off, not the plain one)"""
    entropy_anneal_fraction: _train(float, "entropy_anneal_fraction") = None
    """fraction of training over which the entropy bonuses anneal, in [0, 1]"""
    gamma: _train(float, "gamma") = None
    """discount factor, in [0, 1]"""
    value_coef: _train(float, "value_coef") = None
    """weight of the value loss"""
    max_grad_norm: _train(float, "max_grad_norm") = None
    """gradient clipping: largest global norm of an update's gradient"""
    adam_eps: _train(float, "adam_eps") = None
    """Adam's epsilon (added to the root of the second moment)"""
    reward_input_scale: _train(float, "reward_input_scale") = None
    """the previous reward is fed to the memory multiplied by this"""
    hidden: _unset(int, "INT", "(default: the recipe's, the table's, else the method's: "
                               "32 sequential, 16 CMRL)") = None
    """memory (LSTM / GRU) size of every program"""
    eval_batches: _train(int, "eval_batches") = None
    """batches of meta-episodes per evaluation"""
    eval_batch_size: _train(int, "eval_batch_size") = None
    """meta-episodes per evaluation batch"""
    eval_greedy: _train(bool, "eval_greedy", "{True,False}") = None
    """evaluate the greedy policy rather than sampling it"""
    remat: _train(str, "remat", _choices(REMAT)) = None
    """rematerialise differentiated steps (memory for compute): none, step or segments"""
    encoder: _train(str, "encoder", _choices(ENCODERS)) = None
    """what the memory cells read of an observation: flat, or grid (symbolic grid ids)"""
    divergence: _train(str, "divergence", _choices(DIVERGENCES)) = None
    """divergence of the CMRL divergence loss: js (Jensen-Shannon) or skl (symmetric KL)"""
    num_derangements: _train(int, "num_derangements") = None
    """derangements of the explore rollouts per update in the divergence loss"""


@dataclass(frozen=True)
class PPOOptions:
    """options of --learner ppo; each unset is PPO's default (--learner-option KEY=VALUE
    sets a plug-in learner's)"""

    epochs: _ppo(int, "epochs") = None
    """passes over the batch per update"""
    minibatches: _ppo(int, "minibatches") = None
    """minibatches of meta-episodes per pass (must divide the batch)"""
    clip: _ppo(float, "clip") = None
    """epsilon of the clipped surrogate (> 0)"""
    gae_lambda: _ppo(float, "gae_lambda") = None
    """GAE lambda, in [0, 1]"""
    value_clip: _ppo(float, "value_clip") = None
    """clip the value's step to +-value_clip (0: off)"""
    normalize_advantages: _ppo(bool, "normalize_advantages", "{True,False}") = None
    """advantages to mean 0, std 1 per minibatch"""
    window: _ppo(int, "window") = None
    """decision slots per truncated-backpropagation window (0: whole meta-episodes)"""


OPTION_GROUPS = {"train": TrainOptions, "ppo": PPOOptions}
"""The typed option groups of ``TableArgs``: ``--train.<field>``, ``--ppo.<option>``."""


def typed_flag(group: str, name: str) -> str:
    """A typed option's flag as ``--help`` shows it, e.g. ``--train.entropy-explore-start``."""
    return f"--{group}.{name.replace('_', '-')}"


def given(options) -> dict[str, Any]:
    """The options of a typed group that are set (not None)."""
    return {k: v for k, v in dataclasses.asdict(options).items() if v is not None}


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
    """any TrainConfig field as KEY=VALUE (e.g. k_explore=5; the --train.* options are the
    typed ones: one key may not be set by both)"""
    cell: Annotated[str, _described(
        f"memory cell of every program's topology: {CELL_PLUGINS.choices()} "
        "(cmrl_jax.agent.cells; docs/extending.md)")] = "lstm"
    subepisode_start: str = "same"
    """where sub-episodes start: same (the reset's state, the paper's protocol) or fresh (a
    new start in the same task each, the env's reset_state; classic RL2's)"""
    learner: Annotated[str, _described(
        f"what turns meta-episodes into updates: {LEARNER_PLUGINS.choices()} "
        "(cmrl_jax.learners; docs/extending.md)")] = "a2c"
    learner_option: tuple[str, ...] = field(default_factory=tuple)
    """the learner's options as KEY=VALUE (a plug-in learner's; ppo's are the typed --ppo.*
    options: one key may not be set by both)"""
    log: Annotated[tuple[str, ...], _described(
        f"output sinks besides eval.jsonl, comma-separated: {SINK_PLUGINS.choices()}; e.g. "
        "--log tensorboard,wandb (a built-in needs its extra: pip install "
        "'cmrl-jax[tensorboard]'); a resumed folder may add or drop them")] = field(
        default_factory=tuple)
    train: TrainOptions = TrainOptions()
    """TrainConfig fields; each unset is the table's recipe's, else the table's (an env's
    spec's), else TrainConfig's; --extra KEY=VALUE sets the others"""
    ppo: PPOOptions = PPOOptions()
    """options of --learner ppo; each unset is PPO's default (--learner-option KEY=VALUE
    sets a plug-in learner's)"""


# How a run is carried out, not what it computes: not part of a results folder's identity.
RUNTIME_OPTIONS = ("out", "progress", "jobs", "devices", "runs_devices", "distributed", "log")
# Options newer than the first results folders, with the value they had: recorded only when
# they differ from it, so those folders still resume.
# The typed groups are recorded as the options set in them ({} when none is).
ADDED_LATER_OPTIONS = {"cell": "lstm", "learner": "a2c", "learner_option": (),
                       "subepisode_start": "same", "train": {}, "ppo": {}}


@dataclass(frozen=True)
class Plan:
    """Validated programs of one invocation."""

    folder: Path  # or an object store's epath.Path (cmrl_jax.results.paths.results_path)
    experiment_json: str
    programs: tuple[tuple[str, TrainConfig], ...]  # (subfolder name, config)
    sinks: tuple[str, ...] = ()  # --log, checked (cmrl_jax.results.sinks.parse_sinks)
    # The programs' env (they share its name and options), bound once
    # (``cmrl_jax.registry.BoundEnv``); every config was validated against it.
    env: Any = None


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
    sizes = ("batch_size", "num_updates", "chunk_updates")  # the command's own flags
    fixed = ("runs", "env", "env_kwargs", "architecture", "learner", "learner_options", *sizes)
    known = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)
             if f.name not in fixed}
    changes = parse_assignments("--extra", extra, known, lambda key: (
        f"--extra {key}=... is the command's {_COMMAND_FLAGS[key]}: give that instead"
        if key in sizes else f"--extra: unknown or fixed config key {key!r}"))
    return dataclasses.replace(base, **dict(changes)), {k for k, _ in changes}


TRAIN_DEFAULT = "TrainConfig default"
METHOD_DEFAULT = "the method's"  # hidden: 32 sequential, 16 CMRL (config.METHODS)
_COMMAND_FLAGS = {"cell": "--cell", "learner": "--learner", "subepisode_start":
                  "--subepisode-start", "batch_size": "--batch-size", "num_updates": "--updates",
                  "chunk_updates": "--chunk-updates"}


# What a table's (or env's) spec always decides, even where it equals TrainConfig's default.
_SPEC_DECIDES = ("env", "env_kwargs", "k_explore", "horizon", "num_updates")


def _recipe(spec: TableSpec, args: TableArgs, key: str) -> tuple[Any, str | None]:
    """The value of ``key`` in the table's recipe for the chosen cell, else learner, and
    the recipe's name ((None, None) when neither sets it). The cell's wins: it was measured
    for that cell (e.g. Table 1's GRU keeps the entropy recipe it was measured with)."""
    for name in (args.cell, args.learner):
        value = getattr(spec.recipes.get(name), key, None)
        if value is not None:
            return value, name
    return None, None


def _recipe_values(spec: TableSpec, args: TableArgs, kind: str) -> dict[str, tuple[Any, str]]:
    """TrainConfig values of the table's recipes for a program of ``kind`` ("sequential" or
    "concurrent"), each with its recipe's name; the cell's win over the learner's."""
    out: dict[str, tuple[Any, str]] = {}
    for name in (args.learner, args.cell):  # the cell's last: it wins (``_recipe``)
        recipe = spec.recipes.get(name)
        if recipe is not None:
            out.update({k: (v, name) for k, v in recipe.values(kind).items()})
    return out


def _check_typed(group: str, name: str, value: Any, check) -> None:
    """``check(value)``, its ConfigError naming the typed flag."""
    try:
        check(value)
    except ConfigError as e:
        raise ConfigError(f"{typed_flag(group, name)}: {e}") from None


def _refuse_both(group: str, typed: dict, hatch: str, keys) -> None:
    """One line if a typed option and its escape hatch (``--extra``, ``--learner-option``)
    set the same key."""
    for k in typed:
        if k in keys:
            raise ConfigError(f"{typed_flag(group, k)} and {hatch} {k}=... both set {k}: "
                              "give one")


def resolve_options(spec: TableSpec, args: TableArgs) -> tuple[TrainConfig, dict[str, str]]:
    """Every program's base config of this invocation, and where each value came from.

    Precedence, lowest first: TrainConfig's default < the table's (or env's) spec
    (``spec.base``; ``spec.sources`` names the source where it knows better than
    ``spec.origin``) < the table's recipe for the chosen learner, then cell (the cell's wins)
    (``spec.recipes``; its TrainConfig values per kind of program are applied by
    ``program_config``, and named here as their source) < the command line: a typed
    option (``--train.gamma``, ``--ppo.clip``) or its escape hatch (``--extra``,
    ``--learner-option``), which may not both set a key; the command's own flags
    (``--cell``, ``--updates``, ...) likewise.

    Sources are by TrainConfig field, plus ``learning_rate`` (the runs': ``--sweep``,
    ``--learning-rate``, a recipe, or the table's per row), ``lambda_div`` (the CMRL rows':
    ``--lambda-div``, a recipe, or the table's) and ``learner_options.<key>``
    per option of the learner. ``hidden`` is every program's unless its source is
    ``METHOD_DEFAULT``: then each program's method's (32 sequential, 16 CMRL), and the
    returned config holds the spec's placeholder. ``architecture`` and ``runs`` are per
    program (``make_plan``). ConfigError, one line, for a bad or doubly set value.
    """
    sources: dict[str, str] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("runs", "architecture"):
            continue
        value = getattr(spec.base, f.name)
        sources[f.name] = spec.sources.get(f.name) or (
            spec.origin if f.name in _SPEC_DECIDES or value != getattr(_TRAIN_DEFAULTS, f.name)
            else TRAIN_DEFAULT)

    # the learner's options: --learner-option (escape hatch) or the learner's typed group
    learner = get_learner(args.learner)
    learner_options = parse_assignments(
        "--learner-option", args.learner_option,
        {k: o.default for k, o in learner.options.items()}, learner.unknown)
    typed_learner = given(args.ppo)
    if typed_learner and args.learner != "ppo":
        raise ConfigError(f"{typed_flag('ppo', next(iter(typed_learner)))} is an option of "
                          f"--learner ppo; this command's learner is {args.learner}")
    _refuse_both("ppo", typed_learner, "--learner-option", {k for k, _ in learner_options})
    for k, v in typed_learner.items():
        _check_typed("ppo", k, v, lambda v, k=k: learner.options[k].check(k, v))
    for k in learner.options:
        sources[f"learner_options.{k}"] = (
            typed_flag("ppo", k) if k in typed_learner else "--learner-option"
            if k in dict(learner_options) else f"learner {learner.name} default")
    learner_options = learner_options + tuple(typed_learner.items())

    base = dataclasses.replace(spec.base, cell=args.cell, learner=args.learner,
                               subepisode_start=args.subepisode_start)  # checks their values
    for key in ("cell", "learner", "subepisode_start"):
        if getattr(args, key) != getattr(spec.base, key):
            sources[key] = _COMMAND_FLAGS[key]
    sources["learner_options"] = ("the command line" if args.learner_option or typed_learner
                                  else sources["learner_options"])

    # the recipe for the chosen learner or cell
    recipe_hidden, hidden_recipe = _recipe(spec, args, "hidden")
    recipe_rate, rate_recipe = _recipe(spec, args, "learning_rate")
    if recipe_hidden is not None:
        sources["hidden"] = f"recipe {hidden_recipe}"
    elif spec.hidden is not None:
        sources["hidden"] = spec.sources.get("hidden") or spec.origin
    else:
        sources["hidden"] = METHOD_DEFAULT
    sources["learning_rate"] = ("--sweep" if args.sweep else "--learning-rate"
                                if args.learning_rate is not None else f"recipe {rate_recipe}"
                                if recipe_rate is not None else
                                spec.sources.get("learning_rate") or spec.origin)
    recipe_lambda, lambda_recipe = _recipe(spec, args, "lambda_div")
    sources["lambda_div"] = ("--lambda-div" if args.lambda_div is not None
                             else f"recipe {lambda_recipe}" if recipe_lambda is not None
                             else spec.sources.get("lambda_div") or spec.origin)

    # the command line: --extra (escape hatch) or the typed --train.* options
    base, extra_keys = override_config(base, args.extra)  # --extra hidden=N: every program
    typed = given(args.train)
    _refuse_both("train", typed, "--extra", extra_keys)
    for k, v in typed.items():  # the config's own check, naming the flag
        _check_typed("train", k, v, lambda v, k=k: dataclasses.replace(_TRAIN_DEFAULTS, **{k: v}))
    base = dataclasses.replace(base, **typed)
    sources.update({k: "--extra" for k in extra_keys})
    sources.update({k: typed_flag("train", k) for k in typed})
    if "hidden" not in extra_keys and "hidden" not in typed:
        base = dataclasses.replace(base, hidden=recipe_hidden or spec.hidden or base.hidden)

    updates = spec.base.num_updates if args.updates is None else args.updates
    chunk = min(args.chunk_updates, updates)
    base = dataclasses.replace(base, num_updates=updates, chunk_updates=chunk,
                               batch_size=args.batch_size,
                               learner_options=learner_options)  # checked on the final sizes
    for key in ("num_updates", "chunk_updates", "batch_size"):
        if getattr(base, key) != getattr(spec.base, key) or key == "num_updates" and \
                args.updates is not None:
            sources[key] = _COMMAND_FLAGS[key]

    # the recipes' TrainConfig values, per kind of program (``make_plan`` applies them)
    by_kind = {kind: _recipe_values(spec, args, kind) for kind in _KINDS}
    for key in set().union(*by_kind.values()):
        if _from_command_line(sources[key]):
            continue
        kinds = [k for k in _KINDS if key in by_kind[k]]
        name = by_kind[kinds[0]][key][1]
        sources[key] = f"recipe {name}" + ("" if len(kinds) == len(_KINDS)
                                           else f" ({kinds[0]} programs)")
    return base, sources


_KINDS = ("sequential", "concurrent")


def _from_command_line(source: str) -> bool:
    """Whether a TrainConfig value's source (``resolve_options``) is a command-line flag."""
    return source.startswith("--")


def program_config(spec: TableSpec, args: TableArgs, base: TrainConfig,
                   sources: dict[str, str], concurrent: bool) -> TrainConfig:
    """``base`` with the table's recipe values for a sequential or concurrent program, where
    the command line did not set them (``resolve_options``'s ``sources``)."""
    values = _recipe_values(spec, args, "concurrent" if concurrent else "sequential")
    return dataclasses.replace(base, **{k: v for k, (v, _) in values.items()
                                        if not _from_command_line(sources[k])})


def env_steps_per_run(cfg: TrainConfig) -> int:
    """Env-step slots one run of ``cfg`` trains on: updates x meta-episodes per update x
    (K + 1) sub-episodes or rollouts x H decisions, the same for RL2 / ERL2 (K explore
    sub-episodes, then the exploit one) and CMRL (K explore rollouts, then the exploit
    sub-episode); a sub-episode that ends early (a goal reached) steps fewer."""
    return cfg.num_updates * cfg.batch_size * (cfg.k_explore + 1) * cfg.horizon


def program_name(architecture: str, cell: str, learner: str, hidden: int | None = None) -> str:
    """A program's folder name: its topology, cell and learner (``central_gru``,
    ``meta_mingru_ppo``, ``sequential_lstm_ppo``); the paper's LSTM with A2C keeps the
    topology's name alone (``sequential``, ``central_lstm``, ``meta_lstm``). ``hidden``: the
    memory size its rows fix (``Row.hidden``), appended (``meta_lstm_h32``, ``meta_gru_h32``);
    None where they do not (every paper table)."""
    if cell == "lstm" and learner == "a2c":
        name = architecture
    else:
        parts = [architecture.removesuffix("_lstm"), cell] + (
            [learner] if learner != "a2c" else [])
        name = "_".join(safe_name(p) for p in parts)
    return name if hidden is None else f"{name}_h{hidden}"


def program_folder(folder, architecture: str, cfg: TrainConfig,
                   hidden: int | None = None) -> str:
    """``program_name``, except for a folder made before programs were named by cell and
    learner: a subfolder under the topology's name alone whose config is this program's
    (or this run to another length) keeps it, so it resumes. ``hidden``: the memory size
    its rows fix (newer than those folders: no old name to keep)."""
    from cmrl_jax.results.continuation import only_length_differs
    from cmrl_jax.results.folder import CONFIG_FILE

    name = program_name(architecture, cfg.cell, cfg.learner, hidden)
    if hidden is not None:
        return name
    legacy = folder / architecture / CONFIG_FILE
    if name != architecture and not (folder / name).exists() and legacy.exists():
        saved, wanted = legacy.read_text(), cfg.to_json()
        if saved == wanted or only_length_differs(saved, wanted):
            return architecture
    return name


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
    base, sources = resolve_options(spec, args)

    recipe_rate, _ = _recipe(spec, args, "learning_rate")
    recipe_lambda, _ = _recipe(spec, args, "lambda_div")
    # one program per (architecture, memory size a row fixes), in the order rows come
    groups: dict[tuple[str, int | None], list[Row]] = {}
    for m in methods:
        row = by_label[m]
        groups.setdefault((row.topology(spec.cmrl_architecture), row.hidden), []).append(row)
    fixed = next((by_label[m] for m in methods if by_label[m].hidden is not None), None)
    if fixed is not None and _from_command_line(sources["hidden"]):
        raise ConfigError(f"{sources['hidden']} sets every program's memory size, but row "
                          f"{fixed.label!r} fixes its own ({fixed.hidden}): select rows without "
                          "one (--methods), or leave the memory size to the table")
    programs = []
    env = spec.env if spec.env is not None and spec.env.matches(base.env, base.env_kwargs) \
        else None  # bound by the first program's validation otherwise
    for (arch, row_hidden), rows in groups.items():
        runs = []
        for row in rows:
            lam = 0.0
            if get_method(row.method).concurrent and row.divergence:
                lam = args.lambda_div if args.lambda_div is not None else (
                    spec.lambda_div if recipe_lambda is None else recipe_lambda)
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
        hidden = row_hidden if row_hidden is not None else get_method(rows[0].method).hidden \
            if sources["hidden"] == METHOD_DEFAULT else base.hidden
        cfg = program_config(spec, args, base, sources, arch != "sequential")
        cfg = dataclasses.replace(cfg, architecture=arch, hidden=hidden, runs=tuple(runs))
        env = cfg.validate(env)  # once per program; the env resolved and built once
        programs.append((arch, row_hidden, cfg))

    from cmrl_jax.results.paths import results_path

    folder = results_path(args.out or f"results/{spec.name}")
    programs = [(program_folder(folder, arch, cfg, row_hidden), cfg)
                for arch, row_hidden, cfg in programs]
    recorded = dataclasses.asdict(args) | {g: given(getattr(args, g)) for g in OPTION_GROUPS}
    exp = without_added_later({k: v for k, v in recorded.items()
                               if k not in RUNTIME_OPTIONS}, ADDED_LATER_OPTIONS)
    exp.update(updates=updates, chunk_updates=chunk, methods=list(methods), table=spec.name)
    return Plan(folder, json.dumps(exp, sort_keys=True, indent=1), tuple(programs), sinks,
                env)


def claim(plan: Plan):
    """Refuse folders of other configs before anything compiles or is written; a folder run
    to another length is continued where its schedule allows
    (``results.continuation``): -> the table folder's ``Continuation`` or None (its programs'
    are recorded as they start)."""
    from cmrl_jax.results.continuation import claim_or_continue

    continued = claim_or_continue(plan.folder, plan.experiment_json, what="experiment config",
                                  group="train", program=False)
    for name, cfg in plan.programs:
        claim_or_continue(plan.folder / name, cfg.to_json())
    return continued


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
class RunLength:
    """A table run's length against the table's own, for reading its final success.

    A run anneals its entropy bonuses over ``entropy_anneal_fraction`` of its own updates
    (``train.make_train``), so a short run goes through the whole schedule compressed; a
    table's recipe was tuned at the table's length, and a run with fewer updates than the
    anneal takes there has not had the updates learning needed at that length.
    """

    updates: int  # this run's updates (``--updates``)
    table_updates: int  # the table's length (its spec's: the paper's for a paper table)
    anneal_fraction: float  # the longest entropy_anneal_fraction of its programs

    @classmethod
    def of(cls, spec: TableSpec, programs: tuple[tuple[str, TrainConfig], ...]) -> "RunLength":
        """The length of a plan's programs (``Plan.programs``; they share ``num_updates``)."""
        return cls(programs[0][1].num_updates, spec.base.num_updates,
                   max(cfg.entropy_anneal_fraction for _, cfg in programs))

    @property
    def table_anneal(self) -> int:
        """Updates over which the bonuses anneal in a run of the table's length."""
        return round(self.anneal_fraction * self.table_updates)

    @property
    def inside_anneal(self) -> bool:
        """Whether this run is shorter than the anneal of a run of the table's length."""
        return self.updates < self.anneal_fraction * self.table_updates


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

    def warnings(self, ours: dict[str, dict], eval_episodes: int,
                 length: RunLength | None = None) -> list[str]:
        """One line per row whose mean final success is under the neutral policy's by more
        than two standard errors of the difference (both are sample means: ``eval_episodes``
        meta-episodes per seed for a row, ``episodes`` for the neutral rate). A run shorter
        than the table's anneal (``length``) gets one line for all such rows instead: there
        a row under the neutral policy is expected, not a fault."""
        p = self.neutral
        under = {}
        for label, row in ours.items():
            q = row["final_success_mean"] / 100
            n = eval_episodes * max(1, row["seeds"])
            se = math.sqrt(p * (1 - p) / self.episodes + q * (1 - q) / n)
            if q < p - 2 * se:
                under[label] = q
        if under and length is not None and length.inside_anneal:
            rows = ", ".join(under)
            return [
                f"note: {rows} end{'s' if len(under) == 1 else ''} under the neutral policy's "
                f"{100 * p:.1f} %, as a short run may: its {length.updates} updates are fewer "
                f"than the {length.table_anneal} over which the entropy bonuses anneal in a run "
                f"of the table's {length.table_updates} (this run annealed them over its first "
                f"{round(length.anneal_fraction * length.updates)}), so final success is not "
                f"yet meaningful; run the table's {length.table_updates} updates for it"]
        return [f"warning: {label} ends at {100 * q:.1f} % success, under the neutral "
                f"policy's {100 * p:.1f} %: it learned to do worse than acting blindly, or "
                f"the success definition does not fit this env ({self.success})"
                for label, q in under.items()]


BASELINES: dict[TrainConfig, Baseline] = {}
"""Neutral baselines computed in this process, by env, options, K and H (``baseline``)."""


def _baseline(cfg: TrainConfig, env) -> Baseline:
    from cmrl_jax.envspec import describe_success, neutral_rate
    from cmrl_jax.train import make_runner

    runner = make_runner(cfg, env)
    episodes = 4096
    return Baseline(
        success=describe_success(env.spec, runner.env, runner.env_params),
        policy=runner.policy.__class__.__name__,
        neutral=neutral_rate(runner, num=episodes),
        episodes=episodes,
    )


def baseline(cfg: TrainConfig, env=None) -> Baseline:
    """The ``Baseline`` of ``cfg``'s env, K and H (one small compiled program, computed once
    per process for each: nothing else of ``cfg`` changes what acting blindly scores).
    ``env``: ``cfg``'s bound env (``cmrl_jax.registry.bind_env``; a plan's), bound here if
    not given and the baseline is not known yet."""
    key = TrainConfig(env=cfg.env, env_kwargs=cfg.env_kwargs, k_explore=cfg.k_explore,
                      horizon=cfg.horizon, architecture="sequential", hidden=1)
    if env is not None and not env.matches(cfg.env, cfg.env_kwargs):
        raise ValueError(f"baseline: the bound env {env.name} is not {cfg.env}'s with its options")
    if key not in BASELINES:
        if env is None:
            from cmrl_jax.registry import bind_env

            env = bind_env(cfg.env, cfg.env_kwargs)
        while len(BASELINES) >= 8:  # a few envs per process; the oldest goes first
            BASELINES.pop(next(iter(BASELINES)))
        BASELINES[key] = _baseline(key, env)
    return BASELINES[key]
