"""Results folders on object stores (``gs://`` ...): cmrl_jax.results.paths and its users.

GCS cannot be reached from CI, so the object-store code runs for real in two ways:
* ``gs://`` paths through etils.epath and fsspec, with fsspec's ``gcs`` protocol
  served by an in-memory filesystem that, like an object store, has no append
  (config, eval log, runtime record, lock replacement, figure);
* the whole training loop (orbax checkpoints included, which reach GCS through
  tensorstore, not fsspec) on a local folder with ``paths.is_local`` answering
  False, so every results-folder write takes the object-store branch; it must
  write byte for byte what the local branch writes, resume included.
"""

import pathlib
import shutil

import numpy as np
import pytest
from etils import epath
from fsspec.implementations.memory import MemoryFileSystem

from cmrl_jax.config import ConfigError
from cmrl_jax.loop import run_training
from cmrl_jax.reporting.plots import plot_curves
from cmrl_jax.results import paths
from cmrl_jax.results.checkpoint import CONFIG_FILE, claim_folder, write_config
from cmrl_jax.results.eval_log import (
    EVAL_FILE,
    append_rows,
    check_covers,
    cut_torn_tail,
    read_history,
)
from cmrl_jax.results.folder import EvalRow
from cmrl_jax.results.lock import LOCK_FILE, check_writable, writer_lock
from cmrl_jax.results.runtime import RUNTIME_FILE, read_records, record
from experiments import table1
from tests.test_train import TINY


class ObjectStore(MemoryFileSystem):
    """fsspec's in-memory filesystem as ``gs://``, refusing appends as object stores do."""

    protocol = ("gcs", "gs")
    store: dict = {}
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        for prefix in ("gs://", "gcs://"):
            path = path.removeprefix(prefix)
        return MemoryFileSystem._strip_protocol(path)

    def _open(self, path, mode="rb", *args, **kwargs):
        if "a" in mode or "+" in mode:
            raise OSError(f"object stores cannot append or update in place ({mode!r})")
        return super()._open(path, mode, *args, **kwargs)


def _clear_epath_cache() -> None:
    type(epath.backend.fsspec_backend)._get_filesystem.cache_clear()


@pytest.fixture
def gcs(monkeypatch):
    """``gs://`` served by a fresh ``ObjectStore`` for one test."""
    from fsspec.registry import _registry

    ObjectStore.store = {}
    ObjectStore.pseudo_dirs = [""]
    ObjectStore.clear_instance_cache()
    for name in ("gcs", "gs"):
        monkeypatch.setitem(_registry, name, ObjectStore)
    _clear_epath_cache()
    yield ObjectStore
    _clear_epath_cache()


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("out, message", [
    ("gs://bucket/run", "error: --out gs://bucket/run: no gs:// filesystem is installed; "
                        "pip install gcsfs (nothing was changed)"),
    ("ftp://host/run", "error: --out ftp://host/run: unknown scheme ftp://; use a local folder "
                       "or one of gs://, s3://, az://, hf://"),
])
def test_unusable_out_uri_is_one_line_and_exit_2(monkeypatch, capsys, out, message):
    """No filesystem for the scheme: one line, exit 2, before anything is built or compiled."""
    monkeypatch.setattr(paths, "_available", lambda name: False)

    def never(*args, **kwargs):
        raise AssertionError("a mesh or trainer was built for an unusable --out")

    monkeypatch.setattr("cmrl_jax.parallel.program_mesh", never)
    monkeypatch.setattr("cmrl_jax.loop.make_trainer", never)
    with pytest.raises(SystemExit) as e:
        table1.main(["--out", out, "--updates", "2", "--chunk-updates", "1", "--no-progress"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]


@pytest.mark.parametrize("command", ["figure6", "episode_figure"])
@pytest.mark.parametrize("flag", ["--results", "--out"])
def test_figure_commands_read_gs_results_but_write_local_figures(monkeypatch, capsys, tmp_path,
                                                                  command, flag):
    """Figure commands read --results through results_path (gs:// without its filesystem: one
    line, exit 2) and refuse a URI --out (a figure for docs/) instead of making a gs: folder."""
    from experiments import episode_figure, figure6

    monkeypatch.setattr(paths, "_available", lambda name: False)
    main = {"figure6": figure6.main, "episode_figure": episode_figure.main}[command]
    args = {"--results": str(tmp_path / "none"), "--out": str(tmp_path / "fig.png")}
    args[flag] = "gs://bucket/x"
    with pytest.raises(SystemExit) as e:
        main(["--env", "color_choice", *[x for kv in args.items() for x in kv]])
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag} gs://bucket/x: ")
    assert not list(pathlib.Path.cwd().glob("gs:*"))


