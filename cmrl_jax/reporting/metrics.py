"""Learning-curve summaries (AuC, final performance, thresholds) and the tables."""

import math
from collections import defaultdict

import numpy as np

from cmrl_jax.reporting import stats
from cmrl_jax.results.folder import EvalRow


def area_under_curve(updates: np.ndarray, success: np.ndarray) -> float:
    """Trapezoid area under success (a fraction) over updates: [E], [E] -> float.

    The x-axis is the updates actually run, so the maximum is ``updates[-1]``.
    """
    updates = np.asarray(updates, np.float64)
    success = np.asarray(success, np.float64)
    return float(np.sum(0.5 * (success[1:] + success[:-1]) * np.diff(updates)))


def updates_until(updates: np.ndarray, mean_success: np.ndarray, threshold: float) -> int | None:
    """First update at which the mean success reaches ``threshold`` (a fraction), else None."""
    hit = np.nonzero(np.asarray(mean_success) >= threshold - 1e-9)[0]
    return int(np.asarray(updates)[hit[0]]) if hit.size else None


def curves(rows: list[EvalRow]) -> dict[str, dict]:
    """Group evaluation rows by table row (label, else method): {row: {updates [E],
    success [S, E], visited [S, E], seeds, learning_rate, lambda_div}}; only updates
    evaluated for every seed are kept."""
    by_method: dict[str, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        by_method[row.row][row.seed][row.update] = row
    out = {}
    for method, seeds in by_method.items():
        common = sorted(set.intersection(*(set(s) for s in seeds.values())))
        seed_ids = sorted(seeds)
        first = seeds[seed_ids[0]][common[0]]
        out[method] = {
            "updates": np.array(common),
            "success": np.array([[seeds[s][u].success for u in common] for s in seed_ids]),
            "visited": np.array([[seeds[s][u].visited_goals for u in common] for s in seed_ids]),
            "seeds": seed_ids,
            "learning_rate": first.learning_rate,
            "lambda_div": first.lambda_div,
        }
        if all(seeds[s][u].heldout for s in seed_ids for u in common):
            out[method]["heldout_success"] = np.array(
                [[seeds[s][u].heldout["success"] for u in common] for s in seed_ids])
    return out


def per_seed(curve: dict) -> dict[str, np.ndarray]:
    """The two per-seed results a table compares: {"final_success" [S] (percent),
    "auc" [S]}."""
    updates, success = curve["updates"], curve["success"]
    return {"final_success": 100 * success[:, -1],
            "auc": np.array([area_under_curve(updates, s) for s in success])}


def _intervals(name: str, values: np.ndarray) -> dict:
    """``<name>_ci`` (95 %, >= 2 seeds) and ``<name>_iqm`` / ``<name>_iqm_ci`` (>= 5 seeds),
    present only where defined."""
    out = {}
    ci = stats.mean_interval(values)
    if ci is not None:
        out[f"{name}_ci"] = ci.to_json()
    iqm = stats.iqm_interval(values)
    if iqm is not None:
        out[f"{name}_iqm"] = iqm.estimate
        out[f"{name}_iqm_ci"] = iqm.to_json()
    return out


UNITS = {
    "final_success": "percent (eval.jsonl, TensorBoard and W&B log success as a fraction: "
                     "x 100 here)",
    "auc": "success fraction x updates (the area under the success curve, as Table 1's AuC)",
    "updates_until": "updates; keyed by the threshold in percent",
    "visited_goals": "goals per meta-episode",
}
"""The units of a table's numbers (``table.json`` carries them in every row: ``units``),
and of the logs: success is a fraction in [0, 1] in every log and a percent in every table,
as the paper prints it."""


def summarize(curve: dict, thresholds: tuple[float, ...]) -> dict:
    """Table entry of one method from its curves (percentages for success, std over seeds,
    95 % intervals and IQM as ``cmrl_jax.reporting.stats`` computes them, the per-seed values)."""
    updates, success, visited = curve["updates"], curve["success"], curve["visited"]
    seeds = per_seed(curve)
    mean = success.mean(axis=0)
    return {
        "auc": float(np.mean(seeds["auc"])),
        "final_success_mean": float(100 * success[:, -1].mean()),
        "final_success_std": float(100 * success[:, -1].std()),
        "updates_until": {
            f"{round(100 * t)}": updates_until(updates, mean, t) for t in thresholds
        },
        "visited_goals_mean": float(visited[:, -1].mean()),
        "visited_goals_std": float(visited[:, -1].std()),
        "learning_rate": float(curve["learning_rate"]),
        "lambda_div": float(curve["lambda_div"]),
        "seeds": len(curve["seeds"]),
        "updates": int(updates[-1]),
        **_intervals("final_success", seeds["final_success"]),
        **_intervals("auc", seeds["auc"]),
        "final_success_per_seed": seeds["final_success"].tolist(),
        "auc_per_seed": seeds["auc"].tolist(),
        **_heldout(curve),
        "units": UNITS,
    }


def heldout_per_seed(curve: dict) -> dict[str, np.ndarray]:
    """``per_seed`` of the curve's held-out evaluation: {"heldout_final_success" [S]
    (percent), "heldout_auc" [S]} (empty where the curve has none)."""
    if "heldout_success" not in curve:
        return {}
    seeds = per_seed({"updates": curve["updates"], "success": curve["heldout_success"]})
    return {"heldout_final_success": seeds["final_success"], "heldout_auc": seeds["auc"]}


def _heldout(curve: dict) -> dict:
    """Final success (percent) and AuC on the env's held-out tasks: mean, std, per seed,
    intervals (IQM from 5 seeds), where the curve has them."""
    seeds = heldout_per_seed(curve)
    if not seeds:
        return {}
    final, auc = seeds["heldout_final_success"], seeds["heldout_auc"]
    return {"heldout_final_success_mean": float(final.mean()),
            "heldout_final_success_std": float(final.std()),
            "heldout_final_success_per_seed": final.tolist(),
            **_intervals("heldout_final_success", final),
            "heldout_auc": float(auc.mean()),
            "heldout_auc_std": float(auc.std()),
            "heldout_auc_per_seed": auc.tolist(),
            **_intervals("heldout_auc", auc)}


def improvement(better: dict, than: dict, than_label: str) -> dict | None:
    """P(a run of ``better`` beats a run of ``than``) on final success and on AuC, with 95 %
    intervals, and on the held-out ones where both curves have them (``heldout_final_success``,
    ``heldout_auc``) (curves as ``curves`` gives them; None: fewer than 2 seeds on a side)."""
    a, b = per_seed(better), per_seed(than)
    a_held, b_held = heldout_per_seed(better), heldout_per_seed(than)
    if a_held and b_held:
        a, b = a | a_held, b | b_held
    out = {"over": than_label}
    for name in a:
        p = stats.improvement_interval(a[name], b[name])
        if p is None:
            return None
        out[name] = p.estimate
        out[f"{name}_ci"] = p.to_json()
    return out


def _mean_std(mean: float, std: float, seeds: int | None) -> str:
    """``12.3 ± 4.5%`` over seeds; one seed has no spread to show: ``12.3% (1 seed)``."""
    return f"{mean:.1f}% (1 seed)" if seeds == 1 else f"{mean:.1f} ± {std:.1f}%"


def _fmt_int(x) -> str:
    """An update count or "-"."""
    return "-" if x is None else str(x)


def _ci(s: dict, key: str, fmt: str) -> str:
    """`` [lo, hi]`` of interval ``key`` of a row, or nothing where it is not defined."""
    ci = s.get(key)
    return f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else ""


def few_seeds_note(seeds: int) -> str:
    """The line under a table whose intervals rest on ``seeds`` < ``stats.IQM_MIN_RUNS`` seeds.

    A percentile bootstrap of a mean only averages the seeds it resamples: its lower bound is
    the smallest seed whenever the resample of that seed alone, with probability
    ``(1 / seeds) ** seeds``, holds more than the tail (2.5 %), i.e. for 2 or 3 seeds (the
    upper bound likewise the largest); from 4 seeds on it lies just inside them.
    """
    tail = (1 - stats.CONFIDENCE) / 2
    how = "exactly" if (1 / seeds) ** seeds > tail else "nearly"
    return (f"With {seeds} seeds a {100 * stats.CONFIDENCE:.0f} % interval of a mean is {how} "
            "the seeds' [min, max] (the bootstrap only re-averages them: it says where they "
            f"fell, not how sure the mean is); use >= {stats.IQM_MIN_RUNS} seeds for intervals.")


def render_table(
    ours: dict[str, dict],
    paper: dict[str, dict],
    thresholds: tuple[float, ...],
    title: str,
    not_in_paper: list[str] | tuple[str, ...] = (),
    visited: bool = True,
) -> str:
    """Markdown table: for each row ours, then the paper's beneath it (or "not in the paper").

    ``visited=False`` (an env that reports no goals) omits the Visited Goals column;
    Held-out Final and Held-out AuC columns appear when a row has held-out results
    (``EnvSpec.heldout``). Rows
    with intervals (``summarize``) show them as ``[lo, hi]``; IQM columns (final success and
    AuC) appear when a row has >= 5 seeds; probabilities of improvement and a legend follow
    the table, and ``few_seeds_note`` where a row's intervals rest on fewer than 5 seeds.
    """
    th = [f"{round(100 * t)}" for t in thresholds]
    goals = ["Visited Goals"] if visited else []
    with_iqm = any("final_success_iqm" in s for s in ours.values())
    iqm_head = ["IQM Final", "IQM AuC"] if with_iqm else []
    with_held = any("heldout_final_success_mean" in s for s in ours.values())
    held_head = ["Held-out Final", "Held-out AuC"] if with_held else []
    head = ["Model", "source", "AuC", "Final Perf.", *held_head, *iqm_head,
            *[f"{t}%" for t in th], *goals, "lr"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, s in ours.items():
        iqm = ([f"{s['final_success_iqm']:.1f}%{_ci(s, 'final_success_iqm_ci', '.1f')}",
                f"{s['auc_iqm']:.2f}{_ci(s, 'auc_iqm_ci', '.2f')}"]
               if "final_success_iqm" in s else ["-", "-"]) if with_iqm else []
        held = ([_mean_std(s["heldout_final_success_mean"], s["heldout_final_success_std"],
                           s.get("seeds")) + _ci(s, "heldout_final_success_ci", ".1f"),
                 f"{s['heldout_auc']:.2f}{_ci(s, 'heldout_auc_ci', '.2f')}"]
                if "heldout_final_success_mean" in s else ["-", "-"]) if with_held else []
        lines.append(
            "| "
            + " | ".join(
                [
                    method,
                    "ours (not in the paper)" if method in not_in_paper else "ours",
                    f"{s['auc']:.2f}{_ci(s, 'auc_ci', '.2f')}",
                    _mean_std(s["final_success_mean"], s["final_success_std"], s.get("seeds"))
                    + _ci(s, "final_success_ci", ".1f"),
                    *held,
                    *iqm,
                    *[_fmt_int(s["updates_until"][t]) for t in th],
                    *([f"{s['visited_goals_mean']:.2f} ± {s['visited_goals_std']:.2f}"]
                      if visited else []),
                    f"{s['learning_rate']:g}",
                ]
            )
            + " |"
        )
        p = paper.get(method)
        if p:
            until = [_fmt_int(p["updates_until"].get(t)) for t in th]
            lines.append(
                "| "
                + " | ".join(
                    [
                        "",
                        "paper",
                        f"{p['auc']:.2f}",
                        f"{p['final']:.1f} ± {p['final_std']:.1f}%",
                        *(["", ""] if with_held else []),
                        *(["", ""] if with_iqm else []),
                        *until,
                        *([f"{p['visited']:.2f}"] if visited else []),
                        "",
                    ]
                )
                + " |"
            )
    notes = []
    for method, s in ours.items():
        imp = s.get("probability_of_improvement")
        if imp:
            held = (f"; held-out final success {imp['heldout_final_success']:.2f}"
                    f"{_ci(imp, 'heldout_final_success_ci', '.2f')}, held-out AuC "
                    f"{imp['heldout_auc']:.2f}{_ci(imp, 'heldout_auc_ci', '.2f')}"
                    if "heldout_auc" in imp else "")
            notes.append(
                f"P({method} > {imp['over']}): final success {imp['final_success']:.2f}"
                f"{_ci(imp, 'final_success_ci', '.2f')}, AuC {imp['auc']:.2f}"
                f"{_ci(imp, 'auc_ci', '.2f')}{held}.")
    if any("final_success_ci" in s for s in ours.values()):
        notes.append(
            f"[lo, hi]: {100 * stats.CONFIDENCE:.0f} % intervals over seeds (percentile "
            f"bootstrap, {stats.RESAMPLES} resamples, scipy.stats.bootstrap, as rliable); "
            f"IQM: interquartile mean, with >= {stats.IQM_MIN_RUNS} seeds; P(X > Y): the "
            "probability that a run of X beats a run of Y (ties count half).")
    notes.append("Units: success in % (eval.jsonl, TensorBoard and W&B log it as a fraction); "
                 "AuC in success fraction x updates (the area under the success curve); "
                 "thresholds in %, reached at the update shown.")
    few = [s["seeds"] for s in ours.values()
           if "final_success_ci" in s and s["seeds"] < stats.IQM_MIN_RUNS]
    if few:
        notes.append(few_seeds_note(min(few)))
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def clean_json(obj):
    """Replace NaN / inf by None so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
