"""Continuing a results folder to another length (issue 33, friction 2;
``cmrl_jax.results.continuation``): allowed where the entropy schedule from the folder's
newest update on is unchanged, refused in one line where it is not, and a continued run
equals the run made at the new length from the start."""

import json

import pytest

from cmrl_jax.errors import ConfigError
from cmrl_jax.results.continuation import (
    CONTINUED_FILE,
    only_length_differs,
    program_continuation,
)


def _config(updates: int, fraction: float | None = None, **more) -> str:
    d = {"num_updates": updates, "hidden": 16, **more}
    if fraction is not None:
        d["entropy_anneal_fraction"] = fraction
    return json.dumps(d, sort_keys=True)


def test_only_the_length_and_the_anneal_fraction_may_differ():
    assert only_length_differs(_config(500), _config(750))
    assert only_length_differs(_config(500, 0.4), _config(1000, 0.2))
    assert not only_length_differs(_config(500), _config(500))  # a resume, not a continuation
    assert not only_length_differs(_config(500, 0.4), _config(500, 0.2))  # no new length
    assert not only_length_differs(_config(500), _config(750, hidden=32))
    table = lambda n, frac: json.dumps({"updates": n, "seeds": 3,  # noqa: E731
                                        "train": {} if frac is None else {
                                            "entropy_anneal_fraction": frac}})
    assert only_length_differs(table(500, None), table(750, 0.2), group="train")
    assert not only_length_differs(table(500, None), table(750, 0.2))  # group not named


@pytest.mark.parametrize("saved, wanted, done, says", [
    # the saved anneal (first 40 % of 500: 200) ended, the new one (300) too: stays at end
    (_config(500, 0.4), _config(750, 0.4), 500,
     "continuing from update 500 of 500 to 750: the entropy bonuses stay at their end "
     "values (the anneal ended at update 200)"),
    # an interrupted run: the anneal ends at 600 in both, so it goes on as before
    (_config(1000, 0.6), _config(2000, 0.3), 250,
     "continuing from update 250 of 1000 to 2000: the entropy anneal goes on to update 600 "
     "as before"),
    (_config(1000, 0.6), _config(2000, 0.6), 0,
     "continuing from update 0 of 1000 to 2000: nothing was trained yet"),
])
def test_a_continuation_says_what_changes(saved, wanted, done, says):
    c = program_continuation(saved, wanted, done)
    assert c.line.startswith(says) and c.done == done


@pytest.mark.parametrize("saved, wanted, done, says", [
    # 60 % of 10000 ended at 6000; 60 % of 20000 would restart it at update 10000
    (_config(10_000, 0.6), _config(20_000, 0.6), 10_000,
     "cannot continue a 10000-update run to 20000 updates from update 10000: its entropy "
     "anneal ends at update 6000, the new length's at 12000, so the bonuses would change at "
     "update 10000; --train.entropy-anneal-fraction 0.3 keeps it (nothing was changed)"),
    (_config(500, 0.4), _config(500 - 250, 0.4), 500,
     "the folder holds 500 updates of a 500-update run; continuing needs --updates > 500 "
     "(got 250)"),
])
def test_a_continuation_the_schedule_forbids_is_one_line(saved, wanted, done, says):
    with pytest.raises(ConfigError) as e:
        program_continuation(saved, wanted, done)
    assert str(e.value) == says


TINY = ["--methods", "Max-Until-Exploit", "--seeds", "1", "--chunk-updates", "2",
        "--batch-size", "8", "--no-progress", "--extra", "eval_batches=1",
        "eval_batch_size=16", "num_derangements=1"]


def _rows(folder):
    return [json.loads(line) for line in (folder / "central_lstm" / "eval.jsonl").open()]


def test_a_finished_table_continues_and_equals_the_longer_run(tmp_path, capsys):
    """A 4-update Table 1 folder continued to 8 updates, its anneal kept at 2 updates
    (fraction 0.5 -> 0.25), holds the same evaluation rows as an 8-update run at 0.25 made
    from the start; the saved configs are in continued.jsonl; a continuation the schedule
    forbids is refused in one line with nothing changed."""
    from experiments import table1

    short, whole = tmp_path / "short", tmp_path / "whole"
    table1.main([*TINY, "--updates", "4", "--train.entropy-anneal-fraction", "0.5",
                 "--out", str(short)])
    before = (short / "central_lstm" / "config.json").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # anneal to 8 of 16: it ended at 2
        table1.main([*TINY, "--updates", "16", "--train.entropy-anneal-fraction", "0.5",
                     "--out", str(short)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--train.entropy-anneal-fraction 0.125 keeps it" in err[0], err
    assert (short / "central_lstm" / "config.json").read_text() == before
    assert not (short / "central_lstm" / CONTINUED_FILE).exists()

    table1.main([*TINY, "--updates", "8", "--train.entropy-anneal-fraction", "0.25",
                 "--out", str(short)])
    err = capsys.readouterr().err
    assert "continuing from update 4 of 4 to 8: the entropy bonuses stay at their end values " \
           "(the anneal ended at update 2)" in err, err
    table1.main([*TINY, "--updates", "8", "--train.entropy-anneal-fraction", "0.25",
                 "--out", str(whole)])
    assert _rows(short) == _rows(whole)
    assert [r["update"] for r in _rows(short)] == [0, 2, 4, 6, 8]
    for folder, updates in ((short / "central_lstm", 4), (short, 4)):
        saved = [json.loads(line) for line in (folder / CONTINUED_FILE).open()]
        assert len(saved) == 1
        key = "num_updates" if folder.name == "central_lstm" else "updates"
        assert saved[0]["saved_config"][key] == updates
    assert json.loads((short / "central_lstm" / "config.json").read_text())["num_updates"] == 8
    assert json.loads((short / "table.json").read_text()) == \
        json.loads((whole / "table.json").read_text())
