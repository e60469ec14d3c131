"""XLand-MiniGrid by name: benchmarks built offline, read safely, refusals, a tiny training run.

Needs the ``xland`` extra (``make install`` has it; CI installs it).
"""

import bz2
import json
import pickle
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xminigrid", reason="the xland extra is not installed: "
                    "pip install -e '.[xland]'")

from cmrl_jax.config import ConfigError, RunSpec, TrainConfig  # noqa: E402
from cmrl_jax.registry import env_options, env_spec, make_env  # noqa: E402
from cmrl_jax_envs import xland_benchmarks as xb  # noqa: E402

ENV = "xland:XLand-MiniGrid-R1-9x9"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Benchmarks built offline go to a temporary cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_built_benchmark_round_trips_and_loads_in_xminigrid(tmp_path):
    """Our file is xminigrid's format: its own loader reads it, as NumPy arrays."""
    from xminigrid.benchmarks import load_benchmark_from_path

    bench = xb.build_benchmark(16, seed=3, rules=2, distractors=1)
    assert bench["goals"].shape == (16, 5) and bench["rules"].shape == (16, 2, 7)
    assert bench["init_tiles"].shape[:1] == (16,) and np.all(bench["num_rules"] == 2)
    path = xb.save_benchmark(bench, tmp_path / "b.pkl.bz2")
    ours, theirs = xb.load_benchmark(path), load_benchmark_from_path(str(path))
    for k in xb.KEYS:
        np.testing.assert_array_equal(ours[k], bench[k])
        np.testing.assert_array_equal(np.asarray(getattr(theirs, k)), bench[k])
    again = xb.build_benchmark(16, seed=3, rules=2, distractors=1)
    assert all(np.array_equal(again[k], bench[k]) for k in xb.KEYS)  # seeded


class _Unreadable:
    """Unpickling this fails the way a foreign JAX array does: in its reconstructor."""

    def __reduce__(self):
        return (_fail, ())


def _fail():
    raise TypeError("cannot rebuild a jax.Array of another version")


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not bz2", "is not a bz2 pickle"),
    ("no keys", "lacks goals, rules, init_tiles, num_rules"),
    ("foreign jax", "cannot be read by this JAX"),
])
def test_bad_benchmark_files_are_one_line(tmp_path, case, message):
    path = tmp_path / "b.pkl.bz2"
    if case == "not bz2":
        path.write_text("hello")
    elif case == "no keys":
        with bz2.open(path, "wb") as f:
            pickle.dump({"goals": np.zeros((2, 5))}, f)
    elif case == "foreign jax":
        with bz2.open(path, "wb") as f:
            pickle.dump({"goals": _Unreadable()}, f)
    with pytest.raises(ConfigError, match=message) as e:
        xb.load_benchmark(path)
    assert "\n" not in str(e.value)


def test_ids_are_checked_and_the_family_lists_its_envs():
    with pytest.raises(ConfigError, match="unknown xland env 'Nope'; xminigrid has: "
                                          "XLand-MiniGrid-R1-9x9"):
        env_spec("xland:Nope")
    with pytest.raises(ConfigError, match="unknown minigrid env"):
        env_spec("minigrid:XLand-MiniGrid-R1-9x9")
    assert {"benchmark_path", "num_rulesets", "view_size"} <= set(env_options(ENV))


