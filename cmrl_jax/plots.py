"""Figure-5-style learning curves: success rate and visited goals over updates."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(curves: dict[str, dict], path: Path, title: str, num_goals: int | None = None,
                visited: bool = True):
    """Two panels (success %, visited goals), one line per method, band = min..max over seeds.

    ``visited=False`` (an env that reports no goals): the success panel only.
    """
    if not visited:
        return _plot_success(curves, path, title)
    fig, axes = plt.subplots(2, 1, figsize=(9.0, 6.4), sharex=True)
    for method, c in curves.items():
        x = c["updates"]
        for ax, values, scale in ((axes[0], c["success"], 100.0), (axes[1], c["visited"], 1.0)):
            v = values * scale
            (line,) = ax.plot(x, v.mean(axis=0), label=method)
            ax.fill_between(x, v.min(axis=0), v.max(axis=0), color=line.get_color(), alpha=0.2)
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(-2, 102)
    axes[1].set_ylabel("unique goals entered while exploring")
    if num_goals:
        axes[1].set_ylim(-0.2, num_goals + 0.2)
    axes[1].set_xlabel("updates")
    axes[0].set_title(title)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path



def _plot_success(curves: dict[str, dict], path: Path, title: str):
    """The success panel alone, one line per method, band = min..max over seeds."""
    fig, ax = plt.subplots(1, 1, figsize=(9.0, 3.6))
    for method, c in curves.items():
        v = c["success"] * 100.0
        (line,) = ax.plot(c["updates"], v.mean(axis=0), label=method)
        ax.fill_between(c["updates"], v.min(axis=0), v.max(axis=0), color=line.get_color(),
                        alpha=0.2)
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.set_xlabel("updates")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
