"""Issue 32's fault cases not covered elsewhere: a kill -9 in the table command's final writes
(table.md, table.json, the figure), SIGINT (twice) during a checkpoint write, ``--log
tensorboard`` with PPO and with XLand, SIGINT while XLand compiles, two processes building the
XLand benchmark cache at once, the cache on a read-only folder and a full disk, and
``--extra`` refusing the command's own size flags.

The fast tier runs in-process (and the two cache builders as two small processes, no JAX);
the slow tier runs the table command in subprocesses that signal themselves at an exact
point (a hook script, as ``tests/test_sink_faults.py`` does)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmrl_jax.results.folder import temporaries, write_table
from cmrl_jax_envs import xland_benchmarks as xb  # NumPy only
from experiments import table1
from tests.test_defects_i32 import _refused

try:
    from cmrl_jax_envs import xland
except ImportError:  # the xland extra (xminigrid) is not installed
    xland = None

needs_xland = pytest.mark.skipif(xland is None, reason="the xland extra is not installed")

# The table command of tests/test_sink_faults.py without its sinks (the same compiled program).
CLI = ["--methods", "Max-Until-Exploit", "--seeds", "1", "--updates", "6", "--chunk-updates",
       "1", "--batch-size", "4", "--no-progress", "--extra", "eval_batches=1", "eval_batch_size=8"]
PROGRAM = "central_lstm"
PPO_PROGRAM = "central_lstm_ppo"  # a program's folder names its learner (tables.program_name)
ENV = "xland:XLand-MiniGrid-R1-9x9"
# tests/test_xland.py's tiny XLand command (the same compiled program).
XLAND_CLI = ["--env", ENV, "--env-option", "num_rulesets=16", "--updates", "2", "--chunk-updates",
             "2", "--seeds", "1", "--batch-size", "4", "--horizon", "5", "--k-explore", "2",
             "--hidden", "8", "--methods", "ERL2", "--subepisode-start", "fresh", "--extra",
             "eval_batches=1", "eval_batch_size=4", "--no-progress"]
INTERRUPTED = "interrupted: run the same command again to resume"


def _stray(folder: Path) -> list[str]:
    """Temporary files and folders anywhere under ``folder`` (ours, orbax's, the cache's)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if "tmp" in p.name or (p.name.startswith(".") and p.suffix == ".png"))


# --- fast: --extra and the command's size flags ---------------------------------------------


@pytest.mark.parametrize("key, flag", [("batch_size", "--batch-size"),
                                       ("num_updates", "--updates"),
                                       ("chunk_updates", "--chunk-updates")])
def test_extra_refuses_the_commands_own_size_flags(tmp_path, capsys, key, flag):
    """``--extra batch_size=N`` was accepted, then overwritten by ``--batch-size`` in silence:
    refused in one line naming the flag, before anything is written."""
    out = tmp_path / "out"
    line = _refused(table1.main, [*CLI, "--extra", f"{key}=8", "--out", str(out)], capsys)
    assert line == f"error: --extra {key}=... is the command's {flag}: give that instead", line
    assert not out.exists()


# --- fast: the final writes leave whole files, a killed one's temporary is removed ----------


def test_final_writes_remove_what_a_killed_writer_left(tmp_path):
    """A kill -9 between a final write's temporary file and its rename leaves that temporary
    (the target stays as it was): the next write of the table removes it, and of the
    figure's, and nothing else of the folder (a user's file of a similar name stays)."""
    left = [".table.md.k2j_9x0a.tmp", ".table.json.abcdefgh.tmp", ".sweep.json.01234567.tmp",
            ".table1.q1w2e3r4.png"]
    kept = [".table.md.notes", "table1.png.tmp", ".table1.png", "notes.tmp", ".table2.abcdefgh.png"]
    for name in left + kept:
        (tmp_path / name).write_text("half")
    (tmp_path / "table.md").write_text("the old table\n")
    assert [p.name for p in temporaries(tmp_path, "table.md")] == [left[0]]
    assert [p.name for p in temporaries(tmp_path, "table1.png", ".png")] == [left[3]]
    md, js = write_table(tmp_path, "table1", "| a |\n", {"x": 1.0})
    assert md.read_text() == "| a |\n" and json.loads(js.read_text()) == {"x": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["table.md", "table.json"])


# --- fast: the XLand benchmark cache ---------------------------------------------------------


