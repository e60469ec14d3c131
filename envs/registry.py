"""Name -> environment constructor, so configs and CLIs can name environments."""

from collections.abc import Callable
from typing import Any

from gymnax.environments import environment

EnvFactory = Callable[..., tuple[environment.Environment, Any]]
_REGISTRY: dict[str, EnvFactory] = {}


def register_env(name: str, factory: EnvFactory) -> None:
    """Register ``factory(**kwargs) -> (env, env_params)`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_envs() -> tuple[str, ...]:
    """Names accepted by ``make_env``."""
    return tuple(sorted(_REGISTRY))


def make_env(name: str, **kwargs: Any) -> tuple[environment.Environment, Any]:
    """Build a registered environment and its default params."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown env {name!r}; known: {', '.join(registered_envs())}")
    return _REGISTRY[name](**kwargs)


def _monty_hall(num_doors: int = 10):
    from envs.monty_hall import MontyHall

    env = MontyHall(num_doors)
    return env, env.default_params


register_env("monty_hall", _monty_hall)


def _color_choice(
    num_goals: int = 3, height: int = 7, width: int = 7, horizon: int = 15, layout: str = "walled"
):
    """``layout``: whether ``height`` x ``width`` includes the border walls (``LAYOUTS``)."""
    from envs.color_choice import ColorChoice, grid_params

    return ColorChoice(num_goals), grid_params(height, width, layout, horizon)


register_env("color_choice", _color_choice)


def _reacher(num_goals: int = 3, horizon: int = 15, **options: Any):
    """``options``: NReacher's ``integrator`` and ``distance_threshold``."""
    from envs.reacher import NReacher

    env = NReacher(num_goals, **options)
    return env, env.default_params.replace(max_steps_in_episode=horizon)


register_env("reacher", _reacher)
