"""Trained runs of a results folder: locate one by row and seed (config files only), restore
it with ``cmrl_jax.saved.load_policy``.

Shared by the figure scripts (``experiments.figure6``, ``experiments.episode_figure``).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.saved import SavedPolicy


@dataclass(frozen=True)
class RunLocation:
    """Where one run lives in a results folder."""

    folder: Path  # the program's folder: config.json, checkpoints/, eval.jsonl
    cfg: TrainConfig
    index: int  # position in cfg.runs (the vmapped run axis)

    @property
    def spec(self) -> RunSpec:
        """The run's method, seed and hyperparameters."""
        return self.cfg.runs[self.index]


def read_programs(results: Path, env: str | None) -> list[tuple[Path, TrainConfig]]:
    """The programs (subfolders with config.json) of a results folder of ``env`` (None: of
    whichever one env the folder holds)."""
    if not results.is_dir():
        raise ConfigError(f"results folder {results} does not exist")
    programs = []
    for sub in sorted(p for p in results.iterdir() if (p / "config.json").is_file()):
        try:
            programs.append((sub, TrainConfig.from_json((sub / "config.json").read_text())))
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{sub / 'config.json'} is not a training config ({e})") from None
    if not programs:
        raise ConfigError(f"{results} is not a table results folder (no <program>/config.json)")
    envs = sorted({cfg.env for _, cfg in programs})
    if env is None and len(envs) > 1:
        raise ConfigError(f"results folder {results} holds runs of {', '.join(envs)}; "
                          "choose one with --env")
    if env is not None and envs != [env]:
        raise ConfigError(f"results folder {results} holds {', '.join(envs)} runs, not {env}")
    return programs


def find_run(
    results: Path, env: str | None, method: str, seed: int, learning_rate: float | None = None
) -> RunLocation:
    """Locate the run of table row ``method`` with ``seed`` (ConfigError if none or ambiguous).

    Several matches (a ``--sweep`` folder has one per learning rate) are settled
    by ``learning_rate``, else by the rate the sweep chose (``sweep.json``).
    """
    programs = read_programs(results, env)
    found = [
        RunLocation(folder, cfg, i)
        for folder, cfg in programs
        for i, run in enumerate(cfg.runs)
        if run.row == method
    ]
    if not found:
        rows = sorted({run.row for _, cfg in programs for run in cfg.runs})
        raise ConfigError(f"no {method} run in {results}; its runs: {', '.join(rows)}")
    with_seed = [r for r in found if r.spec.seed == seed]
    if not with_seed:
        seeds = sorted({r.spec.seed for r in found})
        raise ConfigError(f"no {method} run with seed {seed} in {results}; seeds: {seeds}")
    if len(with_seed) > 1 and learning_rate is None:
        sweep = results / "sweep.json"
        if sweep.is_file():
            learning_rate = json.loads(sweep.read_text()).get(method, {}).get(
                "chosen_learning_rate"
            )
    if learning_rate is not None:
        with_seed = [r for r in with_seed if np.isclose(r.spec.learning_rate, learning_rate)]
        if not with_seed:
            raise ConfigError(f"no {method} seed {seed} run with learning rate {learning_rate:g}")
    if len(with_seed) > 1:
        rates = ", ".join(f"{r.spec.learning_rate:g}" for r in with_seed)
        raise ConfigError(f"{method} seed {seed} has runs at learning rates {rates}; "
                          "choose one with --learning-rate")
    return with_seed[0]


def load_run(where: RunLocation) -> SavedPolicy:
    """Restore the newest checkpoint of ``where``'s program, keeping this run's parameters."""
    from cmrl_jax.saved import load_policy

    if not (where.folder / "checkpoints").is_dir():
        raise ConfigError(f"{where.folder} has no checkpoints yet")
    spec = where.spec
    return load_policy(where.folder, spec.row, spec.seed, spec.learning_rate)


def file_name(env: str) -> str:
    """An env name as part of a default file name (``module:name`` -> ``module_name``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in env)
