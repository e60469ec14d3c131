"""Name -> environment spec (factory + optional hooks), so configs and CLIs can name envs.

Registered names (``register_env``) and, as a fallback, any gymnax environment
as ``gymnax:<id>`` (e.g. ``gymnax:MetaMaze-misc``): its constructor's arguments
and its ``EnvParams`` fields are the env options. The contract an env may
follow beyond gymnax's API is ``cmrl_jax.envspec.EnvSpec`` (docs/extending.md).
"""

import dataclasses
import inspect
import math
from typing import Any

from gymnax.environments import environment

from cmrl_jax.config import ConfigError
from cmrl_jax.envspec import EnvFactory, EnvSpec
from envs import color_choice_draw, reacher_draw  # renderer hooks: matplotlib only when drawing

GYMNAX_PREFIX = "gymnax:"
_REGISTRY: dict[str, EnvSpec] = {}


class UnknownEnvError(ConfigError, KeyError):
    """An env name neither registered nor a gymnax id (one line, exit status 2)."""

    def __str__(self) -> str:
        """The message, without KeyError's quotes."""
        return str(self.args[0])


def register_env(name: str, factory: EnvFactory, **hooks: Any) -> None:
    """Register ``factory(**options) -> (env, env_params)`` under ``name``.

    ``hooks``: any ``EnvSpec`` field (success, chance, oracle, k_explore, horizon,
    architecture, config, learning_rate, lambda_div, num_goals, renderer, ...).
    """
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    if name.startswith(GYMNAX_PREFIX):
        raise ValueError(f"{GYMNAX_PREFIX!r} names are gymnax's; choose another name")
    _REGISTRY[name] = EnvSpec(factory=factory, **hooks)


def registered_envs() -> tuple[str, ...]:
    """Names accepted by ``make_env`` (besides ``gymnax:<id>``)."""
    return tuple(sorted(_REGISTRY))


def _known() -> str:
    """The list printed with an unknown name."""
    return f"known: {', '.join(registered_envs())}, or gymnax:<id> (e.g. gymnax:MetaMaze-misc)"


def env_spec(name: str) -> EnvSpec:
    """The spec of a registered env, a ``gymnax:<id>``, or ``module:name`` (a user's module,
    imported first: it registers ``name``); UnknownEnvError otherwise.

    ``module:name`` is what a config should record for a user's env: any later
    process (resume, ``load_policy``) can then rebuild it.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name and not name.startswith(GYMNAX_PREFIX):
        import importlib

        module, registered = name.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownEnvError(f"env {name}: cannot import {module!r} ({e})") from None
        if registered not in _REGISTRY:
            raise UnknownEnvError(f"env {name}: module {module!r} registers no {registered!r}")
        return _REGISTRY[registered]
    if name.startswith(GYMNAX_PREFIX):
        import gymnax

        gid = name[len(GYMNAX_PREFIX):]
        if gid not in gymnax.registered_envs:
            raise UnknownEnvError(f"unknown gymnax env {gid!r}; gymnax has: "
                                  f"{', '.join(gymnax.registered_envs)}")
        hooks = dict(GYMNAX_HOOKS.get(gid, {}))
        return EnvSpec(factory=_gymnax_factory(gid), **hooks)
    raise UnknownEnvError(f"unknown env {name!r}; {_known()}")


def make_env(name: str, **kwargs: Any) -> tuple[environment.Environment, Any]:
    """Build an env and its params (UnknownEnvError / ConfigError: bad name or option)."""
    spec = env_spec(name)
    check_env_options(name, kwargs, spec)
    return spec.factory(**kwargs)


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


# ---------------------------------------------------------------------- gymnax


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


# ------------------------------------------------------------------ our envs


def _monty_hall(num_doors: int = 10):
    from envs.monty_hall import MontyHall

    env = MontyHall(num_doors)
    return env, env.default_params


def _monty_hall_oracle(env, params, k_explore: int, horizon: int) -> float:
    """k distinct doors opened while exploring; the last by elimination."""
    n = env.num_doors
    return 1.0 if k_explore >= n - 1 else k_explore / n


register_env(
    "monty_hall", _monty_hall, k_explore=10, horizon=1, architecture="central_lstm",
    oracle=_monty_hall_oracle, oracle_text="open distinct doors, the last by elimination",
    config=(("reward_input_scale", 10.0),), learning_rate=2e-3, lambda_div=0.5,
    num_goals=lambda env: env.num_doors,
)


def _color_choice(
    num_goals: int = 3, height: int = 7, width: int = 7, horizon: int = 15, layout: str = "walled"
):
    """``layout``: whether ``height`` x ``width`` includes the border walls (``LAYOUTS``)."""
    from envs.color_choice import ColorChoice, grid_params

    return ColorChoice(num_goals), grid_params(height, width, layout, horizon)


_NAVIGATION = (("entropy_explore_start", 0.05), ("entropy_exploit_start", 1.0),
               ("reward_input_scale", 10.0), ("divergence", "skl"))

register_env("color_choice", _color_choice, k_explore=3, horizon=15,
             architecture="meta_lstm", config=_NAVIGATION, learning_rate=2.5e-3,
             lambda_div=2e-6, num_goals=lambda env: env.num_goals,
             renderer=color_choice_draw.renderer())


def _reacher_options(**options) -> dict:
    """NReacher's keyword options that were given (None: its default)."""
    return {k: v for k, v in options.items() if v is not None}