def test_gs_is_usable_when_its_filesystem_is_installed(gcs):
    """With a ``gcs`` fsspec filesystem present, ``--out gs://`` is an epath.Path."""
    folder = paths.results_path("gs://bucket/run")
    assert isinstance(folder, epath.Path) and str(folder / EVAL_FILE) == "gs://bucket/run/eval.jsonl"
    assert not paths.is_local(folder)
    assert paths.results_path("results/x") == pathlib.Path("results/x")  # local: pathlib, as ever


# --- gs:// through etils.epath and fsspec ------------------------------------------------------

def _rows(update: int, runs: int = 2) -> list[EvalRow]:
    return [EvalRow(update, r, "RL2", "RL2", 0, 1e-3, 0.0, 0.25 * r, 0.0, 0.0, 0.0)
            for r in range(runs)]


def test_results_folder_on_gs(gcs, capsys):
    """Config, lock replacement, eval log (torn tail, coverage), runtime record and figure on a
    ``gs://`` folder whose filesystem refuses appends."""
    top = paths.results_path("gs://bucket/run")
    folder = top / "sequential"
    check_writable(top)
    with writer_lock(top), writer_lock(folder):  # no flock there: nested writers are not refused
        assert claim_folder(folder, "{}") is False
        write_config(folder, "{}")
        assert claim_folder(folder, "{}") is True
        with pytest.raises(ConfigError, match="made by a different config"):
            claim_folder(folder, '{"other": 1}')
        for update in (0, 2, 4):
            append_rows(folder, _rows(update))
        assert [(r.update, r.run) for r in read_history(folder)] == [
            (u, r) for u in (0, 2, 4) for r in (0, 1)]
        check_covers(read_history(folder), 2, 2, 4, folder)
        record(folder, {"backend": "cpu"})
        record(folder, {"backend": "tpu"})
        assert [f["backend"] for f in read_records(folder)] == ["cpu", "tpu"]
        png = plot_curves({"RL2": {"updates": np.arange(3), "success": np.zeros((2, 3)),
                                   "visited": np.zeros((2, 3))}}, top / "table1.png", "t", 3)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: gs://bucket/run is on an object store")
    assert not (top / LOCK_FILE).exists() and not (folder / LOCK_FILE).exists()
    assert check_covers(read_history(folder), 2, 2, 4, folder) is None
    with pytest.raises(ConfigError, match="lacks the evaluation of update 6"):
        check_covers(read_history(folder), 2, 2, 8, folder)

    # A kill can only leave a whole object, but a torn tail (a log copied from a disk) is
    # still dropped by readers and cut by the writer, in one rewrite.
    log = folder / EVAL_FILE
    whole = log.read_text()
    log.write_text(whole + '{"upd')
    assert len(read_history(folder)) == 6
    with writer_lock(folder):
        cut_torn_tail(folder)
        assert log.read_text() == whole
        append_rows(folder, _rows(6))
    assert log.read_text() == whole + "".join(r.to_json() + "\n" for r in _rows(6))

    # A folder on the store that is a file, and a file that is a folder.
    (top / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable(top / "file")
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        check_writable(top, is_file=True)


def test_second_writer_on_gs_is_stopped_before_it_overwrites(gcs):
    """No lock on an object store, but a writer whose log changed under it (another process
    wrote) stops with a ConfigError instead of overwriting the other's rows."""
    folder = paths.results_path("gs://bucket/run/sequential")
    with writer_lock(folder):
        append_rows(folder, _rows(0))
        append_rows(folder, _rows(2))
        other = (folder / EVAL_FILE).read_text() + _rows(4)[0].to_json() + "\n"
        (folder / EVAL_FILE).write_text(other)  # the other process's upload
        with pytest.raises(ConfigError, match="another process is writing"):
            append_rows(folder, _rows(4))
        assert (folder / EVAL_FILE).read_text() == other
    with writer_lock(folder):  # a new session (a rerun) starts from what is there
        append_rows(folder, _rows(6))


# --- the training loop on the object-store branch ---------------------------------------------

@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> pathlib.Path:
    """TINY trained to the end on the local branch (appends, flock)."""
    folder = tmp_path_factory.mktemp("local")
    run_training(TINY, folder, progress=False)
    return folder


@pytest.fixture
def object_store_branch(monkeypatch, tmp_path):
    """Every results-folder write under ``tmp_path`` takes the object-store branch; appending
    or updating a file in place there fails the test."""
    monkeypatch.setattr(paths, "is_local", lambda path: False)
    real_open = pathlib.Path.open

    def open_(self, mode="r", *args, **kwargs):
        if str(self).startswith(str(tmp_path)) and ("a" in mode or "+" in mode):
            raise AssertionError(f"{self} opened with mode {mode!r} on the object-store branch")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_)


