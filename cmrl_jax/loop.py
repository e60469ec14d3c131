"""The one impure place: the Python loop over compiled chunks.

Between chunks it evaluates, appends metrics to ``eval.jsonl``, saves a
checkpoint and updates the progress bar. Re-running with the same folder
resumes from the newest checkpoint; every chunk and every evaluation is a
deterministic function of the restored state, so the result equals an
uninterrupted run.
"""

import json
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from cmrl_jax import runtime
from cmrl_jax.checkpoint import Checkpointer, claim_folder, write_config
from cmrl_jax.config import TrainConfig
from cmrl_jax.train import make_trainer

EVAL_FILE = "eval.jsonl"


def read_history(folder: Path) -> list[dict]:
    """Evaluation rows of a results folder, one per (update, run), in order."""
    path = folder / EVAL_FILE
    if not path.exists():
        return []
    rows, seen = [], set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if (row["update"], row["run"]) not in seen:
            seen.add((row["update"], row["run"]))
            rows.append(row)
    return rows


def _eval_rows(cfg: TrainConfig, update: int, stats, train_metrics=None) -> list[dict]:
    """One JSON row per run for an evaluation at ``update``."""
    stats = jax.tree.map(np.asarray, stats)
    rows = []
    for i, run in enumerate(cfg.runs):
        row = {
            "update": update,
            "run": i,
            "method": run.method,
            "label": run.row,
            "seed": run.seed,
            "learning_rate": run.learning_rate,
            "lambda_div": run.lambda_div,
            "success": float(stats.success[i]),
            "visited_goals": float(stats.visited_goals[i]),
            "explore_return": float(stats.explore_return[i]),
            "exploit_return": float(stats.exploit_return[i]),
        }
        if train_metrics is not None:
            for name, values in train_metrics._asdict().items():
                row[f"train_{name}"] = float(np.mean(np.asarray(values[i])))
        rows.append(row)
    return rows


def run_training(
    cfg: TrainConfig,
    folder: Path,
    *,
    label: str = "",
    progress: bool = True,
    stop_after: int | None = None,
    bar_position: int = 0,
    mesh=None,
) -> list[dict]:
    """Train every run of ``cfg`` to ``cfg.num_updates`` in ``folder`` (resuming); return rows.

    ``stop_after`` ends the session early once that many updates are done
    (as if killed right after a checkpoint); the next call resumes.
    ``mesh`` (``parallel.device_mesh``) splits runs and each update's
    meta-episodes over devices; it is not part of the config (the results do
    not depend on it). The session's backend facts are appended to
    ``runtime.jsonl``. With several processes (``runtime.init_distributed``)
    every process trains and checkpoints its shards; only process 0 writes the
    config, the evaluation log and the runtime record.
    """
    cfg.validate()
    config_json = cfg.to_json()
    claim_folder(folder, config_json)
    trainer = make_trainer(cfg, mesh)
    state, hp = trainer.init()
    main = runtime.is_main_process()
    if main:
        write_config(folder, config_json)
        runtime.record(folder, runtime.backend_facts({label or cfg.architecture: mesh}))
    ckpt = Checkpointer(folder)
    try:
        start = ckpt.latest_step() or 0
        if start:
            state = ckpt.restore(start, state)
        history = read_history(folder)
        done_updates = {row["update"] for row in history}
        eval_path = folder / EVAL_FILE

        def log(rows):
            if not main:
                history.extend(rows)
                return
            with eval_path.open("a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
            history.extend(rows)

        if 0 not in done_updates:
            log(_eval_rows(cfg, 0, trainer.evaluate(state, hp)))
        chunks = cfg.num_updates // cfg.chunk_updates
        bar = tqdm(
            total=cfg.num_updates,
            initial=start,
            desc=label or cfg.architecture,
            unit="upd",
            position=bar_position,
            disable=not progress,
            dynamic_ncols=True,
        )
        for chunk in range(start // cfg.chunk_updates, chunks):
            t0 = time.perf_counter()
            state, metrics = trainer.train_chunk(state, hp)
            stats = trainer.evaluate(state, hp)
            # Every run advances together; counted here, since with several processes
            # the runs' own counters are shards no single process holds.
            update = (chunk + 1) * cfg.chunk_updates
            if update not in done_updates:
                log(_eval_rows(cfg, update, stats, metrics))
            ckpt.save(update, state)
            bar.update(cfg.chunk_updates)
            bar.set_postfix(
                success=f"{float(np.mean(np.asarray(stats.success))):.3f}",
                goals=f"{float(np.mean(np.asarray(stats.visited_goals))):.2f}",
                s_per_chunk=f"{time.perf_counter() - t0:.1f}",
            )
            if stop_after is not None and update >= stop_after:
                break
        bar.close()
    finally:
        ckpt.close()
    return history
