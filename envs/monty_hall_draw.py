"""N-Monty-Hall's renderer hook: the meta-episode strip as rows of doors. Part of the env's
``SPEC`` (``monty_hall.py``).

Strip panels: the task (the gold door among the bombs, with their rewards),
then each explore rollout or sub-episode and the exploit sub-episode: the
door it opened, outlined, with the reward it paid (or NOOP: none opened).
Doors are numbered 1..N, as the actions that open them (action 0 is the NOOP).
There is no heatmap: the doors have no positions for Figure 6.
"""

import functools

from cmrl_jax.reporting.figures.hooks import Panel, Renderer, Strip

# Rollout outlines: none gold or grey (the doors' colours).
COLOURS = ("tab:blue", "tab:purple", "tab:brown", "tab:pink", "tab:cyan", "tab:green",
           "tab:red")


def _doors(ax, num: int, gold: int, labels: dict[int, str], opened: int | None = None,
           colour="black") -> None:
    """A row of ``num`` doors, the gold one gold and the bombs grey, ``labels`` written above
    their doors. ``opened``: None, the task (every door plain); else the doors left shut are
    faded and door ``opened`` (-1: NOOP, none) is outlined in ``colour``."""
    import matplotlib.patheffects as pe
    from matplotlib.patches import Rectangle

    for i in range(num):
        faded = opened is not None and i != opened
        ax.add_patch(Rectangle((i + 0.1, 0.0), 0.8, 1.2, ec="none",
                               fc="gold" if i == gold else "0.45", alpha=0.25 if faded else 1.0))
        ax.text(i + 0.5, -0.25, str(i + 1), ha="center", va="center", fontsize=7)
    if opened is not None and opened >= 0:
        ax.add_patch(Rectangle((opened + 0.02, -0.08), 0.96, 1.36, fill=False, ec=colour, lw=2.5))
    for i, text in labels.items():
        ax.text(i + 0.5, 1.5, text, ha="center", va="center", fontsize=8, fontweight="bold",
                path_effects=[pe.withStroke(linewidth=2, foreground="white")])
    ax.set_xlim(0, num)
    ax.set_ylim(-0.5, 1.8)  # no equal aspect: the doors stretch to fill a panel's height


def task_panels(env, params, state0, obs0) -> list[Panel]:
    """The task: which door holds the gold, every door's reward."""
    gold = int(state0.gold)
    labels = {i: f"{params.gold_reward if i == gold else params.bomb_reward:+g}"
              for i in range(env.num_doors)}
    return [Panel("task: the gold door\n(hidden), bombs grey",
                  lambda ax: _doors(ax, env.num_doors, gold, labels))]


def draw_rollout(ax, env, params, state0, r, colour) -> None:
    """The doors, the one opened (``r.goal``; -1: NOOP) outlined with the reward it paid."""
    labels = {r.goal: f"{r.reward:+g}"} if r.goal >= 0 else {}
    _doors(ax, env.num_doors, int(state0.gold), labels, r.goal, colour)


def outcome(r, state0) -> str:
    """Which door was opened and what it held, or NOOP."""
    if r.goal < 0:
        return "NOOP: no door opened (0)"
    found = "gold" if r.goal == int(state0.gold) else "bomb"
    return f"door {r.goal + 1}: {found} ({r.reward:+g})"


@functools.cache
def renderer() -> Renderer:
    """The strip only (doors have no 2-D positions for Figure 6's heatmaps)."""
    return Renderer(strip=Strip(task_panels=task_panels, draw_rollout=draw_rollout,
                                outcome=outcome, legend="outlined: the door opened, with the "
                                "reward it paid; faded: the doors left shut",
                                colours=COLOURS, height=2.4))
