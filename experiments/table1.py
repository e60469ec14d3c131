"""Table 1: 10-Monty-Hall, RL2 / ERL2 / CMRL (Max- and StDev-Until-Exploit).

    python -m experiments.table1                      # paper setting, every device JAX finds
    python -m experiments.table1 --updates 1000 --seeds 1 --out results/t1-quick
    python -m experiments.table1 --sweep              # Appendix A learning-rate grid
"""

from cmrl_jax.commands.experiment import run_table
from cmrl_jax.commands.tables import PAPER_METHODS, Recipe, Row, TableSpec, paper_row
from cmrl_jax.config import TrainConfig

THRESHOLDS = (0.25, 0.5, 0.75, 0.95, 1.0)
PAPER = {
    "RL2": paper_row(19.83, 0.0, 0.0, 0.00, THRESHOLDS),
    "ERL2": paper_row(2939.17, 59.5, 0.1, 6.42, THRESHOLDS, 7500, 9250),
    "Max-Until-Exploit": paper_row(9575.42, 100.0, 0.0, 9.00, THRESHOLDS,
                                   1250, 2750, 3750, 4500, 5000),
    "StDev-Until-Exploit": paper_row(9501.67, 99.7, 0.5, 9.00, THRESHOLDS,
                                     1250, 2500, 3750, 5000, 6500),
}


def oracle_line(env=None) -> str:
    """The oracle bound under the table (``env``: the table's bound env, unused)."""
    from cmrl_jax_envs.monty_hall import oracle_success  # gymnax: after --distributed joins

    return (
        f"Oracle: {100 * oracle_success(10, 10):.1f} % (10 explore rollouts or sub-episodes can "
        "open 9 distinct doors; the tenth is known by elimination)."
    )


SPEC = TableSpec(
    name="table1",
    title="Table 1: 10-Monty-Hall",
    cmrl_architecture="central_lstm",
    base=TrainConfig(
        env="monty_hall",
        env_kwargs=(("num_doors", 10),),
        k_explore=10,
        horizon=1,
        num_updates=10_000,
        divergence="js",
        reward_input_scale=10.0,
    ),
    rows=tuple(Row(m, m) for m in PAPER_METHODS),
    # Chosen by `--sweep` with the A2C recipe below, as the paper chose: the best mean final
    # success over 3 seeds (docs/results.md, "Learning speed on Table 1"; RL2 is 0 % at
    # every rate and keeps 2e-3).
    learning_rates={m: 2e-3 for m in PAPER_METHODS},
    # JS as in Appendix A; 0.5 because our A2C loss is a mean per decision (docs/design.md);
    # A2C's recipe below uses 0.25.
    lambda_div=0.5,
    # Appendix A's grid plus two larger rates: with the Appendix rates our runs are
    # still improving at 10k updates (docs/results.md).
    sweep_grid=(2e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 1e-4),
    thresholds=THRESHOLDS,
    paper=PAPER,
    num_goals=10,
    oracle=oracle_line,
    recipes={
        # A2C, the paper's learner (docs/results.md, "Learning speed on Table 1"): both
        # entropy bonuses anneal over the first 40 % of training (was 60 %); the CMRL
        # rollouts keep an explore bonus of 0.01 from the start, so exploration is
        # informative by update 1000 (9 doors) while the exploit bonus still holds the exploit
        # policy off NOOP; the sequential explorer keeps 1.0 (at 0.01 ERL2 ends at 33 %).
        # lambda_div 0.25 (was 0.5): the JS term makes the rollouts' policies deterministic
        # more slowly, and two rollouts on one door (zero JS gradient at p = q) are rarer.
        "a2c": Recipe(lambda_div=0.25, train=(("entropy_anneal_fraction", 0.4),),
                      concurrent=(("entropy_explore_start", 0.01),)),
        # Measured on this table (docs/results.md, "Plug-ins on Table 1"): PPO (2 epochs x 2
        # minibatches) at 1e-3 (the A2C recipe does not apply to it); a GRU needs 32 units in
        # every program (16: 72 % final) and keeps the entropy recipe it was measured with
        # (with A2C's above: 82.5 / 87.4 % for Max / StDev, against 99.9 / 96.5 %).
        "ppo": Recipe(learning_rate=1e-3),
        "gru": Recipe(hidden=32, lambda_div=0.5, train=(("entropy_anneal_fraction", 0.6),),
                      concurrent=(("entropy_explore_start", 1.0),)),
    },
)


def main(argv: list[str] | None = None) -> dict:
    """Run Table 1 from the command line."""
    return run_table(SPEC, argv)


if __name__ == "__main__":
    main()
