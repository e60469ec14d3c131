"""Figure 6: how often exploration enters a goal, by where the goal is (ERL2 vs CMRL).

    python -m experiments.figure6 --env color_choice --results results/table2
    python -m experiments.figure6 --env reacher --results results/table3 --episodes 40000

For one CMRL run and one ERL2 run of a table's results folder (newest
checkpoint of each), sample ``--episodes`` meta-episodes with sampled actions;
both agents meet the same tasks (the same meta-episode keys). For every goal
of every meta-episode record the heatmap bin of its position and whether any
explore step (any rollout or sub-episode) entered it. Per bin::

    frequency = (goals located in the bin that were entered while exploring)
                / (goals located in the bin)

Three panels, as in the paper: CMRL (left), ERL2 (centre), and the percent
change from ERL2 to CMRL (right, ``percent_change``). The environment
supplies the geometry through two methods: ``goal_positions(state, params) ->
float32 [N, 2]`` and ``heatmap_bins(params) -> (edges0, edges1)``. Writes a
PNG and, next to it, a JSON with the arrays and counts; prints a one-line
summary.
"""

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmrl_jax.config import ConfigError
from experiments.common import EXIT_USAGE, parse_cli
from experiments.trained import RunLocation, TrainedRun, find_run, load_run

# ------------------------------------------------------------------ maths (pure numpy)


