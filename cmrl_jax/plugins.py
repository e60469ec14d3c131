"""Plug-ins by name: memory cells, output sinks and learners, found the way envs are.

A ``Plugins`` table resolves a name (``TrainConfig.cell``, ``--log``,
``TrainConfig.learner``), in this order, as

1. a built-in: the kind's own table (``cells.CELLS``, ``sinks.SINKS``,
   ``learners.LEARNERS``), read live, so an entry added to it in this process counts;
2. a name an installed package declares in the kind's entry-point group
   (``cmrl_jax.cells``, ``cmrl_jax.sinks``, ``cmrl_jax.learners``): imported only when
   that name is asked for, then kept (our minGRU ships this way, pyproject.toml);
3. ``module:name``: ``module`` is imported and its attribute ``name`` taken.

What is found is checked for its type (the table's ``coerce``). Anything wrong (an
unknown name, a module that does not import, an absent attribute, one of the wrong type,
an entry point that does not load) is one ``ConfigError`` line, exit status 2 from the
commands, before anything compiles or is written. A config records the name as given,
so a resume in another process resolves it again. ``cmrl_jax.registry`` does the same
for envs, with its own families and ``register_env``.
"""

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from cmrl_jax.errors import ConfigError

T = TypeVar("T")


@functools.cache
def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """Installed packages' names in ``group`` -> their (not yet loaded) entry points."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _what(obj: Any) -> str:
    """How a message names an object of the wrong type (``a function``, ``an int``)."""
    name = type(obj).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


@dataclass(frozen=True)
class Plugins(Generic[T]):
    """The plug-ins of one kind, by name (see the module docstring)."""

    kind: str  # what a message calls one: "cell", "sink", "learner"
    group: str  # the entry-point group, e.g. "cmrl_jax.cells"
    builtin: Mapping[str, T]  # the built-in table, read live
    coerce: Callable[[Any], T | None]  # a loaded object -> the plug-in; None: wrong type
    expected: str  # what ``coerce`` accepts, as a message says it
    # entry points and module:name loaded so far, by name (each is loaded once)
    _loaded: dict[str, T] = field(default_factory=dict, init=False, repr=False,
                                  compare=False)

    def names(self) -> tuple[str, ...]:
        """Every name known without ``module:name``: the built-ins in their table's order,
        then the installed entry points, sorted."""
        installed = sorted(n for n in entry_points(self.group) if n not in self.builtin)
        return (*self.builtin, *installed)

    def choices(self) -> str:
        """The names for a help text: ``lstm, gru, mingru, or module:name (a ...)``."""
        return f"{', '.join(self.names())}, or module:name ({self.expected})"

    def resolve(self, name: str) -> T:
        """The plug-in called ``name``; ConfigError (one line) if it resolves to none."""
        if name in self.builtin:
            return self.builtin[name]
        if name in self._loaded:
            return self._loaded[name]
        installed = entry_points(self.group)
        if name in installed:
            return self._load(name, installed[name])
        if ":" in name:
            return self._import(name)
        raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}; "
                          f"or module:name ({self.expected}; docs/extending.md)")

    def _checked(self, name: str, where: str, obj: Any) -> T:
        """``obj`` as the plug-in (``coerce``); ConfigError if it is of the wrong type."""
        found = self.coerce(obj)
        if found is None:
            raise ConfigError(f"{self.kind} {name}: {where} is {_what(obj)}, not "
                              f"{self.expected}")
        return found

    def _load(self, name: str, ep: metadata.EntryPoint) -> T:
        """An installed package's plug-in: its entry point loaded, checked and kept."""
        try:
            obj = ep.load()
        except Exception as e:  # a broken third-party package: one line
            raise ConfigError(f"{self.kind} {name}: cannot load entry point {ep.value} "
                              f"({type(e).__name__}: {e})") from None
        found = self._checked(name, f"entry point {ep.value}", obj)
        self._loaded[name] = found
        return found

    def _import(self, name: str) -> T:
        """``module:attribute``: the module imported, the attribute taken and checked."""
        module, attribute = name.split(":", 1)
        try:
            loaded = importlib.import_module(module)
        except Exception as e:  # absent, or broken at its import: one line
            raise ConfigError(
                f"{self.kind} {name}: cannot import {module!r} ({type(e).__name__}: {e}); "
                "the module must be importable from this process (installed, or on "
                "PYTHONPATH)") from None
        if not hasattr(loaded, attribute):
            raise ConfigError(f"{self.kind} {name}: module {module!r} has no attribute "
                              f"{attribute!r}")
        found = self._checked(name, name, getattr(loaded, attribute))
        self._loaded[name] = found
        return found
