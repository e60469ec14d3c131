"""Experiment plans: which runs go into which compiled program (nothing is trained)."""

import pytest

from cmrl_jax.commands.tables import TableArgs, make_plan
from cmrl_jax.config import get_method
from cmrl_jax_envs.monty_hall import oracle_success
from experiments import table1, table2, table3, table4


def test_table1_two_programs_with_paper_sizes():
    """RL2 + ERL2 share the sequential program (LSTM 32); the CMRL rows the Central-LSTM (16)."""
    plan = make_plan(table1.SPEC, TableArgs())
    progs = dict(plan.programs)
    assert set(progs) == {"sequential", "central_lstm"}
    seq, cmrl = progs["sequential"], progs["central_lstm"]
    assert seq.hidden == 32 and cmrl.hidden == 16
    assert [r.method for r in seq.runs] == ["RL2"] * 3 + ["ERL2"] * 3
    assert [r.seed for r in cmrl.runs] == [0, 1, 2, 0, 1, 2]
    assert all(r.lambda_div == 0 for r in seq.runs)
    # A2C's recipe sets lambda_div (0.25) over the table's (0.5, PPO's and the GRU's)
    assert all(r.lambda_div == table1.SPEC.recipes["a2c"].lambda_div == 0.25 for r in cmrl.runs)
    assert cmrl.num_updates == 10_000 and cmrl.batch_size == 128 and cmrl.k_explore == 10


def test_tables_2_and_3_use_the_meta_lstm_with_appendix_a_sizes():
    """Color-Choice (SKL) and Reacher (JS): Meta-LSTM 16 vs sequential 32, K = 3, H = 15."""
    for spec, env, div, updates in ((table2.SPEC, "color_choice", "skl", 40_000),
                                    (table3.SPEC, "reacher", "js", 20_000)):
        progs = dict(make_plan(spec, TableArgs()).programs)
        assert set(progs) == {"sequential", "meta_lstm"}
        seq, cmrl = progs["sequential"], progs["meta_lstm"]
        assert (seq.hidden, cmrl.hidden) == (32, 16)
        for cfg in (seq, cmrl):
            assert (cfg.env, cfg.k_explore, cfg.horizon) == (env, 3, 15)
            assert cfg.num_updates == updates and len(cfg.runs) == 6
        assert cmrl.divergence == div
        assert all(r.lambda_div == spec.lambda_div > 0 for r in cmrl.runs)
    # the reach threshold and the physics are part of the config, so a folder trained at
    # another threshold or on MJX is refused
    progs = dict(make_plan(table3.SPEC, TableArgs()).programs)
    for cfg in progs.values():
        assert dict(cfg.env_kwargs)["distance_threshold"] == table3.REACH_THRESHOLD == 0.04
        assert dict(cfg.env_kwargs)["impl"] == table3.PHYSICS == "analytic"


def test_runtime_options_do_not_change_the_folder_identity():
    """--devices / --runs-devices / --distributed / --jobs / --no-progress: an existing
    results folder is still recognised (a folder trained on one layout resumes on another)."""
    base = make_plan(table1.SPEC, TableArgs()).experiment_json
    other = make_plan(table1.SPEC, TableArgs(devices=2, runs_devices=2, distributed=True, jobs=1,
                                             progress=False))
    assert other.experiment_json == base
    assert make_plan(table1.SPEC, TableArgs(seeds=2)).experiment_json != base


def test_sweep_vmaps_the_grid_in_the_same_programs():
    """--sweep: every method x learning rate x seed, still one program per architecture."""
    plan = make_plan(table1.SPEC, TableArgs(sweep=True, seeds=2))
    grid = table1.SPEC.sweep_grid
    for _, cfg in plan.programs:
        assert len(cfg.runs) == 2 * len(grid) * 2
        assert {r.learning_rate for r in cfg.runs} == set(grid)


