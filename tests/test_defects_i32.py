"""Issue 32's defects, one test each: PPO's static options bounded (D1) and checked on the
final batch size (D2), a checkpoint write on a full disk is the command's one line (D3),
XLand's option refusals come before any benchmark cache is touched (D6) and a damaged
cache is rebuilt in one line (D8). All in-process and without training (a few seconds)."""

import errno
import logging
import os

import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.commands.cli import parse_cli
from cmrl_jax.commands.tables import TableArgs, make_plan
from cmrl_jax.config import ConfigError
from cmrl_jax.results.checkpoint import Checkpointer, says_disk_full
from experiments import table1


def _refused(main, argv, capsys) -> str:
    """``main(argv)`` exits 2 with one line on stderr; that line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- D1: static options bounded, the bound said --------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--learner-option", "epochs=99999999999999999999"],
     "learner option epochs must be an integer from 1 to 100, got 99999999999999999999"),
    (["--learner-option", "epochs=100000"],
     "learner option epochs must be an integer from 1 to 100, got 100000"),
    (["--ppo.epochs", "0"], "--ppo.epochs"),
    (["--learner-option", "minibatches=99999999999999999999"],
     "learner option minibatches must be an integer from 1 to 4096"),
])
def test_d1_ppo_static_options_are_bounded_before_anything_is_written(tmp_path, capsys, argv,
                                                                      message):
    out = tmp_path / "out"
    line = _refused(table1.main, ["--learner", "ppo", "--out", str(out), "--no-progress",
                                  *argv], capsys)
    assert line.startswith("error: ") and message in line, line
    assert not out.exists()


# --- D2: minibatches checked against the final batch size ----------------------------------


def test_d2_minibatches_are_checked_on_the_final_batch_size(tmp_path, capsys):
    argv = ["--learner", "ppo", "--learner-option", "minibatches=3", "--out", str(tmp_path)]
    plan = make_plan(table1.SPEC, parse_cli(TableArgs, [*argv, "--batch-size", "33"], "t"))
    for _, cfg in plan.programs:
        assert cfg.batch_size == 33 and dict(cfg.learner_options)["minibatches"] == 3
    out = tmp_path / "out"
    line = _refused(table1.main, ["--learner", "ppo", "--batch-size", "32", "--learner-option",
                                  "minibatches=3", "--out", str(out), "--no-progress"], capsys)
    assert line == ("error: learner option minibatches (3) must divide the batch size (32)"), line
    assert not out.exists()


# --- D3: a full disk during a checkpoint write ---------------------------------------------


def test_d3_a_checkpoint_write_on_a_full_disk_logs_nothing(tmp_path, monkeypatch):
    """orbax's commit fails as on a full tmpfs (tensorstore's RESOURCE_EXHAUSTED in the
    background save thread): the error reaches the caller (the command turns it into its
    one line, exit 4) and orbax's two ERROR records with tracebacks are dropped."""
    from orbax.checkpoint._src.serialization import ocdbt_utils

    async def full(*args, **kwargs):
        raise ValueError('RESOURCE_EXHAUSTED: Failed writing: "d/0": Failed to write 512 bytes '
                         "to file 7: No space left on device [os_error_code='28']")

    monkeypatch.setattr(ocdbt_utils, "merge_ocdbt_per_process_files", full)
    records: list[logging.LogRecord] = []
    seen = logging.Handler(logging.ERROR)
    seen.emit = records.append
    absl = logging.getLogger("absl")
    absl.addHandler(seen)
    ckpt = Checkpointer(tmp_path)
    try:
        with pytest.raises(Exception) as exc:  # noqa: PT011 - orbax's own type
            try:
                ckpt.save(1, {"w": jnp.zeros((4,), jnp.float32)})
            finally:
                try:
                    ckpt.close()
                except Exception:  # noqa: BLE001 - the same failure, again at close
                    pass
    finally:
        absl.removeHandler(seen)
    assert says_disk_full(exc.value)
    assert [r.getMessage() for r in records] == []
    assert says_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not says_disk_full(ValueError("RESOURCE_EXHAUSTED: out of memory"))


# --- D6 / D8: XLand options and its benchmark cache -----------------------------------------

xland = pytest.importorskip("cmrl_jax_envs.xland", reason="the xland extra is not installed")
ENV = "xland:XLand-MiniGrid-R1-9x9"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh benchmark cache and a process that has said nothing yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(xland, "_SAID", set())
    return tmp_path / "cache"


