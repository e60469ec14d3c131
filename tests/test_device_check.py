"""``make device-check`` in its CPU smoke mode: every step runs and the report is written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.device_check import check_backend, fast_tests

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["backend", "physics precision", "table 1", "table costs", "xland throughput",
         "reacher speed", "runs scaling", "peak memory", "fast tests"]


def test_full_mode_refuses_the_cpu():
    """The full check asserts an accelerator; the smoke mode runs anywhere."""
    assert check_backend(smoke=False)["failed"]
    assert not check_backend(smoke=True)["failed"]


def test_tests_cut_by_the_time_limit_say_so():
    """A test step out of time is incomplete, not failed, unless a test failed before."""
    result = fast_tests(smoke=True, left=0.5)
    assert result["complete"] is False and result["failed"] is False
    assert "stopped at the 0 s limit: 0 passed, 0 failed so far" == result["summary"]


@pytest.mark.slow  # make test-slow (CI runs it after make test)
def test_smoke_mode_writes_the_report(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.device_check", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "device_report.json").read_text())
    assert report["smoke"] and report["ok"] and report["facts"]["backend"] == "cpu"
    assert [s["step"] for s in report["steps"]] == STEPS
    steps = {s["step"]: s for s in report["steps"]}
    assert steps.pop("runs scaling")["status"] == "not applicable"  # one CPU device
    assert all(s["status"] == "ok" for s in steps.values())
    assert "passed" in steps["fast tests"]["summary"]
    assert steps["table 1"]["table"]["Max-Until-Exploit"]["updates"] == 4
    assert steps["table costs"]["tables"][0]["programs"][0]["s_per_update"] > 0
    assert {r["backend"] for r in steps["reacher speed"]["rows"]} == {"analytic", "mjx", "C x1"}
    xland = steps["xland throughput"]["rows"]
    assert [r["case"] for r in xland] == ["RL2", "CMRL-central", "CMRL"]
    assert all(r["steps_per_s"] > 0 and r["compile_s"] > 0 for r in xland)
    assert xland[0]["cost_over_rl2"] == 1.0 and xland[2]["cost_over_rl2"] > 0
    errors = steps["physics precision"]["max_abs_angle_error_rad"]
    assert errors["analytic"] < 1e-4 and errors["mjx highest"] < 1e-4
    page = (tmp_path / "device_report.md").read_text()
    assert page.startswith("# Device check: cpu (cpu)") and "| table 1 | ok |" in page
