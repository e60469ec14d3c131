"""One meta-episode of a trained agent on Color-Choice, drawn as a strip (cf. paper Figure 4).

    python -m experiments.episode_figure --results results/table2
    python -m experiments.episode_figure --results results/table2 --method ERL2 --episode 3

Panels: the task (goal cells with their hidden rewards, the start and the
initial view), the egocentric observation at the first step, each explore
rollout (CMRL: K concurrent rollouts; RL2 / ERL2: K sequential sub-episodes)
and the exploit sub-episode, each path drawn over the grid.

The engine records agent inputs, not env states. Every sub-episode and rollout
starts from the task's initial state (one reset key per meta-episode) and
Color-Choice steps are deterministic given state and action, so the states are
rebuilt by re-stepping the env with the recorded actions; the replay is checked
against the recorded observations, goals and rewards.
"""

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cmrl_jax.config import ConfigError
from experiments.common import EXIT_USAGE
from experiments.trained import find_run, load_run

ENV = "color_choice"
COLOUR_NAMES = ("red", "green", "blue", "orange", "purple", "cyan")


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


def replay(env, params, state0, rollout: dict, obs_dim: int) -> Replay:
    """Re-step ``env`` from ``state0`` with a rollout's live actions, checking the record."""
    step, get_obs = _jitted(env)
    key = np.zeros(2, np.uint32)  # Color-Choice steps ignore their key
    states, state = [state0], state0
    goal, total = -1, 0.0
    live = rollout["live"]
    first = get_obs(state0, params)
    if not np.allclose(np.reshape(first, -1), rollout["x"][0, :obs_dim]):
        raise RuntimeError("replay starts from another state than the recorded meta-episode")
    for t in np.flatnonzero(live):
        obs, state, reward, _, info = step(key, state, int(rollout["action"][t]), params)
        states.append(state)
        same = int(info["goal"]) == int(rollout["goal"][t])
        same &= np.isclose(float(reward), float(rollout["reward"][t]))
        if t + 1 < len(live) and live[t + 1]:  # the next decision saw this observation
            same &= np.allclose(np.reshape(obs, -1), rollout["x"][t + 1, :obs_dim])
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


@dataclass(frozen=True)
class EpisodeArgs:
    """Command-line options of the meta-episode figure."""

    results: str
    """a Table 2 results folder (3-Color-Choice)"""
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
    out: str = "docs/figures/color_choice_episode.png"
    """PNG path"""


def main(argv: list[str] | None = None) -> dict:
    """Run one meta-episode, replay its states, draw the strip; return what was drawn."""
    import tyro

    args = tyro.cli(EpisodeArgs, args=argv, description=__doc__.split("\n")[0])
    try:
        run = load_run(find_run(Path(args.results), ENV, args.method, args.seed,
                                args.learning_rate))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None

    import jax

    runner = run.runner
    env, params = runner.env, runner.env_params

    @jax.jit
    def meta_episode(agent_params, episode):
        """The meta-episode and its task (obs0, state0), as MetaEpisodeRunner.run splits keys."""
        key = jax.random.PRNGKey(episode)
        ep = runner.run(agent_params, key, args.greedy)
        return ep, runner.task(jax.random.split(key, 3)[0])

    ep, (obs0, state0) = jax.device_get(meta_episode(run.params, args.episode))
    rollouts = split_rollouts(ep.explore, runner.concurrent, runner.k_explore, runner.horizon)
    explore = [replay(env, params, state0, r, runner.obs_dim) for r in rollouts]
    exploit = replay(env, params, state0, split_rollouts(ep.exploit, True, 1, 0)[0],
                     runner.obs_dim)
    spec = run.where.spec
    success = exploit.goal == int(state0.positive)
    suptitle = (f"{spec.row} (seed {spec.seed}, update {run.update}) on {env.name}, "
                f"meta-episode {args.episode} ({'greedy' if args.greedy else 'sampled'} "
                f"actions): exploit {'succeeds' if success else 'fails'}")
    png = plot_episode(env, params, state0, obs0, explore, exploit, runner.concurrent, suptitle,
                       Path(args.out))
    print(f"episode_figure: {suptitle}; wrote {png}")
    return {"png": png, "explore": explore, "exploit": exploit, "success": success}


if __name__ == "__main__":
    main()
