"""Cells, sinks and learners from outside the library (``cmrl_jax.plugins``): by
``module:name`` (the examples in examples/), by an installed package's entry point (our
minGRU), and one line for each way a plug-in can be wrong."""

import csv
import dataclasses
import json
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax import plugins
from cmrl_jax.agent.cells import CELL_PLUGINS, CELLS, Cell, get_cell, param_name
from cmrl_jax.agent.mingru import MINGRU, MinGRUCell
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.learners import LEARNER_PLUGINS, LEARNERS, get_learner
from cmrl_jax.loop import read_history, run_training
from cmrl_jax.results.sinks import SINK_PLUGINS, SINKS, factories, parse_sinks, scalars
from cmrl_jax.saved import load_policy
from examples.csv_sink import CsvSink
from examples.elman_cell import ELMAN
from examples.plain_a2c import PlainA2C
from experiments import table1

CELL = "examples.elman_cell:ELMAN"
SINK = "examples.csv_sink:CsvSink"
LEARNER = "examples.plain_a2c:PlainA2C"

TINY = TrainConfig(
    env_kwargs=(("num_doors", 3),), k_explore=3, hidden=8, batch_size=8, num_updates=4,
    chunk_updates=2, eval_batches=1, eval_batch_size=16, cell=CELL, learner=LEARNER,
    runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.05),),
)


@pytest.fixture(scope="module")
def plugged(tmp_path_factory):
    """The tiny config with the example cell and learner and the example sink: one chunk
    (2 updates), then a second session resumes the folder to 4. -> (folder, rows of each
    session)."""
    folder = tmp_path_factory.mktemp("plugged")
    sinks = factories(parse_sinks([SINK]))
    first = run_training(TINY, folder, progress=False, stop_after=2, sinks=sinks)
    second = run_training(TINY, folder, progress=False, sinks=sinks)
    return folder, first, second


def test_a_cell_by_module_name_trains_and_resumes(plugged):
    """``cell="module:name"`` validates, trains, checkpoints under names without ``:`` or
    ``.``, is recorded as given, and a later session (and ``load_policy``) resolves it
    again from config.json."""
    folder, first, second = plugged
    assert max(r.update for r in first) == 2
    assert [r.update for r in read_history(folder)] == [0, 2, 4]
    assert all(np.isfinite(r.train["loss"]) for r in read_history(folder) if r.update)
    assert json.loads((folder / "config.json").read_text())["cell"] == CELL
    policy = load_policy(folder)
    assert policy.update == 4 and policy.cfg.cell == CELL
    tag = param_name(CELL)
    assert tag == "examples_elman_cell_ELMAN"
    assert set(policy.params["params"]["explore_" + tag]) == {"input", "hidden"}


def test_a_sink_by_module_name_receives_the_rows(plugged):
    """``--log module:name``: the example CSV sink holds every row of eval.jsonl, once,
    across the two sessions."""
    folder, _, _ = plugged
    with (folder / "eval.csv").open(newline="") as f:
        lines = list(csv.DictReader(f))
    written = {}
    for line in lines:
        written.setdefault((int(line["run"]), int(line["update"])), {})[line["tag"]] = float(
            line["value"])
    history = read_history(folder)
    assert list(written) == [(r.run, r.update) for r in history]
    assert len(lines) == sum(len(scalars(r)) for r in history)  # each scalar once
    for row in history:
        assert written[row.run, row.update] == pytest.approx(scalars(row))
    assert "train/loss" in written[0, 2] and "train/loss" not in written[0, 0]


def test_a_learner_by_module_name_runs_a_chunk(plugged):
    """``learner="module:name"`` (a ``Learner`` subclass, made with no arguments) is
    accepted and runs: its first session trained one chunk."""
    _, first, _ = plugged
    assert isinstance(get_learner(LEARNER), PlainA2C)
    assert get_learner(LEARNER).name == "plain_a2c" and "plain_a2c" not in LEARNERS
    assert [r.update for r in first] == [0, 2]


def test_each_plugin_kind_takes_its_examples():
    """The example of each kind resolves by ``module:name`` to what its table holds."""
    assert get_cell(CELL) is ELMAN
    assert SINK_PLUGINS.resolve(SINK).factory is CsvSink
    assert SINK_PLUGINS.resolve(SINK).modules == ()
    assert get_learner(LEARNER) is get_learner(LEARNER)  # made once


def test_mingru_is_found_through_its_entry_point():
    """The minGRU is not a built-in: it is the ``cmrl_jax.cells`` entry point of this
    package (pyproject.toml), and the resolver lists and loads it."""
    assert "mingru" not in CELLS
    (ep,) = [ep for ep in metadata.entry_points(group="cmrl_jax.cells") if ep.name == "mingru"]
    assert ep.value == "cmrl_jax.agent.mingru:MINGRU"
    assert "mingru" in CELL_PLUGINS.names()
    assert get_cell("mingru") is MINGRU
    assert dataclasses.replace(TINY, cell="mingru").cell == "mingru"


