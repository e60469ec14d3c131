"""Figure 6 (goal visitation heatmaps) and the meta-episode strip: maths, CLI, bad input."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig
from cmrl_jax.registry import register_env, registered_envs
from cmrl_jax.reporting.figures.hooks import Heatmap, Renderer
from cmrl_jax.reporting.figures.visitation import (
    exploration_frequency,
    percent_change,
    pooled_frequency,
    visitation_counts,
)
from cmrl_jax.results.folder import find_run
from cmrl_jax_envs.reacher_draw import fingertip_path
from experiments import episode_figure, figure6

# ------------------------------------------------------------------ maths


def test_visitation_counts_hand_computed():
    # bins: coordinate 0 in [-0.5, 0.5) / [0.5, 1.5]; coordinate 1 in 3 unit bins
    edges = (np.array([-0.5, 0.5, 1.5]), np.array([-0.5, 0.5, 1.5, 2.5]))
    positions = np.array([
        [[0, 0], [1, 2], [0, 1]],  # episode 0
        [[0, 0], [1, 2], [5, 5]],  # episode 1: the last goal lies outside every bin
        [[0.5, 0], [0, 0], [1, 1]],  # episode 2: 0.5 is the lower edge of row bin 1
    ], np.float32)
    entered = np.array([
        [True, False, True],
        [False, True, True],
        [True, True, False],
    ])
    hits, located = visitation_counts(positions, entered, edges)
    # located: (0,0) x3, (1,2) x2, (0,1) x1, (1,0) x1, (1,1) x1; (5,5) dropped
    assert_array_equal(located, [[3, 1, 0], [1, 1, 2]])
    # entered: (0,0) in episodes 0 and 2, (0,1) in 0, (1,2) in 1, (1,0) in 2
    assert_array_equal(hits, [[2, 1, 0], [1, 0, 1]])
    assert hits.dtype == np.int64 and located.shape == (2, 3)


def test_visitation_counts_nothing_entered():
    edges = (np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    hits, located = visitation_counts(np.full((4, 1, 2), 0.5), np.zeros((4, 1), bool), edges)
    assert_array_equal(hits, [[0, 0]])
    assert_array_equal(located, [[4, 0]])


def test_exploration_frequency_masks_empty_bins():
    freq = exploration_frequency(np.array([[1, 0], [0, 2]]), np.array([[4, 0], [3, 2]]))
    assert_array_equal(freq, [[0.25, np.nan], [0.0, 1.0]])


def test_percent_change_including_zeros():
    before = np.array([[0.5, 0.0, 0.0], [np.nan, 0.2, 0.4]])
    after = np.array([[0.75, 0.0, 0.3], [0.4, 0.0, np.nan]])
    # 100 (0.75 - 0.5) / 0.5 = +50; 0 -> 0: 0; 0 -> 0.3: +inf; no data: NaN; 0.2 -> 0: -100
    assert_array_equal(percent_change(before, after), [[50.0, 0.0, np.inf], [np.nan, -100.0,
                                                                             np.nan]])


def test_pooled_frequency():
    assert pooled_frequency(np.array([[1, 2]]), np.array([[4, 4]])) == 3 / 8
    assert np.isnan(pooled_frequency(np.zeros((1, 2)), np.zeros((1, 2))))


# ------------------------------------------------------------------ a tiny results folder

TINY = TrainConfig(
    env="color_choice",
    env_kwargs=(("num_goals", 2), ("height", 5), ("width", 6), ("horizon", 3)),  # 3 x 4 free
    k_explore=2,
    horizon=3,
    hidden=4,
    batch_size=2,
    num_updates=1,
    chunk_updates=1,
    eval_batches=1,
    eval_batch_size=2,
    divergence="skl",
)


def _write_program(folder, cfg: TrainConfig) -> None:
    """A program folder as ``run_training`` lays it out: config.json and one checkpoint.

    The parameters are freshly initialised (no training: that would compile the
    training program, which the figures never use).
    """
    from cmrl_jax.results.checkpoint import Checkpointer, write_config
    from cmrl_jax.train import make_init, make_runner

    write_config(folder, cfg.to_json())
    state, _ = jax.jit(make_init(cfg, make_runner(cfg)))()  # one compile, not many eager ops
    ckpt = Checkpointer(folder)
    try:
        ckpt.save(1, state)
    finally:
        ckpt.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A Table-2-like folder: sequential (RL2, ERL2) and meta_lstm (Max-Until-Exploit)."""
    folder = tmp_path_factory.mktemp("t2")
    _write_program(folder / "sequential", dataclasses.replace(
        TINY, architecture="sequential", runs=(RunSpec("RL2", 0, 1e-3), RunSpec("ERL2", 0, 1e-3))))
    _write_program(folder / "meta_lstm", dataclasses.replace(
        TINY, architecture="meta_lstm", runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1e-3),)))
    return folder


