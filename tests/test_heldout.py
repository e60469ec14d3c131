"""Held-out tasks (``EnvSpec.heldout``): runs are evaluated on the env's training tasks and
on its held-out ones; rows, tables and sinks carry both; envs without them are unchanged."""

import dataclasses
import json

import pytest

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.loop import run_training
from cmrl_jax.registry import register_env
from cmrl_jax.reporting.metrics import curves, render_table, summarize
from cmrl_jax.results.sinks import scalars
from tests.probe_envs import split_doors, split_heldout

register_env("split_doors", split_doors, k_explore=3, horizon=1, architecture="central_lstm",
             heldout=split_heldout)

CFG = TrainConfig(env="split_doors", k_explore=3, hidden=8, batch_size=8, num_updates=4,
                  chunk_updates=2, eval_batches=1, eval_batch_size=64,
                  runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.1),
                        RunSpec("Max-Until-Exploit", 1, 1e-3, 0.1)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heldout")
    return folder, run_training(CFG, folder, progress=False)


def test_rows_carry_the_heldout_evaluation(trained):
    folder, rows = trained
    assert all(set(r.heldout) == {"success", "visited_goals", "explore_return",
                                  "exploit_return"} for r in rows)
    line = json.loads((folder / "eval.jsonl").read_text().splitlines()[0])
    assert "heldout_success" in line and "success" in line
    # the held-out task differs: its success is not the training tasks' in general
    assert any(r.heldout["success"] != r.success for r in rows)
    assert "heldout/success" in scalars(rows[-1])


def test_the_table_shows_training_and_heldout_success(trained):
    _, rows = trained
    summary = summarize(curves(rows)["Max-Until-Exploit"], (0.5,))
    final = [100 * r.heldout["success"] for r in rows if r.update == 4]
    assert summary["heldout_final_success_per_seed"] == pytest.approx(final)
    text = render_table({"Max-Until-Exploit": summary}, {}, (0.5,), "t")
    assert "| Held-out Final |" in text.splitlines()[2]
    assert f"{summary['heldout_final_success_mean']:.1f} ±" in text


def test_an_env_without_heldout_tasks_writes_what_it_wrote(trained):
    """No second program, and a row without held-out results has exactly the keys it had."""
    from cmrl_jax.train import make_trainer

    cfg = dataclasses.replace(CFG, env="monty_hall", env_kwargs=(("num_doors", 4),))
    assert make_trainer(cfg).evaluate_heldout is None  # built, not compiled
    row = dataclasses.replace(trained[1][-1], heldout={})
    assert not any(k.startswith("heldout") for k in row.to_dict())
    text = render_table({"x": summarize(curves([row])["Max-Until-Exploit"], (0.5,))}, {},
                        (0.5,), "t")
    assert "Held-out" not in text
