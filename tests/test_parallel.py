"""Data parallelism: a batch split over 2 (forced CPU) devices trains like 1 device."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cmrl_jax.config import ConfigError
from cmrl_jax.parallel import check_batch, data_mesh
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
