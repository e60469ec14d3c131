"""Typed options (issue 29): ``--train.*`` / ``--ppo.*`` are listed by ``--help``, reach the
programs' configs, are checked in one line, and one function says where each value came from.
Nothing here trains: the plans are built and refused before anything compiles."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmrl_jax.commands.cli import parse_cli
from cmrl_jax.commands.tables import (
    PPOOptions,
    Recipe,
    TableArgs,
    TrainOptions,
    make_plan,
    resolve_options,
)
from cmrl_jax.config import ConfigError, TrainConfig, get_learner
from experiments import table1

ROOT = Path(__file__).resolve().parents[1]


def _args(*argv: str) -> TableArgs:
    return parse_cli(TableArgs, list(argv), "test")


def _programs(*argv: str) -> dict:
    return dict(make_plan(table1.SPEC, _args(*argv)).programs)


def test_help_lists_the_typed_options():
    done = subprocess.run([sys.executable, "-m", "experiments.table1", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    for flag in ("--train.gamma", "--train.entropy-explore-start", "--train.hidden",
                 "--train.remat", "--train.eval-greedy", "--ppo.epochs", "--ppo.clip",
                 "--ppo.gae-lambda", "--extra", "--learner-option"):
        assert flag in text, flag
    assert "discount factor" in text  # each typed option says what it does


def test_the_ppo_group_is_ppos_options():
    assert [f.name for f in dataclasses.fields(PPOOptions)] == list(get_learner("ppo").options)


def test_typed_options_reach_every_program_as_extra_does():
    typed = _programs("--train.gamma", "0.9", "--train.remat", "step", "--train.hidden", "8",
                      "--learner", "ppo", "--ppo.epochs", "3")
    assert len(typed) == 2
    for cfg in typed.values():
        assert (cfg.gamma, cfg.remat, cfg.hidden) == (0.9, "step", 8)
        assert dict(cfg.learner_options) == {"epochs": 3}
    hatch = _programs("--extra", "gamma=0.9", "remat=step", "hidden=8", "--learner", "ppo",
                      "--learner-option", "epochs=3")
    assert {k: c.to_json() for k, c in typed.items()} == {k: c.to_json() for k, c in hatch.items()}


def test_experiment_json_records_the_typed_options_only_when_set():
    plain = json.loads(make_plan(table1.SPEC, _args("--updates", "250")).experiment_json)
    assert "train" not in plain and "ppo" not in plain  # folders made before still resume
    typed = json.loads(make_plan(table1.SPEC, _args("--train.gamma", "0.9")).experiment_json)
    assert typed["train"] == {"gamma": 0.9} and "ppo" not in typed
    assert {k: v for k, v in typed.items() if k != "train"} == {
        k: v for k, v in json.loads(make_plan(table1.SPEC, _args()).experiment_json).items()}


def test_sources_of_table1_values_with_and_without_overrides():
    cfg, sources = resolve_options(table1.SPEC, TableArgs())
    assert cfg.reward_input_scale == 10.0 and sources["reward_input_scale"] == "table spec"
    assert sources["k_explore"] == "table spec" and sources["num_updates"] == "table spec"
    assert cfg.gamma == 0.99 and sources["gamma"] == "TrainConfig default"
    assert sources["hidden"] == "the method's"  # 32 sequential, 16 CMRL, per program
    assert sources["learning_rate"] == "table spec"

    cfg, sources = resolve_options(table1.SPEC, _args(
        "--learner", "ppo", "--cell", "gru", "--updates", "500", "--train.gamma", "0.9",
        "--extra", "value_coef=0.25", "--ppo.clip", "0.1"))
    assert (cfg.gamma, sources["gamma"]) == (0.9, "--train.gamma")
    assert (cfg.value_coef, sources["value_coef"]) == (0.25, "--extra")
    assert (cfg.hidden, sources["hidden"]) == (32, "recipe gru")
    assert sources["learning_rate"] == "recipe ppo"
    assert (cfg.num_updates, sources["num_updates"]) == (500, "--updates")
    assert sources["learner_options.clip"] == "--ppo.clip"
    assert sources["learner_options.epochs"] == "learner ppo default"
    assert sources["reward_input_scale"] == "table spec"

    # the command line beats the recipe
    cfg, sources = resolve_options(table1.SPEC, _args("--cell", "gru", "--train.hidden", "8",
                                                      "--learner", "ppo",
                                                      "--learning-rate", "3e-4"))
    assert (cfg.hidden, sources["hidden"]) == (8, "--train.hidden")
    assert sources["learning_rate"] == "--learning-rate"
    assert all(c.hidden == 8 and c.runs[0].learning_rate == 3e-4 for c in _programs(
        "--cell", "gru", "--train.hidden", "8", "--learner", "ppo",
        "--learning-rate", "3e-4").values())


def _refused(argv, capsys, tmp_path) -> str:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        table1.main(["--out", str(out), "--no-progress", "--updates", "250", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["--train.gamma", "0.9", "--extra", "gamma=0.8"],
     "--train.gamma and --extra gamma=... both set gamma"),
    (["--learner", "ppo", "--ppo.epochs", "2", "--learner-option", "epochs=3"],
     "--ppo.epochs and --learner-option epochs=... both set epochs"),
])
def test_a_typed_option_and_its_escape_hatch_on_one_key_are_refused(argv, message, capsys,
                                                                    tmp_path):
    assert message in _refused(argv, capsys, tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--train.gamma", "1.5"], "--train.gamma: gamma must be a finite number"),
    (["--train.entropy-explore-start", "-0.1"], "--train.entropy-explore-start: "),
    (["--train.remat", "fast"], "--train.remat: unknown remat 'fast'"),
    (["--train.hidden", "0"], "--train.hidden: hidden must be a positive integer"),
    (["--train.gamma", "x"], "--train.gamma"),
    (["--train.eval-greedy", "maybe"], "--train.eval-greedy"),
    (["--ppo.clip", "0.1"], "--ppo.clip is an option of --learner ppo"),
    (["--learner", "ppo", "--ppo.clip", "-1"], "--ppo.clip: learner option clip must be"),
])
def test_a_bad_typed_value_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert message in _refused(argv, capsys, tmp_path)


def test_the_generic_entropy_line_names_a_typed_option():
    from cmrl_jax.commands.generic import TrainArgs, _entropy_line, make_spec
    from cmrl_jax.registry import env_spec

    args = TrainArgs(env="gymnax:Pendulum-v1",
                     train=TrainOptions(entropy_explore_start=0.3))
    box, args = make_spec(args)
    spec = env_spec("gymnax:Pendulum-v1")
    env, params = spec.factory()
    line = _entropy_line(spec, env, params, box.base, args=args)
    assert "explore 0.3, exploit 0.05 (--train.entropy-explore-start;" in line
    cfg, sources = resolve_options(box, args)
    assert sources["entropy_exploit_start"] == "the continuous-action default"
    assert sources["env"] == "--env" and sources["k_explore"] == "env spec"


def test_the_generic_hidden_flag_and_the_typed_one_are_not_both_taken():
    from cmrl_jax.commands.generic import TrainArgs, make_spec

    with pytest.raises(ConfigError, match="--hidden and --train.hidden"):
        make_spec(TrainArgs(env="monty_hall", hidden=64, train=TrainOptions(hidden=8)))
    with pytest.raises(ConfigError, match="both set hidden"):
        make_spec(TrainArgs(env="monty_hall", hidden=64, extra=("hidden=8",)))


def test_an_oracle_without_the_env_argument_still_prints():
    """Tables written before the bound env define ``oracle()``; the bound env is passed only
    to an oracle that takes it."""
    from cmrl_jax.commands.experiment import oracle_text

    assert oracle_text(lambda: "Oracle: 100 %.", object()) == "Oracle: 100 %."
    assert oracle_text(lambda env=None: f"got {env}", "E") == "got E"


def _kinds_spec():
    """Table 1 with an A2C recipe that sets one value for every program and one per kind."""
    recipes = dict(table1.SPEC.recipes) | {"a2c": Recipe(
        train=(("entropy_anneal_fraction", 0.4),),
        concurrent=(("entropy_explore_start", 0.01),),
        sequential=(("value_coef", 0.25),))}
    return dataclasses.replace(table1.SPEC, recipes=recipes)


def test_a_recipe_sets_values_per_kind_of_program_and_the_command_line_wins():
    spec = _kinds_spec()
    plan = make_plan(spec, TableArgs())
    by_arch = {arch: cfg for arch, cfg in plan.programs}
    seq, cmrl = by_arch["sequential"], by_arch["central_lstm"]
    assert seq.entropy_anneal_fraction == cmrl.entropy_anneal_fraction == 0.4
    assert (seq.entropy_explore_start, cmrl.entropy_explore_start) == (1.0, 0.01)
    assert (seq.value_coef, cmrl.value_coef) == (0.25, 0.5)
    _, sources = resolve_options(spec, TableArgs())
    assert sources["entropy_anneal_fraction"] == "recipe a2c"
    assert sources["entropy_explore_start"] == "recipe a2c (concurrent programs)"
    assert sources["value_coef"] == "recipe a2c (sequential programs)"

    # the command line wins in every program; another learner's recipe does not apply
    plan = make_plan(spec, _args("--train.entropy-explore-start", "0.3", "--extra",
                                 "value_coef=0.1"))
    assert {(c.entropy_explore_start, c.value_coef) for _, c in plan.programs} == {(0.3, 0.1)}
    plan = make_plan(spec, _args("--learner", "ppo"))
    assert {(c.entropy_anneal_fraction, c.entropy_explore_start) for _, c in plan.programs} \
        == {(TrainConfig().entropy_anneal_fraction, 1.0)}


def test_a_recipe_refuses_a_value_it_may_not_set():
    with pytest.raises(ValueError, match="'num_updates' is not a TrainConfig field"):
        Recipe(train=(("num_updates", 5),))
    with pytest.raises(ValueError, match="'gama' is not"):
        Recipe(concurrent=(("gama", 0.9),))