def test_reset_draws_a_ruleset_and_reaching_its_goal_is_success(capsys):
    """Different keys draw different rulesets; without a benchmark the env says where its
    offline one is; a step on the goal reports goal 0 with a positive reward."""
    env, params = make_env(ENV, num_rulesets=32)
    assert "built offline" in capsys.readouterr().err
    reset = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))
    obs, states = reset(jax.random.split(jax.random.PRNGKey(0), 64), params)
    assert obs.shape == (64, 5, 5, 2) and len(set(np.asarray(states.ruleset).tolist())) > 10
    # a hold-goal ruleset without rules, its tile in front of the agent: pick it up
    goal = np.array([1, 3, 1, 0, 0], np.uint8)  # AgentHoldGoal(red ball)
    one = params.replace(goals=jnp.asarray(goal[None]),
                         rules=jnp.zeros((1, 1, 7), jnp.uint8),
                         init_tiles=jnp.asarray(np.array([[[3, 1]]], np.uint8)))
    _, s = env.reset_env(jax.random.PRNGKey(1), one)
    agent = s.timestep.state.agent
    front = agent.position + jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]])[agent.direction]
    grid = s.timestep.state.grid.at[front[0], front[1]].set(jnp.array([3, 1], jnp.uint8))
    s = s.replace(timestep=s.timestep.replace(state=s.timestep.state.replace(grid=grid)))
    _, _, reward, done, info = env.step_env(jax.random.PRNGKey(2), s, jnp.int32(3), one)
    assert bool(done) and float(reward) > 0 and int(info["goal"]) == 0


