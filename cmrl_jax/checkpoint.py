"""Orbax checkpoints of the stacked runner state, plus the config as JSON.

A results folder holds ``config.json`` (the exact ``TrainConfig``) and
``checkpoints/<update>/``. A folder is only ever resumed by the config that
made it; any other config is refused (see ``claim_folder``).
"""

import logging
import threading
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from cmrl_jax.config import ConfigError

CONFIG_FILE = "config.json"

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


def claim_folder(folder: Path, config_json: str, what: str = "config") -> bool:
    """Check that ``folder`` is new, empty or was made by ``config_json``.

    Returns True when the folder already belongs to this config (resume).
    Raises ConfigError when it belongs to another config or is not ours. Writes
    nothing; call ``write_config`` once the run really starts.
    """
    path = folder / CONFIG_FILE
    if path.exists():
        if path.read_text() != config_json:
            raise ConfigError(
                f"results folder {folder} was made by a different {what}; "
                "choose another --out (nothing was changed)"
            )
        return True
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(
            f"results folder {folder} exists, is not empty and has no {CONFIG_FILE}; "
            "choose another --out (nothing was changed)"
        )
    return False


def write_config(folder: Path, config_json: str) -> None:
    """Create ``folder`` and write its config (only if absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    if not path.exists():
        path.write_text(config_json)


class Checkpointer:
    """Save / restore a runner-state pytree at update counts, keeping the newest few."""

    def __init__(self, folder: Path, max_to_keep: int = 2, read_only: bool = False):
        """Checkpoints live in ``folder / "checkpoints"``.

        ``read_only``: for readers of a folder (figures) that a training run may
        still be writing; it never creates, deletes or saves anything.
        """
        absl = logging.getLogger("absl")  # orbax's warnings that read-only means read only
        level = absl.level
        if read_only:
            absl.setLevel(logging.ERROR)
        try:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=not read_only, read_only=read_only
            )
            self.manager = ocp.CheckpointManager(
                (folder / "checkpoints").absolute(), options=options
            )
        finally:
            absl.setLevel(level)

    def latest_step(self) -> int | None:
        """Update count of the newest checkpoint, or None."""
        return self.manager.latest_step()

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
