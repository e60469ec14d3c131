"""Continuing a results folder to another length (``--updates`` on a folder that holds a run).

A folder belongs to one config (``config.json``); a command with another config is refused.
One difference is allowed where the schedule allows it: the number of updates (and, with
it, the entropy anneal's fraction, so the anneal can keep its length in updates). The
entropy bonuses anneal over the first ``entropy_anneal_fraction x num_updates`` updates
(``train.make_train``), so a new length moves the anneal's end; continuing is allowed when
the bonuses from the folder's newest update on are what the saved schedule gave there:

- the saved anneal had ended by then and the new one has too (the bonuses stay at their
  end values), or
- both anneals end at the same update (the anneal goes on as it was), or
- nothing was trained yet (no checkpoint).

Otherwise the bonus would jump at the resumed update: refused in one line that names the
fraction which keeps the anneal's length. Fewer updates than the folder holds: refused.

A continuation rewrites ``config.json`` only after appending the saved one, whole, to
``continued.jsonl`` (nothing saved is lost), and says in one line what changes.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmrl_jax.errors import ConfigError

CONTINUED_FILE = "continued.jsonl"
# What a continuation may change: the program config's and the table command's names
LENGTH_KEYS = ("num_updates", "updates")
ANNEAL_KEY = "entropy_anneal_fraction"


@dataclass(frozen=True)
class Continuation:
    """A folder's run continued to another length (``program_continuation``)."""

    saved_json: str  # the folder's config.json as it is
    wanted_json: str  # the config it continues under
    done: int | None  # updates the folder holds (its newest checkpoint); None: a table's
    line: str  # what changes, for the user (one line; empty for a table's folder)

    def record(self, folder: Path) -> None:
        """Append the saved config to ``continued.jsonl``, then write the new config."""
        from cmrl_jax.results import paths
        from cmrl_jax.results.folder import CONFIG_FILE, write_text_atomic

        entry = {"saved_config": json.loads(self.saved_json)}
        if self.done is not None:
            entry["at_update"] = self.done
        paths.append_text(folder / CONTINUED_FILE, json.dumps(entry, sort_keys=True) + "\n")
        write_text_atomic(folder / CONFIG_FILE, self.wanted_json)


def _differing(saved: dict, wanted: dict) -> set[str]:
    """Top-level keys whose values differ (absent counts as a value)."""
    missing = object()
    return {k for k in {*saved, *wanted} if saved.get(k, missing) != wanted.get(k, missing)}


def only_length_differs(saved_json: str, wanted_json: str, group: str | None = None) -> bool:
    """Whether two configs differ in their length (``LENGTH_KEYS``) and nothing but it and
    the anneal fraction (at top level, or inside the table command's ``group`` of typed
    options, where the command line records it)."""
    try:
        saved, wanted = json.loads(saved_json), json.loads(wanted_json)
    except json.JSONDecodeError:
        return False
    if not isinstance(saved, dict) or not isinstance(wanted, dict):
        return False
    keys = _differing(saved, wanted)
    if group is not None and group in keys:
        inner = (saved.get(group) or {}, wanted.get(group) or {})
        if isinstance(inner[0], dict) and isinstance(inner[1], dict) and \
                _differing(*inner) <= {ANNEAL_KEY}:
            keys.discard(group)
    return bool(keys & set(LENGTH_KEYS)) and keys <= {*LENGTH_KEYS, ANNEAL_KEY}


def anneal_end(config: dict[str, Any]) -> float:
    """The update at which a program config's entropy anneal ends."""
    from cmrl_jax.config import TrainConfig

    fraction = config.get(ANNEAL_KEY, TrainConfig.entropy_anneal_fraction)
    return fraction * config["num_updates"]


def program_continuation(saved_json: str, wanted_json: str, done: int) -> Continuation:
    """The continuation of a program folder holding ``done`` updates of ``saved_json``'s run
    under ``wanted_json`` (configs differing in length only: ``only_length_differs``);
    ConfigError (one line) where the schedule does not allow it."""
    saved, wanted = json.loads(saved_json), json.loads(wanted_json)
    n_saved, n_wanted = saved["num_updates"], wanted["num_updates"]
    if n_wanted <= done:
        raise ConfigError(f"the folder holds {done} updates of a {n_saved}-update run; "
                          f"continuing needs --updates > {done} (got {n_wanted})")
    end_saved, end_wanted = anneal_end(saved), anneal_end(wanted)
    if done == 0:
        what = "nothing was trained yet (the new length's schedule from the start)"
    elif end_saved <= done and end_wanted <= done:
        what = (f"the entropy bonuses stay at their end values (the anneal ended at update "
                f"{end_saved:g})")
    elif end_saved == end_wanted:
        what = f"the entropy anneal goes on to update {end_saved:g} as before"
    else:
        keep = end_saved / n_wanted
        raise ConfigError(
            f"cannot continue a {n_saved}-update run to {n_wanted} updates from update "
            f"{done}: its entropy anneal ends at update {end_saved:g}, the new length's at "
            f"{end_wanted:g}, so the bonuses would change at update {done}; "
            f"--train.entropy-anneal-fraction {keep:.6g} keeps it (nothing was changed)")
    line = f"continuing from update {done} of {n_saved} to {n_wanted}: {what}"
    return Continuation(saved_json, wanted_json, done, line)


def saved_updates(folder: Path) -> int:
    """Updates a program folder holds: its newest checkpoint's (0 if none)."""
    from cmrl_jax.results.checkpoint import Checkpointer

    return Checkpointer(folder, read_only=True).latest_step() or 0


def claim_or_continue(folder: Path, config_json: str, *, what: str = "config",
                      group: str | None = None, program: bool = True) -> Continuation | None:
    """``checkpoint.claim_folder``, except that a folder whose config differs from
    ``config_json`` in its length only (``only_length_differs``; ``group``: the table
    command's typed options) is continued: its ``Continuation`` (``program``: checked
    against the folder's newest checkpoint, ``program_continuation``; a table's folder:
    its programs decide). None: a new folder or a resume. Reads only."""
    from cmrl_jax.results.checkpoint import claim_folder
    from cmrl_jax.results.folder import CONFIG_FILE

    path = folder / CONFIG_FILE
    saved = path.read_text() if path.exists() else ""
    if saved and only_length_differs(saved, config_json, group):
        if not program:
            return Continuation(saved, config_json, None, "")
        return program_continuation(saved, config_json, saved_updates(folder))
    claim_folder(folder, config_json, what)
    return None
