"""Recipe probe: train a few runs of ONE program and print training diagnostics per chunk.

Used to diagnose and tune a recipe before a full table run (docs/history.md,
"Table 2 recipe"). The single argument is a JSON object of ``TrainConfig``
fields plus ``runs``: a list of [method, seed, learning_rate, lambda_div].

    python -m benchmarks.recipe_probe '{"env": "color_choice", "env_kwargs": [["num_goals", 3]],
        "architecture": "meta_lstm", "k_explore": 3, "horizon": 15, "divergence": "skl",
        "batch_size": 64, "num_updates": 2500, "chunk_updates": 100, "eval_batches": 2,
        "runs": [["Max-Until-Exploit", 0, 0.0025, 0.0]]}'

Per chunk and run it prints the training-batch success, visited goals, L_D,
explore / exploit entropy per decision and the gradient norm; every fifth
chunk also an evaluation (``eval_batches`` x ``eval_batch_size`` meta-episodes).
"""

import json
import sys
import time

import jax
import numpy as np

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.train import make_trainer


def parse(arg: str) -> TrainConfig:
    """JSON object -> TrainConfig (ConfigError on a bad field or value)."""
    try:
        fields = json.loads(arg)
        runs = tuple(RunSpec(m, s, lr, lam) for m, s, lr, lam in fields.pop("runs"))
        if "env_kwargs" in fields:
            fields["env_kwargs"] = tuple(tuple(kv) for kv in fields["env_kwargs"])
        cfg = TrainConfig(runs=runs, **fields)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad probe config: {e}") from None
    cfg.validate()
    return cfg


def main(argv: list[str]) -> None:
    """Run the probe described by ``argv[0]``."""
    try:
        if len(argv) != 1:
            raise ConfigError("expected one JSON argument (see the module docstring)")
        cfg = parse(argv[0])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.time()
    chunks = cfg.num_updates // cfg.chunk_updates
    for c in range(chunks):
        state, m = trainer.train_chunk(state, hp)
        m = jax.tree.map(lambda x: np.asarray(x).mean(axis=1), m)
        ev = trainer.evaluate(state, hp) if (c + 1) % 5 == 0 or c == chunks - 1 else None
        for r, run in enumerate(cfg.runs):
            line = (
                f"u{(c + 1) * cfg.chunk_updates:6d} {run.method[:10]:10s} lr {run.learning_rate:g}"
                f" lam {run.lambda_div:g} | succ {m.success[r]:.3f} vis {m.visited_goals[r]:.2f}"
                f" L_D {m.divergence[r]:.3g} H_explore {m.entropy_explore[r]:.2f}"
                f" H_exploit {m.entropy_exploit[r]:.2f} |g| {m.grad_norm[r]:.2f}"
            )
            if ev is not None:
                succ, vis = float(ev.success[r]), float(ev.visited_goals[r])
                line += f" | eval succ {succ:.3f} vis {vis:.2f}"
            print(line, flush=True)
        print(f"-- {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
