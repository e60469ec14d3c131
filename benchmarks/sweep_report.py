"""Per learning rate, what a results folder's runs reached: final success, AuC and the
updates to each threshold, with the training batch's mean gradient norm (read from
``eval.jsonl``; no training). For ablations: one folder per single change, the same grid.

    python -m benchmarks.sweep_report results/i30/base results/i30/clip_off
"""

import argparse
from pathlib import Path

import numpy as np

from cmrl_jax.reporting.metrics import curves, summarize
from cmrl_jax.results.eval_log import read_history


def program_rows(folder: Path):
    """Every evaluation row of every program under ``folder`` (a table's results folder or
    one program's)."""
    logs = sorted(p.parent for p in folder.rglob("eval.jsonl"))
    return [row for program in logs for row in read_history(program)]


def report(folder: Path, thresholds: tuple[float, ...]) -> list[str]:
    """Markdown rows: folder, row, learning rate, final, AuC, updates to each threshold."""
    rows = program_rows(folder)
    by_lr: dict[tuple[str, float], list] = {}
    for r in rows:
        by_lr.setdefault((r.row, r.learning_rate), []).append(r)
    out = []
    for (name, lr), rs in sorted(by_lr.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        s = summarize(curves(rs)[name], thresholds)
        until = [s["updates_until"].get(f"{round(100 * t)}") for t in thresholds]
        grad = [r.train.get("grad_norm") for r in rs if "grad_norm" in r.train]
        out.append(
            f"| {folder.name} | {name} | {lr:g} | {s['final_success_mean']:.1f} ± "
            f"{s['final_success_std']:.1f} | {s['auc']:.0f} | "
            + " | ".join("-" if u is None else str(u) for u in until)
            + (f" | {np.mean(grad):.3g} |" if grad else " | - |"))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.25, 0.5, 0.75, 0.95])
    a = p.parse_args(argv)
    t = tuple(a.thresholds)
    print("| folder | row | lr | final % | AuC | "
          + " | ".join(f"{round(100 * x)} %" for x in t) + " | mean grad norm |")
    print("|---|---|---|---|---|" + "---|" * len(t) + "---|")
    for folder in a.folders:
        for line in report(folder, t):
            print(line)


if __name__ == "__main__":
    main()
