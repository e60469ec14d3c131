"""One meta-episode of a trained agent, drawn as a strip (cf. paper Figure 4).

    python -m experiments.episode_figure --results results/table2
    python -m experiments.episode_figure --results results/table2 --method ERL2 --episode 3
    python -m experiments.episode_figure --env reacher --results results/table3

Color-Choice panels: the task (goal cells with their hidden rewards, the start
and the initial view), the egocentric observation at the first step, each
explore rollout (CMRL: K concurrent rollouts; RL2 / ERL2: K sequential
sub-episodes) and the exploit sub-episode, each path drawn over the grid.

N-Reacher panels, in metres seen from above: the task (the arm's start pose,
the N targets with their hidden +1 / -1), each explore rollout or sub-episode
and the exploit sub-episode, each with the fingertip path over the targets, the
arm where it ended and the target entered (if any) with its reward.

The engine records agent inputs, not env states. Every sub-episode and rollout
starts from the task's initial state (one reset key per meta-episode), and the
steps of both environments are deterministic given state and action (their
``step_env`` ignores its key), so the states are rebuilt by re-stepping the env
with the recorded actions; the replay is checked against the recorded
observations, goals and rewards. Reacher's float32 physics ran vmapped over the
rollouts in the engine and runs one state at a time here, so its observations
are compared within ``OBS_ATOL`` rather than exactly.
"""

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from cmrl_jax.config import ConfigError
from experiments.common import EXIT_USAGE, parse_cli
from experiments.trained import find_run, load_run

EnvName = Literal["color_choice", "reacher"]
COLOUR_NAMES = ("red", "green", "blue", "orange", "purple", "cyan")
# Replayed vs recorded observation, absolute (Color-Choice: np.allclose's default).
# Reacher observations are O(1) (angles' cos / sin, positions / reach, velocities / 50);
# on CPU the replay matched bit for bit (80 rollouts of 20 meta-episodes): 1e-4 is a margin.
OBS_ATOL = {"color_choice": 1e-8, "reacher": 1e-4}


class Replay(NamedTuple):
    """One sub-episode or rollout rebuilt from its recorded actions."""

    states: list  # env states: the start state, then one after each real decision
    actions: np.ndarray  # int [T] the real decisions' actions
    goal: int  # goal entered (-1: none)
    reward: float  # summed raw reward


def split_rollouts(tr, concurrent: bool, k: int, horizon: int) -> list[dict]:
    """Transition leaves [T, R, ...] -> one dict of numpy arrays [H, ...] per rollout.

    Concurrent: T = H, R = K (rollout r is column r). Sequential: T = K * H, R = 1
    (sub-episode k is steps k * H .. (k + 1) * H - 1).
    """
    names = ("x", "action", "reward", "live", "goal")
    leaves = {name: np.asarray(getattr(tr, name)) for name in names}
    if concurrent:
        n = leaves["action"].shape[1]
        return [{name: a[:, r] for name, a in leaves.items()} for r in range(n)]
    return [{n: a[i * horizon:(i + 1) * horizon, 0] for n, a in leaves.items()} for i in range(k)]


@functools.cache
def _jitted(env):
    """``env``'s step_env and get_obs, compiled once per env."""
    import jax

    return jax.jit(env.step_env), jax.jit(env.get_obs)


def replay(env, params, state0, rollout: dict, obs_dim: int, atol: float = 1e-8) -> Replay:
    """Re-step ``env`` from ``state0`` with a rollout's live actions, checking the record.

    Observations must match within ``atol`` (and np.allclose's relative 1e-5).
    """
    step, get_obs = _jitted(env)
    key = np.zeros(2, np.uint32)  # Color-Choice and N-Reacher steps ignore their key
    states, state = [state0], state0
    goal, total = -1, 0.0
    live = rollout["live"]
    first = get_obs(state0, params)
    if not np.allclose(np.reshape(first, -1), rollout["x"][0, :obs_dim], atol=atol):
        raise RuntimeError("replay starts from another state than the recorded meta-episode")
    for t in np.flatnonzero(live):
        obs, state, reward, _, info = step(key, state, int(rollout["action"][t]), params)
        states.append(state)
        same = int(info["goal"]) == int(rollout["goal"][t])
        same &= np.isclose(float(reward), float(rollout["reward"][t]))
        if t + 1 < len(live) and live[t + 1]:  # the next decision saw this observation
            same &= np.allclose(np.reshape(obs, -1), rollout["x"][t + 1, :obs_dim], atol=atol)
        if not same:
            raise RuntimeError(f"replay differs from the recorded meta-episode at step {t}")
        goal = int(info["goal"]) if int(info["goal"]) >= 0 else goal
        total += float(reward)
    return Replay(states, rollout["action"][live], goal, total)


