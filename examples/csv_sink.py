"""An output sink from outside the library: every evaluation row to ``<program>/eval.csv``
(docs/extending.md, "Output sinks").

    python -m experiments.table1 --log examples.csv_sink:CsvSink
"""

import csv
from pathlib import Path

from cmrl_jax.results.sinks import scalars

COLUMNS = ("run", "update", "tag", "value")


class CsvSink:
    """One line per scalar of a row, ``run,update,tag,value`` (tags: ``eval/success``,
    ``train/loss``, ...: the first evaluation has no training metrics yet, so a long table
    keeps one set of columns)."""

    def __init__(self, folder, cfg, label):
        self.path = Path(folder) / "eval.csv"
        self.held: set[tuple[int, int]] = set()  # (run, update) of the rows written
        if self.path.exists():  # a resumed folder: the rows this file already holds
            with self.path.open(newline="") as f:
                self.held = {(int(r["run"]), int(r["update"])) for r in csv.DictReader(f)}

    def write(self, rows):
        """The rows this file does not hold yet, appended."""
        new = [r for r in rows if (r.run, r.update) not in self.held]
        if not new:
            return
        header = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(COLUMNS)
            writer.writerows((r.run, r.update, tag, value) for r in new
                             for tag, value in scalars(r).items())
        self.held.update((r.run, r.update) for r in new)

    resume = write  # every row of eval.jsonl when a session starts: the missing ones

    def close(self):
        """Nothing held open."""
