"""Output sinks (``cmrl_jax.results.sinks``): TensorBoard and W&B carry eval.jsonl's scalars,
a failing sink is one warning, unknown sinks and missing extras are refused before anything
compiles."""

import dataclasses
import errno
import json
import struct

import pytest

from cmrl_jax.config import ConfigError
from cmrl_jax.loop import read_history, run_training
from cmrl_jax.results.sinks import SINKS, TensorBoardSink, WandbSink, parse_sinks, scalars
from tests.test_train import TINY

CFG = TINY  # rows at updates 0, 2 and 4 (training metrics from update 2 on), two runs


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The log of CFG trained without sinks: every sink must leave it as it is."""
    folder = tmp_path_factory.mktemp("plain")
    run_training(CFG, folder, progress=False)
    return (folder / "eval.jsonl").read_text()


def _expected(folder) -> dict[tuple[int, str], dict[int, float]]:
    """eval.jsonl as {(run, tag): {update: value}}, tags as the sinks name them."""
    out: dict = {}
    for row in read_history(folder):
        for tag, value in scalars(row).items():
            out.setdefault((row.run, tag), {})[row.update] = value
    return out


def test_tensorboard_event_files_hold_every_scalar_of_the_log(tmp_path, plain):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="the tensorboard extra is not installed")
    run_training(CFG, tmp_path, progress=False, sinks=(TensorBoardSink,))
    assert (tmp_path / "eval.jsonl").read_text() == plain
    want = _expected(tmp_path)
    runs = sorted((tmp_path / "tensorboard").iterdir())
    assert [p.name for p in runs] == [
        "run0-Max-Until-Exploit-seed0-lr0.001", "run1-StDev-Until-Exploit-seed1-lr0.002"]
    got = {}
    for index, logdir in enumerate(runs):
        events = accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            got[(index, tag)] = {e.step: e.value for e in events.Scalars(tag)}
    assert got.keys() == want.keys() and len(want) > 8  # eval/* and train/* per run
    for key, series in want.items():
        assert got[key] == pytest.approx(series, rel=1e-6), key  # TensorBoard keeps float32


def _wandb_history(run_file) -> dict[str, dict[int, float]]:
    """The history of an offline W&B run: its ``.wandb`` file is a header then LevelDB-log
    records (32 KiB blocks; crc32, length, type, data) of ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data, block, out, pending = run_file.read_bytes(), 32768, {}, b""
    pos = 7  # ":W&B", magic 0xBEE1, version
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                step = record.history.step.num
                for item in record.history.item:
                    key = item.key or "/".join(item.nested_key)
                    if not key.startswith("_"):
                        out.setdefault(key, {})[step] = json.loads(item.value_json)
    return out


def test_wandb_offline_run_holds_the_scalars_and_a_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_training(CFG, tmp_path, progress=False, stop_after=2, sinks=(WandbSink,))
    ids = json.loads((tmp_path / "wandb.json").read_text())
    run_training(CFG, tmp_path, progress=False, sinks=(WandbSink,))  # resumed
    assert json.loads((tmp_path / "wandb.json").read_text()) == ids  # the same W&B runs
    want = _expected(tmp_path)
    for index in (0, 1):
        sessions = sorted((tmp_path / "wandb").glob(f"offline-run-*-{ids[str(index)]}*"))
        assert len(sessions) == 2, sessions  # one folder per session, one run id
        got: dict = {}
        for folder in sessions:
            for tag, series in _wandb_history(folder / f"run-{ids[str(index)]}.wandb").items():
                got.setdefault(tag, {}).update(series)
        assert got == {tag: s for (run, tag), s in want.items() if run == index}


def test_wandb_names_the_experiment_method_cell_learner_and_seed(tmp_path):
    """Runs of two tables never share a W&B group; the tags and top-level config name the
    experiment, method, cell, learner and seed, and every TrainConfig field is logged,
    defaults included (issue 33, friction 4)."""
    from cmrl_jax.results.sinks import wandb_names

    cfg = dataclasses.replace(CFG, cell="gru", learner="ppo")
    one = wandb_names(cfg, 1, tmp_path / "table1" / "central_gru_ppo", "central_gru_ppo")
    other = wandb_names(cfg, 1, tmp_path / "table4" / "central_gru_ppo", "central_gru_ppo")
    spec = cfg.runs[1]
    assert one["group"] == "table1/central_gru_ppo" != other["group"]
    assert one["name"].startswith("table1/central_gru_ppo/run1-")
    assert {"table1", spec.row, "cell:gru", "learner:ppo", f"seed:{spec.seed}"} <= \
        set(one["tags"])
    config = one["config"]
    assert (config["experiment"], config["method"], config["cell"], config["learner"],
            config["seed"]) == ("table1", spec.row, "gru", "ppo", spec.seed)
    assert config["program"]["gamma"] == cfg.gamma and "remat" in config["program"]


def test_a_failing_sink_is_one_warning_and_the_log_is_complete(tmp_path, capsys, plain):
    class FullDisk:
        def __init__(self, folder, cfg, label):
            pass

        def write(self, rows):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise AssertionError("a switched-off sink is not closed")

    rows = run_training(CFG, tmp_path / "a", progress=False, sinks=(FullDisk,))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: the FullDisk sink failed to write (OSError: [Errno 28] No space "
                   "left on device); it is off for this session, training goes on and "
                   "eval.jsonl is complete"]
    assert [r.update for r in rows] == [0, 0, 2, 2, 4, 4]
    assert (tmp_path / "a" / "eval.jsonl").read_text() == plain


def test_sink_names_are_checked_before_anything_runs(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())  # extras "present"
    assert parse_sinks(["tensorboard,wandb", "tensorboard"]) == ("tensorboard", "wandb")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"--log: unknown sink 'nosuchsink'; known: "
                                          r"tensorboard, wandb"):
        parse_sinks(["nosuchsink"])
    monkeypatch.setitem(SINKS, "tensorboard",
                        dataclasses.replace(SINKS["tensorboard"],
                                            modules=("tensorboardX", "no_such_module_xyz")))
    with pytest.raises(ConfigError, match=r"--log tensorboard needs the 'tensorboard' extra: "
                                          r"pip install 'cmrl-jax\[tensorboard\]'"):
        parse_sinks(["tensorboard"])


@pytest.mark.parametrize("log", ["nosuchsink", "tensorboard,bogus"])
def test_table_command_refuses_an_unknown_sink_in_one_line(tmp_path, capsys, log):
    from experiments import table1

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        table1.main(["--log", log, "--out", str(out), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --log: unknown sink"), err
    assert not out.exists()