def _goal_name(g: int) -> str:
    """A goal's colour name (its index beyond the named palette)."""
    return COLOUR_NAMES[g] if g < len(COLOUR_NAMES) else f"goal {g}"


def _outcome(r: Replay, positive: int) -> str:
    """One line: which goal was entered (and its reward), and the decisions taken."""
    turns = int(np.sum(r.actions != 0))
    steps = f"{len(r.actions)} steps ({turns} turn{'' if turns == 1 else 's'})"
    if r.goal < 0:
        return f"no goal, {steps}"
    sign = "+1" if r.goal == positive else "-1"
    return f"{_goal_name(r.goal)} goal ({sign}), {steps}"


def _label_goals(ax, state, cell: float) -> None:
    """Write each goal's hidden reward on its cell."""
    import matplotlib.patheffects as pe

    for g, (row, col) in enumerate(np.asarray(state.goal_pos)):
        text = "+1" if g == int(state.positive) else "-1"
        ax.text((col + 1.5) * cell, (row + 1.5) * cell, text, ha="center", va="center",
                fontsize=8, fontweight="bold", color="white",
                path_effects=[pe.withStroke(linewidth=2, foreground="black")])


def _draw_path(ax, r: Replay, cell: float, colour: str) -> None:
    """The agent's cells over time: a circle at the start, a line, an X on an entered goal."""
    import matplotlib.patheffects as pe

    cells = np.array([np.asarray(s.agent_pos) for s in r.states], np.float64)
    x, y = (cells[:, 1] + 1.5) * cell, (cells[:, 0] + 1.5) * cell
    halo = [pe.withStroke(linewidth=4.5, foreground="white")]
    ax.plot(x, y, "-", color=colour, lw=2.5, path_effects=halo, zorder=3)
    ax.plot(x[0], y[0], "o", ms=9, mfc="none", mec=colour, mew=2.5, zorder=4)
    if r.goal >= 0:  # otherwise the rendered agent marks the end
        ax.plot(x[-1], y[-1], "X", ms=9, color=colour, mec="white", zorder=4)


