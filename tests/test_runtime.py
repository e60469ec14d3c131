"""Runtime facts: printed and recorded per session, never part of a folder's identity."""

import json

import pytest

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.loop import read_history, run_training
from cmrl_jax.results import runtime
from experiments import table1

CFG = TrainConfig(env_kwargs=(("num_doors", 3),), k_explore=3, hidden=8, batch_size=8,
                  num_updates=4, chunk_updates=2, eval_batches=1, eval_batch_size=4,
                  runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.05),))


def test_facts_name_backend_devices_and_versions():
    facts = runtime.backend_facts({"central_lstm": None})
    assert facts["backend"] == "cpu" and facts["device_count"] >= 1
    assert facts["process_count"] == 1 and facts["meshes"]["central_lstm"] == {"runs": 1, "data": 1}
    assert set(runtime.VERSIONED) <= set(facts["versions"])
    line = runtime.describe(facts)
    assert line.startswith("backend cpu: ") and "jax " in line and "mujoco " in line
    assert "\n" not in line
    assert facts["matmul_precision"] == "default" and "matmul" not in line


def test_facts_name_a_chosen_matmul_precision():
    """JAX_DEFAULT_MATMUL_PRECISION (or the context manager) shows in the facts and the line:
    on an accelerator it decides whether the networks run at full float32."""
    import jax

    with jax.default_matmul_precision("highest"):
        facts = runtime.backend_facts()
    assert facts["matmul_precision"] == "highest"
    assert ", matmul precision highest;" in runtime.describe(facts)


def test_folder_made_on_one_backend_resumes_on_another(tmp_path):
    """A session recorded as a GPU one (edited facts) is resumed here and finishes."""
    folder = tmp_path / "run"
    run_training(CFG, folder, progress=False, stop_after=2)
    records = runtime.read_records(folder)
    assert len(records) == 1 and records[0]["backend"] == "cpu"
    # Pretend the first session ran on a GPU with other versions.
    records[0].update(backend="gpu", device_kind="NVIDIA H100 80GB HBM3", device_count=8)
    records[0]["versions"]["jax"] = "0.9.0"
    (folder / runtime.RUNTIME_FILE).write_text(json.dumps(records[0]) + "\n")
    config_before = (folder / "config.json").read_text()
    rows = run_training(CFG, folder, progress=False)
    assert (folder / "config.json").read_text() == config_before
    assert [r.update for r in rows] == [0, 2, 4] == [r.update for r in read_history(folder)]
    records = runtime.read_records(folder)
    assert [r["backend"] for r in records] == ["gpu", "cpu"]


@pytest.mark.parametrize("command", ["table1", "train"])
def test_distributed_without_a_cluster_is_one_line(tmp_path, capsys, monkeypatch, command):
    """--distributed where no cluster is named: one line, exit 2, nothing written."""
    from experiments import train

    for name in runtime.CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    main, argv = {"table1": (table1.main, []), "train": (train.main, ["--env", "monty_hall"])}[
        command]
    with pytest.raises(SystemExit) as e:
        main(argv + ["--distributed", "--out", str(tmp_path / "t"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--distributed: no cluster found" in err[0]
    assert not (tmp_path / "t").exists()


def test_a_torn_record_does_not_spoil_the_next(tmp_path):
    """A session killed while appending leaves half a line; the next record starts afresh."""
    facts = runtime.backend_facts()
    runtime.record(tmp_path, facts)
    with (tmp_path / runtime.RUNTIME_FILE).open("a") as f:
        f.write('{"backend": "gp')  # killed here
    runtime.record(tmp_path, facts)
    assert runtime.read_records(tmp_path) == [facts, facts]
