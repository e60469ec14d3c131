"""Table 1: 10-Monty-Hall, RL2 / ERL2 / CMRL (Max- and StDev-Until-Exploit).

    python -m experiments.table1                      # paper setting, CPU by default
    python -m experiments.table1 --updates 1000 --seeds 1 --out results/t1-quick
    python -m experiments.table1 --sweep              # Appendix A learning-rate grid
"""

from cmrl_jax.config import TrainConfig
from experiments.common import Row, TableSpec, run_table

PAPER = {
    "RL2": {"auc": 19.83, "final": 0.0, "final_std": 0.0, "visited": 0.00, "updates_until": {}},
    "ERL2": {
        "auc": 2939.17, "final": 59.5, "final_std": 0.1, "visited": 6.42,
        "updates_until": {"25": 7500, "50": 9250},
    },
    "Max-Until-Exploit": {
        "auc": 9575.42, "final": 100.0, "final_std": 0.0, "visited": 9.00,
        "updates_until": {"25": 1250, "50": 2750, "75": 3750, "95": 4500, "100": 5000},
    },
    "StDev-Until-Exploit": {
        "auc": 9501.67, "final": 99.7, "final_std": 0.5, "visited": 9.00,
        "updates_until": {"25": 1250, "50": 2500, "75": 3750, "95": 5000, "100": 6500},
    },
}

def monty_hall_oracle(num_doors: int = 10, k_explore: int = 10) -> float:
    """Best achievable success: open k distinct doors while exploring, then the gold one.

    With k >= N - 1 the gold door is always known (the last one by elimination).
    With fewer, an unknown door is worth opening only if P(gold) * 0.1 >
    (1 - P(gold)) * 1, i.e. never for N - k >= 2 doors left, so success = k / N.
    """
    return 1.0 if k_explore >= num_doors - 1 else k_explore / num_doors


def oracle_line() -> str:
    """The oracle bound under the table."""
    return (
        f"Oracle: {100 * monty_hall_oracle():.1f} % (10 explore rollouts or sub-episodes can "
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
    rows=tuple(Row(m, m) for m in ("RL2", "ERL2", "Max-Until-Exploit", "StDev-Until-Exploit")),
    # Chosen by `--sweep` (docs/results.md has its output).
    learning_rates={
        "RL2": 2e-3,
        "ERL2": 2e-3,
        "Max-Until-Exploit": 2e-3,
        "StDev-Until-Exploit": 2e-3,
    },
    # JS as in Appendix A; 0.5 because our A2C loss is a mean per decision (docs/design.md).
    lambda_div=0.5,
    # Appendix A's grid plus two larger rates: with the Appendix rates our runs are
    # still improving at 10k updates (docs/results.md).
    sweep_grid=(2e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 1e-4),
    thresholds=(0.25, 0.5, 0.75, 0.95, 1.0),
    paper=PAPER,
    num_goals=10,
    oracle=oracle_line,
)


def main(argv: list[str] | None = None) -> dict:
    """Run Table 1 from the command line."""
    return run_table(SPEC, argv)


if __name__ == "__main__":
    main()
