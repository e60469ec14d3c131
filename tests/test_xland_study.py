"""The XLand study (``experiments.xland_study``): rows with their own topology and memory size,
its plan at each size (nothing trained), its refusals, and one smoke run (slow: it compiles two
XLand programs).

The XLand tests need the ``xland`` extra (``make install`` has it; CI installs it).
"""

import importlib.util
import json
import os

import pytest

from cmrl_jax.commands.tables import Row, env_steps_per_run, make_plan, program_name

needs_xland = pytest.mark.skipif(importlib.util.find_spec("xminigrid") is None,
                                 reason="the xland extra is not installed: "
                                        "pip install -e '.[xland]'")

META16, META32, CENTRAL16 = ("Max-Until-Exploit (Meta-16)", "Max-Until-Exploit (Meta-32)",
                             "Max-Until-Exploit (Central-16)")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """Benchmarks built offline go to a temporary cache, not the user's (once per module)."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


def test_a_row_may_fix_its_topology_and_memory_size():
    """``Row.architecture`` / ``Row.hidden``: None keeps today's (the table's CMRL topology,
    sequential for RL2 / ERL2); a topology that cannot run the method is refused where the
    table is written; the folder name gets the fixed size."""
    assert Row("ERL2", "ERL2").topology("meta_lstm") == "sequential"
    assert Row("M", "Max-Until-Exploit").topology("central_lstm") == "central_lstm"
    assert Row("M", "Max-Until-Exploit", architecture="meta_lstm").topology(
        "central_lstm") == "meta_lstm"
    for bad, message in ((dict(architecture="sequential"), "cannot run on sequential"),
                         (dict(architecture="ring_lstm"), "unknown architecture"),
                         (dict(hidden=0), "hidden must be >= 1")):
        with pytest.raises(ValueError, match=message):
            Row("M", "Max-Until-Exploit", **bad)
    with pytest.raises(ValueError, match="ERL2 cannot run on meta_lstm"):
        Row("E", "ERL2", architecture="meta_lstm")
    assert program_name("meta_lstm", "lstm", "a2c") == "meta_lstm"  # as every paper table
    assert program_name("meta_lstm", "lstm", "a2c", 32) == "meta_lstm_h32"
    assert program_name("meta_lstm", "gru", "ppo", 16) == "meta_gru_ppo_h16"


def _study(size: str, *argv: str):
    """The study's (spec, TableArgs) at ``size``, as its command line gives them."""
    from cmrl_jax.commands.cli import parse_cli
    from experiments import xland_study

    return xland_study.table_args(parse_cli(xland_study.StudyArgs, ["--size", size, *argv], "t"))


@needs_xland
@pytest.mark.parametrize("size, rates", [("cpu", 2), ("gpu", 4), ("smoke", 2)])
def test_the_plan_matches_memory_and_env_steps(size, rates, tmp_path):
    """Four programs: RL2 + ERL2 (sequential 32), CMRL on Central 16, Meta 16 and Meta 32, each
    row x rate x seed vmapped; every run trains on the same env steps; at the cpu and gpu sizes
    >= 5 seeds and >= 512 evaluation meta-episodes per split."""
    from experiments.xland_study import SIZES

    spec, args = _study(size, "--out", str(tmp_path / "o"))
    plan = make_plan(spec, args)
    progs = dict(plan.programs)
    assert list(progs) == ["sequential", "central_lstm_h16", "meta_lstm_h16", "meta_lstm_h32"]
    shapes = {name: (cfg.architecture, cfg.hidden) for name, cfg in progs.items()}
    assert shapes == {"sequential": ("sequential", 32), "central_lstm_h16": ("central_lstm", 16),
                      "meta_lstm_h16": ("meta_lstm", 16), "meta_lstm_h32": ("meta_lstm", 32)}
    s = SIZES[size]
    assert len(spec.sweep_grid) == rates and args.sweep
    rows = {name: sorted({r.row for r in cfg.runs}) for name, cfg in progs.items()}
    assert rows == {"sequential": ["ERL2", "RL2"], "central_lstm_h16": [CENTRAL16],
                    "meta_lstm_h16": [META16], "meta_lstm_h32": [META32]}
    for name, cfg in progs.items():
        assert len(cfg.runs) == len(rows[name]) * rates * s.seeds
        assert sorted({r.learning_rate for r in cfg.runs}) == sorted(spec.sweep_grid)
        assert {r.seed for r in cfg.runs} == set(range(s.seeds))
        assert (cfg.k_explore, cfg.horizon, cfg.encoder) == (3, 20, "grid")
        assert dict(cfg.env_kwargs)["rules"] == 0 and dict(cfg.env_kwargs)["holdout"] == 0.2
        assert (cfg.entropy_explore_start, cfg.entropy_exploit_start) == (0.05, 0.05)
        assert (cfg.num_updates, cfg.batch_size) == (s.updates, s.batch_size)
        assert cfg.eval_batches * cfg.eval_batch_size == s.eval_episodes
        assert {r.lambda_div for r in cfg.runs} == ({0.0} if name == "sequential" else {0.01})
    steps = {env_steps_per_run(cfg) for cfg in progs.values()}
    assert steps == {s.updates * s.batch_size * 4 * 20}  # (K + 1) x H, every program
    if size != "smoke":
        assert s.seeds >= 5 and s.eval_episodes >= 512
    assert json.loads(plan.experiment_json)["table"] == f"xland_study_{size}"


