"""Name -> environment spec (``EnvSpec``: a factory plus optional hooks and defaults).

A name is resolved, in this order, as

1. a name registered in this process (``register_env``, usually at a module's
   import);
2. a name an installed package declares in the ``cmrl_jax.envs`` entry-point
   group (our paper envs, declared in pyproject.toml, and any third-party
   package's): the entry point names an ``EnvSpec`` and is imported only when
   its name is asked for;
3. ``<family>:<id>``: a family of envs an installed package declares in the
   ``cmrl_jax.env_families`` group (ours: ``xland:<id>`` and ``minigrid:<id>``,
   XLand-MiniGrid's, with the ``xland`` extra): the entry point names a callable
   ``(id) -> EnvSpec``;
4. ``module:name``: ``module`` is imported first and must register ``name``;
5. ``gymnax:<id>``: any gymnax environment, its constructor's arguments and its
   ``EnvParams`` fields as the env options (``GYMNAX_HOOKS`` adds defaults for
   gymnax's meta-learning envs).

Why entry points, and why both (docs/design.md, "Environments as plug-ins"):
the library names no env package, a package registers by being installed, and
nothing is imported until its name is used (MuJoCo only for the Reacher).
"""

import dataclasses
import functools
import importlib
import inspect
import math
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from gymnax.environments import environment

from cmrl_jax.envspec import EnvFactory, EnvSpec
from cmrl_jax.errors import ConfigError

ENTRY_POINT_GROUP = "cmrl_jax.envs"
FAMILY_GROUP = "cmrl_jax.env_families"
GYMNAX_PREFIX = "gymnax:"
_REGISTRY: dict[str, EnvSpec] = {}


class UnknownEnvError(ConfigError, KeyError):
    """An env name that resolves to nothing (one line, exit status 2)."""

    def __str__(self) -> str:
        """The message, without KeyError's quotes."""
        return str(self.args[0])


@functools.cache
def _plugins() -> dict[str, metadata.EntryPoint]:
    """Installed packages' env names -> their (not yet loaded) entry points."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _families() -> dict[str, metadata.EntryPoint]:
    """Installed packages' env families: prefix -> (not yet loaded) entry point."""
    return {ep.name: ep for ep in metadata.entry_points(group=FAMILY_GROUP)}


def _family_spec(prefix: str, env_id: str) -> EnvSpec:
    """``prefix:env_id`` through its family's entry point (ConfigError: one line)."""
    ep = _families()[prefix]
    try:
        family = ep.load()
    except Exception as e:  # a broken third-party package: one line
        raise UnknownEnvError(f"env {prefix}:{env_id}: cannot load {ep.value} "
                              f"({type(e).__name__}: {e})") from None
    spec = family(env_id)  # ConfigError for an id it does not have, or a missing extra
    if not isinstance(spec, EnvSpec):
        raise UnknownEnvError(f"env {prefix}:{env_id}: {ep.value} returned a "
                              f"{type(spec).__name__}, not a cmrl_jax.envspec.EnvSpec")
    _REGISTRY[f"{prefix}:{env_id}"] = spec
    return spec


def register_env(name: str, factory: EnvFactory, **hooks: Any) -> EnvSpec:
    """Register ``factory(**options) -> (env, env_params)`` under ``name``; returns its spec.

    ``hooks``: any ``EnvSpec`` field (success, chance, oracle, k_explore, horizon,
    architecture, config, learning_rate, lambda_div, num_goals, renderer, ...).
    """
    if name in _REGISTRY or name in _plugins():
        raise ValueError(f"environment {name!r} is already registered")
    if ":" in name:
        raise ValueError(f"env names may not contain ':' ({name!r}): it separates "
                         "gymnax:<id> and module:name")
    _REGISTRY[name] = EnvSpec(factory=factory, **hooks)
    return _REGISTRY[name]


def registered_envs() -> tuple[str, ...]:
    """Names accepted by ``make_env`` besides ``gymnax:<id>`` and ``module:name``."""
    return tuple(sorted({*_REGISTRY, *_plugins()}))


def _known() -> str:
    """The list printed with an unknown name."""
    families = "".join(f" or {p}:<id>;" for p in sorted(_families()))
    return (f"known: {', '.join(registered_envs())}; or gymnax:<id> (e.g. "
            f"gymnax:MetaMaze-misc);{families} or module:name, where importing module "
            "registers name (docs/extending.md)")