def visitation_counts(
    positions: np.ndarray, entered: np.ndarray, edges: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: how many goals were located there, and how many of those were explored.

    Args:
      positions: float [E, N, 2] goal coordinates, N goals in each of E meta-episodes.
      entered: bool [E, N] the goal was entered during the explore phase.
      edges: (edges0 [B0 + 1], edges1 [B1 + 1]) increasing bin edges of the two
        coordinates; bins are half-open [lo, hi) except the last, which is closed.
        Positions outside the edges are not counted.
    Returns:
      (entered_counts, located_counts): int64 [B0, B1] each; entered <= located.
    """
    p = np.asarray(positions, np.float64).reshape(-1, 2)
    w = np.asarray(entered, bool).reshape(-1)
    if w.shape[0] != p.shape[0]:
        raise ValueError(f"positions {np.shape(positions)} and entered {np.shape(entered)} differ")
    bins = [np.asarray(edges[0], np.float64), np.asarray(edges[1], np.float64)]
    located, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins)
    hits, _, _ = np.histogram2d(p[w, 0], p[w, 1], bins=bins)
    return hits.astype(np.int64), located.astype(np.int64)


def exploration_frequency(entered: np.ndarray, located: np.ndarray) -> np.ndarray:
    """entered / located per bin: float64 [B0, B1], NaN where no goal was ever located."""
    entered = np.asarray(entered, np.float64)
    located = np.asarray(located, np.float64)
    out = np.full(located.shape, np.nan)
    np.divide(entered, located, out=out, where=located > 0)
    return out


def percent_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Percent change per bin from ``before`` to ``after``: float64 [B0, B1].

    ``100 * (after - before) / before`` where ``before > 0``; where ``before == 0``
    it is 0 if ``after == 0`` too and +inf if ``after > 0`` (explored only
    afterwards); NaN where either input is NaN (no data in that bin).
    """
    before = np.asarray(before, np.float64)
    after = np.asarray(after, np.float64)
    out = np.full(before.shape, np.nan)
    ok = ~np.isnan(before) & ~np.isnan(after)
    pos = ok & (before > 0)
    out[pos] = 100.0 * (after[pos] - before[pos]) / before[pos]
    zero = ok & (before == 0)
    out[zero & (after == 0)] = 0.0
    out[zero & (after > 0)] = np.inf
    return out


def pooled_frequency(entered: np.ndarray, located: np.ndarray) -> float:
    """Fraction of all counted goals entered while exploring (NaN if none counted)."""
    total = float(np.sum(located))
    return float(np.sum(entered)) / total if total > 0 else float("nan")


def check_heatmap_env(env, name: str) -> None:
    """ConfigError unless ``env`` supplies the two methods the heatmaps need."""
    missing = [m for m in ("goal_positions", "heatmap_bins") if not hasattr(env, m)]
    if missing:
        raise ConfigError(f"env {name} has no {' / '.join(missing)}: Figure 6 needs both")


# ------------------------------------------------------------------ sampling


def make_sampler(runner):
    """Jitted ``(params, keys [C, 2]) -> (positions [C, N, 2], entered [C, N])``
    over C meta-episodes with sampled actions."""
    import jax
    import jax.numpy as jnp

    env, env_params = runner.env, runner.env_params

    def one(params, key):
        ep, (_, state0) = runner.run_with_task(params, key, greedy=False)
        pos = env.goal_positions(state0, env_params)  # [N, 2]
        goals = jnp.reshape(ep.explore.goal, (-1,))  # every explore step of every rollout
        entered = jnp.any(goals[:, None] == jnp.arange(pos.shape[0])[None, :], axis=0)
        return pos, entered

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def sample_goals(
    run: TrainedRun, episodes: int, seed: int, chunk: int, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Goal positions float32 [E, N, 2] and explore-entered flags bool [E, N] of E episodes.

    The keys depend only on ``seed``, E and ``chunk``, so agents sampled alike meet the same
    tasks (and share the action-sampling keys).
    """
    import jax
    from tqdm.auto import tqdm

    chunk = max(1, min(chunk, episodes))
    n_chunks = -(-episodes // chunk)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_chunks * chunk)
    keys = keys.reshape((n_chunks, chunk) + keys.shape[1:])
    sample = make_sampler(run.runner)  # one shape: the last chunk is padded
    positions, entered = [], []
    label = f"{run.where.spec.row} seed {run.where.spec.seed}"
    for c in tqdm(range(n_chunks), desc=label, unit="chunk", disable=not progress):
        pos, ent = jax.device_get(sample(run.params, keys[c]))
        positions.append(pos)
        entered.append(ent)
    return np.concatenate(positions)[:episodes], np.concatenate(entered)[:episodes]


# ------------------------------------------------------------------ plotting


@dataclass(frozen=True)
class HeatmapAxes:
    """How an environment's two goal coordinates are drawn."""

    first: str  # label of coordinate 0
    second: str  # label of coordinate 1
    image: bool  # True: coordinate 0 is a row drawn downwards, 1 a column; False: (x, y)


AXES = {
    "color_choice": HeatmapAxes("row", "column", True),
    "reacher": HeatmapAxes("target x (m)", "target y (m)", False),
}
DEFAULT_AXES = HeatmapAxes("coordinate 0", "coordinate 1", False)
MAX_ANNOTATED_BINS = 144  # write each bin's value in it up to 12 x 12 bins


def _draw(ax, values, edges, axes: HeatmapAxes, cmap, norm, fmt) -> Any:
    """One heatmap panel; NaN bins masked (grey); values written in the bins if few."""
    import matplotlib.patheffects as pe

    e0, e1 = (np.asarray(e, np.float64) for e in edges)
    shown = np.ma.masked_invalid(np.where(np.isposinf(values), norm.vmax, values))
    if axes.image:  # rows downwards, columns across
        mesh = ax.pcolormesh(e1, e0, shown, cmap=cmap, norm=norm)
        ax.set_xlabel(axes.second)
        ax.set_ylabel(axes.first)
        ax.set_ylim(e0[-1], e0[0])
        if max(len(e0), len(e1)) <= 17:  # one tick per cell
            ax.set_xticks((e1[:-1] + e1[1:]) / 2)
            ax.set_yticks((e0[:-1] + e0[1:]) / 2)
    else:  # x across, y upwards
        mesh = ax.pcolormesh(e0, e1, shown.T, cmap=cmap, norm=norm)
        ax.set_xlabel(axes.first)
        ax.set_ylabel(axes.second)
    ax.set_aspect("equal")
    if values.size <= MAX_ANNOTATED_BINS:
        c0 = (e0[:-1] + e0[1:]) / 2
        c1 = (e1[:-1] + e1[1:]) / 2
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isnan(values[i, j]):
                    continue
                xy = (c1[j], c0[i]) if axes.image else (c0[i], c1[j])
                ax.text(*xy, fmt(values[i, j]), ha="center", va="center", fontsize=7,
                        color="white", path_effects=[pe.withStroke(linewidth=1.5,
                                                                   foreground="black")])
    return mesh


def _fmt_change(v: float) -> str:
    """A percent change as bin text."""
    return "+inf" if np.isposinf(v) else f"{v:+.0f}%"


def plot_figure6(
    freq_base: np.ndarray,
    freq_cmrl: np.ndarray,
    change: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    axes: HeatmapAxes,
    titles: tuple[str, str, str],
    suptitle: str,
    path: Path,
) -> Path:
    """Three panels (CMRL, baseline, percent change) with colourbars, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colors

    fig, axs = plt.subplots(1, 3, figsize=(15.5, 5.0), layout="constrained")
    seq = plt.get_cmap("viridis").with_extremes(bad="0.8")
    freq_norm = colors.Normalize(0.0, 1.0)
    for ax, freq, title in zip(axs[:2], (freq_cmrl, freq_base), titles[:2], strict=True):
        mesh = _draw(ax, freq, edges, axes, seq, freq_norm, lambda v: f"{v:.2f}")
        fig.colorbar(mesh, ax=ax, shrink=0.85, label="explore visitation frequency")
        ax.set_title(title, fontsize=10)
    finite = change[np.isfinite(change)]
    top = float(finite.max()) if finite.size else 0.0
    div = plt.get_cmap("RdBu_r").with_extremes(bad="0.8")
    # -100 % (never explored any more) and +100 % (twice as often) are equally strong colours
    norm = colors.TwoSlopeNorm(vmin=-100.0, vcenter=0.0, vmax=max(top, 100.0))
    mesh = _draw(axs[2], change, edges, axes, div, norm, _fmt_change)
    label = "percent change (%)"
    extend = "neither"
    if np.any(np.isposinf(change)):
        label, extend = label + "; +inf: baseline 0, CMRL > 0", "max"
    fig.colorbar(mesh, ax=axs[2], shrink=0.85, extend=extend, label=label)
    axs[2].set_title(titles[2], fontsize=10)
    fig.suptitle(suptitle, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ CLI


@dataclass(frozen=True)
class Figure6Args:
    """Command-line options of Figure 6."""

    env: str
    """environment of the results folder (color_choice: Table 2; reacher: Table 3)"""
    results: str
    """a table's results folder (holds <program>/config.json and checkpoints)"""
    episodes: int = 40_000
    """meta-episodes sampled per agent (the paper: 40000)"""
    out: str | None = None
    """PNG path (default docs/figures/figure6_<env>.png); the JSON is written beside it"""
    cmrl_method: str = "Max-Until-Exploit"
    """table row of the CMRL run (left panel)"""
    baseline: str = "ERL2"
    """table row of the sequential baseline (centre panel)"""
    seed_index: int = 0
    """seed of both runs (table runs number their seeds 0, 1, ...)"""
    learning_rate: float | None = None
    """pick this learning rate when a folder holds several (a sweep; default: sweep.json's)"""
    sample_seed: int = 0
    """seed of the meta-episode keys (both agents meet the same tasks)"""
    chunk: int = 1000
    """meta-episodes per compiled call (bounds memory)"""
    progress: bool = True
    """show progress bars"""


def _validate(args: Figure6Args) -> tuple[RunLocation, RunLocation]:
    """Check every argument and locate both runs (reads config files only)."""
    from envs.registry import registered_envs

    if args.env not in registered_envs():
        raise ConfigError(f"unknown env {args.env!r}; known: {', '.join(registered_envs())}")
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1, got {args.chunk}")
    results = Path(args.results)
    base = find_run(results, args.env, args.baseline, args.seed_index, args.learning_rate)
    cmrl = find_run(results, args.env, args.cmrl_method, args.seed_index, args.learning_rate)
    if base.cfg.env_kwargs != cmrl.cfg.env_kwargs:
        raise ConfigError(f"{args.baseline} and {args.cmrl_method} ran on different "
                          f"environments ({base.cfg.env_kwargs} vs {cmrl.cfg.env_kwargs})")
    return base, cmrl


def main(argv: list[str] | None = None) -> dict:
    """Sample, count, plot and save Figure 6; return the summary."""
    from cmrl_jax.lock import check_writable

    args = parse_cli(Figure6Args, argv, __doc__.split("\n")[0])
    t0 = time.perf_counter()
    png = Path(args.out or f"docs/figures/figure6_{args.env}.png")
    try:
        check_writable(png, is_file=True)  # before the sampling, not after
        where_base, where_cmrl = _validate(args)
        base, cmrl = load_run(where_base), load_run(where_cmrl)
        env, env_params = cmrl.runner.env, cmrl.runner.env_params
        check_heatmap_env(env, args.env)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None

    edges = tuple(np.asarray(e, np.float64) for e in env.heatmap_bins(env_params))
    counts, freqs = {}, {}
    for name, run in (("baseline", base), ("cmrl", cmrl)):
        pos, ent = sample_goals(run, args.episodes, args.sample_seed, args.chunk, args.progress)
        counts[name] = visitation_counts(pos, ent, edges)
        freqs[name] = exploration_frequency(*counts[name])
    n_goals = pos.shape[1]
    change = percent_change(freqs["baseline"], freqs["cmrl"])
    pooled = {k: pooled_frequency(*counts[k]) for k in counts}
    bin_mean = {k: float(np.nanmean(freqs[k])) if np.any(~np.isnan(freqs[k])) else float("nan")
                for k in freqs}

    titles = tuple(
        f"{r.where.spec.row} (seed {r.where.spec.seed}, update {r.update})\n"
        f"entered while exploring: {100 * pooled[k]:.1f}% of goals"
        for k, r in (("cmrl", cmrl), ("baseline", base))
    ) + (f"percent change {args.baseline} -> {args.cmrl_method}\n"
         f"100 (CMRL - {args.baseline}) / {args.baseline}",)
    plot_figure6(
        freqs["baseline"], freqs["cmrl"], change, edges, AXES.get(args.env, DEFAULT_AXES),
        titles,
        f"{env.name}: how often a goal located in each bin was entered during exploration "
        f"({args.episodes} meta-episodes x {n_goals} goals, sampled actions)",
        png,
    )
    from cmrl_jax.metrics import clean_json

    def run_info(r: TrainedRun, k: str) -> dict:
        """The run's identity, counts and frequencies for the JSON."""
        spec = r.where.spec
        return {
            "method": spec.row, "seed": spec.seed, "learning_rate": spec.learning_rate,
            "program": r.where.folder.name, "run_index": r.where.index, "update": r.update,
            "entered_counts": counts[k][0].tolist(), "located_counts": counts[k][1].tolist(),
            "frequency": freqs[k].tolist(), "pooled_frequency": pooled[k],
            "mean_bin_frequency": bin_mean[k],
        }

    located = counts["cmrl"][1]
    summary = {
        "env": args.env, "results": str(args.results), "episodes": args.episodes,
        "goals_per_episode": int(n_goals), "sample_seed": args.sample_seed,
        "edges": [e.tolist() for e in edges],
        "goals_outside_bins": int(args.episodes * n_goals - located.sum()),
        "baseline": run_info(base, "baseline"), "cmrl": run_info(cmrl, "cmrl"),
        "percent_change": change.tolist(),
        "percent_change_infinite": np.isposinf(change).tolist(),
        "notes": "frequency = entered_counts / located_counts (null: no goal located there); "
                 "percent_change = 100 (cmrl - baseline) / baseline, 0 where both are 0, "
                 "infinite (null here, true in percent_change_infinite) where only the "
                 "baseline is 0; arrays are [bins along coordinate 0, bins along coordinate 1]",
    }
    json_path = png.with_suffix(".json")
    json_path.write_text(json.dumps(clean_json(summary), indent=1))
    print(
        f"figure6 {args.env}: goals entered while exploring {100 * pooled['baseline']:.1f}% "
        f"({args.baseline}) vs {100 * pooled['cmrl']:.1f}% ({args.cmrl_method}); mean over bins "
        f"{bin_mean['baseline']:.3f} vs {bin_mean['cmrl']:.3f}; {args.episodes} meta-episodes; "
        f"wrote {png}, {json_path} ({time.perf_counter() - t0:.0f} s)"
    )
    return {"png": png, "json": json_path, "summary": summary}


if __name__ == "__main__":
    main()