def test_figure6_end_to_end(results, tmp_path, capsys):
    png = tmp_path / "fig" / "f6.png"
    out = figure6.main(["--env", "color_choice", "--results", str(results), "--episodes", "8",
                        "--chunk", "3", "--out", str(png), "--no-progress"])
    assert png.is_file() and png.stat().st_size > 0
    data = json.loads(png.with_suffix(".json").read_text())
    assert out["json"] == png.with_suffix(".json")
    assert [len(e) for e in data["edges"]] == [4, 5]  # 3 x 4 grid: one bin per cell
    assert data["episodes"] == 8 and data["goals_per_episode"] == 2
    assert np.shape(data["percent_change"]) == (3, 4)
    for side, method in (("baseline", "ERL2"), ("cmrl", "Max-Until-Exploit")):
        run = data[side]
        assert run["method"] == method and run["update"] == 1
        located, hits = np.array(run["located_counts"]), np.array(run["entered_counts"])
        assert located.shape == hits.shape == (3, 4) and np.shape(run["frequency"]) == (3, 4)
        assert located.sum() == 8 * 2 and np.all(hits <= located)
    assert data["baseline"]["run_index"] == 1  # ERL2 is the sequential program's second run
    # the same keys give both agents the same tasks
    assert data["baseline"]["located_counts"] == data["cmrl"]["located_counts"]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("figure6 color_choice:") and "ERL2" in line