def _load_plugin(name: str) -> EnvSpec:
    """Import an installed package's env (entry point ``name``) and keep its spec."""
    ep = _plugins()[name]
    try:
        spec = ep.load()
    except Exception as e:  # a broken third-party package: one line
        raise UnknownEnvError(f"env {name}: cannot load {ep.value} ({type(e).__name__}: {e})"
                              ) from None
    if not isinstance(spec, EnvSpec):
        raise UnknownEnvError(f"env {name}: entry point {ep.value} is a "
                              f"{type(spec).__name__}, not a cmrl_jax.envspec.EnvSpec")
    _REGISTRY[name] = spec
    return spec


def env_spec(name: str) -> EnvSpec:
    """The spec of ``name`` (see the module docstring); UnknownEnvError otherwise.

    ``module:name`` is what a config should record for a user's env: any later
    process (resume, ``load_policy``) can then rebuild it.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _plugins():
        return _load_plugin(name)
    if name.startswith(GYMNAX_PREFIX):
        return _gymnax_spec(name[len(GYMNAX_PREFIX):])
    prefix, _, env_id = name.partition(":")
    if env_id and prefix in _families():
        return _family_spec(prefix, env_id)
    if ":" in name:
        module, registered = name.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownEnvError(
                f"env {name}: cannot import {module!r} ({e}); the module must be importable "
                "from this process (installed, or on PYTHONPATH)") from None
        if registered not in _REGISTRY:
            raise UnknownEnvError(f"env {name}: importing {module!r} registers no "
                                  f"{registered!r} (register_env({registered!r}, ...))")
        return _REGISTRY[registered]
    raise UnknownEnvError(f"unknown env {name!r}; {_known()}")


def make_env(name: str, **kwargs: Any) -> tuple[environment.Environment, Any]:
    """Build an env and its params (UnknownEnvError / ConfigError: bad name or option)."""
    spec = env_spec(name)
    check_env_options(name, kwargs, spec)
    return spec.factory(**kwargs)


@dataclass(frozen=True, eq=False)
class BoundEnv:
    """An env name resolved once: its spec, and the env built with one set of options.

    Made by ``bind_env``; a program's runner, held-out runner, neutral baseline and checks
    all read this one object (hashed by identity). ``options`` are the config's
    ``env_kwargs`` (the config keeps the name, so config.json is unchanged).
    """

    name: str
    options: tuple[tuple[str, Any], ...]
    spec: EnvSpec
    env: environment.Environment
    params: Any
    # Configs validated against this env (``TrainConfig.validated``): validated once.
    _validated: set = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of the env's factory."""
        return dict(self.options)

    def observation_space(self):
        """The env's observation space under its params."""
        return self.env.observation_space(self.params)

    def action_space(self):
        """The env's action space under its params."""
        return self.env.action_space(self.params)

    def matches(self, name: str, options) -> bool:
        """Whether this is the env ``name`` with ``options`` (a config's env and env_kwargs)."""
        return name == self.name and dict(options) == self.kwargs

    @property
    def heldout(self) -> "BoundEnv | None":
        """The same env on its held-out tasks (``EnvSpec.heldout``), built once, its name not
        resolved again; None for an env without them."""
        with self._lock:  # programs in threads share one bound env: one build
            if "_heldout" not in self.__dict__:
                hook = self.spec.heldout
                options = hook(self.kwargs) if hook is not None else None
                self.__dict__["_heldout"] = None if options is None else bind_env(
                    self.name, tuple(options.items()), self.spec)
            return self.__dict__["_heldout"]

    def remember_valid(self, cfg) -> None:
        """Record that ``cfg`` was validated against this env."""
        try:
            self._validated.add(cfg)
        except TypeError:  # an unhashable option value: validated again when asked
            pass

    def validated(self, cfg) -> bool:
        """Whether ``cfg`` was validated against this env (``remember_valid``)."""
        try:
            return cfg in self._validated
        except TypeError:
            return False


def bind_env(name: str, options=(), spec: EnvSpec | None = None) -> BoundEnv:
    """Resolve ``name`` once (``spec``: already resolved), check ``options`` (pairs or a
    dict) and build the env: UnknownEnvError / ConfigError (one line) for a bad name or
    option."""
    spec = spec or env_spec(name)
    options = tuple(options.items()) if isinstance(options, dict) else tuple(
        tuple(kv) for kv in options)
    kwargs = dict(options)
    check_env_options(name, kwargs, spec)
    env, params = spec.factory(**kwargs)
    return BoundEnv(name, options, spec, env, params)


