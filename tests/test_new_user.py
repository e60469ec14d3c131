"""What a new user met on 17cb582 (issue 19): each refusal is one line, each default is said;
and on f8571e8 (issue 33): pip installs the paper's experiments, not only cmrl-train."""

import ast
import errno
import importlib
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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
ROOT = Path(__file__).resolve().parents[1]


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


def _setuptools() -> tuple[dict, list[str], dict[str, str]]:
    """pyproject.toml, its installed packages and their folders ([tool.setuptools])."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    return project, tool["packages"], tool["package-dir"]


def _folder(package: str, folders: dict[str, str]) -> Path:
    """The checkout's folder of an installed package (``cmrl_jax_envs.x`` -> envs/x)."""
    top, *rest = package.split(".")
    return ROOT.joinpath(folders.get(top, top), *rest)


def test_the_wheel_lists_every_package_and_a_script_per_experiment():
    """setuptools installs only the packages listed: each listed one is a package, each
    package folder under them is listed, experiments/ is cmrl_jax_experiments, and every
    experiment (a module of experiments/ with a ``main``) has a console script whose
    function exists; ``train`` is ``cmrl-train``."""
    project, packages, folders = _setuptools()
    assert folders["cmrl_jax_experiments"] == "experiments"
    assert all((_folder(p, folders) / "__init__.py").is_file() for p in packages)
    for top in {p.split(".")[0] for p in packages}:
        root = _folder(top, folders)
        found = {".".join((top, *i.parent.relative_to(root).parts))
                 for i in root.rglob("__init__.py")}
        assert found <= set(packages), f"not in [tool.setuptools] packages: {found - set(packages)}"
    scripts = project["project"]["scripts"]
    experiments = sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                         if "\ndef main(" in p.read_text() and p.stem != "train")
    assert {"episode_figure", "figure6", "table1", "table2", "table3", "table4"} <= set(experiments)
    for name in experiments:
        assert scripts[f"cmrl-{name.replace('_', '-')}"] == f"cmrl_jax_experiments.console:{name}"
    assert scripts["cmrl-train"] == "cmrl_jax.commands.console:train"
    for target in scripts.values():
        module, attr = target.split(":")
        top, _, rest = module.partition(".")
        checkout_name = ".".join(filter(None, (folders.get(top, top), rest)))
        assert callable(getattr(importlib.import_module(checkout_name), attr)), target


def test_experiments_import_only_what_is_installed_with_them():
    """Installed, experiments/ is cmrl_jax_experiments: ``import experiments.x`` would fail
    there (its modules import each other relatively), as would the folders not installed."""
    not_installed = ("experiments", "envs", "examples", "benchmarks", "tests")
    bad = [f"{p.name}:{line} imports {module}"
           for p in sorted((ROOT / "experiments").glob("*.py"))
           for line, module in _absolute_imports(p)
           if module.split(".")[0] in not_installed]
    assert not bad, "\n".join(bad)


def _absolute_imports(path: Path):
    """(line, module) of every absolute import in ``path``, in functions too."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module


def test_a_console_script_drops_the_summary_its_command_returns(monkeypatch):
    """A console script passes its function's return to ``sys.exit``: a command's summary
    (a dict) would print and exit 1."""
    from experiments import console, table1

    monkeypatch.setattr(table1, "main", lambda: {"RL2": {"auc": 1.0}})
    assert console.table1() is None


@pytest.mark.slow
def test_the_wheel_runs_the_experiments_outside_the_checkout(tmp_path):
    """The wheel, built from a copy of the installed folders, pip-installed in a fresh venv
    (its dependencies from this venv's site-packages through a .pth, nothing of the
    checkout) and run from an unrelated folder: the console scripts, ``python -m
    cmrl_jax_experiments.table4`` (which imports table1) and an env by entry point. Slow:
    pip builds the wheel in its isolated environment, setuptools from the package index."""
    _, packages, folders = _setuptools()
    src = tmp_path / "src"  # setuptools writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for top in {p.split(".")[0] for p in packages}:
        shutil.copytree(_folder(top, folders), src / folders.get(top, top),
                        ignore=shutil.ignore_patterns("__pycache__"))

    def run(*argv, **kwargs):
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=300, **kwargs)

    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                tmp_path / "dist", src)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cmrl_jax_experiments/console.py" in names
    assert not [n for n in names if n.split("/")[0] in ("experiments", "examples", "envs")]

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python, bin_ = venv / "bin" / "python", venv / "bin"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    installed = run(sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "--no-deps", "--no-index", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert {f"cmrl-{n}" for n in ("table1", "table4", "figure6", "episode-figure", "train")} \
        <= {p.name for p in bin_.iterdir()}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def command(*argv):
        return run(*argv, cwd=elsewhere, env=env)

    where = command(python, "-c", "import cmrl_jax, cmrl_jax_experiments as e; "
                                  "print(cmrl_jax.__file__, e.__file__)")
    assert where.returncode == 0 and where.stdout.split() and all(
        f.startswith(str(venv)) for f in where.stdout.split()), where
    usage = command(bin_ / "cmrl-table1", "--help")
    assert usage.returncode == 0 and "Table 1: 10-Monty-Hall" in usage.stdout, usage.stderr
    table4 = command(python, "-m", "cmrl_jax_experiments.table4", "--methods", "Nope")
    assert table4.returncode == 2 and "unknown method 'Nope'" in table4.stderr, table4.stderr
    train = command(bin_ / "cmrl-train", "--env", "monty_hall", "--updates", "0")
    assert train.returncode == 2 and "--updates must be >= 1" in train.stderr, train.stderr
    figure = command(bin_ / "cmrl-episode-figure", "--results", "absent")
    assert figure.returncode == 2 and "does not exist" in figure.stderr, figure.stderr
    assert not list(elsewhere.iterdir())  # every refusal wrote nothing