def plot_episode(env, params, state0, obs0, explore: list[Replay], exploit: Replay,
                 concurrent: bool, suptitle: str, path: Path) -> Path:
    """Task, first observation, explore rollouts and exploit sub-episode as one PNG strip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = env.render(state0, params)
    cell = (grid.shape[0] - 1) / (params.height + 2)
    view = env.render_observation(obs0)
    n = 2 + len(explore) + 1
    ratios = [max(0.3, view.shape[1] / view.shape[0] * grid.shape[0] / grid.shape[1])]
    ratios += [1.0] * (n - 1)
    fig, axs = plt.subplots(1, n, figsize=(2.9 * (n - 1) + 1.0, 3.6),
                            gridspec_kw={"width_ratios": ratios}, layout="constrained")
    axs[0].imshow(view)
    axs[0].set_title("first\nview", fontsize=9)
    axs[1].imshow(grid)
    _label_goals(axs[1], state0, cell)
    axs[1].set_title("task: start, view,\nhidden goal rewards", fontsize=9)
    positive = int(state0.positive)
    kind = "rollout" if concurrent else "sub-episode"
    colours = plt.get_cmap("tab10")
    panels = [(f"explore {kind} {i + 1}", r, colours(i)) for i, r in enumerate(explore)]
    panels.append(("exploit", exploit, "black"))
    for ax, (title, r, colour) in zip(axs[2:], panels, strict=True):
        ax.imshow(env.render(r.states[-1], params))  # the agent where it ended
        _label_goals(ax, state0, cell)
        _draw_path(ax, r, cell, colour)
        ax.set_title(f"{title}\n{_outcome(r, positive)}", fontsize=9)
    for ax in axs:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{suptitle}\npaths: circle = start, X = goal entered; the agent is drawn "
                 "where the sub-episode ended, its view shaded", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ N-Reacher
REACHER_EXTENT = 0.24  # m, half-width of a panel (the reach is 0.21 m)
PATH_POINTS = 8  # fingertip points drawn per decision
# rollout colours: none green or red (the targets' colours) nor blue (the arm's)
PATH_COLOURS = ("tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:gray")


def _arm_points(qpos) -> np.ndarray:
    """Base, elbow and fingertip xy (m) of the joint angles [2]: float64 [3, 2]."""
    from envs.reacher import LINK0, fingertip

    q = np.asarray(qpos, np.float64)
    elbow = LINK0 * np.array([np.cos(q[0]), np.sin(q[0])])
    return np.stack([np.zeros(2), elbow, np.asarray(fingertip(q), np.float64)])


def fingertip_path(r: Replay, points: int = PATH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Fingertip xy (m) of a replay: (path float [T * points + 1, 2], decisions float [T + 1, 2]).

    Between decisions the joint angles are interpolated linearly (over a
    0.02 s decision they move along a nearly straight line), so the path
    follows the arm's arcs; ``decisions`` is the fingertip at each decision.
    """
    from envs.reacher import fingertip

    q = np.array([np.asarray(s.qpos) for s in r.states], np.float64)  # [T + 1, 2]
    frac = np.arange(points) / points
    inner = q[:-1, None] + frac[None, :, None] * (q[1:] - q[:-1])[:, None]  # [T, points, 2]
    dense = np.concatenate([inner.reshape(-1, 2), q[-1:]])
    return np.asarray(fingertip(dense), np.float64), np.asarray(fingertip(q), np.float64)


def _reacher_outcome(r: Replay, positive: int) -> str:
    """One line: which target was entered (and its reward), and the decisions taken."""
    n = len(r.actions)
    steps = f"{n} step{'' if n == 1 else 's'}"
    if r.goal < 0:
        return f"no target, {steps}"
    sign = "+1" if r.goal == positive else "-1"
    return f"T{r.goal + 1} entered: reward {sign}, {steps}"


def _draw_reacher_task(ax, state0, params) -> None:
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


def _draw_arm(ax, qpos, alpha: float = 1.0) -> None:
    """The two links, the joints and the fingertip."""
    pts = _arm_points(qpos)
    ax.plot(pts[:, 0], pts[:, 1], "-", color="tab:blue", lw=4, alpha=alpha,
            solid_capstyle="round", zorder=2)
    ax.plot(pts[:2, 0], pts[:2, 1], "o", color="0.15", ms=4, alpha=alpha, zorder=2)
    ax.plot(*pts[2], "o", color="tab:cyan", mec="0.15", ms=6, alpha=alpha, zorder=2)


def _draw_fingertip_path(ax, r: Replay, colour) -> None:
    """The fingertip path: a circle at the start, a dot per decision, an X on an entered target."""
    import matplotlib.patheffects as pe

    path, decisions = fingertip_path(r)
    halo = [pe.withStroke(linewidth=4, foreground="white")]
    ax.plot(path[:, 0], path[:, 1], "-", color=colour, lw=2, path_effects=halo, zorder=3)
    ax.plot(decisions[1:-1, 0], decisions[1:-1, 1], ".", color=colour, ms=5, zorder=4)
    ax.plot(*decisions[0], "o", ms=9, mfc="none", mec=colour, mew=2, zorder=4)
    if r.goal >= 0:
        ax.plot(*decisions[-1], "X", ms=10, color=colour, mec="white", zorder=4)