@pytest.mark.parametrize("figure", ["figure6", "episode_figure"])
def test_figure_on_a_full_disk_is_one_line_and_keeps_the_old_file(results, tmp_path, capsys,
                                                                     monkeypatch, figure):
    """ENOSPC while the PNG is written: one line naming the folder, exit 4, and the figure
    already there (an earlier run's) is whole and unchanged; no temporary file is left."""
    import errno

    import matplotlib.figure

    png = tmp_path / "fig.png"
    png.write_bytes(b"an earlier figure")

    def full(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half a PNG")  # the disk fills up mid-write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    argv = (["--env", "color_choice", "--results", str(results), "--episodes", "4", "--chunk",
             "2", "--no-progress"] if figure == "figure6" else
            ["--results", str(results), "--method", "ERL2"])
    with pytest.raises(SystemExit) as exc:
        {"figure6": figure6, "episode_figure": episode_figure}[figure].main(
            argv + ["--out", str(png)])
    assert exc.value.code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: the disk of {tmp_path} is full; the figure was not written (a file "
                   "of the same name is as it was): free space and run the same command again"]
    assert png.read_bytes() == b"an earlier figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_figures_use_the_newest_intact_checkpoint_or_refuse_in_one_line(results, tmp_path,
                                                                        capsys):
    """The newest step truncated: the figure says which step it uses and draws the older
    one (nothing is moved: a reader never changes a folder); every step damaged: one line,
    exit 2."""
    import shutil

    folder = tmp_path / "t2"
    shutil.copytree(results, folder)
    steps = folder / "sequential" / "checkpoints"
    shutil.copytree(steps / "1", steps / "2")  # a second, newer step ...

    def damage(step):
        for f in (steps / step).rglob("*"):
            if f.is_file() and f.stat().st_size:
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

    damage("2")  # ... cut in half by a full disk or a kill
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    png = tmp_path / "episode.png"
    episode_figure.main(["--results", str(folder), "--method", "ERL2", "--out", str(png)])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {steps}: step 2 cannot be read; using step 1"]
    assert png.is_file() and sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    damage("1")
    with pytest.raises(SystemExit) as exc:
        episode_figure.main(["--results", str(folder), "--method", "ERL2", "--out", str(png)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no checkpoint in {steps} can be read"), err


@pytest.mark.parametrize("method", ["ERL2", "Max-Until-Exploit"])
def test_episode_figure_replays_every_rollout(results, tmp_path, method):
    png = tmp_path / "episode.png"
    out = episode_figure.main(["--results", str(results), "--method", method, "--out", str(png)])
    assert png.is_file() and png.stat().st_size > 0
    assert len(out["explore"]) == TINY.k_explore
    for r in out["explore"] + [out["exploit"]]:
        assert 1 <= len(r.states) <= TINY.horizon + 1 and len(r.actions) == len(r.states) - 1
        assert_array_equal(r.states[0].goal_pos, out["exploit"].states[0].goal_pos)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "nope"], "unknown env"),
        (["--env", "color_choice", "--results", "{missing}"], "does not exist"),
        (["--env", "monty_hall"], "not monty_hall"),
        (["--env", "color_choice", "--cmrl-method", "StDev-Until-Exploit"], "no StDev"),
        (["--env", "color_choice", "--seed-index", "3"], "seed 3"),
        (["--env", "color_choice", "--episodes", "0"], "--episodes"),
    ],
)
def test_figure6_bad_input_exits_2(results, tmp_path, capsys, argv, message):
    argv = [a.replace("{missing}", str(tmp_path / "nothing")) for a in argv]
    if "--results" not in argv:
        argv += ["--results", str(results)]
    with pytest.raises(SystemExit) as e:
        figure6.main(argv + ["--out", str(tmp_path / "x.png"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


def test_episode_figure_bad_input_exits_2(results, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        episode_figure.main(["--results", str(results), "--method", "RL3"])
    assert e.value.code == 2
    assert "no RL3 run" in capsys.readouterr().err


def test_find_run_settles_several_learning_rates(tmp_path):
    """A sweep folder holds one run per learning rate: --learning-rate or sweep.json picks."""
    from cmrl_jax.results.checkpoint import write_config

    runs = tuple(RunSpec("ERL2", s, lr) for lr in (1e-3, 5e-3) for s in (0, 1))
    write_config(tmp_path / "sequential",
                 dataclasses.replace(TINY, architecture="sequential", runs=runs).to_json())
    with pytest.raises(ConfigError, match="learning rates 0.001, 0.005"):
        find_run(tmp_path, "ERL2", 1, env="color_choice")
    assert find_run(tmp_path, "ERL2", 1, learning_rate=5e-3, env="color_choice").index == 3
    (tmp_path / "sweep.json").write_text(json.dumps({"ERL2": {"chosen_learning_rate": 1e-3}}))
    assert find_run(tmp_path, "ERL2", 1, env="color_choice").index == 1


def test_plot_cartesian_axes(tmp_path):
    """The (x, y) drawing used by environments other than Color-Choice (e.g. Reacher)."""
    edges = (np.linspace(-0.2, 0.2, 4), np.linspace(-0.1, 0.1, 3))  # 3 x 2 bins
    base = np.array([[0.0, 0.5], [np.nan, 0.2], [0.0, 1.0]])
    cmrl = np.array([[0.4, 0.5], [np.nan, 0.1], [0.0, 1.0]])
    path = figure6.plot_figure6(base, cmrl, percent_change(base, cmrl), edges,
                                Heatmap(None, None), ("a", "b", "c"), "t", tmp_path / "f.png")
    assert path.is_file() and path.stat().st_size > 0


# ------------------------------------------------------------------ the strip on N-Reacher

TINY_REACHER = dataclasses.replace(
    TINY,
    env="reacher",
    env_kwargs=(("num_goals", 2), ("horizon", 3)),
    architecture="meta_lstm",
    divergence="js",
    runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1e-3),),
)


@pytest.mark.parametrize("env", ["reacher", "reacher_continuous"])
def test_episode_figure_reacher_replays_every_rollout(tmp_path, env):
    """A Table-3-like folder (one concurrent program): every rollout replays within tolerance
    (continuous torques: the recorded pre-squash actions are mapped to the env's)."""
    _write_program(tmp_path / "t3" / "meta_lstm", dataclasses.replace(TINY_REACHER, env=env))
    png = tmp_path / "reacher.png"
    out = episode_figure.main(["--env", env, "--results", str(tmp_path / "t3"),
                               "--out", str(png)])
    assert png.is_file() and png.stat().st_size > 0
    assert len(out["explore"]) == TINY_REACHER.k_explore
    for r in out["explore"] + [out["exploit"]]:
        assert 1 <= len(r.states) <= TINY_REACHER.horizon + 1
        assert len(r.actions) == len(r.states) - 1
        assert_array_equal(r.states[0].qpos, out["exploit"].states[0].qpos)
        assert_array_equal(r.states[0].targets, out["exploit"].states[0].targets)
        path, decisions = fingertip_path(r, points=4)
        assert path.shape == (4 * len(r.actions) + 1, 2) and decisions.shape == (len(r.states), 2)
        assert_array_equal(path[::4], decisions)  # the path passes through every decision
        assert np.all(np.linalg.norm(path, axis=1) <= 0.21 + 1e-6)  # within the arm's reach


def test_episode_figure_wrong_env_exits_2(results, tmp_path, capsys):
    """A Color-Choice folder drawn as Reacher: one error line, no figure."""
    with pytest.raises(SystemExit) as e:
        episode_figure.main(["--env", "reacher", "--results", str(results),
                             "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not reacher" in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ any env with a renderer

CHEST = "examples.hidden_chest:hidden_chest"
TINY_CHEST = dataclasses.replace(
    TINY, env=CHEST, env_kwargs=(("num_chests", 4),), horizon=1, architecture="central_lstm",
    runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 1e-3),),
)


def test_episode_figure_draws_a_user_env_through_its_renderer(tmp_path, capsys):
    """The example env (examples/hidden_chest.py) registers a strip renderer: the same
    command draws it, with the env read from the results folder."""
    _write_program(tmp_path / "chest" / "central_lstm", TINY_CHEST)
    png = tmp_path / "chest.png"
    out = episode_figure.main(["--results", str(tmp_path / "chest"), "--out", str(png)])
    assert png.is_file() and png.stat().st_size > 0
    assert len(out["explore"]) == TINY_CHEST.k_explore
    treasure = int(out["exploit"].states[0].treasure)
    for r in out["explore"] + [out["exploit"]]:
        assert len(r.states) == 2 and len(r.actions) == 1  # one decision per sub-episode
        assert r.goal == int(r.actions[0])  # the chest opened is the goal reported
        assert r.reward == (1.0 if r.goal == treasure else 0.0)
    assert out["success"] == (out["exploit"].goal == treasure)
    assert "episode_figure: Max-Until-Exploit" in capsys.readouterr().out


def _goalless(**options):
    """gymnax's Bernoulli bandit: it reports no ``info["goal"]``."""
    import gymnax

    return gymnax.make("BernoulliBandit-misc", **options)


GOALLESS = "test_figures_goalless"  # a heatmap renderer, but no goals to count
if GOALLESS not in registered_envs():
    register_env(GOALLESS, _goalless, renderer=Renderer(heatmap=Heatmap(
        goal_positions=lambda env, state, params: jax.numpy.zeros((2, 2)),
        bins=lambda env, params: (np.arange(3.0), np.arange(3.0)))))


@pytest.mark.parametrize(
    "env, script, message",
    [
        (GOALLESS, "figure6", "reports no goals"),
        ("gymnax:BernoulliBandit-misc", "strip", "registers no renderer strip"),
        ("gymnax:BernoulliBandit-misc", "figure6", "registers no renderer heatmap"),
        ("monty_hall", "figure6", "registers no renderer heatmap"),  # doors: a strip only
        (CHEST, "figure6", "registers no renderer heatmap"),  # a strip but no heatmap
    ],
)
def test_env_without_renderer_is_refused_in_one_line(tmp_path, capsys, env, script, message):
    """Config files only (nothing is restored): one error line, exit 2, no figure."""
    from cmrl_jax.results.checkpoint import write_config

    options = {"monty_hall": (("num_doors", 3),), CHEST: (("num_chests", 3),)}
    for arch, run in (("sequential", RunSpec("ERL2", 0, 1e-3)),
                      ("central_lstm", RunSpec("Max-Until-Exploit", 0, 1e-3, 1e-3))):
        cfg = dataclasses.replace(TINY, env=env, env_kwargs=options.get(env, ()), horizon=1,
                                  architecture=arch, runs=(run,))
        write_config(tmp_path / "r" / arch, cfg.to_json())
    png = tmp_path / "x.png"
    with pytest.raises(SystemExit) as e:
        if script == "strip":
            episode_figure.main(["--results", str(tmp_path / "r"), "--method", "ERL2",
                                 "--out", str(png)])
        else:
            figure6.main(["--env", env, "--results", str(tmp_path / "r"), "--out", str(png),
                          "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not png.exists()


def test_episode_figure_unknown_env_exits_2(results, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        episode_figure.main(["--env", "nope", "--results", str(results),
                             "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unknown env" in err and "\n" not in err


# ------------------------------------------------------------------ default paths, Monty-Hall


def test_figures_default_to_the_results_folder():
    """Without --out a figure goes beside the runs it reads, never into docs/figures."""
    from pathlib import Path

    assert figure6.default_png(Path("r/t2"), "color_choice") == Path(
        "r/t2/figure6_color_choice.png")
    assert episode_figure.default_png(Path("r/t1"), CHEST) == Path(
        "r/t1/examples.hidden_chest_hidden_chest_episode.png")


def test_figure6_without_out_writes_into_its_results_folder(results, tmp_path, monkeypatch):
    """Run from an empty folder: the PNG and its JSON land in --results, no docs/ appears."""
    import shutil

    folder = tmp_path / "t2"
    shutil.copytree(results, folder)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = figure6.main(["--env", "color_choice", "--results", str(folder), "--episodes", "2",
                        "--chunk", "2", "--no-progress"])
    assert out["png"] == folder / "figure6_color_choice.png" and out["png"].is_file()
    assert out["json"] == folder / "figure6_color_choice.json" and out["json"].is_file()
    assert list(work.iterdir()) == []


@pytest.fixture(scope="module")
def table1_results(tmp_path_factory):
    """A Table 1 folder (10-Monty-Hall, K = 10) as ``experiments.table1 --methods ERL2
    Max-Until-Exploit --seeds 1`` plans it: one sequential and one Central-LSTM program, each
    with a freshly initialised checkpoint (the strip draws any parameters)."""
    from cmrl_jax.commands.cli import parse_cli
    from cmrl_jax.commands.tables import TableArgs, make_plan
    from experiments import table1

    folder = tmp_path_factory.mktemp("t1")
    args = parse_cli(TableArgs, ["--methods", "ERL2", "Max-Until-Exploit", "--seeds", "1"], "t")
    for name, cfg in make_plan(table1.SPEC, args).programs:
        _write_program(folder / name, cfg)
    return folder


@pytest.mark.parametrize("method", ["ERL2", "Max-Until-Exploit"])
def test_episode_figure_draws_monty_hall_into_its_results_folder(table1_results, tmp_path,
                                                                  monkeypatch, capsys, method):
    """Table 1's env has a strip: each of the 10 explore rollouts (or sub-episodes) and the
    exploit opens one door or none, replayed against the record; the PNG lands in --results."""
    from cmrl_jax_envs.monty_hall_draw import outcome

    monkeypatch.chdir(tmp_path)  # the old default, docs/figures/, would appear here
    out = episode_figure.main(["--results", str(table1_results), "--method", method,
                               "--episode", "1"])
    png = table1_results / "monty_hall_episode.png"
    assert out["png"] == png and png.is_file() and png.stat().st_size > 0
    assert list(tmp_path.iterdir()) == []
    gold = int(out["exploit"].states[0].gold)
    assert len(out["explore"]) == 10
    for r in out["explore"] + [out["exploit"]]:
        assert len(r.states) == 2 and r.goal == int(r.actions[0]) - 1  # action i: door i - 1
        assert r.reward == pytest.approx(0.0 if r.goal < 0 else 0.1 if r.goal == gold else -1.0)
        assert int(r.states[0].gold) == gold  # one task for the whole meta-episode
        line = outcome(r, r.states[0])
        assert line == ("NOOP: no door opened (0)" if r.goal < 0 else
                        f"door {r.goal + 1}: {'gold (+0.1)' if r.goal == gold else 'bomb (-1)'}")
    assert capsys.readouterr().out.strip().endswith(f"wrote {png}")


def test_monty_hall_draws_a_noop_with_every_door_shut():
    """NOOP (action 0): no door outlined, every door faded, no reward written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmrl_jax.reporting.figures.replay import Replay
    from cmrl_jax_envs.monty_hall import MontyHall
    from cmrl_jax_envs.monty_hall_draw import draw_rollout, outcome

    env = MontyHall(4)
    _, state0 = env.reset_env(jax.random.PRNGKey(0), env.default_params)
    noop = Replay([state0, state0], np.array([0]), -1, 0.0)
    fig, ax = plt.subplots()
    draw_rollout(ax, env, env.default_params, state0, noop, "tab:blue")
    assert [p.get_alpha() for p in ax.patches] == [0.25] * 4 and not ax.texts[4:]
    plt.close(fig)
    assert outcome(noop, state0) == "NOOP: no door opened (0)"