def env_options(name: str, spec: EnvSpec | None = None) -> dict[str, Any]:
    """Options an env accepts -> their default (``inspect.Parameter.empty`` if required)."""
    spec = spec or env_spec(name)
    accepts = getattr(spec.factory, "options", None)
    if accepts is not None:
        return dict(accepts())
    sig = inspect.signature(spec.factory)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_env_options(name: str, kwargs: dict[str, Any], spec: EnvSpec | None = None) -> None:
    """ConfigError (one line) for an option the env's factory does not take, or a float
    option that is NaN or infinite (it would train to NaN or never end)."""
    known = env_options(name, spec)
    for key, value in kwargs.items():
        if key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"env {name} has no option {key!r}; its options: {listed}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"env {name} option {key} must be a finite number, got {value}")


def renderer_of(env_name: str, part: str, figure: str, spec: EnvSpec | None = None) -> Any:
    """The ``part`` (``"heatmap"`` / ``"strip"``) of ``env_name``'s renderer (``spec``: the
    env's, already resolved); ConfigError (one line) if the env has none."""
    renderer = (spec or env_spec(env_name)).renderer
    found = getattr(renderer, part, None) if renderer is not None else None
    if found is None:
        raise ConfigError(f"env {env_name} registers no renderer {part}: {figure} needs one "
                          "(docs/extending.md, \"Figures\")")
    return found


# ---------------------------------------------------------------------- gymnax


def _gymnax_spec(gid: str) -> EnvSpec:
    """``gymnax:<gid>``'s spec: ``GYMNAX_HOOKS``' defaults where it has them."""
    import gymnax

    if gid not in gymnax.registered_envs:
        raise UnknownEnvError(f"unknown gymnax env {gid!r}; gymnax has: "
                              f"{', '.join(gymnax.registered_envs)}")
    return EnvSpec(factory=_gymnax_factory(gid), **GYMNAX_HOOKS.get(gid, {}))


def _gymnax_factory(gid: str) -> EnvFactory:
    """``gymnax.make`` with options split between the constructor and ``EnvParams``."""
    import gymnax

    cls = gymnax.registration._registry[gid]

    def options() -> dict[str, Any]:
        ctor = {p.name: p.default for p in inspect.signature(cls).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        params = cls().default_params if not ctor or all(
            v is not inspect.Parameter.empty for v in ctor.values()) else None
        fields = {} if params is None else {f.name: getattr(params, f.name)
                                            for f in dataclasses.fields(params)}
        return {**fields, **ctor}

    def factory(**kwargs: Any):
        ctor_names = set(inspect.signature(cls).parameters)
        env, params = gymnax.make(gid, **{k: v for k, v in kwargs.items() if k in ctor_names})
        changes = {k: v for k, v in kwargs.items() if k not in ctor_names}
        return env, params.replace(**changes) if changes else params

    factory.options = options
    return factory


def _bandit_best_arm(env, params, k_explore: int, horizon: int) -> float:
    """An agent told the better arm: it pays with probability 1 - reward_prob."""
    return 1.0 - float(params.reward_prob)


def _bandit_chance(env, params, k_explore: int, horizon: int) -> float:
    """A uniformly random arm: (p + 1 - p) / 2."""
    return 0.5


# Defaults for gymnax's own meta-learning envs (any other gymnax id gets EnvSpec's).
GYMNAX_HOOKS: dict[str, dict[str, Any]] = {
    "BernoulliBandit-misc": dict(
        k_explore=2, horizon=1, architecture="central_lstm", success_threshold=0.0,
        chance=_bandit_chance, chance_text="a random arm",
        oracle=_bandit_best_arm, oracle_text="an agent told the better arm",
        learning_rate=3e-3, lambda_div=0.5,
        description="two arms with success probabilities p and 1 - p; success: the one "
                    "exploit pull pays",
    ),
    "MetaMaze-misc": dict(
        k_explore=3, horizon=12, architecture="meta_lstm", success_threshold=0.0,
        config=(("reward_input_scale", 0.1),),
        learning_rate=3e-3, lambda_div=0.01,
        description="a maze with a hidden goal cell; success: the exploit sub-episode "
                    "reaches it",
    ),
    "PointRobot-misc": dict(
        k_explore=3, horizon=20, architecture="meta_lstm", success_threshold=0.0,
        # a Gaussian's differential entropy has no ceiling: a small bonus
        config=(("entropy_explore_start", 0.05), ("entropy_exploit_start", 0.05)),
        learning_rate=3e-3, lambda_div=0.01,
        description="a point robot on a half circle of goals (continuous forces); success: "
                    "the exploit sub-episode enters the goal's radius",
    ),
}