def plot_reacher_episode(params, state0, explore: list[Replay], exploit: Replay,
                         concurrent: bool, suptitle: str, path: Path) -> Path:
    """Task, explore rollouts and exploit sub-episode of N-Reacher as one PNG strip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 1 + len(explore) + 1
    fig, axs = plt.subplots(1, n, figsize=(2.9 * n, 3.9), sharex=True, sharey=True,
                            layout="constrained")
    positive = int(state0.positive)
    kind = "rollout" if concurrent else "sub-episode"
    panels = [(f"explore {kind} {i + 1}", r, PATH_COLOURS[i % len(PATH_COLOURS)])
              for i, r in enumerate(explore)]
    panels.append(("exploit", exploit, "black"))
    _draw_reacher_task(axs[0], state0, params)
    _draw_arm(axs[0], state0.qpos)
    axs[0].set_title("task: arm start,\nhidden target rewards", fontsize=9)
    for ax, (title, r, colour) in zip(axs[1:], panels, strict=True):
        _draw_reacher_task(ax, state0, params)
        _draw_arm(ax, state0.qpos, alpha=0.2)
        _draw_arm(ax, r.states[-1].qpos)
        _draw_fingertip_path(ax, r, colour)
        ax.set_title(f"{title}\n{_reacher_outcome(r, positive)}", fontsize=9)
    ticks = [-0.2, -0.1, 0.0, 0.1, 0.2]
    for ax in axs:
        ax.set_xlim(-REACHER_EXTENT, REACHER_EXTENT)
        ax.set_ylim(-REACHER_EXTENT, REACHER_EXTENT)
        ax.set_aspect("equal")
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("x (m)", fontsize=8)
    axs[0].set_ylabel("y (m)", fontsize=8)
    fig.suptitle(f"{suptitle}\ntargets: green +1, red -1 (hidden from the agent); fingertip "
                 "path: circle = start, dots = decisions, X = target entered; faint arm = start "
                 "pose, solid arm = where it ended", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class EpisodeArgs:
    """Command-line options of the meta-episode figure."""

    results: str
    """a results folder of --env: Table 2 (3-Color-Choice) or Table 3 (3-Reacher)"""
    env: EnvName = "color_choice"
    """environment of the results folder"""
    method: str = "Max-Until-Exploit"
    """table row of the run to draw (e.g. RL2, ERL2, Max-Until-Exploit)"""
    seed: int = 0
    """seed of the run"""
    learning_rate: float | None = None
    """pick this learning rate when a folder holds several (a sweep; default: sweep.json's)"""
    episode: int = 0
    """which meta-episode: seed of its key"""
    greedy: bool = False
    """greedy actions instead of sampled ones"""
    out: str | None = None
    """PNG path (default: docs/figures/<env>_episode.png)"""


def main(argv: list[str] | None = None) -> dict:
    """Run one meta-episode, replay its states, draw the strip; return what was drawn."""
    from cmrl_jax.lock import check_writable

    args = parse_cli(EpisodeArgs, argv, __doc__.split("\n")[0])
    out = Path(args.out or f"docs/figures/{args.env}_episode.png")
    try:
        check_writable(out, is_file=True)  # before the sampling, not after
        run = load_run(find_run(Path(args.results), args.env, args.method, args.seed,
                                args.learning_rate))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None

    import jax

    runner = run.runner
    env, params = runner.env, runner.env_params

    @jax.jit
    def meta_episode(agent_params, episode):
        """The meta-episode and its task (obs0, state0)."""
        return runner.run_with_task(agent_params, jax.random.PRNGKey(episode), args.greedy)

    ep, (obs0, state0) = jax.device_get(meta_episode(run.params, args.episode))
    rollouts = split_rollouts(ep.explore, runner.concurrent, runner.k_explore, runner.horizon)
    atol = OBS_ATOL[args.env]
    explore = [replay(env, params, state0, r, runner.obs_dim, atol) for r in rollouts]
    exploit = replay(env, params, state0, split_rollouts(ep.exploit, True, 1, 0)[0],
                     runner.obs_dim, atol)
    spec = run.where.spec
    success = exploit.goal == int(state0.positive)
    suptitle = (f"{spec.row} (seed {spec.seed}, update {run.update}) on {env.name}, "
                f"meta-episode {args.episode} ({'greedy' if args.greedy else 'sampled'} "
                f"actions): exploit {'succeeds' if success else 'fails'}")
    if args.env == "reacher":
        png = plot_reacher_episode(params, state0, explore, exploit, runner.concurrent,
                                   suptitle, out)
    else:
        png = plot_episode(env, params, state0, obs0, explore, exploit, runner.concurrent,
                           suptitle, out)
    print(f"episode_figure: {suptitle}; wrote {png}")
    return {"png": png, "explore": explore, "exploit": exploit, "success": success}


if __name__ == "__main__":
    main()
