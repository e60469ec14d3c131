"""The renderer hook of an env (``EnvSpec.renderer``): what it draws, the library lays out.

A ``Renderer`` has up to two parts, each optional:

- ``heatmap`` (Figure 6, goal visitation by goal position): the goals' 2-D
  positions in a task and the bins to count them in;
- ``strip`` (one meta-episode as a strip of panels): the task panels, one
  rollout's panel and a one-line outcome per rollout.

Drawing functions receive a matplotlib ``Axes`` and import matplotlib
themselves, so registering a renderer costs nothing until a figure is drawn.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Heatmap:
    """Goal geometry for visitation heatmaps (Figure 6); needs ``info["goal"]`` from the env."""

    # (env, state0, params) -> f32 [N, 2], jittable; default: the env's ``goal_positions``.
    goal_positions: Callable[[Any, Any, Any], Any] = (
        lambda env, state, params: env.goal_positions(state, params))
    # (env, params) -> (edges0 [B0 + 1], edges1 [B1 + 1]); default: the env's ``heatmap_bins``.
    bins: Callable[[Any, Any], tuple] = lambda env, params: env.heatmap_bins(params)
    first: str = "coordinate 0"  # label of coordinate 0
    second: str = "coordinate 1"  # label of coordinate 1
    image: bool = False  # True: coordinate 0 is a row drawn downwards, 1 a column; else (x, y)


@dataclass(frozen=True)
class Panel:
    """One panel at the head of a strip: its title and how to draw it on an ``Axes``."""

    title: str
    draw: Callable[[Any], None]  # (ax) -> None
    width: float = 1.0  # relative width (a rollout panel is 1)


@dataclass(frozen=True)
class Strip:
    """How an env draws one meta-episode (``cmrl_jax.reporting.figures.strip_draw``).

    The states are rebuilt by re-stepping the env with the recorded actions
    (``cmrl_jax.reporting.figures.replay``), so ``step_env`` must be deterministic given
    state and action (it may not use its key).
    """

    task_panels: Callable[..., Sequence[Panel]]  # (env, params, state0, obs0) -> panels
    draw_rollout: Callable[..., None]  # (ax, env, params, state0, replay, colour) -> None
    outcome: Callable[..., str]  # (replay, state0) -> one line under the panel's title
    legend: str = ""  # what the marks mean: the second line of the strip's title
    colours: Sequence[Any] = ()  # one per explore rollout, cycled (empty: matplotlib's tab10)
    obs_atol: float = 1e-8  # replayed vs recorded observation, absolute
    height: float = 3.6  # inches
    clear_ticks: bool = True  # no ticks on any panel (images)


@dataclass(frozen=True)
class Renderer:
    """An env's drawing hooks (``register_env(..., renderer=Renderer(...))``)."""

    heatmap: Heatmap | None = None
    strip: Strip | None = None
