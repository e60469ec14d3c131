"""The Figure-5-style learning-curve plot: the paper's updates to each threshold."""

import numpy as np
import pytest
from matplotlib.colors import to_hex

from cmrl_jax.commands.tables import paper_row
from cmrl_jax.reporting import plots
from cmrl_jax.reporting.plots import PAPER_GID, PAPER_LABEL, curves_figure, plot_curves

THRESHOLDS = (0.25, 0.5, 0.75, 0.95, 1.0)
PAPER = {
    "A": paper_row(90.0, 100.0, 0.0, 9.0, THRESHOLDS, 100, 200, 300, 400, 500),
    "B": paper_row(50.0, 59.5, 0.1, 6.4, THRESHOLDS, 250, 450),  # never reached 75 %
    "C": paper_row(1.0, 0.0, 0.0, 0.0, THRESHOLDS),  # never reached any threshold
    "D": paper_row(1.0, 0.0, 0.0, 0.0, THRESHOLDS, 100),  # a row the plot does not have
}


def _curves(rows=("A", "B", "C")) -> dict[str, dict]:
    updates = np.arange(0, 601, 50)
    rng = np.random.default_rng(0)
    return {m: {"updates": updates, "success": rng.uniform(size=(2, updates.size)),
                "visited": rng.uniform(0, 10, size=(2, updates.size))} for m in rows}


def _marks(ax) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == PAPER_GID]


def test_paper_updates_to_threshold_are_marked_on_the_success_panel():
    fig = curves_figure(_curves(), "t", 10, paper=PAPER)
    try:
        success, visited = fig.axes[:2]
        marks = _marks(success)
        assert not _marks(visited)
        assert len(marks) == 2  # A and B; C reached nothing, D is not plotted
        curve_color = {line.get_label(): to_hex(line.get_color())
                       for line in success.get_lines() if line.get_gid() != PAPER_GID}
        got = {}
        for mark in marks:
            color = to_hex(mark.get_color())
            (row,) = [m for m, c in curve_color.items() if c == color]  # the row's colour
            got[row] = list(zip(mark.get_xdata(), mark.get_ydata(), strict=True))
            assert mark.get_marker() == "D" and mark.get_markerfacecolor() == "none"
            assert mark.get_linestyle() == "None"
        assert got == {"A": [(100, 25), (200, 50), (300, 75), (400, 95), (500, 100)],
                       "B": [(250, 25), (450, 50)]}
        texts = [t.get_text() for t in success.get_legend().get_texts()]
        assert texts == ["A", "B", "C", PAPER_LABEL]  # one legend entry for every marker
    finally:
        plots.plt.close(fig)


@pytest.mark.parametrize("paper", [None, {}, {"C": PAPER["C"]}])
def test_without_paper_thresholds_nothing_is_marked(paper):
    fig = curves_figure(_curves(), "t", 10, paper=paper)
    try:
        assert not any(_marks(ax) for ax in fig.axes)
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts == ["A", "B", "C"]
    finally:
        plots.plt.close(fig)


def test_updates_past_the_curves_are_not_marked_and_plot_curves_still_writes(tmp_path):
    short = {m: {k: v[..., :5] if k != "updates" else v[:5] for k, v in c.items()}
             for m, c in _curves(("A",)).items()}  # updates 0..200
    fig = curves_figure(short, "t", visited=False, paper=PAPER)
    try:
        (ax,) = fig.axes
        (mark,) = _marks(ax)
        assert list(zip(mark.get_xdata(), mark.get_ydata(), strict=True)) == [(100, 25),
                                                                              (200, 50)]
    finally:
        plots.plt.close(fig)
    png = plot_curves(_curves(), tmp_path / "table1.png", "t", 10, paper=PAPER)
    assert png == tmp_path / "table1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