def test_mingru_step_is_the_papers():
    """h' = (1 - z) h + z h~, z = sigmoid(W_z x + b_z), h~ = W_h x + b_h: the gate and the
    candidate read x only."""
    cell = MinGRUCell(4)
    x, h = jax.random.normal(jax.random.PRNGKey(0), (2, 3)), jnp.ones((2, 4))
    params = cell.init(jax.random.PRNGKey(1), h, x)
    new, out = cell.apply(params, h, x)
    w, b = params["params"]["input"]["kernel"], params["params"]["input"]["bias"]
    z, cand = jax.nn.sigmoid(x @ w[:, :4] + b[:4]), x @ w[:, 4:] + b[4:]
    np.testing.assert_allclose(new, (1 - z) * h + z * cand, rtol=1e-6)
    np.testing.assert_array_equal(new, out)
    assert MINGRU.states == ("h",)


def test_help_lists_the_plugins(capsys):
    """``--cell``, ``--learner`` and ``--log`` list the known names (entry points included)
    and ``module:name``."""
    with pytest.raises(SystemExit) as exc:
        table1.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for flag, names in (("--cell", CELL_PLUGINS.names()), ("--learner", LEARNERS),
                        ("--log", SINKS)):
        described = text[text.index(f"{flag} "):][:400]
        assert ", ".join(names) + ", or module:name" in described, described
    assert "lstm, gru, mingru, or module:name" in text


# ------------------------------------------------------------------ bad plug-ins


# An installed entry point whose module does not import.
BROKEN = metadata.EntryPoint("broken", "no_such_plugin_pkg.mod:THING", "cmrl_jax.cells")

KINDS = {  # kind -> (its table, how a config / the command line gives a name)
    "cell": (CELL_PLUGINS, lambda name: dataclasses.replace(TINY, cell=name)),
    "learner": (LEARNER_PLUGINS, lambda name: dataclasses.replace(TINY, learner=name)),
    "sink": (SINK_PLUGINS, lambda name: parse_sinks([name])),
}

EXPECTED = {"cell": "a cmrl_jax.agent.cells.Cell", "learner": "a cmrl_jax.learners.Learner",
            "sink": "a cmrl_jax.results.sinks.SinkKind or a sink factory"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, message", [
    ("transformer", "unknown {kind} 'transformer'; known: {known}; or module:name"),
    ("no_such_plugin_pkg.mod:X", "{kind} no_such_plugin_pkg.mod:X: cannot import "
                                 "'no_such_plugin_pkg.mod' (ModuleNotFoundError: "),
    ("examples.elman_cell:NOPE", "{kind} examples.elman_cell:NOPE: module "
                                 "'examples.elman_cell' has no attribute 'NOPE'"),
    ("examples.elman_cell:__doc__", "{kind} examples.elman_cell:__doc__: "
                                    "examples.elman_cell:__doc__ is a str, not {expected}"),
    ("broken", "{kind} broken: cannot load entry point no_such_plugin_pkg.mod:THING "
               "(ModuleNotFoundError: "),
])
def test_a_bad_plugin_is_one_line(kind, name, message, monkeypatch):
    """Unknown, module absent, attribute absent, of the wrong type, a broken entry point:
    one ConfigError line naming the problem (``--log`` prefixes its own)."""
    table, give = KINDS[kind]
    monkeypatch.setitem(plugins.entry_points(table.group), "broken", BROKEN)
    known = ", ".join(table.names())
    assert "broken" in known
    want = message.format(kind=kind, known=known, expected=EXPECTED[kind])
    with pytest.raises(ConfigError) as exc:
        give(name)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(("--log: " if kind == "sink" else "") + want), text


def test_a_wrong_type_of_each_kind_is_refused():
    """Each kind checks its own type: a cell is not a learner, a learner not a cell, an
    object that is not callable not a sink."""
    with pytest.raises(ConfigError, match=r"is a Cell, not a cmrl_jax.learners.Learner"):
        get_learner(CELL)
    with pytest.raises(ConfigError, match=r"is a type, not a cmrl_jax.agent.cells.Cell"):
        get_cell(LEARNER)
    with pytest.raises(ConfigError, match=r"--log: sink examples.elman_cell:ELMAN: "
                                          r"examples.elman_cell:ELMAN is a Cell, not"):
        parse_sinks([CELL])
    assert isinstance(ELMAN, Cell)


@pytest.mark.parametrize("argv, message", [
    (["--cell", "no_such_plugin_pkg:X"], "error: cell no_such_plugin_pkg:X: cannot import"),
    (["--learner", "examples.plain_a2c:Nope"], "error: learner examples.plain_a2c:Nope: "
                                               "module 'examples.plain_a2c' has no attribute"),
    (["--log", "examples.csv_sink:csv"], "error: --log: sink examples.csv_sink:csv: "
                                         "examples.csv_sink:csv is a module, not"),
    (["--cell", "transformer"], "error: unknown cell 'transformer'; known: lstm, gru, "
                                "mingru; or module:name"),
])
def test_the_commands_refuse_a_bad_plugin_in_one_line(argv, message, tmp_path, capsys):
    """Exit status 2, one line, nothing written, before anything compiles."""
    from tests.test_train import refused_line

    assert refused_line(argv, tmp_path, capsys).startswith(message)
