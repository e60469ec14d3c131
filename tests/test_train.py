"""Training program, checkpoint resume, results folders, and bad input at the CLI."""

import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.loop import read_history, run_training
from cmrl_jax.results.checkpoint import Checkpointer, claim_folder
from experiments import table1

TINY = TrainConfig(
    env_kwargs=(("num_doors", 3),),
    k_explore=3,
    hidden=8,
    batch_size=8,
    num_updates=4,
    chunk_updates=2,
    eval_batches=1,
    eval_batch_size=16,
    runs=(
        RunSpec("Max-Until-Exploit", 0, 1e-3, 0.05),
        RunSpec("StDev-Until-Exploit", 1, 2e-3, 0.1),
    ),
)


def _rows(folder):
    """Evaluation rows without timing-free noise (all fields are deterministic)."""
    return [(r.update, r.run, r.success, r.visited_goals, r.exploit_return)
            for r in read_history(folder)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A tiny run trained in one go."""
    folder = tmp_path_factory.mktemp("straight")
    run_training(TINY, folder, progress=False)
    return folder


def test_resume_equals_uninterrupted(uninterrupted, tmp_path):
    """Stop after the first chunk, resume in a new call: same evaluations and parameters."""
    run_training(TINY, tmp_path, progress=False, stop_after=2)
    assert max(r.update for r in read_history(tmp_path)) == 2
    run_training(TINY, tmp_path, progress=False)
    assert _rows(tmp_path) == _rows(uninterrupted)
    assert [r.update for r in read_history(tmp_path)].count(4) == 2  # one row per run

    from cmrl_jax.train import make_trainer

    like, _ = make_trainer(TINY).init()
    a = Checkpointer(uninterrupted)
    b = Checkpointer(tmp_path)
    try:
        sa, sb = a.restore(4, like), b.restore(4, like)
    finally:
        a.close(), b.close()
    jax.tree.map(np.testing.assert_array_equal, sa.params, sb.params)
    assert int(sa.update[0]) == 4


def test_finished_run_is_not_retrained(uninterrupted):
    """Running a finished folder again changes nothing."""
    before = (uninterrupted / "eval.jsonl").read_text()
    run_training(TINY, uninterrupted, progress=False)
    assert (uninterrupted / "eval.jsonl").read_text() == before


def test_read_only_checkpointer_reads_and_never_writes(uninterrupted, tmp_path):
    """Figure scripts open checkpoints read-only: same newest step, nothing created."""
    ckpt = Checkpointer(uninterrupted, read_only=True)
    try:
        assert ckpt.latest_step() == 4
    finally:
        ckpt.close()
    empty = Checkpointer(tmp_path, read_only=True)
    try:
        assert empty.latest_step() is None
    finally:
        empty.close()
    assert not (tmp_path / "checkpoints").exists()


def test_folder_of_another_config_is_refused(uninterrupted):
    """A different config never touches an existing results folder."""
    other = TINY.__class__(**{**TINY.__dict__, "batch_size": 16})
    before = sorted(p.name for p in uninterrupted.rglob("*"))
    with pytest.raises(ConfigError, match="different"):
        run_training(other, uninterrupted, progress=False)
    assert sorted(p.name for p in uninterrupted.rglob("*")) == before


def test_foreign_nonempty_folder_is_refused(tmp_path):
    """A non-empty folder without our config is not ours."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        claim_folder(tmp_path, TINY.to_json())


def test_config_json_round_trip():
    """The folder's config file rebuilds the same config."""
    assert TrainConfig.from_json(TINY.to_json()) == TINY


def test_a_field_added_later_keeps_older_folders_resumable():
    """``cell`` came after the first folders: at its default it is not written (an older
    config.json still matches), and a GRU config is told apart and round-trips."""
    assert '"cell"' not in TINY.to_json()
    gru = dataclasses.replace(TINY, cell="gru")
    assert '"cell": "gru"' in gru.to_json() and TrainConfig.from_json(gru.to_json()) == gru
    for key in ('"learner"', '"learner_options"'):  # so are the learner's, and the runs'
        assert key not in TINY.to_json()
    ppo = dataclasses.replace(
        TINY, learner="ppo", learner_options=(("epochs", 1), ("minibatches", 2)),
        runs=(dataclasses.replace(TINY.runs[0], learner_options=(("clip", 0.1),)),))
    assert '"learner": "ppo"' in ppo.to_json() and TrainConfig.from_json(ppo.to_json()) == ppo


@pytest.mark.slow
def test_ppo_resume_equals_uninterrupted(tmp_path):
    """The loop does not know its learner: a PPO run stopped after its first chunk and
    resumed evaluates exactly as one trained in one go."""
    ppo = dataclasses.replace(TINY, learner="ppo",
                              learner_options=(("epochs", 2), ("minibatches", 2)))
    run_training(ppo, tmp_path / "straight", progress=False)
    run_training(ppo, tmp_path / "resumed", progress=False, stop_after=2)
    run_training(ppo, tmp_path / "resumed", progress=False)
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    train = read_history(tmp_path / "straight")[-1].train
    assert {"ppo", "approx_kl", "clip_fraction"} <= set(train) and "a2c" not in train


def test_gru_trains_resumes_and_is_refused_by_an_lstm_folder(tmp_path):
    """Every topology's cell is a parameter: the GRU program trains and learns something
    (finite rows, parameters moved), and an LSTM config is refused on its folder."""
    gru = dataclasses.replace(TINY, cell="gru")
    rows = run_training(gru, tmp_path, progress=False)
    assert [r.update for r in rows] == [0, 0, 2, 2, 4, 4]
    assert all(np.isfinite(r.train["loss"]) for r in rows if r.update)
    with pytest.raises(ConfigError, match="different config"):
        run_training(TINY, tmp_path, progress=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"env": "nope"}, "unknown env"),
        ({"architecture": "gru"}, "unknown architecture"),
        ({"cell": "transformer"}, "unknown cell 'transformer'; known: lstm, gru, mingru; "
                                  "or module:name"),
        ({"k_explore": 0}, "k_explore"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_updates": -5}, "num_updates"),
        ({"divergence": "kl"}, "unknown divergence"),
        ({"runs": (("Max-Until-Exploit", 0, 0.0),)}, "learning rate"),
        ({"runs": (("Max-Until-Exploit", 0, 1e-3, -1.0),)}, "lambda_div"),
        ({"runs": (("PPO", 0, 1e-3),)}, "unknown method"),
        ({"runs": (("RL2", 0, 1e-3),)}, "is sequential"),
        ({"runs": ()}, "no runs"),
    ],
)
def test_config_validation(change, message):
    """Impossible configs cannot be built: construction fails with a message naming the
    problem (a config without runs is a template, and env names need the registry: only
    ``validate`` refuses those)."""
    if change in ({"runs": ()}, {"env": "nope"}):  # templates, env names: validate()
        cfg = TrainConfig(**{**TINY.__dict__, **change})
        with pytest.raises(ConfigError, match=message):
            cfg.validate()
        return
    with pytest.raises(ConfigError, match=message):
        if "runs" in change:  # RunSpecs are validated on construction too
            change = {"runs": tuple(RunSpec(*r) for r in change["runs"])}
        TrainConfig(**{**TINY.__dict__, **change})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "PPO"], "unknown method 'PPO'"),
        (["--updates", "0"], "--updates"),
        (["--updates", "300"], "multiple of"),
        (["--seeds", "0"], "--seeds"),
        (["--batch-size", "0"], "--batch-size"),
        (["--learning-rate", "-0.1"], "--learning-rate"),
        (["--lambda-div", "-1"], "--lambda-div"),
        (["--extra", "k_explore=0"], "k_explore"),
        (["--extra", "nonsense=1"], "unknown or fixed"),
        (["--cell", "transformer"], "unknown cell 'transformer'; known: lstm, gru, mingru; "
                                    "or module:name"),
        (["--learner", "sgd"], "unknown learner 'sgd'; known: a2c, ppo; or module:name"),
        (["--learner", "ppo", "--learner-option", "clip=0"], "clip must be a finite number > 0"),
        (["--learner", "ppo", "--learner-option", "clip=x"], "clip expects float"),
        (["--learner", "ppo", "--learner-option", "minibatches=5"], "must divide the batch"),
        (["--learner-option", "clip=0.1"], "learner a2c has no option 'clip'"),
        (["--extra", "learner=ppo"], "unknown or fixed"),
        (["--subepisode-start", "fresh"], "fresh needs an env that defines reset_state"),
        (["--subepisode-start", "later"], "unknown subepisode_start 'later'; known: same, fresh"),
    ],
)
def test_cli_bad_input(argv, message, tmp_path, capsys):
    """One line naming the problem, exit status 2, nothing written."""
    assert message in refused_line(argv, tmp_path, capsys)


