"""Console scripts of the paper's experiments: ``cmrl-table1`` is ``python -m experiments.table1``.

The package's ``__init__`` installs the start-up SIGINT handler before any command's imports;
each script imports only its own command. A command's ``main`` returns its summary, which a
console script would hand to ``sys.exit`` (printed, exit status 1), so the scripts drop it.
"""

from importlib import import_module


def _run(command: str) -> None:
    """``main()`` of this package's module ``command``, installed or from a checkout."""
    import_module(f"{__package__}.{command}").main()


def table1() -> None:
    """``cmrl-table1``: Table 1, 10-Monty-Hall."""
    _run("table1")


def table2() -> None:
    """``cmrl-table2``: Table 2, 3-Color-Choice."""
    _run("table2")


def table3() -> None:
    """``cmrl-table3``: Table 3, 3-Reacher."""
    _run("table3")


def table4() -> None:
    """``cmrl-table4``: Table 4, the CMRL ablation on 10-Monty-Hall."""
    _run("table4")


def figure6() -> None:
    """``cmrl-figure6``: goal visitation by goal position, CMRL against a baseline."""
    _run("figure6")


def episode_figure() -> None:
    """``cmrl-episode-figure``: one meta-episode as a strip of panels."""
    _run("episode_figure")


def xland_study() -> None:
    """``cmrl-xland-study``: RL2, ERL2 and CMRL memory matched on XLand-MiniGrid."""
    _run("xland_study")