@pytest.mark.parametrize("option, message", [
    ("holdout=1.5", "holdout must be in [0, 1), got 1.5"),
    ("holdout=-0.1", "holdout must be in [0, 1), got -0.1"),
    ("holdout=1.0", "holdout must be in [0, 1), got 1.0"),
    ("split=foo", "split must be train or test, got 'foo'"),
    ("num_rulesets=1", "holdout 0.2 of 1 rulesets leaves no held-out ruleset"),
])
def test_d6_xland_refusals_come_before_any_cache_or_output(tmp_path, capsys, cache, option,
                                                           message):
    from experiments import train

    out = tmp_path / "out"
    line = _refused(train.main, ["--env", ENV, "--env-option", option,
                                 "num_rulesets=7" if option != "num_rulesets=1" else "seed=0",
                                 "--out", str(out), "--no-progress", "--updates", "1"], capsys)
    assert line.startswith("error: ") and message in line, line
    assert not cache.exists() and not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "random bytes", "16 rulesets",
                                    "other content", "read-only"])
def test_d8_a_damaged_benchmark_cache_is_rebuilt_in_one_line(cache, capsys, damage):
    from cmrl_jax.registry import make_env
    from cmrl_jax_envs import xland_benchmarks as xb

    want = xb.build_benchmark(32)
    path = xb.cache_path(32, 0, 1, 2)
    if damage == "read-only":  # a file where the cache folder belongs: nothing can be written
        cache.parent.mkdir(exist_ok=True)
        cache.write_text("not a folder")
    else:
        xb.save_benchmark(want, path)
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:100])
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "random bytes":
            path.write_bytes(os.urandom(2048))
        elif damage == "16 rulesets":
            xb.save_benchmark(xb.build_benchmark(16), path)
        else:
            xb.save_benchmark(xb.build_benchmark(32, seed=9), path)
    _, params = make_env(ENV, num_rulesets=32, holdout=0.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith(f"using 32 rulesets built offline (seed 0, 1 rule(s), "
                           f"2 distractor(s)): {path}"), err
    assert len(err) == 2, err
    if damage == "read-only":
        assert err[1] == (f"{ENV.split(':')[1]}: the benchmark cache {path} could not be "
                          "written (Not a directory); using the rulesets built in memory"), err
    else:
        assert err[1].startswith(f"{ENV.split(':')[1]}: the benchmark cache {path} was "
                                 "damaged ("), err
        assert err[1].endswith("); rebuilt it (it is a disposable cache)"), err
        assert xb.digest(xb.load_benchmark(path)) == xb.digest(want)
    np.testing.assert_array_equal(np.asarray(params.goals),  # the build's, shuffled
                                  xland.split_rulesets(want, 0.0, 0, "train")["goals"])
    make_env(ENV, num_rulesets=32, holdout=0.0)  # the rebuilt cache is used as it is
    assert capsys.readouterr().err == ""


def test_d8_two_builders_at_once_leave_one_whole_cache(cache):
    """Two writers of the same cache at once (threads here; processes write the same way):
    every write is whole, both get the same rulesets, and no temporary file is left."""
    from concurrent.futures import ThreadPoolExecutor

    from cmrl_jax_envs import xland_benchmarks as xb

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: xb.cached_rulesets(64, 0, 1, 2), range(8)))
    want = xb.digest(xb.build_benchmark(64))
    assert all(xb.digest(bench) == want and note is None for bench, _, note in got)
    assert [p.name for p in got[0][1].parent.iterdir()] == [got[0][1].name]
    with pytest.raises(ConfigError, match="num_rulesets must be an integer >= 1"):
        xb.cached_rulesets(0, 0, 1, 2)


# The table command whose second checkpoint write finds the disk full (tensorstore's error in
# orbax's commit thread, as on a full tmpfs).
CHECKPOINT_FILLS = """
import runpy, sys
from orbax.checkpoint._src.serialization import ocdbt_utils
real, calls = ocdbt_utils.merge_ocdbt_per_process_files, []
async def merge(*args, **kwargs):
    calls.append(1)
    if len(calls) >= 2:
        raise ValueError('RESOURCE_EXHAUSTED: Failed writing: "d/0": Failed to write 512 '
                         "bytes to file 7: No space left on device [os_error_code='28']")
    return await real(*args, **kwargs)
ocdbt_utils.merge_ocdbt_per_process_files = merge
sys.argv = ["experiments.table1"] + sys.argv[1:]
runpy.run_module("experiments.table1", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow  # one run of the table command
def test_d3_the_command_on_a_disk_full_at_a_checkpoint_says_one_line(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", CHECKPOINT_FILLS, "--methods", "Max-Until-Exploit", "--seeds",
         "1", "--updates", "6", "--chunk-updates", "1", "--batch-size", "4", "--no-progress",
         "--extra", "eval_batches=1", "eval_batch_size=8", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: the disk of {out} is full; what was saved is whole: free space and run the "
        "same command again to resume"], proc.stderr
