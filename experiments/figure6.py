"""Figure 6: how often exploration enters a goal, by where the goal is (ERL2 vs CMRL).

    python -m experiments.figure6 --env color_choice --results results/table2
    python -m experiments.figure6 --env reacher --results results/table3 --episodes 40000

For one CMRL run and one baseline run of a results folder (newest checkpoint of
each, restored by ``cmrl_jax.saved.load_policy``), sample ``--episodes``
meta-episodes with sampled actions; both agents meet the same tasks (the same
meta-episode keys). For every goal of every meta-episode record the heatmap bin
of its position and whether any explore step (any rollout or sub-episode)
entered it. Per bin::

    frequency = (goals located in the bin that were entered while exploring)
                / (goals located in the bin)

Three panels, as in the paper: CMRL (left), the baseline (centre), and the
percent change from baseline to CMRL (right, ``percent_change``). Any env
whose registered renderer has a ``heatmap`` (``cmrl_jax.reporting.figures.hooks``: goal
positions and bins) and that reports ``info["goal"]`` can be drawn; others are
refused in one line. Writes a PNG and, next to it, a JSON with the arrays and
counts, into the results folder (``figure6_<env>.png``) unless ``--out`` names
another path (the README's figures: ``--out docs/figures/figure6_<env>.png``);
prints a one-line summary.
"""

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmrl_jax.commands.cli import EXIT_USAGE, FIGURE_DISK_FULL, exit_if_disk_full, parse_cli
from cmrl_jax.config import ConfigError
from cmrl_jax.reporting.figures.heatmap_draw import plot_figure6
from cmrl_jax.reporting.figures.hooks import Heatmap
from cmrl_jax.reporting.figures.visitation import (
    exploration_frequency,
    mean_bin_frequency,
    percent_change,
    pooled_frequency,
    sample_goals,
    visitation_counts,
)
from cmrl_jax.results.folder import RunLocation, find_run, safe_name, write_text_atomic
from cmrl_jax.results.paths import ResultsPath


@dataclass(frozen=True)
class Figure6Args:
    """Command-line options of Figure 6."""

    env: str
    """environment of the results folder (e.g. color_choice: Table 2; reacher: Table 3)"""
    results: str
    """a table's results folder (holds <program>/config.json and checkpoints)"""
    episodes: int = 40_000
    """meta-episodes sampled per agent (the paper: 40000)"""
    out: str | None = None
    """PNG path (default <results>/figure6_<env>.png); the JSON is written beside it"""
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


def default_png(results: ResultsPath, env: str) -> ResultsPath:
    """Where the PNG goes without ``--out``: beside the runs it is drawn from, so a figure
    of a trial run never replaces the README's in docs/figures."""
    return results / f"figure6_{safe_name(env)}.png"


def _validate(args: Figure6Args,
              results: ResultsPath) -> tuple[RunLocation, RunLocation, Heatmap, Any]:
    """Check every argument, locate both runs in ``results``, bind their env once
    (``registry.bind_env``) and find its heatmap hook (reads config files and traces one env
    step; nothing is restored or sampled)."""
    from cmrl_jax.envspec import reports_goals
    from cmrl_jax.registry import bind_env, env_spec

    spec = env_spec(args.env)  # unknown env: one line
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1, got {args.chunk}")
    base = find_run(results, args.baseline, args.seed_index, args.learning_rate, env=args.env)
    cmrl = find_run(results, args.cmrl_method, args.seed_index, args.learning_rate,
                    env=args.env)
    if base.cfg.env_kwargs != cmrl.cfg.env_kwargs:
        raise ConfigError(f"{args.baseline} and {args.cmrl_method} ran on different "
                          f"environments ({base.cfg.env_kwargs} vs {cmrl.cfg.env_kwargs})")
    from cmrl_jax.registry import renderer_of  # gymnax starts JAX's backend
    heatmap = renderer_of(args.env, "heatmap", "Figure 6", spec)
    bound = bind_env(args.env, cmrl.cfg.env_kwargs, spec)  # both runs' env, built once
    if not reports_goals(bound.env, bound.params):
        raise ConfigError(f"env {args.env} reports no goals (info[\"goal\"]): "
                          "Figure 6 counts the goals entered while exploring")
    return base, cmrl, heatmap, bound


