"""Typed, frozen configurations, validated before anything compiles.

``TrainConfig`` holds the static shape of one compiled program (environment,
architecture, sizes, horizons, schedules). ``RunSpec`` holds what may differ
between the runs that are vmapped inside that program (seed, learning rate,
lambda_div, reward scheme): those become traced values.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmrl_jax.agent.cells import (  # noqa: F401 - the commands' way in
    CELL_PLUGINS,
    CELLS,
    get_cell,
)
from cmrl_jax.agent.encoders import ENCODERS
from cmrl_jax.agent.networks import ARCHITECTURES
from cmrl_jax.divergence import DIVERGENCES
from cmrl_jax.errors import ConfigError, check_number
from cmrl_jax.learners import (  # noqa: F401 - the commands' way in
    LEARNER_PLUGINS,
    LEARNERS,
    get_learner,
)
from cmrl_jax.rewards import SCHEMES

if TYPE_CHECKING:  # registry imports gymnax, which starts JAX's backend: never at run time
    from cmrl_jax.registry import BoundEnv


@dataclass(frozen=True)
class Method:
    """A named method of the paper: sequential or concurrent, reward scheme, memory size.

    Concurrent (CMRL) methods run on either communication architecture
    (Central-LSTM or Meta-LSTM); the experiment chooses which.
    """

    name: str
    concurrent: bool
    scheme: str
    hidden: int  # paper, Appendix A: 32 for the baselines, 16 for CMRL


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("RL2", False, "separate", 32),
        Method("ERL2", False, "zero", 32),
        Method("Separate", True, "separate", 16),
        Method("Shared", True, "shared", 16),
        Method("Zero-Until-Exploit", True, "zero", 16),
        Method("Max-Until-Exploit", True, "max", 16),
        Method("StDev-Until-Exploit", True, "stdev", 16),
        Method("Max+StDev-Until-Exploit", True, "max_stdev", 16),
    )
}


def get_method(name: str) -> Method:
    """Look up a method by name (ConfigError naming the known ones if unknown)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