def test_object_store_branch_trains_and_resumes_like_the_local_one(local_run, tmp_path,
                                                                   object_store_branch):
    """Stopped after the first chunk and resumed, the object-store branch writes the same
    eval.jsonl and config as an uninterrupted local run, takes no flock, and keeps the
    resume checks: a log that no longer covers the checkpoints is refused."""
    folder = tmp_path / "run"
    run_training(TINY, folder, progress=False, stop_after=2)
    assert max(r.update for r in read_history(folder)) == 2
    run_training(TINY, folder, progress=False)
    for name in (EVAL_FILE, CONFIG_FILE):
        assert (folder / name).read_bytes() == (local_run / name).read_bytes()
    assert len(read_records(folder)) == 2  # one runtime line per session, no append
    assert not (folder / LOCK_FILE).exists()  # the local branch always leaves writer.lock
    assert (local_run / LOCK_FILE).exists()

    # Resume integrity: a shorter log is refused, nothing changed.
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    lines = (broken / EVAL_FILE).read_text().splitlines(keepends=True)
    (broken / EVAL_FILE).write_text("".join(lines[:2]))
    with pytest.raises(ConfigError, match="lacks the evaluation of update 2"):
        run_training(TINY, broken, progress=False)
    assert (broken / EVAL_FILE).read_text() == "".join(lines[:2])
    assert (broken / RUNTIME_FILE).read_text() == (folder / RUNTIME_FILE).read_text()


def test_table_command_on_the_object_store_branch(tmp_path, object_store_branch, capsys):
    """The table command end to end on the object-store branch: one warning line instead of
    the lock, table, figure (drawn locally, then copied) and records; a rerun reprints it."""
    out = tmp_path / "t1"
    argv = ["--methods", "RL2", "--seeds", "1", "--updates", "2", "--chunk-updates", "1",
            "--batch-size", "4", "--no-progress", "--extra", "eval_batches=1",
            "eval_batch_size=8", "--out", str(out)]
    first = table1.main(argv)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("warning:")] == [
        f"warning: {out} is on an object store, which has no writer lock: run one command "
        "at a time on it (only process 0 writes under --distributed)"]
    assert (out / "table1.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.rglob(LOCK_FILE))
    assert len(read_history(out / "sequential")) == 3  # updates 0, 1, 2
    assert table1.main(argv) == first  # resumes a finished folder: the same table
    assert len(read_records(out)) == 2 and len(read_records(out / "sequential")) == 2
