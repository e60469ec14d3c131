"""Orbax checkpoints of the stacked runner state, plus the config as JSON.

A results folder holds ``config.json`` (the exact ``TrainConfig``) and
``checkpoints/<update>/``. A folder is only ever resumed by the config that
made it; any other config is refused (see ``claim_folder``). A folder may be
on an object store (``paths.results_path``): orbax writes ``gs://`` natively.
"""

import contextlib
import errno
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

from cmrl_jax.results import paths
from cmrl_jax.config import ConfigError
from cmrl_jax.results.folder import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    DAMAGED_DIR,
    LOCK_FILE,
    config_difference,
    write_text_atomic,
)

SAVE_LOCK = threading.Lock()
"""Held by every save, from its start until it is on disk, in the whole process.

orbax keeps a save's bookkeeping process-wide, not per ``CheckpointManager``:
``OperationIdGenerator`` has one "current operation id" (a class attribute each
save advances), and ``signaling_client.get_signaling_client()`` is one cached
in-memory key-value store. A save registers its "directory created" signals
under the current id, its commit thread waits for them, and its commit callback
deletes every signal of that id. Two managers saving at once in threads (the
table programs) therefore share an id: one save's write starts when the *other*
save's directory exists (``FileNotFoundError``, ``FileExistsError`` on the tmp
step, zarr ``NOT_FOUND``), or its awaited signal is deleted by the other's
commit and it waits 300 s (``ChainedFuture ... timed out``). One save at a time
per process removes the sharing; saves are small and already waited for, so
nothing is lost. Hold it also to exit without cutting a save short.
"""