def refused_line(argv, tmp_path, capsys) -> str:
    """Table 1's command on ``argv``: exit status 2, one line on stderr (returned), nothing
    written."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        table1.main(argv + ["--out", str(out), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not out.exists()
    return err[0]


def test_cli_refuses_folder_of_other_experiment(tmp_path, capsys):
    """--out holding another experiment's config is refused before anything is written."""
    (tmp_path / "config.json").write_text(json.dumps({"table": "something else"}))
    with pytest.raises(SystemExit) as exc:
        table1.main(["--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    assert "different" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_cli_bad_input_subprocess_has_no_traceback(tmp_path):
    """The real command line: exit 2 and a one-line message, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.table1", "--methods", "Nope",
         "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    known = "RL2, ERL2, Max-Until-Exploit, StDev-Until-Exploit"
    assert proc.stderr.strip().splitlines() == [
        f"error: unknown method 'Nope'; choose from: {known}"
    ]


def test_an_exploit_entropy_floor_reaches_the_update():
    """``entropy_exploit_floor_*`` enters every update: a floor of 0.1 nats, under the
    exploit policy's entropy at initialisation, changes the first update's loss (a floor
    above every entropy leaves the loss as it is: tests/test_loss.py)."""
    import jax.numpy as jnp

    from cmrl_jax.train import make_trainer

    def first_losses(**floor):
        cfg = dataclasses.replace(TINY, num_updates=2, chunk_updates=1, **floor)
        trainer = make_trainer(cfg)
        _, metrics = trainer.train_chunk(*trainer.init())
        return np.asarray(metrics.loss)

    plain = first_losses()
    assert not np.allclose(first_losses(entropy_exploit_floor_start=0.1,
                                        entropy_exploit_floor_end=0.1), plain)
    assert jnp.all(jnp.isfinite(plain))