def _reacher(num_goals: int = 3, horizon: int = 15, integrator: str | None = None,
             distance_threshold: float | None = None, impl: str | None = None):
    """``integrator`` / ``distance_threshold`` / ``impl``: NReacher's (None: its default)."""
    from envs.reacher import NReacher

    env = NReacher(num_goals, **_reacher_options(
        integrator=integrator, distance_threshold=distance_threshold, impl=impl))
    return env, env.default_params.replace(max_steps_in_episode=horizon)


register_env("reacher", _reacher, k_explore=3, horizon=15, architecture="meta_lstm",
             config=(*_NAVIGATION[:3], ("divergence", "js")), learning_rate=2.5e-3,
             lambda_div=1e-3 / 60, num_goals=lambda env: env.num_goals,
             renderer=reacher_draw.renderer())


def _reacher_continuous(num_goals: int = 3, horizon: int = 15, integrator: str | None = None,
                        distance_threshold: float | None = None, impl: str | None = None):
    """N-Reacher with two continuous torques in [-1, 1] (envs/reacher_continuous.py)."""
    from envs.reacher_continuous import ContinuousNReacher

    env = ContinuousNReacher(num_goals, **_reacher_options(
        integrator=integrator, distance_threshold=distance_threshold, impl=impl))
    return env, env.default_params.replace(max_steps_in_episode=horizon)


def _uniform_torques(env, params, k_explore: int, horizon: int) -> float:
    """Uniform random torques (envs/reacher_continuous.py)."""
    from envs.reacher_continuous import uniform_torque_rate

    return uniform_torque_rate(env, params, k_explore, horizon)


# As the discrete Reacher, but a small entropy bonus for both phases: a Gaussian's entropy
# has no ceiling, and at 1.0 the std runs to its clip (bang-bang torques; docs/results.md).
_CONTINUOUS = (("entropy_explore_start", 0.05), ("entropy_exploit_start", 0.05),
               ("reward_input_scale", 10.0), ("divergence", "js"))

register_env("reacher_continuous", _reacher_continuous, k_explore=3, horizon=15,
             architecture="meta_lstm", config=_CONTINUOUS,
             learning_rate=2.5e-3, lambda_div=1e-3 / 60, num_goals=lambda env: env.num_goals,
             chance=_uniform_torques, chance_text="uniform random torques",
             renderer=reacher_draw.renderer())
