"""Output sinks never lose a row (issue 32): after kills, signals and resumes, TensorBoard
(read back by TensorBoard's own reader) and W&B (its offline transaction logs read back)
hold every scalar of ``eval.jsonl`` once: no update missing, none twice; a full disk under
the TensorBoard folder is one warning line and nothing else.

The fast tier drives the loop in-process (a lost sink write, rows logged again after a
resume from an older checkpoint); the slow tier kills the table command (kill -9 and
SIGTERM, before and after a sink's write) for an A2C and a PPO program."""

import errno
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from cmrl_jax.commands.tables import program_name
from cmrl_jax.loop import read_history, run_training
from cmrl_jax.results.folder import EvalRow
from cmrl_jax.results.sinks import GuardedSink, TensorBoardSink, WandbSink, scalars
from tests.test_train import TINY

pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
pytest.importorskip("wandb", reason="the wandb extra is not installed")
accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                  reason="the tensorboard extra is not installed")

Series = dict[tuple[int, str], list[tuple[int, float]]]  # (run, tag) -> [(update, value)]


def _want(folder: Path) -> Series:
    """eval.jsonl as the sinks name its scalars, every (run, tag) in update order."""
    out: Series = {}
    for row in read_history(folder):
        for tag, value in scalars(row).items():
            out.setdefault((row.run, tag), []).append((row.update, value))
    return {k: sorted(v) for k, v in out.items()}


def _tensorboard(folder: Path, names: list[str]) -> Series:
    """Every scalar event of each run's folder, through TensorBoard's reader (duplicates kept)."""
    out: Series = {}
    for index, name in enumerate(names):
        events = accumulator.EventAccumulator(str(folder / "tensorboard" / name),
                                              size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out[(index, tag)] = sorted((e.step, e.value) for e in events.Scalars(tag))
    return out


def _wandb(folder: Path) -> Series:
    """Every history item of each run's offline sessions (``wandb.json`` names the runs):
    LevelDB-log records (crc32, length, type; 32 KiB blocks) of W&B ``Record`` protos."""
    import json

    from wandb.proto import wandb_internal_pb2

    out: Series = {}
    for index, run_id in json.loads((folder / "wandb.json").read_text()).items():
        for path in sorted((folder / "wandb").glob(f"offline-run-*-{run_id}*/run-*.wandb")):
            data, pos, pending = path.read_bytes(), 7, b""
            while pos + 7 <= len(data):
                if 32768 - pos % 32768 < 7:
                    pos += 32768 - pos % 32768
                    continue
                crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
                body = data[pos + 7:pos + 7 + length]
                if crc != zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF:
                    break  # a record cut by a kill: nothing after it was written
                pos, pending = pos + 7 + length, pending + body
                if kind in (1, 4):
                    record = wandb_internal_pb2.Record()
                    record.ParseFromString(pending)
                    pending = b""
                    if record.WhichOneof("record_type") == "history":
                        for item in record.history.item:
                            key = item.key or "/".join(item.nested_key)  # eval/x: nested
                            if not key.startswith("_"):
                                out.setdefault((int(index), key), []).append(
                                    (record.history.step.num, json.loads(item.value_json)))
    return {k: sorted(v) for k, v in out.items()}


def _same(got: Series, want: Series, rel: float = 1e-6) -> None:
    """``got`` holds exactly ``want``'s (update, value) pairs: none missing, none twice."""
    assert got.keys() == want.keys(), sorted(set(got) ^ set(want))
    for key, series in want.items():
        assert [u for u, _ in got[key]] == [u for u, _ in series], key  # each update once
        assert [v for _, v in got[key]] == pytest.approx([v for _, v in series], rel=rel), key


# --- fast: in-process --------------------------------------------------------------------


def test_a_resume_sends_each_sink_the_rows_it_lacks_and_never_one_twice(tmp_path, monkeypatch):
    """Session 1 stops after update 2 whose TensorBoard write was lost (as a kill between the
    log's append and the sink's write loses it) and whose W&B records were lost (a kill -9
    leaves only the transaction log's header); session 2 resumes; session 3 resumes from
    update 2 again (the newest checkpoint removed) and recomputes update 4, which both sinks
    already hold. Each sink ends with every scalar of eval.jsonl exactly once."""
    import shutil

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sinks = (TensorBoardSink, WandbSink)
    real = TensorBoardSink.write

    def lose_update_2(self, rows):
        return real(self, [r for r in rows if r.update != 2])

    monkeypatch.setattr(TensorBoardSink, "write", lose_update_2)
    run_training(TINY, tmp_path, progress=False, stop_after=2, sinks=sinks)
    monkeypatch.setattr(TensorBoardSink, "write", real)
    for log in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb"):
        log.write_bytes(log.read_bytes()[:7])
    names = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert 2 not in {u for s in _tensorboard(tmp_path, names).values() for u, _ in s}

    run_training(TINY, tmp_path, progress=False, sinks=sinks)
    shutil.rmtree(tmp_path / "checkpoints" / "4")
    run_training(TINY, tmp_path, progress=False, sinks=sinks)  # update 4 again: not re-sent
    want = _want(tmp_path)
    assert {u for s in want.values() for u, _ in s} == {0, 2, 4}
    _same(_tensorboard(tmp_path, names), want)
    _same(_wandb(tmp_path), want)
    for name in names:  # session 3 had nothing to write: no event file of its own
        assert len(list((tmp_path / "tensorboard" / name).glob("events.out.*"))) == 2
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 4  # nor W&B session


def _row(update: int, run: int = 0) -> EvalRow:
    return EvalRow(update=update, run=run, method="Max-Until-Exploit", label="", seed=0,
                   learning_rate=1e-3, lambda_div=0.0, success=0.5, visited_goals=1.0,
                   explore_return=0.0, exploit_return=0.5, train={"loss": 1.0})


def test_a_full_disk_under_the_tensorboard_folder_is_one_line(tmp_path, monkeypatch, capfd):
    """Event files that hit a full disk (written to /dev/full: the kernel's ENOSPC): one
    warning line on the real stderr, no writer-thread traceback, no complaint at exit; the
    sink is off and later rows are not tried."""
    import tensorboardX.record_writer as record_writer

    monkeypatch.setattr(record_writer, "open", lambda path, mode: open("/dev/full", mode),
                        raising=False)
    sink = GuardedSink("tensorboard", lambda: TensorBoardSink(tmp_path, TINY, ""))
    sink.write([_row(0), _row(0, run=1)])
    sink.write([_row(2)])
    sink.close()
    import gc

    gc.collect()  # an unclosed file would complain here
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"warning: the tensorboard sink failed to write (OSError: [Errno "
                   f"{errno.ENOSPC}] No space left on device); it is off for this session, "
                   "training goes on and eval.jsonl is complete"], err