@dataclass(frozen=True)
class RunSpec:
    """One vmapped run: a method's traced hyperparameters and a seed."""

    method: str
    seed: int
    learning_rate: float
    lambda_div: float = 0.0
    label: str = ""  # table row; defaults to the method's name
    # This run's values of the learner's traced options (e.g. PPO's clip), over the
    # config's ``learner_options``: runs that differ only here share one program.
    learner_options: tuple[tuple[str, float], ...] = ()

    @property
    def row(self) -> str:
        """The table row this run belongs to."""
        return self.label or self.method

    def __post_init__(self):
        """Validated on construction: an impossible RunSpec cannot be built."""
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on an impossible value."""
        get_method(self.method)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        check_number("learning rate", self.learning_rate, strict=True)
        check_number("lambda_div", self.lambda_div)


REMAT = ("none", "step", "segments")
"""Rematerialisation of the differentiated step scans (``engine.MetaEpisodeRunner``)."""

START_PROTOCOLS = ("same", "fresh")
"""Where sub-episodes start (``engine.MetaEpisodeRunner``'s ``subepisode_start``;
docs/design.md, "Sub-episode starts")."""

ADDED_LATER = {"cell": "lstm", "learner": "a2c", "learner_options": (), "remat": "none",
               "subepisode_start": "same", "encoder": "flat",
               "entropy_exploit_floor_start": 0.0, "entropy_exploit_floor_end": 0.0,
               "adam_eps": 1e-8}
"""TrainConfig fields newer than the first results folders, with the default they had then."""
RUN_ADDED_LATER = {"learner_options": ()}
"""The same for RunSpec fields."""


def without_added_later(d: dict, added_later: dict) -> dict:
    """``d`` without the keys of ``added_later`` that hold their default there: what a
    folder made before those keys existed recorded, so it still matches and resumes."""
    return {k: v for k, v in d.items() if not (k in added_later and added_later[k] == v)}


@dataclass(frozen=True)
class TrainConfig:
    """Static configuration of one compiled training program."""

    env: str = "monty_hall"
    env_kwargs: tuple[tuple[str, Any], ...] = ()  # the env factory's defaults
    architecture: str = "central_lstm"
    hidden: int = 16
    k_explore: int = 10  # explore rollouts (CMRL) or explore sub-episodes (RL2/ERL2)
    horizon: int = 1  # H: decisions per sub-episode
    batch_size: int = 128  # meta-episodes per update (per run)
    num_updates: int = 10_000
    chunk_updates: int = 250  # updates per compiled call; eval + checkpoint between
    gamma: float = 0.99
    value_coef: float = 0.5
    # Entropy bonuses, each annealed linearly from *_start to *_end over the first
    # entropy_anneal_fraction of training (docs/design.md, "Entropy").
    entropy_explore_start: float = 1.0
    entropy_explore_end: float = 0.01
    entropy_exploit_start: float = 1.0
    entropy_exploit_end: float = 0.01
    entropy_anneal_fraction: float = 0.6
    max_grad_norm: float = 1.0
    divergence: str = "js"
    num_derangements: int = 1
    reward_input_scale: float = 1.0
    eval_batches: int = 10
    eval_batch_size: int = 128
    eval_greedy: bool = False
    runs: tuple[RunSpec, ...] = field(default_factory=tuple)
    cell: str = "lstm"  # the memory cell of every topology (cells.get_cell: a name, module:name)
    learner: str = "a2c"  # what turns meta-episodes into updates (learners.get_learner)
    learner_options: tuple[tuple[str, Any], ...] = ()  # the learner's options (its defaults)
    # "step": rematerialise every differentiated step (jax.checkpoint; engine.REMAT): memory
    # for long meta-episodes, for about one more forward pass of compute; "segments": in
    # segments of about sqrt(T) steps (activations held grow like sqrt(T)).
    remat: str = "none"
    # "same": every sub-episode and rollout starts from the state the meta-episode's reset
    # drew (the paper's); "fresh": each from its own draw of the env's reset_state in the
    # same task (classic RL2's, xland-minigrid's). The env must define reset_state.
    subepisode_start: str = "same"
    # What the memory cells read of an observation (encoders.ENCODERS): "flat", or "grid"
    # (embeddings of a symbolic grid's ids, e.g. XLand-MiniGrid's tiles and colours).
    encoder: str = "flat"
    # An entropy floor of exploit decisions, in nats (0 and 0: off, the paper's plain bonus):
    # the exploit bonus then counts each decision's entropy only up to the floor, so it
    # pushes back only where the policy is sharper than the floor and leaves the policy
    # gradient free above it. The floor anneals from *_start to *_end like the bonuses
    # (docs/design.md, "Entropy").
    entropy_exploit_floor_start: float = 0.0
    entropy_exploit_floor_end: float = 0.0
    # Adam's epsilon (added to the root of the second moment; optax's default). Measured on
    # Table 1: 1e-12 gives the same curves (docs/design.md, "Optimizer").
    adam_eps: float = 1e-8

    def __post_init__(self):
        """Validated on construction (``check``): a library user cannot build a config with an
        impossible value. A config without runs is a template (the tables' base configs)."""
        self.check()

    def validate(self, env: "BoundEnv | None" = None) -> "BoundEnv":
        """Everything, before any compilation: ``check``, the env's name and options (bound
        here, ``registry.bind_env``: resolved and built once, unless ``env``, this config's
        bound env, is given), whether the env serves this config's start protocol and
        encoder, and at least one run. Returns the bound env, which remembers this config
        as validated (``validated``)."""
        from cmrl_jax.registry import bind_env

        self.check()
        if env is None:
            env = bind_env(self.env, self.env_kwargs)  # name, options (ConfigError: one line)
        elif not env.matches(self.env, self.env_kwargs):
            raise ValueError(f"the bound env {env.name} {env.options} is not this config's "
                             f"({self.env} {self.env_kwargs})")
        if self.subepisode_start == "fresh" or self.encoder != "flat":
            self._check_env_fits(env)
        if not self.runs:
            raise ConfigError("no runs: select at least one method and one seed")
        env.remember_valid(self)
        return env

    def validated(self, env: "BoundEnv | None" = None) -> "BoundEnv":
        """This config's bound env, the config validated against it once per bound env:
        ``validate`` unless ``env`` has already validated it (a plan's programs, checked
        when planned, are not validated again by the trainer)."""
        if env is not None and env.validated(self):
            return env
        return self.validate(env)

    def _check_env_fits(self, bound: "BoundEnv") -> None:
        """ConfigError (one line) if the env cannot serve this config's start protocol or
        encoder (reads the bound env; before anything compiles)."""
        env = bound.env
        if self.subepisode_start == "fresh" and not hasattr(env, "reset_state"):
            raise ConfigError(
                f"--subepisode-start fresh needs an env that defines reset_state (a fresh "
                f"start in the same task); {self.env} does not (docs/extending.md)")
        space = bound.observation_space()
        why = ENCODERS[self.encoder].check(tuple(space.shape), getattr(space, "high", None))
        if why:
            raise ConfigError(f"encoder {self.encoder} cannot read env {self.env}: {why}")

    def check(self) -> None:
        """Every field's value and the runs present (none is allowed: a template).

        JAX-free and import-free: the env's name and options are checked by
        ``validate``, because resolving an env imports gymnax, which starts JAX's
        backend (``--distributed`` must join its cluster before that). A plug-in cell or
        learner (an entry point, ``module:name``) is imported here: its module must not
        import gymnax at its top (docs/extending.md, "Learners")."""
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"unknown architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}"
            )
        get_cell(self.cell)  # a built-in, an entry point or module:name; else one line
        if self.remat not in REMAT:
            raise ConfigError(f"unknown remat {self.remat!r}; known: {', '.join(REMAT)}")
        if self.subepisode_start not in START_PROTOCOLS:
            raise ConfigError(f"unknown subepisode_start {self.subepisode_start!r}; "
                              f"known: {', '.join(START_PROTOCOLS)}")
        if self.encoder not in ENCODERS:
            raise ConfigError(
                f"unknown encoder {self.encoder!r}; known: {', '.join(ENCODERS)}")
        learner = get_learner(self.learner)  # as the cell
        if self.divergence not in DIVERGENCES:
            raise ConfigError(
                f"unknown divergence {self.divergence!r}; known: {', '.join(DIVERGENCES)}"
            )
        positive = {
            "hidden": self.hidden,
            "k_explore": self.k_explore,
            "horizon": self.horizon,
            "batch_size": self.batch_size,
            "num_updates": self.num_updates,
            "chunk_updates": self.chunk_updates,
            "num_derangements": self.num_derangements,
            "eval_batches": self.eval_batches,
            "eval_batch_size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value}")
        if self.num_updates % self.chunk_updates:  # the loop runs whole chunks: no silent floor
            raise ConfigError(f"num_updates ({self.num_updates}) must be a multiple of "
                              f"chunk_updates ({self.chunk_updates})")
        for name in ("gamma", "entropy_anneal_fraction"):
            check_number(name, getattr(self, name), maximum=1.0)
        for name in ("value_coef", "entropy_explore_start", "entropy_explore_end",
                     "entropy_exploit_start", "entropy_exploit_end", "max_grad_norm",
                     "reward_input_scale", "entropy_exploit_floor_start",
                     "entropy_exploit_floor_end", "adam_eps"):
            check_number(name, getattr(self, name))
        for run in self.runs:
            run.validate()
            method = get_method(run.method)
            if method.concurrent != self.concurrent:
                kind = "concurrent" if method.concurrent else "sequential"
                raise ConfigError(
                    f"method {run.method} is {kind}, this program's architecture is "
                    f"{self.architecture}"
                )
            if run.lambda_div > 0 and self.concurrent and self.k_explore < 2:
                raise ConfigError("the divergence loss needs K_explore >= 2 rollouts")
        for scheme in {get_method(r.method).scheme for r in self.runs}:
            if scheme not in SCHEMES:
                raise ConfigError(f"unknown reward scheme {scheme!r}")
        learner.check(self)  # its options, and the runs' values of them

    @property
    def exploit_floor(self) -> bool:
        """Whether the exploit entropy bonus has a floor (``entropy_exploit_floor_*``)."""
        return self.entropy_exploit_floor_start > 0 or self.entropy_exploit_floor_end > 0

    @property
    def concurrent(self) -> bool:
        """CMRL (K rollouts in parallel) rather than sequential sub-episodes."""
        return ARCHITECTURES[self.architecture].concurrent

    def to_json(self) -> str:
        """Canonical JSON (used to recognise a results folder's config). Fields added after
        folders were first written (``ADDED_LATER``) appear only when they differ from
        their default, so those folders' configs still match and resume."""
        d = without_added_later(dataclasses.asdict(self), ADDED_LATER)
        d["runs"] = [without_added_later(r, RUN_ADDED_LATER) for r in d["runs"]]
        return json.dumps(d, sort_keys=True, indent=1)

    @staticmethod
    def from_json(text: str) -> "TrainConfig":
        """Inverse of ``to_json``."""
        d = json.loads(text)
        pairs = lambda items: tuple(tuple(kv) for kv in items)  # noqa: E731
        d["env_kwargs"] = pairs(d["env_kwargs"])
        d["learner_options"] = pairs(d.get("learner_options", ()))
        d["runs"] = tuple(RunSpec(**(r | {"learner_options": pairs(r.get("learner_options", ()))}))
                          for r in d["runs"])
        return TrainConfig(**d)
