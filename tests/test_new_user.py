"""What a new user met on 17cb582 (issue 19): each refusal is one line, each default is said."""

import errno
import json

import jax.numpy as jnp
import pytest
from gymnax.environments import environment, spaces

from cmrl_jax.agent.policy import make_policy
from cmrl_jax.commands.cli import disk_full
from cmrl_jax.commands.generic import TrainArgs, check_env_methods, main, make_spec
from cmrl_jax.commands.tables import Baseline
from cmrl_jax.config import ConfigError
from cmrl_jax.registry import UnknownEnvError, env_spec
from cmrl_jax.reporting.metrics import render_table
from cmrl_jax.results import folder as results
from cmrl_jax.results.checkpoint import claim_folder, write_config

CHEST = "examples.hidden_chest:hidden_chest"


def test_continuous_env_gets_the_small_entropy_bonus_and_the_table_says_so():
    """A Box-action env without entropy defaults starts both bonuses at 0.05; a discrete one
    keeps 1.0; the line under the table names the source."""
    box, _ = make_spec(TrainArgs(env="gymnax:Pendulum-v1"))
    assert (box.base.entropy_explore_start, box.base.entropy_exploit_start) == (0.05, 0.05)
    discrete, _ = make_spec(TrainArgs(env="gymnax:BernoulliBandit-misc"))
    assert (discrete.base.entropy_explore_start, discrete.base.entropy_exploit_start) == (1.0, 1.0)
    from cmrl_jax.commands.generic import _entropy_line

    env, params = env_spec("gymnax:Pendulum-v1").factory()
    line = _entropy_line(env_spec("gymnax:Pendulum-v1"), env, params, box.base)
    assert "explore 0.05, exploit 0.05 (the continuous-action default" in line
    line = _entropy_line(env_spec("gymnax:Pendulum-v1"), env, params, box.base,
                         ("entropy_explore_start=0.3",))  # what the run uses, not the default
    assert "explore 0.3, exploit 0.05 (--extra;" in line


def test_title_names_the_env_options():
    spec, _ = make_spec(TrainArgs(env="gymnax:MetaMaze-misc", env_option=("maze_size=5",)))
    assert "maze_size=5" in spec.title
    default, _ = make_spec(TrainArgs(env="gymnax:MetaMaze-misc"))
    assert "maze_size" not in default.title


def test_single_seed_shows_no_spread():
    row = {"auc": 1.0, "final_success_mean": 50.0, "final_success_std": 0.0,
           "updates_until": {"50": 10}, "visited_goals_mean": 1.0, "visited_goals_std": 0.0,
           "learning_rate": 1e-3, "seeds": 1}
    one = render_table({"RL2": row}, {}, (0.5,), "t")
    assert "50.0% (1 seed)" in one and "± 0.0%" not in one
    three = render_table({"RL2": {**row, "seeds": 3, "final_success_std": 2.0}}, {}, (0.5,), "t")
    assert "50.0 ± 2.0%" in three


def test_refusal_of_another_config_says_what_differs(tmp_path):
    write_config(tmp_path, json.dumps({"updates": 500, "seeds": 1, "table": "table1"}))
    with pytest.raises(ConfigError, match=r"updates 500 != 1000\)") as e:
        claim_folder(tmp_path, json.dumps({"updates": 1000, "seeds": 1, "table": "table1"}))
    assert "\n" not in str(e.value)


def test_empty_config_left_by_a_full_disk_is_not_a_foreign_folder(tmp_path):
    """An older version could leave a 0-byte config.json when the disk filled; alone in its
    folder it is taken as new, and written whole."""
    (tmp_path / results.CONFIG_FILE).write_text("")
    assert claim_folder(tmp_path, '{"a": 1}') is False
    write_config(tmp_path, '{"a": 1}')
    assert (tmp_path / results.CONFIG_FILE).read_text() == '{"a": 1}'


def test_atomic_write_on_a_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", no_space)
    with pytest.raises(OSError) as e:
        results.write_text_atomic(path, "new")
    assert disk_full(e.value)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json"]


def test_disk_full_is_recognised_through_wrapping_libraries():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise ValueError("RESOURCE_EXHAUSTED: Error writing local file") from inner
    except ValueError as wrapped:
        assert disk_full(wrapped)
    assert disk_full(ValueError("RESOURCE_EXHAUSTED: No space left on device"))
    assert not disk_full(ValueError("bad value"))


def test_unbounded_box_names_its_bounds():
    with pytest.raises(ValueError, match=r"low \[-inf, -inf\], high \[inf, inf\]"):
        make_policy(spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32))


def test_unknown_env_mentions_module_name():
    with pytest.raises(UnknownEnvError, match="module:name"):
        env_spec("nope")


class _Legacy(environment.Environment):
    """Defines the pre-1.0 gymnax name only."""

    def is_terminal(self, state, params):
        return jnp.array(False)


def test_is_terminal_without_is_terminated_is_one_line():
    with pytest.raises(ConfigError, match="defines is_terminal; gymnax 1.0 calls is_terminated"):
        check_env_methods("legacy", _Legacy())


@pytest.mark.parametrize("option", ["num_chests=-3", "num_chests=0"])
def test_env_constructor_rejections_are_one_line_before_writing(option, tmp_path, capsys):
    """gymnax's Discrete asserts on -3; zero chests fails only when traced. Both: one line,
    exit 2, nothing written."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["--env", CHEST, "--env-option", option, "--out", str(out), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: env {CHEST}") and "\n" not in err
    assert not out.exists()


def test_command_modules_do_not_start_jax_before_distributed_joins():
    """``--distributed`` must call jax.distributed.initialize before JAX's backend starts:
    importing a command (and the env entry points it names) may not start it."""
    import subprocess
    import sys

    code = ("import importlib, jax._src.xla_bridge as xb\n"
            "for m in ('experiments.table1', 'experiments.table2', 'experiments.table3',\n"
            "          'experiments.table4', 'cmrl_jax.commands.generic', 'experiments.figure6',\n"
            "          'experiments.episode_figure'):\n"
            "    importlib.import_module(m)\n"
            "    assert not xb._backends, m\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_row_clearly_under_the_neutral_policy_is_warned_about():
    """GaussianBandit's case: success "return above 0" where a safe arm returns exactly 0.
    Neutral 15.9 % over 4096 episodes; rows over 3 seeds x 256 episodes. Standard error of
    the difference at 12.0 %: sqrt(.159 * .841 / 4096 + .12 * .88 / 768) = 1.30 points, so
    the line is at 15.9 - 2.61 = 13.3 %: 12.0 % warns, 15.5 % (noise) does not."""
    ref = Baseline(success="Success: the exploit sub-episode's return is above 0",
                   policy="Categorical", neutral=0.159, episodes=4096)
    ours = {"ERL2": {"final_success_mean": 12.0, "seeds": 3},
            "Max-Until-Exploit": {"final_success_mean": 15.5, "seeds": 3},
            "RL2": {"final_success_mean": 13.5, "seeds": 3}}
    lines = ref.warnings(ours, eval_episodes=256)
    assert lines == [
        "warning: ERL2 ends at 12.0 % success, under the neutral policy's 15.9 %: it learned "
        "to do worse than acting blindly, or the success definition does not fit this env "
        "(Success: the exploit sub-episode's return is above 0)"]
    assert ref.lines().splitlines() == [
        "Success: the exploit sub-episode's return is above 0",
        "Neutral policy (zero head outputs, Categorical) in the exploit sub-episode: 15.9 %."]
