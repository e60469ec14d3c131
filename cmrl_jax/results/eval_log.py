"""The evaluation log ``eval.jsonl``: one JSON row per (update, run), appended between chunks.

Checkpoints can only resume training; the log is the only record of the
curve. So a resumed run checks the log against the checkpoint it restores
(``check_covers``) and refuses a log it cannot trust instead of relabelling
the restored state as update 0. A torn last line (a kill mid-append) is
dropped by readers and cut off by the writer (``cut_torn_tail``); its rows are
evaluated again, deterministically. On an object store (no append) each
append rewrites the whole file in one atomic upload (``paths.append_text``).
"""

import json
from pathlib import Path

from cmrl_jax.results import paths
from cmrl_jax.config import ConfigError
from cmrl_jax.results.folder import EVAL_FILE, EvalRow


def _parse(path: Path) -> list[EvalRow]:
    """Every complete row of ``path`` in file order.

    Rows are appended with their newline in one write, so text after the last
    newline is a torn append: left out here, cut off by ``cut_torn_tail``.
    """
    *lines, _torn = path.read_text().split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(EvalRow.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f"{path} line {number} is not an evaluation row; repair or remove it "
                "(nothing was changed)"
            ) from None
    return rows


def read_history(folder: Path) -> list[EvalRow]:
    """Evaluation rows of a results folder, one per (update, run), in order."""
    path = folder / EVAL_FILE
    if not path.exists():
        return []
    rows, seen = [], set()
    for row in _parse(path):
        if (row.update, row.run) not in seen:
            seen.add((row.update, row.run))
            rows.append(row)
    return rows


def cut_torn_tail(folder: Path) -> None:
    """Cut the log after its last newline, so that appends start on a fresh line."""
    path = folder / EVAL_FILE
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        if not paths.is_local(path):  # no truncate there: rewrite the whole object
            paths.write_object(path, data[:end])
            return
        with path.open("r+b") as f:
            f.truncate(end)


def check_covers(history: list[EvalRow], num_runs: int, chunk: int, step: int,
                 folder: Path) -> None:
    """Raise ConfigError unless the log has every run's row at 0, chunk, ..., ``step``.

    Training resumes from the checkpoint at ``step``; rows before it cannot be
    recomputed from that checkpoint, so a log missing any of them is refused.
    Rows after ``step`` (logged before a save that did not happen) are fine:
    they are recomputed identically and not logged twice.
    """
    if step == 0:  # nothing restored: training starts over and logs update 0
        return
    logged = {(row.update, row.run) for row in history}
    for update in range(0, step + 1, chunk):
        if any((update, run) not in logged for run in range(num_runs)):
            raise ConfigError(
                f"{folder / EVAL_FILE} lacks the evaluation of update {update} but the "
                f"checkpoints reach update {step}; it cannot be rebuilt from them: restore "
                "the log or choose another --out (nothing was changed)"
            )


def append_rows(folder: Path, rows: list[EvalRow]) -> None:
    """Append ``rows`` to the log in one write (on an object store: one whole-file upload)."""
    paths.append_text(folder / EVAL_FILE, "".join(row.to_json() + "\n" for row in rows))
