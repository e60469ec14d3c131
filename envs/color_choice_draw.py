"""Color-Choice's renderer hook: goal-cell heatmaps and the meta-episode strip (cf. paper
Figure 4). Part of the env's ``SPEC`` (``color_choice.py``).

Strip panels: the egocentric observation at the first step, the task (goal
cells with their hidden rewards, the start and the initial view), then each
explore rollout or sub-episode and the exploit sub-episode, each path drawn
over the grid.
"""

import functools

import numpy as np

from cmrl_jax.reporting.figures.hooks import Heatmap, Panel, Renderer, Strip

COLOUR_NAMES = ("red", "green", "blue", "orange", "purple", "cyan")


def _goal_name(g: int) -> str:
    """A goal's colour name (its index beyond the named palette)."""
    return COLOUR_NAMES[g] if g < len(COLOUR_NAMES) else f"goal {g}"


def outcome(r, state0) -> str:
    """One line: which goal was entered (and its reward), and the decisions taken."""
    turns = int(np.sum(r.actions != 0))
    steps = f"{len(r.actions)} steps ({turns} turn{'' if turns == 1 else 's'})"
    if r.goal < 0:
        return f"no goal, {steps}"
    sign = "+1" if r.goal == int(state0.positive) else "-1"
    return f"{_goal_name(r.goal)} goal ({sign}), {steps}"


def _label_goals(ax, state, cell: float) -> None:
    """Write each goal's hidden reward on its cell."""
    import matplotlib.patheffects as pe

    for g, (row, col) in enumerate(np.asarray(state.goal_pos)):
        text = "+1" if g == int(state.positive) else "-1"
        ax.text((col + 1.5) * cell, (row + 1.5) * cell, text, ha="center", va="center",
                fontsize=8, fontweight="bold", color="white",
                path_effects=[pe.withStroke(linewidth=2, foreground="black")])


def _draw_path(ax, r, cell: float, colour) -> None:
    """The agent's cells over time: a circle at the start, a line, an X on an entered goal."""
    import matplotlib.patheffects as pe

    cells = np.array([np.asarray(s.agent_pos) for s in r.states], np.float64)
    x, y = (cells[:, 1] + 1.5) * cell, (cells[:, 0] + 1.5) * cell
    halo = [pe.withStroke(linewidth=4.5, foreground="white")]
    ax.plot(x, y, "-", color=colour, lw=2.5, path_effects=halo, zorder=3)
    ax.plot(x[0], y[0], "o", ms=9, mfc="none", mec=colour, mew=2.5, zorder=4)
    if r.goal >= 0:  # otherwise the rendered agent marks the end
        ax.plot(x[-1], y[-1], "X", ms=9, color=colour, mec="white", zorder=4)


def task_panels(env, params, state0, obs0) -> list[Panel]:
    """The first view and the task (grid, start, hidden goal rewards)."""
    grid = env.render(state0, params)
    cell = (grid.shape[0] - 1) / (params.height + 2)
    view = env.render_observation(obs0)

    def draw_task(ax):
        ax.imshow(grid)
        _label_goals(ax, state0, cell)

    width = max(0.3, view.shape[1] / view.shape[0] * grid.shape[0] / grid.shape[1])
    return [Panel("first\nview", lambda ax: ax.imshow(view), width),
            Panel("task: start, view,\nhidden goal rewards", draw_task)]


def draw_rollout(ax, env, params, state0, r, colour) -> None:
    """The grid with the agent where it ended, the goal rewards and the path."""
    grid = env.render(r.states[-1], params)
    cell = (grid.shape[0] - 1) / (params.height + 2)
    ax.imshow(grid)
    _label_goals(ax, state0, cell)
    _draw_path(ax, r, cell, colour)


@functools.cache
def renderer() -> Renderer:
    """Color-Choice's drawing hooks."""
    return Renderer(
        heatmap=Heatmap(first="row", second="column", image=True),
        strip=Strip(task_panels=task_panels, draw_rollout=draw_rollout, outcome=outcome,
                    legend="paths: circle = start, X = goal entered; the agent is drawn where "
                           "the sub-episode ended, its view shaded",
                    obs_atol=1e-8, height=3.6),
    )
