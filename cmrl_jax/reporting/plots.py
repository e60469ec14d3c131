"""Figure-5-style learning curves: success rate and visited goals over updates."""

import contextlib
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from cmrl_jax.results import paths  # noqa: E402

# The ``gid`` of the paper's updates-to-threshold markers (one line per table row).
PAPER_GID = "paper-updates-to-threshold"
PAPER_LABEL = "paper: updates to threshold"


def plot_curves(curves: dict[str, dict], path: Path, title: str, num_goals: int | None = None,
                visited: bool = True, paper: dict[str, dict] | None = None) -> Path:
    """Draw ``curves_figure`` and save it to ``path`` (returned).

    ``path`` may be on an object store (``paths.results_path``): the figure is drawn to a
    local temporary file, then copied there.
    """
    fig = curves_figure(curves, title, num_goals, visited=visited, paper=paper)
    return save_figure(fig, path, dpi=120)


def curves_figure(curves: dict[str, dict], title: str, num_goals: int | None = None,
                  visited: bool = True, paper: dict[str, dict] | None = None):
    """Two panels (success %, visited goals), one line per method, band = min..max over seeds.

    ``visited=False`` (an env that reports no goals): the success panel only. ``paper``
    (a table's ``TableSpec.paper``: row -> {..., "updates_until": {"25": 1250, ...}}) marks,
    on the success panel, the update at which the paper's row first reached each
    threshold: an open diamond in the row's colour at (update, threshold %). Rows the
    paper lacks, thresholds it never reached, and updates past the curves' last update
    mark nothing. Returns the matplotlib figure (not closed).
    """
    panels = [("success", 100.0, "success rate (%)", (-2, 102))]
    if visited:
        goals_ylim = (-0.2, num_goals + 0.2) if num_goals else None
        panels.append(("visited", 1.0, "unique goals entered while exploring", goals_ylim))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.0, 3.2 * len(panels) + 0.4),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    colors = {}
    for ax, (key, scale, label, ylim) in zip(axes, panels, strict=True):
        for method, c in curves.items():
            v = c[key] * scale
            (line,) = ax.plot(c["updates"], v.mean(axis=0), label=method)
            ax.fill_between(c["updates"], v.min(axis=0), v.max(axis=0), color=line.get_color(),
                            alpha=0.2)
            colors.setdefault(method, line.get_color())
        ax.set_ylabel(label)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    marked = _mark_paper(axes[0], curves, colors, paper or {})
    axes[-1].set_xlabel("updates")
    axes[0].set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    if marked:
        handles.append(Line2D([], [], linestyle="none", marker="D", markerfacecolor="none",
                              markeredgecolor="0.3", color="0.3"))
        labels.append(PAPER_LABEL)
    axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   fontsize="small")
    fig.tight_layout()
    return fig


def _mark_paper(ax, curves: dict[str, dict], colors: dict[str, str],
                paper: dict[str, dict]) -> bool:
    """The paper's updates to each threshold, one marker line per row; True if any drawn."""
    marked = False
    for method, c in curves.items():
        until = (paper.get(method) or {}).get("updates_until") or {}
        last = float(max(c["updates"])) if len(c["updates"]) else 0.0
        points = sorted((float(u), float(t)) for t, u in until.items()
                        if u is not None and u <= last)
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, linestyle="none", marker="D", markersize=7, markerfacecolor="none",
                markeredgewidth=1.5, color=colors[method], gid=PAPER_GID, zorder=3,
                label="_nolegend_")
        marked = True
    return marked


def save_figure(fig, path, dpi: int) -> Path:
    """Save and close ``fig``, whole or not at all: drawn into a temporary file beside
    ``path``, then renamed (a full disk leaves ``path`` as it was). On an object store
    (``paths.results_path``) it is drawn locally, then uploaded."""
    try:
        if not paths.is_local(path):
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / path.name
                fig.savefig(local, dpi=dpi)
                paths.copy_local_file(local, path)
            return path
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=dpi)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path
    finally:
        plt.close(fig)
