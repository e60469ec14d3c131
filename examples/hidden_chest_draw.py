"""Hidden Chest's renderer hook: the meta-episode strip draws the chests (docs/extending.md).

    python -m experiments.episode_figure --results results/chest
"""

import numpy as np

from cmrl_jax.reporting.figures.hooks import Panel, Renderer, Strip


def _chests(ax, num: int, treasure: int, opened=(), colour="black") -> None:
    """A row of chests: the treasure's gold, the others brown; opened ones outlined."""
    from matplotlib.patches import Rectangle

    for i in range(num):
        ax.add_patch(Rectangle((i + 0.1, 0.1), 0.8, 0.8, ec="none",
                               fc="gold" if i == treasure else "saddlebrown"))
        ax.text(i + 0.5, -0.15, str(i), ha="center", va="center", fontsize=8)
    for i in opened:
        ax.add_patch(Rectangle((i + 0.05, 0.05), 0.9, 0.9, fill=False, ec=colour, lw=3))
    ax.set_xlim(0, num)
    ax.set_ylim(-0.4, 1.1)
    ax.set_aspect("equal")


def task_panels(env, params, state0, obs0) -> list[Panel]:
    """The task: which chest holds the treasure."""
    return [Panel("task: the treasure\n(gold, hidden)",
                  lambda ax: _chests(ax, env.num_chests, int(state0.treasure)))]


def draw_rollout(ax, env, params, state0, r, colour) -> None:
    """The chests, the opened one outlined."""
    opened = [int(a) for a in np.asarray(r.actions).reshape(-1)]
    _chests(ax, env.num_chests, int(state0.treasure), opened, colour)


def outcome(r, state0) -> str:
    """Which chest was opened, and what it held."""
    if r.goal < 0:
        return "no chest opened"
    return f"chest {r.goal}: {'treasure (+1)' if r.reward > 0 else 'empty (0)'}"


def renderer() -> Renderer:
    """The strip only (chests have no 2-D positions for Figure 6's heatmaps)."""
    return Renderer(strip=Strip(task_panels, draw_rollout, outcome,
                                legend="outlined: the chest opened", height=2.3))
