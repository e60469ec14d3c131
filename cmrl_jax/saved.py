"""``load_policy(folder)``: a trained run's policy, restored read-only, ready to act.

A results folder (a table's, or the generic command's) holds one subfolder per
program with ``config.json`` and ``checkpoints/`` (``cmrl_jax.results.folder``).
``load_policy`` rebuilds the program's runner from the config alone (no
training script needed), restores the newest intact checkpoint and keeps one
run's parameters (no optimizer state). The
folder may be on an object store (``gs://...``, ``cmrl_jax.results.paths.results_path``).
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.results.folder import CHECKPOINTS_DIR, RunLocation, find_run


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


def load_policy(folder: "str | Path | RunLocation", method: str | None = None, seed: int = 0,
                learning_rate: float | None = None, env: Any = None) -> SavedPolicy:
    """Restore the run of table row ``method`` (default: the first run found) with ``seed``
    (``cmrl_jax.results.folder.find_run``), or the run ``folder`` locates.

    The newest checkpoint that reads is used; if newer ones are damaged, one
    line on stderr says which step was used instead (the folder is not
    changed). ConfigError (one line) if no run matches, several do (give
    ``learning_rate``), or no checkpoint can be read. ``env``: the program's bound env
    (``cmrl_jax.registry.bind_env`` of its config's env and options), bound here if not
    given.
    """
    from cmrl_jax.results.checkpoint import Checkpointer
    from cmrl_jax.train import make_init, make_runner

    where = folder if isinstance(folder, RunLocation) else find_run(
        folder, method, seed, learning_rate)
    cfg, index, program = where.cfg, where.index, where.folder
    if not (program / CHECKPOINTS_DIR).is_dir():
        raise ConfigError(f"{program} has no checkpoints yet")
    if env is not None and not env.matches(cfg.env, cfg.env_kwargs):
        raise ValueError(f"the bound env {env.name} {env.options} is not {program}'s "
                         f"({cfg.env} {cfg.env_kwargs})")
    runner = make_runner(cfg, env)
    like, _ = jax.eval_shape(make_init(cfg, runner))
    ckpt = Checkpointer(program, read_only=True)
    try:
        step, state, damaged = ckpt.newest_intact(like)
    finally:
        ckpt.close()
    if step == 0:
        raise ConfigError(f"{program} has no checkpoints yet")
    if damaged:
        print(f"warning: {program / CHECKPOINTS_DIR}: step {', '.join(map(str, damaged))} "
              f"cannot be read; using step {step}", file=sys.stderr, flush=True)
    params = jax.tree.map(lambda a: a[index], state.params)
    return SavedPolicy(cfg, cfg.runs[index], int(step), runner, params)
