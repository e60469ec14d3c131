"""Figure-5-style learning curves: success rate and visited goals over updates."""

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cmrl_jax import paths  # noqa: E402


def plot_curves(curves: dict[str, dict], path: Path, title: str, num_goals: int | None = None,
                visited: bool = True):
    """Two panels (success %, visited goals), one line per method, band = min..max over seeds.

    ``visited=False`` (an env that reports no goals): the success panel only. ``path``
    may be on an object store (``paths.results_path``): the figure is drawn to a local
    temporary file, then copied there.
    """
    panels = [("success", 100.0, "success rate (%)", (-2, 102))]
    if visited:
        goals_ylim = (-0.2, num_goals + 0.2) if num_goals else None
        panels.append(("visited", 1.0, "unique goals entered while exploring", goals_ylim))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.0, 3.2 * len(panels) + 0.4),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (key, scale, label, ylim) in zip(axes, panels, strict=True):
        for method, c in curves.items():
            v = c[key] * scale
            (line,) = ax.plot(c["updates"], v.mean(axis=0), label=method)
            ax.fill_between(c["updates"], v.min(axis=0), v.max(axis=0), color=line.get_color(),
                            alpha=0.2)
        ax.set_ylabel(label)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("updates")
    axes[0].set_title(title)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    if paths.is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / path.name
            fig.savefig(local, dpi=120)
            paths.copy_local_file(local, path)
    plt.close(fig)
    return path