# --- slow: the table command killed ------------------------------------------------------

# The table command with a fault at the n-th sink write (each sink's write counts): a
# signal to itself just before (the row is in eval.jsonl, not in the sink) or just after.
FAULT = """
import os, runpy, signal, sys
from cmrl_jax.results import sinks
where, at, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
real, calls = sinks.GuardedSink.write, []
def write(self, rows):
    calls.append(1)
    if where == "before" and len(calls) == at:
        os.kill(os.getpid(), sig)
    real(self, rows)
    if where == "after" and len(calls) == at:
        os.kill(os.getpid(), sig)
sinks.GuardedSink.write = write
sys.argv = ["experiments.table1"] + sys.argv[4:]
runpy.run_module("experiments.table1", run_name="__main__", alter_sys=True)
"""
# test_faults.py's table command with its CMRL program only (the same compiled program).
CLI = ["--methods", "Max-Until-Exploit", "--seeds", "1", "--updates", "6", "--chunk-updates",
       "1", "--batch-size", "4", "--no-progress", "--log", "tensorboard,wandb",
       "--extra", "eval_batches=1", "eval_batch_size=8"]
EXIT = {"SIGKILL": -signal.SIGKILL, "SIGTERM": -signal.SIGTERM, "SIGINT": 130}


def _command(folder: Path, learner: str, fault: tuple[str, int, str] | None) -> tuple[int, str]:
    """The table command on ``folder`` (with ``fault``: where, which write, which signal)."""
    # Without WANDB_SERVICE: an in-process W&B run of an earlier test leaves its service's
    # address there, and a child that inherits it logs through the parent's service (whose
    # files are not complete when the child is killed).
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    argv = ["-m", "experiments.table1"] if fault is None else ["-c", FAULT, *map(str, fault)]
    proc = subprocess.run([sys.executable, *argv, *CLI, "--learner", learner, "--out",
                           str(folder)], capture_output=True, text=True, env=env, timeout=600)
    return proc.returncode, proc.stderr


def _subset(got: Series, want: Series) -> set[int]:
    """``got`` holds some of ``want``'s (update, value) pairs, none twice; its updates."""
    wanted = {k: dict(v) for k, v in want.items()}
    for key, series in got.items():
        updates = [u for u, _ in series]
        assert len(set(updates)) == len(updates), (key, updates)
        for u, v in series:
            assert v == pytest.approx(wanted[key][u], rel=1e-6), (key, u)
    return {u for series in got.values() for u, _ in series}


def test_sigterm_finishes_the_wandb_runs(tmp_path):
    """SIGTERM right after W&B got update 1 (writes: 1-2 update 0's, 3-4 update 1's): exit
    -15 as before, and the session's W&B records are on disk (without the handler's finish
    the transaction log holds only its header, as after kill -9)."""
    folder = tmp_path / "out"
    code, err = _command(folder, "a2c", ("after", 4, "SIGTERM"))
    assert code == -signal.SIGTERM, err
    assert "Traceback" not in err, err
    program = folder / "central_lstm"
    want = _want(program)
    assert {0, 1} <= _subset(_wandb(program), want)
    names = [p.name for p in sorted((program / "tensorboard").iterdir())]
    assert {0, 1} <= _subset(_tensorboard(program, names), want)


@pytest.mark.slow  # ten runs of the table command: about two and a half minutes on 2 cores
@pytest.mark.parametrize("learner", ["a2c", "ppo"])
def test_kills_and_signals_lose_no_sink_row(tmp_path, learner):
    """On one folder: kill -9 before a sink's write, SIGTERM before one, kill -9 after one
    (before its checkpoint), SIGINT before one, then a clean resume: TensorBoard and W&B hold
    eval.jsonl's scalars, each update once (one program, two sinks: writes 1-2 are update
    0's). After each signal but kill -9, W&B holds what it was given, nothing twice."""
    folder = tmp_path / "out"
    program = folder / program_name("central_lstm", "lstm", learner)
    for fault in [("before", 3, "SIGKILL"), ("before", 4, "SIGTERM"), ("after", 3, "SIGKILL"),
                  ("before", 4, "SIGINT")]:
        code, err = _command(folder, learner, fault)
        assert code == EXIT[fault[2]], (fault, code, err)
        assert "Traceback" not in err, (fault, err)
        if fault[2] != "SIGKILL":
            assert 0 in _subset(_wandb(program), _want(program)), fault
    code, err = _command(folder, learner, None)
    assert code == 0, err
    want = _want(program)
    assert {u for s in want.values() for u, _ in s} == set(range(7))
    names = [p.name for p in sorted((program / "tensorboard").iterdir())]
    _same(_tensorboard(program, names), want)
    _same(_wandb(program), want)
