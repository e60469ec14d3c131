"""One writer per results folder, and output locations checked before any work.

The writer holds an exclusive ``flock`` on ``<folder>/writer.lock`` for its
lifetime. The lock belongs to the open file, so the kernel drops it however
the holder ends (``kill -9`` included): a stale lock never blocks a resume, and
the file itself (which names the last holder's pid) is harmless. Under
multi-host training every process trains but only process 0 writes, so only
process 0 takes the lock (``primary``).

Object stores (``gs://`` ...) have no ``flock`` and no lock that ends with its
holder, so a folder there takes none: one warning line, and ``paths.read_object``
stops a run whose files another process changed (docs/design.md, "Results
folders on object stores").
"""

import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cmrl_jax.results import paths
from cmrl_jax.config import ConfigError
from cmrl_jax.results.folder import LOCK_FILE


def check_writable(path: Path, flag: str = "--out", is_file: bool = False) -> None:
    """Raise ConfigError unless ``path`` (a folder, or a file with ``is_file``) can be written.

    Checks without leaving anything: ``path`` must be of the right kind if it
    exists, and its nearest existing ancestor must be a folder we may write
    into and create a file in (a nameless temporary file, gone when closed:
    root passes permission checks, and /proc grants them but creates
    nothing). On an object store only the kind is
    checked (permissions show at the first write); an unreachable bucket is
    one line too.
    """
    path = paths.results_path(path, flag)
    if not paths.is_local(path):
        _check_object_store(path, flag, is_file)
        return
    if path.exists():
        if is_file and path.is_dir():
            raise ConfigError(f"{flag} {path} is a folder, not a file (nothing was changed)")
        if not is_file and not path.is_dir():
            raise ConfigError(f"{flag} {path} is a file, not a folder (nothing was changed)")
        target = path if not is_file else path.parent
    else:
        target = path.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise ConfigError(f"{flag} {path}: {target} is a file, not a folder "
                              "(nothing was changed)")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {target} is not writable (nothing was changed)")
    try:  # permissions can pass where nothing can be created (/proc, sysfs, root's checks)
        with tempfile.TemporaryFile(dir=target):  # unnamed (O_TMPFILE) or removed at once
            pass
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot create files in {target} "
                          f"({e.strerror or e}); nothing was changed") from None


def _check_object_store(path, flag: str, is_file: bool) -> None:
    """``check_writable`` for an object-store path: right kind if it exists, store reachable."""
    try:
        exists = path.exists()
        folder = exists and path.is_dir()
    except Exception as e:  # noqa: BLE001 - any failure to reach the store (auth, network)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{flag} {path}: cannot reach it ({first}); nothing was changed") \
            from None
    if exists and is_file and folder:
        raise ConfigError(f"{flag} {path} is a folder, not a file (nothing was changed)")
    if exists and not is_file and not folder:
        raise ConfigError(f"{flag} {path} is a file, not a folder (nothing was changed)")


_WARNED: set[str] = set()  # object-store folders warned about (a table's and its programs')


def _object_store_session(folder, flag: str) -> None:
    """What replaces the lock on an object store: the folder, one warning, a fresh session."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {folder}: cannot write there ({e})") from None
    paths.forget_writes(folder)
    text = os.fspath(folder).rstrip("/")
    if not any(text == w or text.startswith(w + "/") for w in list(_WARNED)):
        _WARNED.add(text)
        print(f"warning: {text} is on an object store, which has no writer lock: run one "
              "command at a time on it (only process 0 writes under --distributed)",
              file=sys.stderr, flush=True)


def _holder(lock_path: Path) -> str:
    """Who holds the lock, as its file says (it may be mid-write: then unknown)."""
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def writer_lock(folder: Path, primary: bool = True, flag: str = "--out") -> Iterator[None]:
    """Create ``folder`` if needed and hold its writer lock for the ``with`` block.

    Raises ConfigError (one line, naming the holder's pid) when another live
    process holds it, or when the folder cannot be created; a refused caller
    has written nothing. ``primary=False`` (processes other than 0 of a
    multi-host run, which never write) takes no lock. A folder on an object store
    takes none either (see the module's docstring).
    """
    if not primary:
        yield
        return
    folder = paths.results_path(folder, flag)
    if not paths.is_local(folder):
        _object_store_session(folder, flag)
        yield
        return
    lock_path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"{flag} {folder}: cannot write there ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"results folder {folder} is being written by {_holder(lock_path)}; "
                "wait for it to end or choose another --out (nothing was changed)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
