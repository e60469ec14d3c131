"""Figure-5-style learning curves: success rate and visited goals over updates."""

import contextlib
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cmrl_jax.results import paths  # noqa: E402


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
    return save_figure(fig, path, dpi=120)


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
