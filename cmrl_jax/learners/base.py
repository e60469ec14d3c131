"""The plug-in surface of a learner: ``Option`` and its checks, the ``Learner`` base and
the ``Update`` it makes (``cmrl_jax.learners`` exports them all; the registry is there)."""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax.numpy as jnp
import optax

from cmrl_jax.errors import ConfigError, check_number
from cmrl_jax.learners.common import UpdateInputs

Params = Any  # the agent's parameters (a pytree)
Metrics = NamedTuple  # the learner's own; it has loss, grad_norm and finite (set by the caller)
Update = Callable[[Params, optax.OptState, UpdateInputs],
                  tuple[Params, optax.OptState, Metrics]]
"""``update(params, opt_state, inputs) -> (params, opt_state, metrics)``: one update of
one run (pure, jittable; ``train.make_train`` scans it over a chunk and vmaps it over
runs)."""


@dataclass(frozen=True)
class Option:
    """One learner option: its default, whether it is traced (per run), and its check."""

    default: Any
    traced: bool
    check: Callable[[str, Any], None]  # (name, value) -> None, or ConfigError
    doc: str = ""


def positive_int(name: str, value: Any) -> None:
    """An option check: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"learner option {name} must be a positive integer, got {value!r}")


def int_in(low: int, high: int):
    """An option check: an integer from ``low`` to ``high``; the bound is said in the refusal
    (a static option sizes the compiled program: an unbounded one would fail or compile
    for ever only after the results folder is written)."""

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"learner option {name} must be an integer from {low} to {high}, "
                              f"got {value!r}")

    return check


def nonnegative_int(name: str, value: Any) -> None:
    """An option check: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"learner option {name} must be an integer >= 0, got {value!r}")


def number_in(low: float, high: float = math.inf, strict: bool = False):
    """An option check: a finite number in [low, high] (> low if ``strict``)."""

    def check(name: str, value: Any) -> None:
        check_number(f"learner option {name}", value, low, high, strict)

    return check


def boolean(name: str, value: Any) -> None:
    """An option check: true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"learner option {name} must be true or false, got {value!r}")


class Learner:
    """Base of a learner: option handling. Subclasses set ``name`` and ``options`` and
    implement ``make_update``."""

    name: str = ""
    options: Mapping[str, Option] = {}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value: its default, replaced by what ``given`` sets; ConfigError
        (one line) for an unknown option or a bad value."""
        for key in given:
            if key not in self.options:
                raise ConfigError(self.unknown(key))
        values = {k: o.default for k, o in self.options.items()} | dict(given)
        for key, value in values.items():
            self.options[key].check(key, value)
        return values

    def unknown(self, key: str) -> str:
        """The one line refusing an option this learner does not have."""
        return (f"learner {self.name} has no option {key!r}; its options: "
                f"{', '.join(self.options) or 'none'}")

    def traced(self) -> tuple[str, ...]:
        """Names of the options that are traced per run (``train.HParams.learner``)."""
        return tuple(k for k, o in self.options.items() if o.traced)

    def check(self, cfg) -> None:
        """ConfigError for options ``cfg`` (a ``TrainConfig``) cannot run with: unknown or
        bad values, per-run values of an option that is not traced."""
        self.resolve(dict(cfg.learner_options))
        traced = self.traced()
        for run in cfg.runs:
            for key, value in run.learner_options:
                if key not in traced:
                    what = "not traced" if key in self.options else "unknown"
                    raise ConfigError(f"run {run.row} seed {run.seed}: learner option {key!r} "
                                      f"is {what} for {self.name}; per-run values: "
                                      f"{', '.join(traced) or 'none'}")
                self.options[key].check(key, value)

    def run_values(self, cfg) -> list[dict[str, float]]:
        """Per run, the values of the traced options (the config's, then the run's)."""
        base = self.resolve(dict(cfg.learner_options))
        return [{k: float((base | dict(r.learner_options))[k]) for k in self.traced()}
                for r in cfg.runs]

    def traced_values(self, cfg) -> Any:
        """The traced options' values of ``cfg``'s runs, each a [R] float32 array: what
        ``train.HParams.learner`` holds. A dict by option name; a learner may return its
        own pytree of them (PPO: ``PPOTraced``)."""
        values = self.run_values(cfg)
        return {k: jnp.array([v[k] for v in values], jnp.float32) for k in self.traced()}

    def make_update(self, runner, cfg, optimizer: optax.GradientTransformation,
                    mesh) -> Update:
        """One update of one run's parameters (pure, jittable): ``runner`` the engine,
        ``cfg`` the ``TrainConfig``, ``optimizer`` ``train.make_optimizer``'s (the learning
        rate is applied after it), ``mesh`` the device mesh or None."""
        raise NotImplementedError
