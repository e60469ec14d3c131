"""XLand-MiniGrid training throughput: environment steps per second of our RL2 and CMRL,
compile time apart, against environments per device.

    python -m benchmarks.xland_throughput                       # RL2 + CMRL, 64 .. 1024 envs
    python -m benchmarks.xland_throughput --envs 64 256 1024 4096 8192 --hidden 256
    make bench-xland ARGS="--envs 256 --hidden 1024"

The peer mode (xland-minigrid's own ``training/train_meta_task.py`` from a checkout
outside this repository, same task, envs, hidden size and trial length) is not built
yet: docs/results.md, "XLand-MiniGrid throughput".

Counting, as xland-minigrid counts: environment steps = environments x steps each, every
step of the vectorised env (steps masked after a goal included, as its auto-reset
steps are) / training wall time; compile is timed apart. Ours: an environment is one
meta-episode slot of the batch (``--batch-size``), and a meta-episode is (K + 1) x H
steps (K explore sub-episodes, or K concurrent rollouts, then the exploit one), so an
update is envs x (K + 1) x H steps. RL2 here is the sequential learner of
xland-minigrid's baseline (PPO + GRU, fresh sub-episode starts: its protocol);
CMRL is Max-Until-Exploit on the Meta-GRU with the same learner, cell and hidden size.
Each case: compile, one warm-up chunk, then ``--repeats`` timed chunks (median).
Prints one JSON line per case and a Markdown table.
"""

import argparse
import json
import platform
import statistics
import time

import jax

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.train import make_trainer

ENV = "xland:XLand-MiniGrid-R1-9x9"
CASES = {  # name -> (architecture, method, lambda_div)
    "RL2": ("sequential", "RL2", 0.0),
    "CMRL": ("meta_lstm", "Max-Until-Exploit", 0.01),
}


def config(case: str, envs: int, hidden: int, k: int, horizon: int, chunk: int,
           learner: str, num_rulesets: int) -> TrainConfig:
    """One program of ``case`` at ``envs`` meta-episodes per update."""
    arch, method, lam = CASES[case]
    return TrainConfig(
        env=ENV, env_kwargs=(("num_rulesets", num_rulesets),), architecture=arch,
        hidden=hidden, k_explore=k, horizon=horizon, batch_size=envs, num_updates=chunk,
        chunk_updates=chunk, learner=learner, cell="gru", encoder="grid",
        subepisode_start="fresh", eval_batches=1, eval_batch_size=1,
        runs=(RunSpec(method, 0, 1e-3, lam),))


def measure(cfg: TrainConfig, repeats: int) -> dict:
    """Compile, warm up, time ``repeats`` chunks -> one JSON-able row."""
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    compiled = trainer.train_chunk.lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    temp = compiled.memory_analysis().temp_size_in_bytes
    state, _ = compiled(state, hp)
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = compiled(state, hp)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    per_chunk = statistics.median(times)
    steps = cfg.batch_size * (cfg.k_explore + 1) * cfg.horizon * cfg.chunk_updates
    return {"envs": cfg.batch_size, "hidden": cfg.hidden, "k_explore": cfg.k_explore,
            "horizon": cfg.horizon, "trial_steps": (cfg.k_explore + 1) * cfg.horizon,
            "learner": cfg.learner, "cell": cfg.cell, "updates_timed": cfg.chunk_updates,
            "compile_s": round(compile_s, 1),
            "s_per_update": round(per_chunk / cfg.chunk_updates, 4),
            "steps_per_s": round(steps / per_chunk), "temp_mib": round(temp / 2**20, 1)}


def table(rows: list[dict]) -> str:
    """Markdown: steps/s per case and envs, and CMRL's cost per env step over RL2's."""
    envs = sorted({r["envs"] for r in rows})
    lines = ["| envs | " + " | ".join(f"{c} steps/s" for c in CASES) + " | CMRL / RL2 cost |",
             "|---|" + "---|" * (len(CASES) + 1)]
    for n in envs:
        got = {r["case"]: r for r in rows if r["envs"] == n}
        cells = [f"{got[c]['steps_per_s']:,}" if c in got else "-" for c in CASES]
        ratio = (f"{got['RL2']['steps_per_s'] / got['CMRL']['steps_per_s']:.2f}x"
                 if {"RL2", "CMRL"} <= set(got) else "-")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--k-explore", type=int, default=3)
    p.add_argument("--horizon", type=int, default=32, help="H: steps per sub-episode")
    p.add_argument("--chunk", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--learner", default="ppo")
    p.add_argument("--num-rulesets", type=int, default=1024)
    a = p.parse_args(argv)
    try:
        if min(a.envs) < 1 or a.hidden < 1 or a.k_explore < 1 or a.horizon < 1 \
                or a.chunk < 1 or a.repeats < 1:
            raise ConfigError("--envs, --hidden, --k-explore, --horizon, --chunk and "
                              "--repeats must be >= 1")
        configs = [(c, config(c, n, a.hidden, a.k_explore, a.horizon, a.chunk, a.learner,
                              a.num_rulesets)) for n in a.envs for c in a.cases]
        for _, cfg in configs:
            cfg.validate()
    except ConfigError as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps({"device": str(jax.devices()[0]), "machine": platform.machine(),
                      "env": ENV}), flush=True)
    rows = []
    for case, cfg in configs:
        rows.append({"case": case, **measure(cfg, a.repeats)})
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
