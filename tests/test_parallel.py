"""Device parallelism: runs and batches split over forced host CPU devices train like 1 device."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cmrl_jax.config import ConfigError
from cmrl_jax.parallel import check_batch, data_mesh, mesh_shape
from experiments import table1

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, numpy as np
    from cmrl_jax.config import RunSpec, TrainConfig
    from cmrl_jax.parallel import data_mesh
    from cmrl_jax.train import make_trainer

    cfg = TrainConfig(env_kwargs=(("num_doors", 3),), k_explore=3, hidden=8, batch_size=8,
                      num_updates=2, chunk_updates=2, eval_batches=1, eval_batch_size=4,
                      runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.05),
                            RunSpec("StDev-Until-Exploit", 1, 2e-3, 0.1)))
    out = {}
    for name, mesh in (("one", None), ("two", data_mesh(2))):
        tr = make_trainer(cfg, mesh)
        s, hp = tr.init()
        hlo = tr.train_chunk.lower(s, hp).compile().as_text()
        s, m = tr.train_chunk(s, hp)
        ev = tr.evaluate(s, hp)
        out[name] = {
            "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(s.params)],
            "loss": np.asarray(m.loss).ravel().tolist(),
            "success": np.asarray(ev.success).ravel().tolist(),
            "all_reduce": "all-reduce" in hlo,
            "devices": len(jax.tree.leaves(s.params)[0].sharding.device_set),
        }
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def two_devices():
    """Train 2 updates on 1 device and on a 2-device mesh, in a fresh process."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_two_devices_give_the_same_training(two_devices):
    """Same keys, same meta-episodes, same mean: params agree to float rounding."""
    one, two = two_devices["one"], two_devices["two"]
    assert two["devices"] == 2 and one["devices"] == 1
    assert two["all_reduce"] and not one["all_reduce"]  # the batch really is split
    for a, b in zip(one["params"], two["params"], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    assert one["success"] == two["success"]


def test_batch_must_split_over_devices():
    mesh = data_mesh(1)
    check_batch(mesh, 7)  # one device: anything splits
    with pytest.raises(ConfigError, match="--devices 999"):
        data_mesh(999)


def test_cli_refuses_more_devices_than_present(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        table1.main(["--devices", "999", "--out", str(tmp_path / "t"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--devices 999" in err[0]
    assert not (tmp_path / "t").exists()


def test_batch_must_split_over_the_data_axis():
    """Checked against the mesh's axis sizes (a stand-in: this process has one device)."""
    from types import SimpleNamespace

    check_batch(SimpleNamespace(shape={"runs": 2, "data": 4}), 128)
    with pytest.raises(ConfigError, match="batch size 128 does not split over the 3 devices"):
        check_batch(SimpleNamespace(shape={"runs": 1, "data": 3}), 128)


def test_default_split_puts_runs_first():
    """runs axis = gcd(devices, runs) unless given; the batch gets the rest."""
    assert mesh_shape(8, 0, 6) == (2, 4)
    assert mesh_shape(8, 0, 27) == (1, 8)
    assert mesh_shape(4, 0, 4) == (4, 1)
    assert mesh_shape(4, 1, 4) == (1, 4)
    with pytest.raises(ConfigError, match="does not divide the 4 devices"):
        mesh_shape(4, 3, 6)
    with pytest.raises(ConfigError, match="6 runs do not split over 4"):
        mesh_shape(8, 4, 6)


@pytest.mark.parametrize("argv, message", [
    (["--runs-devices", "2"], "--runs-devices 2 does not divide the 1 devices"),
    (["--devices", "-1"], "--devices must be >= 0"),
])
def test_cli_refuses_impossible_splits(tmp_path, capsys, argv, message):
    """One line, exit 2, nothing written, nothing compiled."""
    with pytest.raises(SystemExit) as e:
        table1.main(argv + ["--out", str(tmp_path / "t"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "t").exists()


# Table 1 (two CMRL rows x 2 seeds = 4 runs of one program) on four layouts of
# 4 forced host devices. Runs-sharding is exact (each device runs whole runs);
# data-sharding changes the order of the batch mean's float sums (measured:
# training losses agree to 2e-7 relative after 4 updates).
LAYOUTS = {
    "1 device": ["--devices", "1"],
    "2 runs": ["--devices", "2", "--runs-devices", "2"],
    "2 data": ["--devices", "2", "--runs-devices", "1"],
    "4 = 2 runs x 2 data": ["--devices", "4", "--runs-devices", "2"],
}
LAYOUT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from experiments import table1

    base = ["--updates", "4", "--chunk-updates", "2", "--seeds", "2", "--batch-size", "8",
            "--methods", "Max-Until-Exploit", "StDev-Until-Exploit", "--no-progress",
            "--extra", "k_explore=3", "eval_batches=1", "eval_batch_size=8"]
    for i, layout in enumerate(json.loads(sys.argv[2])):
        table1.main(base + layout + ["--out", f"{sys.argv[1]}/{i}"])
    """
)
TABLE_TOLERANCE = 1e-6  # absolute, on every number of table.json
LOSS_TOLERANCE = 1e-5  # relative, on the logged training losses


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Train the same tiny Table 1 on every layout, in one process with 4 host devices."""
    out = tmp_path_factory.mktemp("layouts")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", LAYOUT_SCRIPT, str(out), json.dumps(list(LAYOUTS.values()))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def _numbers(x, path=""):
    """Flatten a JSON value to {path: number or None}."""
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in _numbers(val, f"{path}/{key}").items()}
    if isinstance(x, list):  # intervals, per-seed values
        return {k: v for i, val in enumerate(x) for k, v in _numbers(val, f"{path}/{i}").items()}
    return {path: x}


@pytest.mark.slow  # make test-slow (CI runs it after make test)
def test_layouts_give_the_same_table(layouts):
    """1 vs 2 vs 4 devices, runs-sharded and data-sharded: the same table.json."""
    out, stdout = layouts
    assert "backend cpu: 4 x cpu" in stdout and "central_lstm on runs 2 x data 2" in stdout
    tables = [_numbers(json.loads((out / str(i) / "table.json").read_text()))
              for i in range(len(LAYOUTS))]
    for name, table in zip(LAYOUTS, tables, strict=True):
        assert table.keys() == tables[0].keys(), name
        for key, value in table.items():
            ref = tables[0][key]
            if isinstance(value, float) and isinstance(ref, float):
                assert abs(value - ref) <= TABLE_TOLERANCE, (name, key, value, ref)
            else:
                assert value == ref, (name, key, value, ref)


@pytest.mark.slow  # make test-slow (CI runs it after make test)
def test_layouts_train_alike_and_record_their_mesh(layouts):
    """The logged training losses agree; runtime.jsonl names each layout's mesh."""
    out, _ = layouts
    losses = []
    for i, name in enumerate(LAYOUTS):
        folder = out / str(i) / "central_lstm"
        rows = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines()]
        losses.append([r["train_loss"] for r in rows if "train_loss" in r])
        facts = json.loads((folder / "runtime.jsonl").read_text().splitlines()[-1])
        runs, data = {"1 device": (1, 1), "2 runs": (2, 1), "2 data": (1, 2)}.get(name, (2, 2))
        assert facts["meshes"]["central_lstm"] == {"runs": runs, "data": data}, name
        assert facts["device_count"] == 4 and facts["backend"] == "cpu"
    for name, loss in zip(LAYOUTS, losses, strict=True):
        assert loss == pytest.approx(losses[0], rel=LOSS_TOLERANCE), name


RESHARD_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cmrl_jax.loop import run_training
    from cmrl_jax.parallel import device_mesh
    from tests.test_parallel import RESHARD_CFG

    run_training(RESHARD_CFG, Path(sys.argv[1]), progress=False, stop_after=2,
                 mesh=device_mesh(4, 2, len(RESHARD_CFG.runs)))
    """
)


def _reshard_cfg():
    """Two runs, two chunks: small enough to compile in seconds."""
    from cmrl_jax.config import RunSpec, TrainConfig

    return TrainConfig(env_kwargs=(("num_doors", 3),), k_explore=3, hidden=8, batch_size=8,
                       num_updates=4, chunk_updates=2, eval_batches=1, eval_batch_size=4,
                       runs=tuple(RunSpec("Max-Until-Exploit", s, 1e-3, 0.05) for s in (0, 1)))


RESHARD_CFG = _reshard_cfg()


@pytest.mark.slow  # make test-slow (CI runs it after make test)
def test_folder_trained_on_four_devices_resumes_on_one(tmp_path):
    """Checkpoints saved sharded (runs 2 x data 2) restore onto a single device and the
    resumed run logs what an uninterrupted one-device run logs."""
    from cmrl_jax.loop import run_training

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", RESHARD_SCRIPT, str(tmp_path / "a")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = run_training(RESHARD_CFG, tmp_path / "a", progress=False)
    straight = run_training(RESHARD_CFG, tmp_path / "b", progress=False)
    assert [r.update for r in resumed] == [0, 0, 2, 2, 4, 4]
    for a, b in zip(resumed, straight, strict=True):
        a, b = a.to_dict(), b.to_dict()
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=LOSS_TOLERANCE), key
            else:
                assert value == b[key], key