def test_overrides_apply_to_every_selected_method():
    """--learning-rate / --lambda-div override; the sequential rows never get a divergence."""
    plan = make_plan(table1.SPEC, TableArgs(learning_rate=1e-3, lambda_div=0.3,
                                            methods=("ERL2", "Max-Until-Exploit")))
    runs = [r for _, cfg in plan.programs for r in cfg.runs]
    assert {r.learning_rate for r in runs} == {1e-3}
    assert {(r.method, r.lambda_div) for r in runs} == {("ERL2", 0.0), ("Max-Until-Exploit", 0.3)}


def test_table4_is_one_program_differing_only_in_traced_values():
    """All ablation rows x seeds share one Central-LSTM program; no-divergence rows have 0."""
    plan = make_plan(table4.SPEC, TableArgs())
    assert len(plan.programs) == 1
    _, cfg = plan.programs[0]
    assert cfg.architecture == "central_lstm" and len(cfg.runs) == 9 * 3
    by_row = {}
    for r in cfg.runs:
        by_row.setdefault(r.row, set()).add((get_method(r.method).scheme, r.lambda_div))
    lam = table4.SPEC.recipes["a2c"].lambda_div  # Table 1's A2C recipe
    assert by_row["Max+StDev-Until-Exploit"] == {("max_stdev", lam)}
    assert by_row["Zero-Until-Exploit"] == {("zero", lam)}
    assert by_row["Zero-Until-Exploit (no divergence)"] == {("zero", 0.0)}
    assert by_row["StDev-Until-Exploit (no divergence)"] == {("stdev", 0.0)}
    assert by_row["Shared"] == {("shared", lam)} and by_row["Separate"] == {("separate", lam)}


def test_monty_hall_oracle():
    """k >= N - 1 explore tries identify the gold door; fewer find it with probability k / N."""
    assert oracle_success(10, 10) == 1.0
    assert oracle_success(10, 9) == 1.0
    assert oracle_success(10, 5) == 0.5
    assert "100.0 %" in table1.oracle_line()


def test_table_cost_env_option_is_checked_before_anything_compiles(capsys):
    """benchmarks.table_cost --env-option: a bad value, an unknown key or several tables
    are one line and exit status 2 (nothing is built or timed). In process: the command
    line's own path is tested once for all commands by test_train's subprocess test."""
    from benchmarks import table_cost

    for args, says in ((["table3", "--env-option", "impl=mpi"], "impl must be one of"),
                       (["table3", "--env-option", "colour=red"], "has no option 'colour'"),
                       (["table2", "table3", "--env-option", "impl=jax"], "exactly one table")):
        with pytest.raises(SystemExit) as e:
            table_cost.main(args)
        out = capsys.readouterr()
        assert e.value.code == 2 and says in out.err, out.err
        assert out.out == "" and len(out.err.strip().splitlines()) == 1


def test_table_cost_projection_by_hand():
    """benchmarks.table_cost.project: parallel programs on a CPU (the longest one), the
    summed CPU time shared over the cores (never below the longest), the sum elsewhere."""
    from benchmarks.table_cost import project

    programs = [  # 40k updates: 0.12 s wall / 0.18 s CPU, and 0.10 s wall / 0.20 s CPU
        {"projected_full_run_s": 4800, "cpu_s_per_update": 0.18, "full_updates": 40000},
        {"projected_full_run_s": 4000, "cpu_s_per_update": 0.20, "full_updates": 40000},
    ]
    assert project(programs, "cpu", 2) == {"projected_table_wall_s": 4800,
                                           "projected_table_wall_s_shared_cores": 7600}
    assert project(programs, "cpu", 16) == {"projected_table_wall_s": 4800,
                                            "projected_table_wall_s_shared_cores": 4800}
    assert project(programs, "cpu", 1) == {"projected_table_wall_s": 8800}
    assert project(programs, "gpu", 2) == {"projected_table_wall_s": 8800}


