"""``load_policy(folder)``: a trained run's policy, restored read-only, ready to act.

A results folder (a table's, or the generic command's) holds one subfolder per
program with ``config.json`` and ``checkpoints/``. ``load_policy`` rebuilds the
program's runner from the config alone (no training script needed), restores
the newest checkpoint and keeps one run's parameters (no optimizer state). The
folder may be on an object store (``gs://...``, ``cmrl_jax.paths.results_path``).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig


@dataclass(frozen=True)
class SavedPolicy:
    """One trained run: its config, run, update count, engine and parameters."""

    cfg: TrainConfig
    run_spec: RunSpec
    update: int  # updates done at the restored checkpoint
    runner: Any  # engine.MetaEpisodeRunner of the program
    params: Any  # the run's network parameters (no run axis, no optimizer state)

    def meta_episode(self, key: jax.Array, greedy: bool = False):
        """One meta-episode (jittable, vmappable over keys): ``engine.MetaEpisode``."""
        return self.runner.run(self.params, key, greedy)

    def meta_episode_with_task(self, key: jax.Array, greedy: bool = False):
        """``meta_episode`` and the task it drew (jittable): (MetaEpisode, (obs0, state0))."""
        return self.runner.run_with_task(self.params, key, greedy)


def _programs(folder: Path) -> list[Path]:
    """Program folders under ``folder`` (or ``folder`` itself)."""
    if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
        return [folder]
    if not folder.is_dir():
        raise ConfigError(f"results folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir()
                   if (p / "config.json").is_file() and (p / "checkpoints").is_dir())
    if not found:
        raise ConfigError(f"{folder} has no trained program (<program>/config.json + checkpoints)")
    return found


def load_policy(folder: str | Path, method: str | None = None, seed: int = 0,
                learning_rate: float | None = None) -> SavedPolicy:
    """Restore the run of table row ``method`` (default: the first run found) with ``seed``.

    ConfigError (one line) if no run matches or several do (give ``learning_rate``).
    """
    from cmrl_jax.checkpoint import Checkpointer
    from cmrl_jax.train import make_init, make_runner

    matches = []
    from cmrl_jax.paths import results_path

    for program in _programs(results_path(folder, "results folder")):
        cfg = TrainConfig.from_json((program / "config.json").read_text())
        for i, run in enumerate(cfg.runs):
            if method not in (None, run.row) or run.seed != seed:
                continue
            if learning_rate is not None and abs(run.learning_rate - learning_rate) > 1e-12:
                continue
            matches.append((program, cfg, i))
    if not matches:
        raise ConfigError(f"no run {method or '(any)'} with seed {seed} in {folder}")
    if method is not None and len(matches) > 1:
        raise ConfigError(f"{len(matches)} runs of {method} seed {seed} in {folder}; "
                          "give learning_rate")
    program, cfg, index = matches[0]
    runner = make_runner(cfg)
    like, _ = jax.eval_shape(make_init(cfg, runner))
    ckpt = Checkpointer(program, read_only=True)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise ConfigError(f"{program} has no checkpoints yet")
        state = ckpt.restore(step, like)
    finally:
        ckpt.close()
    params = jax.tree.map(lambda a: a[index], state.params)
    return SavedPolicy(cfg, cfg.runs[index], int(step), runner, params)