# Build the caches of 2000..2007 rulesets, starting at time argv[1] (both builders at once).
BUILDER = """
import json, sys, time
from cmrl_jax_envs import xland_benchmarks as xb
while time.time() < float(sys.argv[1]):
    time.sleep(0.001)
print(json.dumps([(xb.digest(b), note) for b, _, note in
                  (xb.cached_rulesets(n, 0, 1, 2) for n in range(2000, 2008))]))
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh benchmark cache and a process that has said nothing yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if xland is not None:
        monkeypatch.setattr(xland, "_SAID", set())
    return tmp_path / "cache" / "cmrl_jax" / "xland"


def test_two_processes_building_the_cache_at_once_leave_one_whole_cache(cache):
    """Two processes build the same eight caches at the same moment: both succeed with the
    rulesets of the build and no note, each cache file is whole, no temporary is left."""
    start = str(time.time() + 1.0)  # both imported by then (numpy only: 0.2 s)
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, start], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    want = [[xb.digest(xb.build_benchmark(n)), None] for n in range(2000, 2008)]
    assert [json.loads(out) for out, _ in results] == [want, want]
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        xb.cache_path(n, 0, 1, 2).name for n in range(2000, 2008))
    for n in range(2000, 2008):
        assert xb.digest(xb.load_benchmark(xb.cache_path(n, 0, 1, 2))) == want[n - 2000][0]


def test_a_killed_builders_temporary_is_removed_a_live_ones_kept(cache):
    """A builder killed mid-write leaves ``<cache>.tmp<pid>-<hex>``: the next build removes it
    (its process is gone); a live writer's temporary stays."""
    path = xb.cache_path(24, 0, 1, 2)
    path.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (path.parent / f"{path.name}.tmp{dead.pid}-0123abcd").write_bytes(b"BZh9half")
    live = path.parent / f"{path.name}.tmp1-89abcdef"  # pid 1 is always alive
    live.write_bytes(b"BZh9")
    _, got, note = xb.cached_rulesets(24, 0, 1, 2)
    assert got == path and note is None
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, live.name])


@needs_xland
@pytest.mark.parametrize("fault", ["read-only folder", "full disk"])
def test_the_cache_on_a_read_only_folder_or_full_disk_is_one_line(cache, capsys, monkeypatch,
                                                                  fault):
    """The cache cannot be written: the env is made from the rulesets built in memory (the
    cached ones would be identical), said in one line after the usual one; nothing is left in
    the folder, and the next run says the same (never an error: the cache is disposable)."""
    import numpy as np

    from cmrl_jax.registry import make_env

    path = xb.cache_path(32, 0, 1, 2)
    path.parent.mkdir(parents=True)
    if fault == "read-only folder":
        path.parent.chmod(0o555)
        probe = path.parent / "probe"
        try:
            probe.touch()  # root: permissions do not stop it; the kernel's refusal, simulated
            probe.unlink()
            import bz2

            def refuse(name, mode="rb", *args, **kwargs):
                if "w" in mode:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
                return bz2.open(name, mode, *args, **kwargs)

            monkeypatch.setattr(xb, "bz2", type("bz2", (), {"open": staticmethod(refuse)}))
        except PermissionError:
            pass
        reason = os.strerror(errno.EACCES)
    else:  # the temporary file is the kernel's full device: its writes fail with ENOSPC
        monkeypatch.setattr(xb.secrets, "token_hex", lambda n: "f" * 2 * n)
        (path.parent / f"{path.name}.tmp{os.getpid()}-ffffffff").symlink_to("/dev/full")
        reason = os.strerror(errno.ENOSPC)
    try:
        for _ in range(2):
            _, params = make_env(ENV, num_rulesets=32, holdout=0.0)
            monkeypatch.setattr(xland, "_SAID", set())
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 2 and err[0].endswith(f"built offline (seed 0, 1 rule(s), "
                                                     f"2 distractor(s)): {path}"), err
            assert err[1] == (f"XLand-MiniGrid-R1-9x9: the benchmark cache {path} could not be "
                              f"written ({reason}); using the rulesets built in memory"), err
            np.testing.assert_array_equal(np.asarray(params.goals), xland.split_rulesets(
                xb.build_benchmark(32), 0.0, 0, "train")["goals"])
            assert list(path.parent.iterdir()) == []
            if fault == "full disk":  # the next run's temporary: the full device again
                (path.parent / f"{path.name}.tmp{os.getpid()}-ffffffff").symlink_to("/dev/full")
    finally:
        path.parent.chmod(0o755)