def says_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) says the disk or quota is full:
    ``OSError`` ENOSPC / EDQUOT, or a wrapped message (orbax's and tensorstore's
    ``RESOURCE_EXHAUSTED ... No space left on device``)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class _DiskFullRecords(logging.Filter):
    """Drops orbax's log records of a save that failed on a full disk (an ERROR with a
    traceback from its save thread, another from ``wait_until_finished``): the same error
    reaches the caller, whose command says it in one line (exit status 4)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (says_disk_full(error) or "No space left on device" in record.getMessage())


_DISK_FULL_FILTER = _DiskFullRecords()


def claim_folder(folder: Path, config_json: str, what: str = "config") -> bool:
    """Check that ``folder`` is new, empty or was made by ``config_json``.

    Returns True when the folder already belongs to this config (resume).
    Raises ConfigError when it belongs to another config or is not ours. Writes
    nothing; call ``write_config`` once the run really starts.
    """
    path = folder / CONFIG_FILE
    if path.exists():
        saved = path.read_text()
        if saved == config_json:
            return True
        if saved.strip() or _holds_more_than(folder, CONFIG_FILE):
            raise ConfigError(
                f"results folder {folder} was made by a different {what} "
                f"({config_difference(saved, config_json)}); "
                "choose another --out (nothing was changed)"
            )
        return False  # an empty config alone (a write an older version lost): a new folder
    if _holds_more_than(folder):
        raise ConfigError(
            f"results folder {folder} exists, is not empty and has no {CONFIG_FILE}; "
            "choose another --out (nothing was changed)"
        )
    return False


def _holds_more_than(folder: Path, *names: str) -> bool:
    """Whether ``folder`` holds anything but its lock and ``names``."""
    return folder.exists() and any(p.name not in (LOCK_FILE, *names) for p in folder.iterdir())


@contextlib.contextmanager
def _absl_level(level: int | None) -> Iterator[None]:
    """Set the ``absl`` logger (orbax's) to ``level`` for a while; None leaves it."""
    absl = logging.getLogger("absl")
    before = absl.level
    if level is not None:
        absl.setLevel(level)
    try:
        yield
    finally:
        absl.setLevel(before)


def _unused(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``, ... : the first name not taken."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def write_config(folder: Path, config_json: str) -> None:
    """Create ``folder`` and write its config (only if absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    if not path.exists() or not path.read_text().strip():
        write_text_atomic(path, config_json)


class Restored(NamedTuple):
    """What ``Checkpointer.newest_intact`` found."""

    step: int  # update count of the restored state (0: nothing restored)
    state: Any  # the restored state, or ``like`` when step == 0
    damaged: tuple[int, ...]  # newer steps that could not be read


class Checkpointer:
    """Save / restore a runner-state pytree at update counts, keeping the newest few."""

    def __init__(self, folder: Path, max_to_keep: int = 2, read_only: bool = False):
        """Checkpoints live in ``folder / CHECKPOINTS_DIR``.

        ``read_only``: for readers of a folder (figures) that a training run may
        still be writing; it never creates, deletes or saves anything.
        """
        self.folder = paths.results_path(folder)
        self.read_only = read_only
        logging.getLogger("absl").addFilter(_DISK_FULL_FILTER)  # once: a filter is a set
        # orbax warns that read-only means read only, once here and once per manager
        with _absl_level(logging.ERROR if read_only else None):
            self.options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=not read_only, read_only=read_only
            )
        self.manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        """A manager of ``checkpoints/`` (a fresh one forgets what a damaged step taught it)."""
        # orbax's warnings that read-only means read only
        with _absl_level(logging.CRITICAL if self.read_only else None):
            where = self.folder / CHECKPOINTS_DIR
            return ocp.CheckpointManager(
                where.absolute() if paths.is_local(where) else where, options=self.options
            )

    def latest_step(self) -> int | None:
        """Update count of the newest checkpoint, or None."""
        return self.manager.latest_step()

    def newest_intact(self, like) -> Restored:
        """The newest step that restores, with its state; ``Restored(0, like, ())`` if none.

        A step that fails to restore (emptied, truncated or half-written files)
        is damaged; the newer damaged steps are reported, not touched (see
        ``set_aside``). Raises ConfigError when steps exist and none restores.
        """
        damaged = set(self._stray_steps())
        for step in sorted(set(self.manager.all_steps()) - damaged, reverse=True):
            try:
                with _absl_level(logging.CRITICAL):  # orbax logs each unreadable file
                    state = self.restore(step, like)
                return Restored(step, state, tuple(sorted(damaged, reverse=True)))
            except Exception:  # noqa: BLE001 - any failure to read a step means it is damaged
                damaged.add(step)
                # An emptied step switches orbax's manager to a multi-item layout
                # that then fails on every step: start the next try afresh.
                self.manager.close()
                self.manager = self._open()
        if damaged:
            raise ConfigError(
                f"no checkpoint in {self.folder / CHECKPOINTS_DIR} can be read (steps "
                f"{', '.join(map(str, sorted(damaged, reverse=True)))} are damaged); move "
                "them away to "
                "train from update 0, or choose another --out (nothing was changed)"
            )
        return Restored(0, like, ())

    def _stray_steps(self) -> list[int]:
        """Step numbers whose entry in ``checkpoints/`` is not a folder: a plain file where a
        step belongs is damage too (moved aside, never overwritten by the next save)."""
        where = self.folder / CHECKPOINTS_DIR
        if not where.is_dir():
            return []
        return [int(p.name) for p in where.iterdir() if p.name.isdigit() and not p.is_dir()]

    def set_aside(self, steps: tuple[int, ...]) -> None:
        """Move damaged ``steps`` to ``damaged-checkpoints/<step>`` (never deleted).

        Training then continues from an older intact step and saves at their
        numbers again.
        """
        for step in steps:
            aside = self.folder / DAMAGED_DIR / str(step)
            aside.parent.mkdir(exist_ok=True)
            source = self.folder / CHECKPOINTS_DIR / str(step)
            if paths.is_local(source):
                shutil.move(source, _unused(aside))
            else:  # an object store renames by copying, then deleting
                source.rename(_unused(aside))
        if steps:
            self.manager.reload()

    def save(self, step: int, state) -> None:
        """Save ``state`` at ``step`` and wait until it is on disk (one save per process)."""
        with SAVE_LOCK:
            self.manager.save(step, args=ocp.args.StandardSave(state))
            self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """Restore the state saved at ``step`` with the structure of ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        """Finish pending writes."""
        with SAVE_LOCK:
            self.manager.wait_until_finished()
            self.manager.close()
