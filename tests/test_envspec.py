"""The environment contract: registry, gymnax fallback, success defaults, omitted metrics, CLI."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.engine import Transition, goal_success
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.envspec import EnvSpec, reports_goals, resolve_success, return_above
from cmrl_jax.registry import UnknownEnvError, env_options, env_spec, make_env
from cmrl_jax.reporting.metrics import render_table


def test_unknown_env_is_one_line_config_error():
    """Unknown names are ConfigErrors (one line, exit 2) and KeyErrors (old callers)."""
    for name in ("nope", "gymnax:Nope-misc"):
        with pytest.raises(UnknownEnvError) as e:
            make_env(name)
        assert isinstance(e.value, ConfigError) and isinstance(e.value, KeyError)
        assert "\n" not in str(e.value)


def test_env_options_checked():
    """An option the factory does not take is refused in validation, before any compilation."""
    with pytest.raises(ConfigError, match="has no option 'num_doors'"):
        make_env("color_choice", num_doors=3)
    cfg = TrainConfig(env="gymnax:MetaMaze-misc", env_kwargs=(("num_doors", 3),),
                      runs=(RunSpec("RL2", 0, 1e-3),), architecture="sequential")
    with pytest.raises(ConfigError, match="has no option 'num_doors'"):
        cfg.validate()
    # the default env_kwargs are the factory's defaults, valid for any env
    TrainConfig(env="gymnax:MetaMaze-misc", runs=(RunSpec("RL2", 0, 1e-3),),
                architecture="sequential").validate()


def test_gymnax_fallback_options():
    """gymnax:<id> takes its constructor's arguments and its EnvParams fields."""
    options = env_options("gymnax:MetaMaze-misc")
    assert {"maze_size", "rf_size", "reward", "max_steps_in_episode"} <= set(options)
    env, params = make_env("gymnax:MetaMaze-misc", maze_size=5, reward=2.0)
    assert env.maze_size == 5 and params.reward == 2.0
    _, params = make_env("gymnax:PointRobot-misc", max_force=0.2)
    assert params.max_force == 0.2


def test_reports_goals_and_default_success():
    """Goal-reporting envs succeed on a positive goal; others on exploit return > threshold."""
    mh, mh_params = make_env("monty_hall", num_doors=3)
    bandit, b_params = make_env("gymnax:BernoulliBandit-misc")
    assert reports_goals(mh, mh_params) and not reports_goals(bandit, b_params)
    assert resolve_success(env_spec("monty_hall"), mh, mh_params) is goal_success
    success = resolve_success(EnvSpec(factory=None, success_threshold=0.5), bandit, b_params)
    z = jnp.zeros((2, 1))
    ex = Transition(z[..., None], z[..., None], z, z.astype(jnp.int32),
                    jnp.array([[0.3], [0.3]]), jnp.ones((2, 1), bool), -jnp.ones((2, 1), jnp.int32))
    assert bool(success(ex, None, b_params))  # 0.6 > 0.5
    assert not bool(return_above(0.6)(ex, None, b_params))
    assert not bool(goal_success(ex, None, None))  # no goal entered


def test_success_hook_reaches_the_metrics():
    """The engine evaluates the env's success: a gymnax bandit reports non-zero success."""
    cfg = TrainConfig(env="gymnax:BernoulliBandit-misc", env_kwargs=(), architecture="sequential",
                      hidden=4, k_explore=2, horizon=1, batch_size=4, num_updates=1,
                      chunk_updates=1, eval_batches=1, eval_batch_size=256,
                      runs=(RunSpec("ERL2", 0, 1e-3),))
    from cmrl_jax.train import make_trainer

    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    stats = jax.tree.map(np.asarray, trainer.evaluate(state, hp))
    assert 0.3 < float(stats.success[0]) < 0.7  # untrained: about a random arm's 50 %
    assert float(stats.visited_goals[0]) == 0.0


def test_table_omits_unsupported_metric():
    """Without goals the Visited Goals column is left out, not shown as 0."""
    ours = {"RL2": {"auc": 1.0, "final_success_mean": 50.0, "final_success_std": 0.0,
                    "updates_until": {"50": 0}, "visited_goals_mean": 0.0,
                    "visited_goals_std": 0.0, "learning_rate": 1e-3}}
    assert "Visited Goals" in render_table(ours, {}, (0.5,), "t")
    table = render_table(ours, {}, (0.5,), "t", visited=False)
    assert "Visited" not in table and "0.00 ±" not in table


@pytest.mark.parametrize("argv, message", [
    (["--env", "nope"], "unknown env 'nope'"),
    (["--env", "gymnax:MetaMaze-misc", "--env-option", "doors=3"], "has no option 'doors'"),
    (["--env", "gymnax:MetaMaze-misc", "--env-option", "maze_size=x"], "expects int"),
    (["--env", "gymnax:MetaMaze-misc", "--env-option", "reward=nan"],
     "option reward must be a finite number, got nan"),
    (["--env", "reacher", "--env-option", "distance_threshold=inf"],
     "option distance_threshold must be a finite number, got inf"),
    (["--env", "monty_hall", "--architecture", "sequential"], "--architecture"),
    (["--env", "monty_hall", "--k-explore", "0"], "k_explore must be a positive integer"),
])
def test_generic_command_bad_input(argv, message, capsys, tmp_path):
    """One line on stderr, exit status 2, nothing written."""
    from experiments.train import main

    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "out"), "--updates", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_module_name_imports_a_user_env():
    """module:name imports the module (it registers name), so a config can name a user env."""
    env, _ = make_env("examples.hidden_chest:hidden_chest", num_chests=4)
    assert env.num_chests == 4
    with pytest.raises(UnknownEnvError, match="cannot import"):
        make_env("no_such_module_xyz:env")
    with pytest.raises(UnknownEnvError, match="registers no"):
        make_env("examples.hidden_chest:other")


def test_updates_not_a_multiple_of_the_chunk_is_an_error():
    """num_updates is trained in whole chunks: a remainder is refused, not floored."""
    with pytest.raises(ConfigError, match="multiple of chunk_updates"):
        TrainConfig(num_updates=10, chunk_updates=4, runs=(RunSpec("Max-Until-Exploit", 0, 1e-3),))


def test_paper_table_with_another_k_omits_paper_rows_and_oracle(tmp_path):
    """--extra k_explore=3 on Table 1: the paper's K = 10 rows and oracle are not printed."""
    from experiments.table1 import main as table1

    out = tmp_path / "t1"
    table1(["--updates", "2", "--chunk-updates", "2", "--seeds", "1", "--methods",
            "Max-Until-Exploit", "--batch-size", "4", "--extra", "k_explore=3", "eval_batches=1",
            "eval_batch_size=4", "--out", str(out), "--no-progress"])
    text = (out / "table.md").read_text()
    assert "| paper |" not in text and "Oracle" not in text
    assert "Paper rows and oracle omitted: k_explore = 3 (the table's 10)" in text
    # every table says what success means and what acting blindly scores (1 door in 10)
    assert "Success: the exploit sub-episode entered a goal with positive reward." in text
    neutral = re.search(r"Neutral policy \(zero head outputs, Categorical\) in the exploit "
                        r"sub-episode: (\d+\.\d) %", text)
    assert neutral and abs(float(neutral.group(1)) - 10.0) < 1.5, text
