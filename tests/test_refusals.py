"""Refusals once a folder has been trained, and Ctrl-C at start-up (issue 19's faults)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--updates", "2", "--chunk-updates", "1", "--seeds", "1", "--batch-size", "4",
        "--methods", "RL2", "--no-progress"]


def _table1(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.table1", *TINY, "--out", str(out),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refusals") / "t1"
    done = _table1(out)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("damage", ["log short", "steps damaged"])
def test_refusal_after_training_is_one_line_and_changes_nothing(trained, tmp_path, damage):
    out = tmp_path / "t1"
    shutil.copytree(trained, out)
    program = out / "sequential"
    log = program / "eval.jsonl"
    if damage == "log deleted":
        log.unlink()
    elif damage == "log short":
        log.write_text(log.read_text().splitlines(keepends=True)[0])
    elif damage == "log corrupt":
        log.write_text("not json\n" + log.read_text())
    else:
        for step in (program / "checkpoints").iterdir():
            for f in step.rglob("*"):
                if f.is_file():
                    f.write_bytes(b"")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "writer.lock"}
    done = _table1(out)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: ") and "nothing was changed" in done.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "writer.lock"}
    assert after == before  # runtime.jsonl included: no line appended


def test_ctrl_c_while_starting_is_exit_130_without_traceback():
    """SIGINT while the command imports (here: right after the experiments package)."""
    code = ("import experiments, os, signal, time\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr and done.stderr.strip().startswith("interrupted")


def test_ctrl_c_during_imports_of_a_real_command(tmp_path):
    """A real start-up: SIGINT 0.5 s into `python -m experiments.table1` (still importing)."""
    proc = subprocess.Popen([sys.executable, "-m", "experiments.table1", *TINY, "--out",
                             str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