def test_a_run_shorter_than_the_anneal_gets_one_note_instead_of_row_warnings():
    """--updates 500 on Table 1 (anneal: 40 % of the table's 10000 = 4000 updates): rows under
    the neutral policy are expected there, so one line names them all and says why; from 4000
    updates on each such row is warned about as before."""
    from cmrl_jax.commands.tables import Baseline, RunLength

    ref = Baseline(success="Success: the gold door opened in the exploit sub-episode",
                   policy="Categorical", neutral=0.091, episodes=4096)
    ours = {"RL2": {"final_success_mean": 0.0, "seeds": 3},
            "ERL2": {"final_success_mean": 1.5, "seeds": 3},
            "Max-Until-Exploit": {"final_success_mean": 9.0, "seeds": 3}}  # noise, not under
    plan = make_plan(table1.SPEC, TableArgs(updates=500, chunk_updates=250))
    short = RunLength.of(table1.SPEC, plan.programs)
    assert short == RunLength(500, 10_000, 0.4) and short.table_anneal == 4000
    assert ref.warnings(ours, 256, short) == [
        "note: RL2, ERL2 end under the neutral policy's 9.1 %, as a short run may: its 500 "
        "updates are fewer than the 4000 over which the entropy bonuses anneal in a run of the "
        "table's 10000 (this run annealed them over its first 200), so final success is not "
        "yet meaningful; run the table's 10000 updates for it"]
    one = ref.warnings({"RL2": ours["RL2"]}, 256, short)
    assert len(one) == 1 and one[0].startswith("note: RL2 ends under")
    at_anneal = RunLength(4000, 10_000, 0.4)
    warned = ref.warnings(ours, 256, at_anneal)
    assert warned == ref.warnings(ours, 256) and len(warned) == 2
    assert warned[0].startswith("warning: RL2 ends at 0.0 % success, under the neutral "
                                "policy's 9.1 %: it learned to do worse than acting blindly")
    fine = {"Max-Until-Exploit": ours["Max-Until-Exploit"]}
    assert ref.warnings(fine, 256, short) == []  # nothing under: nothing to say
    # Table 3 anneals over its first 10 % (2000 of 20000 updates)
    t3 = RunLength.of(table3.SPEC, make_plan(table3.SPEC, TableArgs(updates=2000)).programs)
    assert (t3.table_anneal, t3.inside_anneal) == (2000, False)


def test_program_folders_name_their_cell_and_learner(tmp_path):
    """A program's folder says which cell and learner ran (issue 33, friction 4); the
    paper's LSTM with A2C keeps the topology's name; a folder made before, under the
    topology's name alone with this program's config, keeps resuming there."""
    import dataclasses

    from cmrl_jax.results.checkpoint import write_config

    def names(*argv):
        from cmrl_jax.commands.cli import parse_cli

        args = parse_cli(TableArgs, [*argv, "--out", str(tmp_path / "t")], "t")
        return [name for name, _ in make_plan(table1.SPEC, args).programs]

    assert names() == ["sequential", "central_lstm"]
    assert names("--cell", "gru") == ["sequential_gru", "central_gru"]
    assert names("--learner", "ppo") == ["sequential_lstm_ppo", "central_lstm_ppo"]
    assert names("--cell", "mingru", "--learner", "ppo") == ["sequential_mingru_ppo",
                                                             "central_mingru_ppo"]
    old = dict(make_plan(table1.SPEC, dataclasses.replace(
        TableArgs(), cell="gru", out=str(tmp_path / "t"))).programs)["central_gru"]
    write_config(tmp_path / "t" / "central_lstm", old.to_json())
    assert names("--cell", "gru") == ["sequential_gru", "central_lstm"]


def test_the_table_names_each_programs_cell_and_learner(tmp_path):
    """table.md says which cell, memory size and learner each program ran (friction 4)."""
    import dataclasses

    from cmrl_jax.commands.experiment import programs_line

    plan = make_plan(table1.SPEC, dataclasses.replace(TableArgs(), cell="gru", learner="ppo",
                                                      out=str(tmp_path / "t")))
    line = programs_line(plan.programs)
    assert line.startswith("Programs: `sequential_gru_ppo/` (RL2, ERL2): sequential, gru 32, ppo")
    assert "`central_gru_ppo/` (Max-Until-Exploit, StDev-Until-Exploit): central_lstm, gru 32, " \
           "ppo" in line