@needs_xland
def test_the_cpu_size_projection_arithmetic():
    """The module docstring's numbers: 50 runs at the cpu size, 384,000 env steps per run,
    4 evaluations of 512 meta-episodes per split; 100 runs and 20.48 G env steps at gpu."""
    from experiments.xland_study import SIZES

    cpu, gpu = SIZES["cpu"], SIZES["gpu"]
    assert 5 * len(cpu.sweep_grid) * cpu.seeds == 50
    assert cpu.updates * cpu.batch_size * 4 * 20 == 384_000
    assert cpu.updates // cpu.chunk_updates + 1 == 4 and cpu.eval_episodes == 512
    assert 5 * len(gpu.sweep_grid) * gpu.seeds == 100
    assert 100 * gpu.updates * gpu.batch_size * 4 * 20 == 20_480_000_000
    assert gpu.updates // gpu.chunk_updates + 1 == 41 and gpu.eval_episodes == 1024


@needs_xland
def test_the_compute_line_by_hand(tmp_path):
    """Env steps per run and each program's seconds, under the table and per row."""
    from cmrl_jax.commands.experiment import compute_report

    spec, args = _study("cpu", "--out", str(tmp_path / "o"))
    plan = make_plan(spec, args)
    seconds = {name: 100.0 * (i + 1) for i, (name, _) in enumerate(plan.programs)}
    facts = {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu_count": 2}
    line, rows = compute_report(plan.programs, seconds, 1234.0, facts, 2)
    assert line.startswith("Env steps per run: 384,000 (300 updates x 16 meta-episodes x "
                           "(K + 1 = 4) x H = 20;")
    assert "on 1 x cpu (cpu), 2 CPU cores, 2 program(s) at a time" in line
    assert "`sequential/` (RL2, ERL2): 20 runs, 100 s; `central_lstm_h16/` (" in line
    assert line.endswith("process CPU time 1234 s.")
    assert rows["ERL2"] == rows["RL2"]  # one program
    assert rows[META32]["program"] == "meta_lstm_h32" and rows[META32]["program_wall_s"] == 400
    assert rows[META32]["program_env_steps"] == 10 * 384_000


@needs_xland
@pytest.mark.parametrize("argv, message", [
    ([], "Missing"),
    (["--size", "huge"], "invalid choice 'huge'"),
    (["--size", "cpu", "--learning-rate", "1e-3"], "give --no-sweep with it"),
    (["--size", "cpu", "--train.hidden", "64"], "fixes its own (16)"),
    (["--size", "cpu", "--seeds", "0"], "--seeds must be >= 1"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    from experiments import xland_study

    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        xland_study.main([*argv, "--out", str(out)])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines()
           if not line.startswith("XLand-MiniGrid-R1-9x9:")]  # the benchmark's own lines
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@needs_xland
def test_the_sequential_rows_alone_take_any_memory_size(tmp_path):
    """--train.hidden is refused only where a selected row fixes its size; with --no-sweep
    --learning-rate every run trains that rate."""
    spec, args = _study("cpu", "--methods", "RL2", "ERL2", "--train.hidden", "64",
                        "--no-sweep", "--learning-rate", "5e-4", "--out", str(tmp_path / "o"))
    (name, cfg), = make_plan(spec, args).programs
    assert (name, cfg.hidden, len(cfg.runs)) == ("sequential", 64, 10)
    assert {r.learning_rate for r in cfg.runs} == {5e-4}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke size, ERL2 and the Meta-16 row only (two programs, compiled one at a time)."""
    from experiments import xland_study

    out = tmp_path_factory.mktemp("study") / "smoke"
    result = xland_study.main(["--size", "smoke", "--methods", "ERL2", META16, "--jobs", "1",
                               "--no-progress", "--out", str(out)])
    return out, result


@needs_xland
@pytest.mark.slow  # two XLand programs and the neutral baseline compile: minutes on 2 cores
def test_the_smoke_run_writes_the_study_table(smoke):
    out, result = smoke
    text = (out / "table.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert "| Held-out Final | Held-out AuC |" in header
    assert f"P({META16} > ERL2): final success " in text and "held-out AuC" in text
    assert "Env steps per run: 320 (2 updates x 2 meta-episodes x (K + 1 = 4) x H = 20;" in text
    assert "`sequential/` (ERL2): 4 runs, " in text and "`meta_lstm_h16/` (" in text
    table = json.loads((out / "table.json").read_text())
    for row in table.values():
        assert row["seeds"] == 2 and len(row["heldout_auc_per_seed"]) == 2
        assert row["compute"]["env_steps_per_run"] == 320 and row["compute"]["backend"]
        assert row["compute"]["program_wall_s"] > 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert set(sweep) == {"ERL2", META16} and all(len(s["grid"]) == 2 for s in sweep.values())
    assert sorted(os.listdir(out / "meta_lstm_h16"))  # the program's own folder
    assert set(result["methods"]) == {"ERL2", META16}
