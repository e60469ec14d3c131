"""N-Reacher's renderer hook: target heatmaps and the meta-episode strip, in metres seen from
above. Part of the discrete and the continuous Reacher's ``SPEC``.

Strip panels: the task (the arm's start pose, the N targets with their hidden
+1 / -1), then each explore rollout or sub-episode and the exploit
sub-episode, each with the fingertip path over the targets, the arm where it
ended and the target entered (if any) with its reward.
"""

import functools

import numpy as np

from cmrl_jax.reporting.figures.hooks import Heatmap, Panel, Renderer, Strip

from .reacher_geometry import LINK0, fingertip

EXTENT = 0.24  # m, half-width of a panel (the reach is 0.21 m)
PATH_POINTS = 8  # fingertip points drawn per decision
# rollout colours: none green or red (the targets' colours) nor blue (the arm's)
PATH_COLOURS = ("tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:gray")
# Reacher observations are O(1) (angles' cos / sin, positions / reach, velocities / 50);
# on CPU the replay matched bit for bit (80 rollouts of 20 meta-episodes): 1e-4 is a margin.
OBS_ATOL = 1e-4


def _arm_points(qpos) -> np.ndarray:
    """Base, elbow and fingertip xy (m) of the joint angles [2]: float64 [3, 2]."""
    q = np.asarray(qpos, np.float64)
    elbow = LINK0 * np.array([np.cos(q[0]), np.sin(q[0])])
    return np.stack([np.zeros(2), elbow, np.asarray(fingertip(q), np.float64)])


def fingertip_path(r, points: int = PATH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Fingertip xy (m) of a replay: (path float [T * points + 1, 2], decisions float [T + 1, 2]).

    Between decisions the joint angles are interpolated linearly (over a
    0.02 s decision they move along a nearly straight line), so the path
    follows the arm's arcs; ``decisions`` is the fingertip at each decision.
    """
    q = np.array([np.asarray(s.qpos) for s in r.states], np.float64)  # [T + 1, 2]
    frac = np.arange(points) / points
    inner = q[:-1, None] + frac[None, :, None] * (q[1:] - q[:-1])[:, None]  # [T, points, 2]
    dense = np.concatenate([inner.reshape(-1, 2), q[-1:]])
    return np.asarray(fingertip(dense), np.float64), np.asarray(fingertip(q), np.float64)


def outcome(r, state0) -> str:
    """One line: which target was entered (and its reward), and the decisions taken."""
    n = len(r.actions)
    steps = f"{n} step{'' if n == 1 else 's'}"
    if r.goal < 0:
        return f"no target, {steps}"
    sign = "+1" if r.goal == int(state0.positive) else "-1"
    return f"T{r.goal + 1} entered: reward {sign}, {steps}"


def _frame(ax) -> None:
    """Metres, the same square on every panel."""
    ticks = [-0.2, -0.1, 0.0, 0.1, 0.2]
    ax.set_xlim(-EXTENT, EXTENT)
    ax.set_ylim(-EXTENT, EXTENT)
    ax.set_aspect("equal")
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("x (m)", fontsize=8)


def _draw_task(ax, state0, params) -> None:
    """The reachable annulus and the targets, each disc labelled with its hidden reward."""
    import matplotlib.patheffects as pe
    from matplotlib.patches import Annulus, Circle

    r_max, r_min = float(params.target_radius_max), float(params.target_radius_min)
    ax.add_patch(Annulus((0, 0), r_max, r_max - r_min, fc="0.92", ec="none", zorder=0))
    positive = int(state0.positive)
    for g, t in enumerate(np.asarray(state0.targets, np.float64)):
        colour = "tab:green" if g == positive else "tab:red"
        ax.add_patch(Circle(t, float(params.distance_threshold), fc=colour, ec="none",
                            alpha=0.8, zorder=1))
        at = t + 0.045 * t / max(np.linalg.norm(t), 1e-9)  # outward, clear of the disc
        ax.text(*at, f"T{g + 1} {'+1' if g == positive else '-1'}", ha="center", va="center",
                fontsize=8, fontweight="bold", color=colour, zorder=5,
                path_effects=[pe.withStroke(linewidth=2.5, foreground="white")])
    _frame(ax)


def _draw_arm(ax, qpos, alpha: float = 1.0) -> None:
    """The two links, the joints and the fingertip."""
    pts = _arm_points(qpos)
    ax.plot(pts[:, 0], pts[:, 1], "-", color="tab:blue", lw=4, alpha=alpha,
            solid_capstyle="round", zorder=2)
    ax.plot(pts[:2, 0], pts[:2, 1], "o", color="0.15", ms=4, alpha=alpha, zorder=2)
    ax.plot(*pts[2], "o", color="tab:cyan", mec="0.15", ms=6, alpha=alpha, zorder=2)


def _draw_fingertip_path(ax, r, colour) -> None:
    """The fingertip path: a circle at the start, a dot per decision, an X on an entered target."""
    import matplotlib.patheffects as pe

    path, decisions = fingertip_path(r)
    halo = [pe.withStroke(linewidth=4, foreground="white")]
    ax.plot(path[:, 0], path[:, 1], "-", color=colour, lw=2, path_effects=halo, zorder=3)
    ax.plot(decisions[1:-1, 0], decisions[1:-1, 1], ".", color=colour, ms=5, zorder=4)
    ax.plot(*decisions[0], "o", ms=9, mfc="none", mec=colour, mew=2, zorder=4)
    if r.goal >= 0:
        ax.plot(*decisions[-1], "X", ms=10, color=colour, mec="white", zorder=4)


def task_panels(env, params, state0, obs0) -> list[Panel]:
    """The task: targets with their hidden rewards and the arm's start pose."""

    def draw(ax):
        _draw_task(ax, state0, params)
        _draw_arm(ax, state0.qpos)
        ax.set_ylabel("y (m)", fontsize=8)

    return [Panel("task: arm start,\nhidden target rewards", draw)]


def draw_rollout(ax, env, params, state0, r, colour) -> None:
    """Targets, the start pose (faint), the arm where it ended and the fingertip path."""
    _draw_task(ax, state0, params)
    _draw_arm(ax, state0.qpos, alpha=0.2)
    _draw_arm(ax, r.states[-1].qpos)
    _draw_fingertip_path(ax, r, colour)


@functools.cache
def renderer() -> Renderer:
    """N-Reacher's drawing hooks."""
    return Renderer(
        heatmap=Heatmap(first="target x (m)", second="target y (m)", image=False),
        strip=Strip(task_panels=task_panels, draw_rollout=draw_rollout, outcome=outcome,
                    legend="targets: green +1, red -1 (hidden from the agent); fingertip path: "
                           "circle = start, dots = decisions, X = target entered; faint arm = "
                           "start pose, solid arm = where it ended",
                    colours=PATH_COLOURS, obs_atol=OBS_ATOL, height=3.9, clear_ticks=False),
    )
