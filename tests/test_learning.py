"""A real, short learning run: CMRL beats ERL2 on 5-Monty-Hall within 1000 updates."""

import numpy as np
import pytest

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.train import make_trainer
from experiments.table1 import SPEC as TABLE1

UPDATES = 1000
A2C = TABLE1.recipes["a2c"]  # Table 1's A2C recipe: its entropy schedule per kind, lambda_div
# Measured with this file on 2 CPU cores, with Table 1's A2C recipe (issue 30): CMRL success
# 0.59 / 0.55 (visited 4.0 / 4.0 of 5 doors: one rollout keeps the NOOP, the fifth door is
# inferred), ERL2 0.00 / 0.00. With the previous recipe (60 % anneal, explore bonus 1.0,
# lambda_div 0.5): CMRL 0.54 / 0.54, ERL2 0.17 / 0.16; the thresholds hold for both.
CMRL_MIN_SUCCESS = 0.4
CMRL_MIN_VISITED = 3.5
MARGIN = 0.25


def _train(architecture: str, method: str, hidden: int, lambda_div: float) -> dict:
    """Train 2 seeds for UPDATES updates; return final evaluation means per seed."""
    kind = "sequential" if architecture == "sequential" else "concurrent"
    cfg = TrainConfig(
        **A2C.values(kind),
        env_kwargs=(("num_doors", 5),),
        k_explore=5,
        architecture=architecture,
        hidden=hidden,
        batch_size=64,
        num_updates=UPDATES,
        chunk_updates=UPDATES,
        reward_input_scale=10.0,
        eval_batches=2,
        eval_batch_size=128,
        runs=tuple(RunSpec(method, seed, 2e-3, lambda_div) for seed in range(2)),
    )
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    state, _ = trainer.train_chunk(state, hp)
    stats = trainer.evaluate(state, hp)
    return {"success": np.asarray(stats.success), "visited": np.asarray(stats.visited_goals)}


@pytest.fixture(scope="module")
def results():
    """CMRL (Central-LSTM, Max-Until-Exploit) and ERL2, 2 seeds each."""
    return {
        "cmrl": _train("central_lstm", "Max-Until-Exploit", 16, A2C.lambda_div),
        "erl2": _train("sequential", "ERL2", 32, 0.0),
    }


def test_cmrl_learns_and_beats_erl2(results):
    """Thresholds measured on 2 CPU cores (see docs/results.md); chance is 1/5 at best."""
    cmrl, erl2 = results["cmrl"], results["erl2"]
    print("cmrl", cmrl, "erl2", erl2)
    assert cmrl["success"].min() >= CMRL_MIN_SUCCESS
    assert cmrl["visited"].min() >= CMRL_MIN_VISITED
    assert cmrl["success"].mean() >= erl2["success"].mean() + MARGIN
