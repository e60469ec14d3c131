"""Peak temporary memory of one compiled update against meta-episode length, with and without
rematerialisation (``TrainConfig.remat``), as XLA reports it (``memory_analysis``).

    python -m benchmarks.remat_memory                                    # Color-Choice, A2C
    python -m benchmarks.remat_memory --learner a2c ppo --horizons 15 30 60 120 240
    python -m benchmarks.remat_memory --env xland:XLand-MiniGrid-R1-9x9 --horizons 16 64 256
    python -m benchmarks.remat_memory --learner ppo --horizons 16 32 64 128 --windows 8 16

One CMRL program (Meta-LSTM, K explore rollouts, one run) per learner, remat mode
and horizon H; a meta-episode is K * H explore decisions in parallel and H exploit
decisions. Prints one JSON line per program, then a Markdown table with the
temporary bytes (what the backward pass holds) and, per learner and mode, the
exponent b of temp ~ H^b fitted on the horizons (log-log least squares).
``--windows W ...`` (PPO) adds truncated backpropagation, one mode per window W
(``--learner-option window=W``, no remat; W must divide every horizon): the update
differentiates W decision slots at a time from the carried memory.
Compiles only; nothing is trained.
"""

import argparse
import json
import math
import time

import numpy as np

from cmrl_jax.config import REMAT, ConfigError, RunSpec, TrainConfig
from cmrl_jax.train import make_trainer


def measure(env: str, horizon: int, remat: str, learner: str, batch_size: int, hidden: int,
            k_explore: int, window: int = 0) -> dict:
    """Compile one update of the program and read XLA's memory statistics (``window`` > 0:
    PPO's truncated backpropagation, its mode named ``window W``)."""
    cfg = TrainConfig(env=env, architecture="meta_lstm", hidden=hidden, k_explore=k_explore,
                      horizon=horizon, batch_size=batch_size, num_updates=1, chunk_updates=1,
                      learner=learner, remat=remat, eval_batches=1, eval_batch_size=1,
                      learner_options=(("window", window),) if window else (),
                      runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.01),))
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    compiled = trainer.train_chunk.lower(state, hp).compile()
    stats = compiled.memory_analysis()
    return {"env": env, "learner": learner,
            "remat": f"window {window}" if window else remat, "horizon": horizon,
            "decisions": (k_explore + 1) * horizon, "batch_size": batch_size, "hidden": hidden,
            "temp_bytes": int(stats.temp_size_in_bytes),
            "argument_bytes": int(stats.argument_size_in_bytes),
            "compile_s": round(time.perf_counter() - t0, 1)}


def exponent(rows: list[dict]) -> float:
    """b of temp ~ H^b over ``rows`` (least squares in log-log)."""
    h = np.log([r["horizon"] for r in rows])
    m = np.log([max(r["temp_bytes"], 1) for r in rows])
    return float(np.polyfit(h, m, 1)[0]) if len(rows) > 1 else math.nan


def table(rows: list[dict]) -> str:
    """Markdown: temp MiB per horizon, one line per learner and mode, and the exponent."""
    horizons = sorted({r["horizon"] for r in rows})
    head = "| learner | remat | " + " | ".join(f"H = {h}" for h in horizons) + " | b |"
    lines = [head, "|" + "---|" * (len(horizons) + 3)]
    for learner in dict.fromkeys(r["learner"] for r in rows):
        for remat in dict.fromkeys(r["remat"] for r in rows):
            got = sorted((r for r in rows if r["learner"] == learner and r["remat"] == remat),
                         key=lambda r: r["horizon"])
            if not got:
                continue
            cells = [f"{r['temp_bytes'] / 2**20:.1f} MiB" for r in got]
            lines.append(f"| {learner} | {remat} | " + " | ".join(cells)
                         + f" | {exponent(got):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="color_choice")
    p.add_argument("--horizons", type=int, nargs="+", default=[15, 30, 60, 120])
    p.add_argument("--learner", nargs="+", default=["a2c"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--k-explore", type=int, default=3)
    p.add_argument("--remat", nargs="+", default=list(REMAT), choices=list(REMAT))
    p.add_argument("--windows", type=int, nargs="+", default=[],
                   help="PPO's truncated-backpropagation windows to add (no remat)")
    a = p.parse_args(argv)
    if min(a.horizons) < 1 or a.batch_size < 1 or a.hidden < 1 or a.k_explore < 2:
        p.exit(2, "error: horizons, --batch-size and --hidden must be >= 1, --k-explore >= 2\n")
    rows = []
    try:
        if a.windows and a.learner != ["ppo"]:
            raise ConfigError("--windows needs --learner ppo alone (truncation is PPO's)")
        bad = [(w, h) for w in a.windows for h in a.horizons if w < 1 or h % w]
        if bad:
            raise ConfigError(f"window {bad[0][0]} does not divide H = {bad[0][1]}: every "
                              "window must divide every horizon")
        modes = [(r, 0) for r in a.remat] + [("none", w) for w in a.windows]
        for learner in a.learner:
            for remat, window in modes:
                for h in a.horizons:
                    row = measure(a.env, h, remat, learner, a.batch_size, a.hidden,
                                  a.k_explore, window)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    except ConfigError as e:
        p.exit(2, f"error: {e}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
