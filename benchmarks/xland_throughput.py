"""XLand-MiniGrid training throughput: environment steps per second of our RL2 and CMRL,
compile time apart, against environments per device, and xland-minigrid's own RL2 trainer
beside them (the peer mode).

    python -m benchmarks.xland_throughput                       # RL2 + CMRL, 64 .. 1024 envs
    python -m benchmarks.xland_throughput --envs 64 256 1024 4096 8192 --hidden 256
    python -m benchmarks.xland_throughput --peer ../xland-minigrid --cases RL2   # + the peer
    python -m benchmarks.xland_throughput --memory-only --horizon 32 64 128 256 \
        --remat none step segments                              # peak memory vs trial length
    make bench-xland ARGS="--envs 256 --hidden 1024"

Counting, as xland-minigrid counts: environment steps = environments x steps each, every
step of the vectorised env (steps masked after a goal included, as its auto-reset
steps are) / training wall time; compile is timed apart. Ours: an environment is one
meta-episode slot of the batch (``--batch-size``), and a meta-episode (a trial) is
(K + 1) x H steps (K explore sub-episodes, or K concurrent rollouts, then the exploit
one), so an update is envs x (K + 1) x H steps. RL2 here is the sequential learner of
xland-minigrid's baseline (PPO + GRU, fresh sub-episode starts: its protocol; PPO as it
sets it: 1 epoch of 16 minibatches); CMRL is Max-Until-Exploit on the Meta-GRU with the
same learner, cell and hidden size. Each case: compile, one warm-up chunk, then
``--repeats`` timed chunks (median). Memory: XLA's temporary buffers of the compiled
update (``temp_mib``, the peak beside parameters and inputs).

``--window 32``: our PPO with truncated backpropagation, a PPO step every 32 decision
slots from the carried memory as the peer's (docs/design.md, "Truncated backpropagation").

``--peer CHECKOUT`` (benchmarks/xland_peer.py) runs xland-minigrid's
``training/train_meta_task.py`` from that checkout after our cases at each size, at the
same task, benchmark file, environments, GRU size and trial length ((K + 1) x H steps,
a PPO update every 32 of them, as it trains), for ``--chunk`` x ``--repeats``
meta-updates in one timed call; the table adds its steps/s and our RL2's ratio to it.
Prints one JSON line per case and a Markdown table.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax

from benchmarks import xland_peer
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.train import make_trainer
from cmrl_jax_envs import xland_benchmarks

ENV = "xland:XLand-MiniGrid-R1-9x9"
CASES = {  # name -> (architecture, method, lambda_div)
    "RL2": ("sequential", "RL2", 0.0),
    "CMRL": ("meta_lstm", "Max-Until-Exploit", 0.01),
    "CMRL-central": ("central_lstm", "Max-Until-Exploit", 0.01),  # one cell over K inputs
}
DEFAULT_CASES = ("RL2", "CMRL")
PEER = "peer"  # the peer's rows' case


def config(case: str, envs: int, hidden: int, k: int, horizon: int, chunk: int,
           learner: str, num_rulesets: int, learner_options: tuple = (),
           remat: str = "none") -> TrainConfig:
    """One program of ``case`` at ``envs`` meta-episodes per update."""
    arch, method, lam = CASES[case]
    return TrainConfig(
        env=ENV, env_kwargs=(("num_rulesets", num_rulesets),), architecture=arch,
        hidden=hidden, k_explore=k, horizon=horizon, batch_size=envs, num_updates=chunk,
        chunk_updates=chunk, learner=learner, learner_options=learner_options, cell="gru",
        encoder="grid", subepisode_start="fresh", remat=remat, eval_batches=1,
        eval_batch_size=1, runs=(RunSpec(method, 0, 1e-3, lam),))


def measure(cfg: TrainConfig, repeats: int, timed: bool = True) -> dict:
    """Compile, warm up, time ``repeats`` chunks -> one JSON-able row (``timed=False``:
    compile only, for the memory)."""
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    compiled = trainer.train_chunk.lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    temp = compiled.memory_analysis().temp_size_in_bytes
    row = {"envs": cfg.batch_size, "hidden": cfg.hidden, "k_explore": cfg.k_explore,
           "horizon": cfg.horizon, "trial_steps": (cfg.k_explore + 1) * cfg.horizon,
           "learner": cfg.learner, "cell": cfg.cell, "remat": cfg.remat,
           "compile_s": round(compile_s, 1), "temp_mib": round(temp / 2**20, 1)}
    if not timed:
        return row
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
    return row | {"updates_timed": cfg.chunk_updates,
                  "s_per_update": round(per_chunk / cfg.chunk_updates, 4),
                  "steps_per_s": round(steps / per_chunk)}


def _fmt(row: dict | None, key: str) -> str:
    return "-" if row is None or row.get(key) is None else f"{row[key]:,}"


def _ratio(a: dict | None, b: dict | None) -> str:
    """``a``'s steps/s over ``b``'s, or '-' where one is missing."""
    if a is None or b is None or not a.get("steps_per_s") or not b.get("steps_per_s"):
        return "-"
    return f"{a['steps_per_s'] / b['steps_per_s']:.2f}x"


def table(rows: list[dict]) -> str:
    """Markdown, one line per (envs, trial steps, remat): steps/s and temporary memory per
    case, CMRL's cost per env step over RL2's, and RL2's speed over the peer's."""
    keys = sorted({(r["envs"], r.get("trial_steps", 0), r.get("remat", "none")) for r in rows})
    peer = any(r["case"] == PEER for r in rows)
    cases = [c for c in CASES if any(r["case"] == c for r in rows)]
    head = ["envs", "trial steps", "remat", *(f"{c} steps/s" for c in cases),
            *(f"{c} temp MiB" for c in cases), "CMRL / RL2 cost"]
    head += [f"{PEER} steps/s", f"RL2 / {PEER}"] if peer else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, t, remat in keys:
        got = {r["case"]: r for r in rows
               if (r["envs"], r.get("trial_steps", 0), r.get("remat", "none")) == (n, t, remat)}
        cells = [str(n), str(t), remat, *(_fmt(got.get(c), "steps_per_s") for c in cases),
                 *(_fmt(got.get(c), "temp_mib") for c in cases),
                 _ratio(got.get("RL2"), got.get("CMRL"))]
        if peer:
            cells += [_fmt(got.get(PEER), "steps_per_s"), _ratio(got.get("RL2"), got.get(PEER))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=list(CASES))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--k-explore", type=int, default=3)
    p.add_argument("--horizon", type=int, nargs="+", default=[32],
                   help="H: steps per sub-episode (several: one row each)")
    p.add_argument("--remat", nargs="+", default=["none"], help="none, step, segments")
    p.add_argument("--chunk", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--learner", default="ppo")
    p.add_argument("--epochs", type=int, default=1, help="PPO's epochs (the peer's: 1)")
    p.add_argument("--minibatches", type=int, default=16,
                   help="PPO's minibatches (the peer's: 16)")
    p.add_argument("--window", type=int, default=0,
                   help="PPO's truncated-backpropagation window (0: whole meta-episodes; "
                        "the peer's: 32)")
    p.add_argument("--num-rulesets", type=int, default=1024)
    p.add_argument("--memory-only", action="store_true",
                   help="compile only: temporary memory, no timing")
    p.add_argument("--peer", metavar="CHECKOUT",
                   help="a checkout of dunnolab/xland-minigrid: run its RL2 trainer too")
    p.add_argument("--peer-python", help="the peer's interpreter (default: its own "
                   "virtualenv, built once under ~/.cache/cmrl_jax/xland-peer)")
    a = p.parse_args(argv)
    try:
        if min(a.envs) < 1 or a.hidden < 1 or a.k_explore < 1 or min(a.horizon) < 1 \
                or a.chunk < 1 or a.repeats < 1:
            raise ConfigError("--envs, --hidden, --k-explore, --horizon, --chunk and "
                              "--repeats must be >= 1")
        opts = (("epochs", a.epochs), ("minibatches", a.minibatches), ("window", a.window)) \
            if a.learner == "ppo" else ()
        peer = None
        if a.peer:
            if a.memory_only:
                raise ConfigError("--peer times training; it cannot go with --memory-only")
            checkout = xland_peer.check_checkout(a.peer)
            sizes = {(n, h): xland_peer.PeerSize(n, a.hidden, (a.k_explore + 1) * h,
                                                 a.chunk * a.repeats, a.minibatches,
                                                 a.epochs)
                     for n in a.envs for h in a.horizon}
        configs = [(c, config(c, n, a.hidden, a.k_explore, h, a.chunk, a.learner,
                              a.num_rulesets, opts, r))
                   for n in a.envs for h in a.horizon for r in a.remat for c in a.cases]
        for _, cfg in configs:
            cfg.validate()
        if a.peer:  # its virtualenv last: built only for a run that can go on
            peer = (checkout, xland_peer.peer_python(a.peer_python), sizes)
    except ConfigError as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps({"device": str(jax.devices()[0]), "machine": platform.machine(),
                      "env": ENV}), flush=True)
    rows = []
    for case, cfg in configs:
        rows.append({"case": case, **measure(cfg, a.repeats, not a.memory_only)})
        print(json.dumps(rows[-1]), flush=True)
        last = case == a.cases[-1] and cfg.remat == a.remat[-1]
        if peer and last:  # the peer after our cases at this size, in the same run
            checkout, python, sizes = peer
            bench = xland_benchmarks.cached_benchmark(a.num_rulesets, 0, 1, 2)
            try:
                got = xland_peer.run(checkout, python, Path(bench),
                                     sizes[cfg.batch_size, cfg.horizon])
            except (RuntimeError, OSError) as e:  # one line, and the table goes on
                got = {"envs": cfg.batch_size, "error": str(e)}
            rows.append({"case": PEER, "trial_steps": (cfg.k_explore + 1) * cfg.horizon,
                         "remat": cfg.remat, **got})
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
