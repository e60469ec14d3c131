"""Multi-host on one machine: two processes joined by jax.distributed (gloo CPU collectives).

Each process owns one CPU device; the runs axis spans both, so each process
trains one of the two runs and checkpoints its shard. Only process 0 writes
the config, the eval log, the table and the figure. Killed mid-run, both
resume, and the table equals the one of a single process.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--updates", "8", "--chunk-updates", "1", "--seeds", "2", "--batch-size", "8",
        "--methods", "Max-Until-Exploit", "--no-progress",
        "--extra", "k_explore=3", "eval_batches=1", "eval_batch_size=8"]
TIMEOUT_S = 600


def _free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(out: Path, processes: int) -> list[subprocess.Popen]:
    """Start Table 1 in ``processes`` processes (1: a plain single-process run)."""
    cmd = [sys.executable, "-m", "experiments.table1", *ARGS, "--out", str(out)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    if processes == 1:
        return [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)]
    env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{_free_port()}",
               JAX_NUM_PROCESSES=str(processes))
    return [subprocess.Popen(cmd + ["--distributed"], cwd=ROOT,
                             env=dict(env, JAX_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for i in range(processes)]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    """Wait for every process; their outputs. Fails (killing the rest) if one fails."""
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            assert p.returncode == 0, out[-3000:]
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outputs


@pytest.fixture(scope="module")
def single_table(tmp_path_factory) -> dict:
    """The table of the same command in one process."""
    out = tmp_path_factory.mktemp("single")
    _finish(_launch(out, 1))
    return json.loads((out / "table.json").read_text())


@pytest.mark.slow  # make test-slow (CI runs it after make test)
def test_two_processes_killed_and_resumed_match_one(tmp_path, single_table):
    out = tmp_path / "two"
    procs = _launch(out, 2)
    marker = out / "central_lstm" / "checkpoints" / "2" / "_CHECKPOINT_METADATA"
    deadline = time.monotonic() + TIMEOUT_S
    while not marker.exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            "\n".join(p.communicate()[0][-2000:] for p in procs if p.poll() is not None)
        time.sleep(0.05)
    for p in procs:  # kill both mid-run, as a preempted pod would be
        p.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait()
    assert not (out / "table.json").exists()

    outputs = _finish(_launch(out, 2))  # the same command resumes
    assert "backend cpu: 2 x cpu (2 processes)" in outputs[0]
    assert "backend" not in outputs[1] and "wrote" not in outputs[1]  # process 1 writes nothing
    assert json.loads((out / "table.json").read_text()) == single_table
    program = out / "central_lstm"
    sessions = [json.loads(x) for x in (program / "runtime.jsonl").read_text().splitlines()]
    assert len(sessions) == 2 and all(s["process_count"] == 2 for s in sessions)
    assert sessions[0]["meshes"]["central_lstm"] == {"runs": 2, "data": 1}
    rows = [json.loads(x) for x in (program / "eval.jsonl").read_text().splitlines() if x]
    assert sorted({(r["update"], r["run"]) for r in rows}) == [
        (u, r) for u in range(9) for r in range(2)]