def test_cli_refuses_an_unknown_id_in_one_line(tmp_path, capsys):
    from experiments import train

    with pytest.raises(SystemExit) as e:
        train.main(["--env", "xland:XLand-MiniGrid-R1-8x8", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown xland env 'XLand-MiniGrid-R1-8x8'" in err[0]
    with pytest.raises(SystemExit) as e:
        train.main(["--env", ENV, "--env-option", f"benchmark_path={tmp_path / 'none'}",
                    "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_command_trains_from_an_offline_benchmark_and_reports_heldout(tmp_path, capsys):
    """The done-when of issue 21 at tiny sizes: ``--env xland:...`` alone builds a benchmark
    offline, trains (grid encoder, fresh sub-episode starts) and prints a table with
    training and held-out success (about a minute: XLand's step is long to compile)."""
    from experiments import train

    out = tmp_path / "o"
    train.main(["--env", ENV, "--env-option", "num_rulesets=16", "--updates", "2",
                "--chunk-updates", "2", "--seeds", "1", "--batch-size", "4", "--horizon", "5",
                "--k-explore", "2", "--hidden", "8", "--methods", "ERL2",
                "--subepisode-start", "fresh",
                "--extra", "eval_batches=1", "eval_batch_size=4", "--out", str(out),
                "--no-progress"])
    captured = capsys.readouterr()
    assert "16 rulesets built offline" in captured.err
    header = next(line for line in captured.out.splitlines() if line.startswith("| Model"))
    assert "Final Perf." in header and "Held-out Final" in header
    row = next(line for line in captured.out.splitlines() if line.startswith("| ERL2"))
    assert row.count("(1 seed)") == 2  # training and held-out success
    config = json.loads((out / "sequential" / "config.json").read_text())
    assert config["encoder"] == "grid" and config["subepisode_start"] == "fresh"
    assert (out / "table.json").exists()


@pytest.mark.slow  # its compile alone takes a minute or more on 2 cores
def test_tiny_training_run_is_finite():
    """Two CMRL updates on 9 x 9 rulesets (K = 2, H = 5): the program builds and stays
    finite; an evaluation runs."""
    from cmrl_jax.train import make_trainer

    cfg = TrainConfig(env=ENV, env_kwargs=(("num_rulesets", 16),), architecture="meta_lstm",
                      hidden=8, k_explore=2, horizon=5, batch_size=4, num_updates=2,
                      chunk_updates=2, eval_batches=1, eval_batch_size=4, encoder="grid",
                      subepisode_start="fresh",
                      runs=(RunSpec("Max-Until-Exploit", 0, 1e-3, 0.01),))
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    state, metrics = trainer.train_chunk(state, hp)
    assert np.all(np.asarray(metrics.finite))
    stats = trainer.evaluate(state, hp)
    assert 0.0 <= float(stats.success[0]) <= 1.0
    held = trainer.evaluate_heldout(state, hp)  # 16 rulesets: 15 to train on, 1 held out
    assert 0.0 <= float(held.success[0]) <= 1.0


def _rows(part, keys=("goals", "rules", "init_tiles")):
    """The rulesets of ``part`` (goal, rules, initial tiles; or ``keys``) as a list of bytes."""
    n = len(part["goals"])
    flat = np.concatenate([part[k].reshape(n, -1) for k in keys], axis=1)
    return [bytes(row) for row in flat]


def test_rulesets_split_into_training_and_heldout():
    """The two splits are disjoint and cover the benchmark's rulesets; impossible splits are
    one line, a holdout that leaves a side empty with its counts."""
    from cmrl_jax_envs.xland import split_rulesets

    bench = xb.build_benchmark(10, seed=1)
    train = split_rulesets(bench, 0.05, 0, "train")
    test = split_rulesets(bench, 0.05, 0, "test")
    assert len(test["goals"]) > 0 and len(train["goals"]) > 0
    assert sorted(_rows(train) + _rows(test)) == sorted(_rows(bench))
    for k in xb.KEYS:  # each array indexed alike: the kept rulesets, in benchmark order
        assert len(train[k]) == len(train["goals"]) and train[k].shape[1:] == bench[k].shape[1:]
    for holdout, split, by, message in [
            (0.01, "train", "goals", re.escape(
                "holdout 0.01 of 10 rulesets leaves no held-out ruleset; held out by goals "
                "(holdout 0.01, seed 0): 0 of 10 rulesets, 0 of 10 goals")),
            (0.99, "train", "goals", "leaves no training ruleset"),
            (1.0, "train", "goals", r"holdout must be in \[0, 1\)"),
            (0.0, "test", "goals", "split=test needs holdout > 0"),
            (0.2, "valid", "goals", "split must be train or test"),
            (0.2, "train", "goal", "holdout_by must be goals or rulesets, got 'goal'")]:
        with pytest.raises(ConfigError, match=message) as e:
            split_rulesets(bench, holdout, 0, split, by=by)
        assert "\n" not in str(e.value)
    spec = env_spec(ENV)
    assert spec.heldout({"num_rulesets": 8}) == {"num_rulesets": 8, "split": "test"}
    assert spec.heldout({"holdout_by": "rulesets"}) == {"holdout_by": "rulesets",
                                                         "split": "test"}
    assert spec.heldout({"holdout": 0.0}) is None


@pytest.mark.parametrize("by", ["goals", "rulesets"])
@pytest.mark.parametrize("rules", [1, 0])
def test_heldout_rulesets_are_new_and_stable_across_sizes(by, rules):
    """Issue 31: by goals, no held-out goal is a training goal; either way no ruleset is on
    both sides, and a ruleset keeps its side when the benchmark grows (512 -> 1024 rulesets,
    prefix-stable builds): held-out numbers never score a training task."""
    from cmrl_jax_envs.xland import split_rulesets

    small, big = (xb.build_benchmark(n, seed=0, rules=rules) for n in (512, 1024))
    assert all(np.array_equal(small[k], big[k][:512]) for k in xb.KEYS)  # prefix-stable
    sides = {n: {s: split_rulesets(b, 0.2, 0, s, by=by) for s in ("train", "test")}
             for n, b in ((512, small), (1024, big))}
    for side in sides.values():
        train, test = (set(_rows(side[s])) for s in ("train", "test"))
        assert train and test and not train & test
        assert len(train) + len(test) == sum(len(side[s]["goals"]) for s in side)  # no dup
        goals = [set(_rows(side[s], ("goals",))) for s in ("train", "test")]
        if by == "goals":
            assert not goals[0] & goals[1]
        else:  # whole rulesets: held-out ones mostly share their goal with training ones
            assert goals[0] & goals[1]
    assert sorted(_rows(sides[1024]["train"]) + _rows(sides[1024]["test"])) == \
        sorted(set(_rows(big)))  # every distinct ruleset, on one side
    for s in ("train", "test"):
        assert set(_rows(sides[512][s])) <= set(_rows(sides[1024][s]))


@pytest.mark.parametrize("by", ["goals", "rulesets"])
def test_duplicate_rulesets_are_kept_once_and_padding_is_not_content(by):
    """A benchmark holding some rulesets twice splits as the one without the copies; a
    ruleset padded to more rules or tiles (trailing zeros) lands on the same side."""
    from cmrl_jax_envs.xland import split_rulesets

    bench = xb.build_benchmark(64, seed=2, rules=0)
    twice = {k: np.concatenate([v, v[::-1][:40]]) for k, v in bench.items()}
    padded = {**bench, "rules": np.pad(bench["rules"], ((0, 0), (0, 1), (0, 0))),
              "init_tiles": np.pad(bench["init_tiles"], ((0, 0), (0, 2), (0, 0)))}
    for s in ("train", "test"):
        want = split_rulesets(bench, 0.3, 0, s, by=by)
        got = split_rulesets(twice, 0.3, 0, s, by=by)
        assert all(np.array_equal(got[k], want[k]) for k in xb.KEYS)
        assert np.array_equal(split_rulesets(padded, 0.3, 0, s, by=by)["goals"], want["goals"])


def test_the_env_says_its_split_and_refuses_bad_ones_before_any_output(tmp_path, capsys,
                                                                       monkeypatch):
    """The split that runs is said once, after the benchmark's line; a bad ``holdout_by``
    or a holdout that leaves a side empty is one line before any cache or output."""
    from cmrl_jax_envs import xland

    for options, message in [({"holdout_by": "tasks"},
                              "holdout_by must be goals or rulesets, got 'tasks'"),
                             ({"num_rulesets": 8}, "holdout 0.2 of 8 rulesets leaves no "
                                                   "held-out ruleset; held out by goals")]:
        with pytest.raises(ConfigError, match=message) as e:
            make_env(ENV, **options)
        assert "\n" not in str(e.value)
        assert capsys.readouterr().err == "" and not (tmp_path / "cache").exists()
    monkeypatch.setattr(xland, "_SAID", set())
    make_env(ENV, num_rulesets=64, holdout_by="rulesets")
    make_env(ENV, num_rulesets=64, holdout_by="rulesets", split="test")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "64 rulesets built offline" in err[0], err
    assert err[1].startswith(f"{ENV.split(':')[1]}: held out by rulesets (holdout 0.2, "
                             "seed 0): "), err
    assert err[1].endswith(" 0 duplicate ruleset(s) dropped"), err


def test_throughput_benchmark_refuses_bad_sizes_and_tabulates(capsys, tmp_path):
    """``benchmarks.xland_throughput``: impossible sizes and a checkout that is not
    xland-minigrid's are one line, exit 2, before any compile; the table puts RL2, CMRL and
    the peer side by side with CMRL's cost per env step and RL2's ratio to the peer."""
    from benchmarks import xland_throughput as xt

    for argv, message in [
        (["--envs", "0"], "--envs, --hidden, --k-explore, --horizon, --chunk and --repeats "
                          "must be >= 1"),
        (["--peer", str(tmp_path)], f"--peer {tmp_path}: not a checkout of "
                                    "dunnolab/xland-minigrid (no training/train_meta_task.py"),
        (["--envs", "16", "--horizon", "5", "--peer", str(_fake_checkout(tmp_path / "x"))],
         "the peer updates every 32 steps: a trial of 20 steps"),
    ]:
        with pytest.raises(SystemExit) as e:
            xt.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    rows = [{"case": "RL2", "envs": 64, "trial_steps": 128, "steps_per_s": 3000,
             "temp_mib": 10.0},
            {"case": "CMRL", "envs": 64, "trial_steps": 128, "steps_per_s": 2000,
             "temp_mib": 20.5},
            {"case": "peer", "envs": 64, "trial_steps": 128, "steps_per_s": 1500},
            {"case": "RL2", "envs": 256, "trial_steps": 128, "steps_per_s": 9000},
            {"case": "peer", "envs": 256, "trial_steps": 128, "error": "it failed"}]
    lines = xt.table(rows).splitlines()
    assert lines[0].startswith("| envs | trial steps | remat | RL2 steps/s | CMRL steps/s |")
    assert lines[2] == "| 64 | 128 | none | 3,000 | 2,000 | 10.0 | 20.5 | 1.50x | 1,500 | 2.00x |"
    assert lines[3] == "| 256 | 128 | none | 9,000 | - | - | - | - | - | - |"
    cfg = xt.config("CMRL", 8, 16, 3, 4, 1, "ppo", 16)
    assert (cfg.cell, cfg.encoder, cfg.subepisode_start) == ("gru", "grid", "fresh")


# The snapshot's RolloutStats, as its training/utils.py has it (0d306d1): the patch's target.
_ROLLOUT_STATS = """class RolloutStats(struct.PyTreeNode):
    reward: jax.Array = jnp.asarray(0.0)
    length: jax.Array = jnp.asarray(0)
    episodes: jax.Array = jnp.asarray(0)


def rollout(rng):
    prev_action = jnp.asarray(0)
"""


def _fake_checkout(root):
    (root / "training").mkdir(parents=True)
    (root / "src" / "xminigrid").mkdir(parents=True)
    (root / "training" / "train_meta_task.py").write_text("print('hi')\n")
    (root / "training" / "utils.py").write_text(_ROLLOUT_STATS)
    return root


def test_peer_is_patched_in_a_scratch_copy_sized_and_read(tmp_path):
    """The peer's compatibility change lands in a copy (its three field defaults, not the
    local ``prev_action``), the checkout stays as it was, its flags carry our sizes, and
    its steps/s come from its own 'Training... Done in' line."""
    import dataclasses

    from benchmarks import xland_peer as xp

    checkout = xp.check_checkout(_fake_checkout(tmp_path / "xland-minigrid"))
    bench = xb.save_benchmark(xb.build_benchmark(4), tmp_path / "b.pkl.bz2")
    training = xp.prepare(checkout, tmp_path / "work", bench)
    patched = (training / "utils.py").read_text()
    assert patched.count("struct.field(default_factory=lambda: jnp.asarray(") == 3
    assert "    prev_action = jnp.asarray(0)\n" in patched
    assert (checkout / "training" / "utils.py").read_text() == _ROLLOUT_STATS
    assert (tmp_path / "work" / "data" / xp.BENCHMARK_FILE).read_bytes() == bench.read_bytes()
    ns = {}
    exec(compile(patched.split("def rollout")[0], "utils", "exec"),
         {"struct": __import__("flax").struct, "jax": jax, "jnp": jnp}, ns)
    assert float(ns["RolloutStats"]().reward) == 0.0  # the patched class builds

    size = xp.PeerSize(envs=64, hidden=256, trial=128, updates=3)
    args = dict(zip(size.args()[::2], size.args()[1::2], strict=True))
    assert args["--num_envs"] == "64" and args["--rnn_hidden_dim"] == "256"
    assert args["--num_steps_per_env"] == "128" and args["--total_timesteps"] == "24576"
    assert args["--eval_num_envs"] == "1" and args["--benchmark_id"] == xp.BENCHMARK_ID
    out = "Compiling...\nDone in 17.16s.\nTraining...\nDone in 2.50s.\nFinal return:  0.25\n"
    assert xp.parse(out) == {"compile_s": 17.16, "train_s": 2.5, "final_return": 0.25}
    with pytest.raises(RuntimeError, match="no 'Compiling"):
        xp.parse("Compiling...\nDone in 1s.\n")
    for bad, message in [(dict(trial=100), "multiple of it"),
                         (dict(envs=24), "16 minibatches must divide its 24"),
                         (dict(hidden=0), "peer hidden must be >= 1")]:
        with pytest.raises(ConfigError, match=message):
            dataclasses.replace(size, **bad)