def main(argv: list[str] | None = None) -> dict:
    """Sample, count, plot and save Figure 6; return the summary."""
    from cmrl_jax.reporting.metrics import clean_json
    from cmrl_jax.results.lock import check_writable

    args = parse_cli(Figure6Args, argv, __doc__.split("\n")[0])
    t0 = time.perf_counter()
    from cmrl_jax.results.paths import local_path, results_path

    try:
        results = results_path(args.results, "--results")  # a local folder or gs://...
        png = local_path(args.out) if args.out is not None else default_png(results, args.env)
        check_writable(png, is_file=True)  # before the sampling, not after
        base, cmrl, heatmap, bound = _validate(args, results)
        where = {"baseline": base, "cmrl": cmrl}
        from cmrl_jax.saved import load_policy
        runs = {side: load_policy(w, env=bound) for side, w in where.items()}
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None

    env, env_params = runs["cmrl"].runner.env, runs["cmrl"].runner.env_params
    edges = tuple(np.asarray(e, np.float64) for e in heatmap.bins(env, env_params))
    counts, freqs = {}, {}
    for side, run in runs.items():
        pos, ent = sample_goals(run, heatmap, args.episodes, args.sample_seed, args.chunk,
                                args.progress)
        counts[side] = visitation_counts(pos, ent, edges)
        freqs[side] = exploration_frequency(*counts[side])
    n_goals = pos.shape[1]
    change = percent_change(freqs["baseline"], freqs["cmrl"])
    pooled = {k: pooled_frequency(*counts[k]) for k in counts}
    bin_mean = {k: mean_bin_frequency(freqs[k]) for k in freqs}

    titles = tuple(
        f"{runs[k].run_spec.row} (seed {runs[k].run_spec.seed}, update {runs[k].update})\n"
        f"entered while exploring: {100 * pooled[k]:.1f}% of goals"
        for k in ("cmrl", "baseline")
    ) + (f"percent change {args.baseline} -> {args.cmrl_method}\n"
         f"100 (CMRL - {args.baseline}) / {args.baseline}",)
    with exit_if_disk_full(FIGURE_DISK_FULL.format(folder=png.parent)):
        plot_figure6(
            freqs["baseline"], freqs["cmrl"], change, edges, heatmap, titles,
            f"{env.name}: how often a goal located in each bin was entered during exploration "
            f"({args.episodes} meta-episodes x {n_goals} goals, sampled actions)",
            png,
        )

    def run_info(k: str) -> dict:
        """The run's identity, counts and frequencies for the JSON."""
        spec, w = runs[k].run_spec, where[k]
        return {
            "method": spec.row, "seed": spec.seed, "learning_rate": spec.learning_rate,
            "program": w.folder.name, "run_index": w.index, "update": runs[k].update,
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
        "baseline": run_info("baseline"), "cmrl": run_info("cmrl"),
        "percent_change": change.tolist(),
        "percent_change_infinite": np.isposinf(change).tolist(),
        "notes": "frequency = entered_counts / located_counts (null: no goal located there); "
                 "percent_change = 100 (cmrl - baseline) / baseline, 0 where both are 0, "
                 "infinite (null here, true in percent_change_infinite) where only the "
                 "baseline is 0; arrays are [bins along coordinate 0, bins along coordinate 1]",
    }
    json_path = png.with_suffix(".json")
    with exit_if_disk_full(FIGURE_DISK_FULL.format(folder=png.parent)):
        write_text_atomic(json_path, json.dumps(clean_json(summary), indent=1))
    print(
        f"figure6 {args.env}: goals entered while exploring {100 * pooled['baseline']:.1f}% "
        f"({args.baseline}) vs {100 * pooled['cmrl']:.1f}% ({args.cmrl_method}); mean over bins "
        f"{bin_mean['baseline']:.3f} vs {bin_mean['cmrl']:.3f}; {args.episodes} meta-episodes; "
        f"wrote {png}, {json_path} ({time.perf_counter() - t0:.0f} s)"
    )
    return {"png": png, "json": json_path, "summary": summary}


if __name__ == "__main__":
    main()