# --- slow: the table command, signalled at an exact point -----------------------------------

# The table command with a fault (argv[1]) injected; the command's argv follows.
#   replace:<file>   kill -9 at the rename of <file>'s temporary, cut to half first
#   save:<step>      SIGINT twice while checkpoint <step> is being written
#   compile          SIGINT at the first compile in a training thread
#   cache            SIGINT while the XLand benchmark cache is being written
HOOK = """
import os, runpy, signal, sys, threading, time
fault = sys.argv[1]
if fault.startswith("replace:"):
    real_replace, target = os.replace, fault.split(":", 1)[1]
    def replace(src, dst, *args, **kwargs):
        if os.path.basename(str(dst)) == target:
            with open(src, "r+b") as f:
                f.truncate(os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif fault.startswith("save:"):
    import orbax.checkpoint as ocp
    real_save, step = ocp.CheckpointManager.save, int(fault.split(":")[1])
    def save(self, at, *args, **kwargs):
        out = real_save(self, at, *args, **kwargs)  # started; its commit runs on
        if at == step:
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
        return out
    ocp.CheckpointManager.save = save
elif fault == "compile":
    import jax.monitoring
    sent = []
    def compiling(event, *args, **kwargs):
        if not sent and threading.current_thread() is not threading.main_thread():
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
    jax.monitoring.register_event_listener(compiling)
    jax.monitoring.register_event_duration_secs_listener(compiling)
elif fault == "cache":
    from cmrl_jax_envs import xland_benchmarks as xb
    real_dump = xb.pickle.dump
    def dump(*args, **kwargs):
        real_dump(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    xb.pickle = type("pickle", (), {"dump": staticmethod(dump), "load": xb.pickle.load,
                                    "UnpicklingError": xb.pickle.UnpicklingError})
module = sys.argv[2]
sys.argv = [module] + sys.argv[3:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _command(folder: Path, argv: list[str], fault: str | None = None,
             module: str = "experiments.table1", env: dict | None = None) -> tuple[int, str]:
    """The command on ``folder`` (with ``fault``, see ``HOOK``): exit status and stderr."""
    command = ["-m", module] if fault is None else ["-c", HOOK, fault, module]
    # SIGINT handled as in a terminal (a runner started with `cmd &` ignores it, and exec keeps
    # an ignored signal ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, *command, *argv, "--out", str(folder)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **(env or {})))
    finally:
        signal.signal(signal.SIGINT, previous)
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def _tensorboard_holds_the_log(program: Path) -> None:
    """TensorBoard's reader finds every scalar of ``eval.jsonl``, each update once."""
    sink_faults = pytest.importorskip("tests.test_sink_faults")
    names = sorted(p.name for p in (program / "tensorboard").iterdir())
    want = sink_faults._want(program)
    assert want
    sink_faults._same(sink_faults._tensorboard(program, names), want)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The PPO table command with ``--log tensorboard``, uninterrupted."""
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    folder = tmp_path_factory.mktemp("reference") / "out"
    code, err = _command(folder, [*CLI, "--learner", "ppo", "--log", "tensorboard"])
    assert code == 0, err
    return folder


def _same_outcome(folder: Path, reference: Path) -> None:
    """The table, its JSON, the figure and the eval log equal the uninterrupted run's."""
    for name in ("table.md", "table.json", "table1.png", f"{PPO_PROGRAM}/eval.jsonl"):
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.slow  # one PPO run of the table command (the fixture), shared by the tests below
def test_log_tensorboard_with_ppo(reference):
    """``--learner ppo --log tensorboard``: the event files hold eval.jsonl's scalars."""
    _tensorboard_holds_the_log(reference / PPO_PROGRAM)


