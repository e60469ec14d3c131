"""Figure 6's drawing: CMRL, baseline and percent-change heatmaps (matplotlib, Agg)."""

from pathlib import Path
from typing import Any

import numpy as np

from cmrl_jax.reporting.figures.hooks import Heatmap

MAX_ANNOTATED_BINS = 144  # write each bin's value in it up to 12 x 12 bins


def _draw(ax, values, edges, axes: Heatmap, cmap, norm, fmt) -> Any:
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
    axes: Heatmap,
    titles: tuple[str, str, str],
    suptitle: str,
    path: Path,
) -> Path:
    """Three panels (CMRL, baseline, percent change) with colourbars, saved as a PNG.

    ``axes``: the env's ``Heatmap`` hook (only its labels and orientation are used).
    """
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
    from cmrl_jax.reporting.plots import save_figure

    return save_figure(fig, path, dpi=120)
