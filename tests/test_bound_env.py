"""One bound env per program, a config validated once (issue 29): a two-program run of the
generic command resolves its env's name, builds its env and validates each config at most
once per program; the neutral baseline and the held-out runner reuse the program's env."""

import dataclasses
import functools
import sys
from collections import Counter

import pytest

from cmrl_jax import registry
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from tests.probe_envs import split_doors, split_heldout

PROGRAMS = 2  # RL2 (sequential) and Max-Until-Exploit (central_lstm)
TINY = ["--updates", "2", "--chunk-updates", "1", "--seeds", "1", "--batch-size", "4",
        "--k-explore", "3", "--methods", "RL2", "Max-Until-Exploit",
        "--extra", "eval_batches=1", "eval_batch_size=4", "--no-progress"]


if "bound_split_doors" not in registry.registered_envs():
    registry.register_env(
        "bound_split_doors", split_doors, k_explore=3, horizon=1,
        architecture="central_lstm",
        heldout=split_heldout)


def _count(monkeypatch, env: str) -> Counter:
    """Count name resolutions (``registry.env_spec``, wherever it was imported), binds,
    ``make_env`` calls, env builds (``env``'s factory, by its options' split) and
    ``TrainConfig.validate`` calls."""
    calls: Counter = Counter()
    spec = registry.env_spec(env)  # resolved before counting (it registers a plug-in)

    def counting(key, f):
        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            calls[key] += 1
            return f(*args, **kwargs)
        return wrapped

    for attr in ("env_spec", "make_env", "bind_env"):
        original = getattr(registry, attr, None)
        if original is None:
            continue
        wrapped = counting(attr, original)
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "") or ""
            if (name.startswith(("cmrl_jax", "experiments"))
                    and getattr(module, attr, None) is original):
                monkeypatch.setattr(module, attr, wrapped)
    factory = spec.factory

    @functools.wraps(factory)
    def building(**options):
        calls["build " + options.get("split", "train")] += 1
        return factory(**options)

    monkeypatch.setitem(registry._REGISTRY, env, dataclasses.replace(spec, factory=building))
    validate = TrainConfig.validate

    def validating(self, *args, **kwargs):
        calls["validate"] += 1
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(TrainConfig, "validate", validating)
    return calls


def _run(tmp_path, monkeypatch, env: str, *extra: str) -> dict:
    from cmrl_jax.commands import tables
    from cmrl_jax.commands.generic import main

    monkeypatch.setattr(tables, "BASELINES", {})  # computed once per process: compute it
    return main(["--env", env, *extra, *TINY, "--out", str(tmp_path / "out")])


def test_two_programs_resolve_build_and_validate_once_each(tmp_path, monkeypatch):
    calls = _count(monkeypatch, "monty_hall")
    result = _run(tmp_path, monkeypatch, "monty_hall", "--env-option", "num_doors=4")
    assert set(result["methods"]) == {"RL2", "Max-Until-Exploit"}
    # before issue 29: 19 resolutions, 5 builds, 6 validations for these two programs
    assert calls["env_spec"] <= PROGRAMS  # the name, resolved once per program or fewer:
    assert calls["env_spec"] == 1  # here once, by the command, for both programs
    assert calls["build train"] <= PROGRAMS  # the env, built once per program or fewer:
    assert calls["build train"] == 1  # the plan's programs share it
    assert calls["validate"] == PROGRAMS  # each config validated once
    # the neutral baseline reused the program's env: the table has its line
    assert "Neutral policy" in (tmp_path / "out" / "table.md").read_text()


def test_the_heldout_runner_reuses_the_programs_env(tmp_path, monkeypatch):
    calls = _count(monkeypatch, "bound_split_doors")
    result = _run(tmp_path, monkeypatch, "bound_split_doors")
    assert all("heldout_final_success_mean" in m for m in result["methods"].values())
    # before issue 29: 16 resolutions, 5 builds, 2 held-out builds, 6 validations
    assert calls["env_spec"] == 1  # the held-out variant: no name resolved for it
    assert calls["build train"] == 1
    assert calls["build test"] == 1  # built once, for both programs' held-out runners
    assert calls["validate"] == PROGRAMS


def test_a_library_user_still_gets_validation(tmp_path):
    """make_trainer / run_training without a plan validate: one line for a bad name or
    option, before anything compiles."""
    from cmrl_jax.loop import run_training
    from cmrl_jax.train import make_trainer

    run = (RunSpec("Max-Until-Exploit", 0, 1e-3, 0.1),)
    with pytest.raises(ConfigError, match="unknown env 'nope'"):
        make_trainer(TrainConfig(env="nope", k_explore=3, runs=run))
    with pytest.raises(ConfigError, match="has no option 'doors'"):
        run_training(TrainConfig(env="monty_hall", env_kwargs=(("doors", 3),), k_explore=3,
                                 runs=run), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="no runs"):
        make_trainer(TrainConfig(env="monty_hall", k_explore=3))


def test_a_config_validated_against_its_env_is_not_validated_again(monkeypatch):
    """A plan validates each program once; the trainer given that bound env does not again,
    nor does it resolve the name or build the env."""
    from cmrl_jax.train import make_trainer

    cfg = TrainConfig(env="monty_hall", env_kwargs=(("num_doors", 4),), k_explore=3,
                      hidden=8, batch_size=4, num_updates=2, chunk_updates=2,
                      runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.1),))
    env = cfg.validate()
    assert isinstance(env, registry.BoundEnv) and env.matches("monty_hall", {"num_doors": 4})
    assert env.heldout is None  # monty_hall has no held-out tasks
    calls = _count(monkeypatch, "monty_hall")
    trainer = make_trainer(cfg, env=env)  # built, not compiled
    assert trainer.runner.env is env.env and trainer.runner.env_params is env.params
    assert calls["validate"] == 0 and calls["env_spec"] == 0 and calls["build train"] == 0
    with pytest.raises(ValueError, match="not this config's"):  # another env's: refused
        dataclasses.replace(cfg, env_kwargs=(("num_doors", 5),)).validate(env)