@pytest.mark.slow  # two runs of the table command
def test_sigint_twice_during_a_checkpoint_write_keeps_it_whole_and_resumes(reference,
                                                                            tmp_path):
    """Ctrl-C twice while checkpoint 3 is being written: exit 130 once it is on disk, one line,
    no traceback (the second Ctrl-C does not cut the wait short); checkpoint 3 is whole (no
    temporary step) and the resume ends byte-identical to the uninterrupted run, TensorBoard
    included."""
    folder = tmp_path / "out"
    argv = [*CLI, "--learner", "ppo", "--log", "tensorboard"]
    code, err = _command(folder, argv, "save:3")
    assert code == 130, err
    assert err.strip().splitlines() == [INTERRUPTED], err
    checkpoints = folder / PPO_PROGRAM / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["2", "3"]
    assert _stray(folder) == []
    code, err = _command(folder, argv)
    assert code == 0, err
    _same_outcome(folder, reference)
    _tensorboard_holds_the_log(folder / PPO_PROGRAM)


@pytest.mark.slow  # four runs of the table command on a finished folder
def test_kill_9_in_the_final_writes_leaves_whole_files_and_a_rerun_writes_them(reference,
                                                                                tmp_path):
    """kill -9 at the rename of table.json, of the figure, then of table.md (each temporary
    cut to half first): every file there is whole (absent, or as the last run left it), the
    folder resumes, and a rerun writes the three whole, equal to the uninterrupted run's, and
    removes the killed writers' temporaries."""
    folder = tmp_path / "out"
    shutil.copytree(reference, folder)
    for name in ("table.md", "table.json", "table1.png"):
        (folder / name).unlink()
    argv = [*CLI, "--learner", "ppo"]
    expected = {"table.json": ["table.md"], "table1.png": ["table.json", "table.md"],
                "table.md": ["table.json", "table.md"]}
    for target, whole in expected.items():
        code, err = _command(folder, argv, f"replace:{target}")
        assert code == -signal.SIGKILL, (target, err)
        tops = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert [n for n in tops if n.startswith("table")] == whole, (target, tops)
        for name in whole:
            assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
        assert [p.name for p in temporaries(folder, target, ".png" if target.endswith(".png")
                                             else ".tmp")], target  # the killed write's
    code, err = _command(folder, argv)
    assert code == 0, err
    _same_outcome(folder, reference)
    assert _stray(folder) == []


@needs_xland
@pytest.mark.slow  # XLand's compile: a minute or more on 2 cores without the compile cache
def test_sigint_while_xland_compiles_then_resume_with_tensorboard(tmp_path):
    """XLand: Ctrl-C while its benchmark cache is written (before training: one line, exit
    130), then while its program compiles (one line after the env's note, exit 130): no
    traceback, no half-written file in the results folder nor in the cache (the first
    interrupt's temporary cache file is removed by the next build); the rerun with ``--log
    tensorboard`` trains and TensorBoard holds eval.jsonl's scalars (``--log`` with XLand)."""
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    folder, cache = tmp_path / "out", tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    code, err = _command(folder, XLAND_CLI, "cache", "experiments.train", env)
    assert code == 130, err
    assert err.strip().splitlines() == [
        "interrupted before training started; nothing was changed"], err
    assert not folder.exists()
    cache_files = list((cache / "cmrl_jax" / "xland").iterdir())
    assert len(cache_files) == 1 and ".tmp" in cache_files[0].name  # the killed write's
    code, err = _command(folder, XLAND_CLI, "compile", "experiments.train", env)
    assert code == 130, err
    lines = [line for line in err.strip().splitlines() if line]
    path = xb.cache_path(16, 0, 1, 2)
    path = cache / path.relative_to(path.parents[2])
    assert lines == [f"XLand-MiniGrid-R1-9x9: no benchmark_path given; using 16 rulesets "
                     f"built offline (seed 0, 1 rule(s), 2 distractor(s)): {path}",
                     "XLand-MiniGrid-R1-9x9: held out by goals (holdout 0.2, seed 0): 1 of 16 "
                     "rulesets, 1 of 15 goals (0 also trained on), 0 duplicate ruleset(s) "
                     "dropped",
                     INTERRUPTED], err
    assert [p.name for p in (cache / "cmrl_jax" / "xland").iterdir()] == [path.name]
    assert xb.digest(xb.load_benchmark(path)) == xb.digest(xb.build_benchmark(16))
    assert _stray(folder) == []
    assert not list(folder.glob("*/checkpoints/*"))
    assert all(p.stat().st_size == 0 for p in folder.glob("*/eval.jsonl"))
    code, err = _command(folder, [*XLAND_CLI, "--log", "tensorboard"], None,
                         "experiments.train", env)
    assert code == 0, err
    assert (folder / "table.json").is_file()
    _tensorboard_holds_the_log(folder / "sequential")
