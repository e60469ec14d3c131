"""XLand-MiniGrid study: RL2, ERL2 and CMRL (Central and Meta), memory matched, on one benchmark.

    python -m experiments.xland_study --size smoke --out /tmp/xs   # the test's: minutes, compile
    python -m experiments.xland_study --size cpu                   # <= 2 h on a 2-core CPU
    python -m experiments.xland_study --size gpu                   # the full study, one GPU

One benchmark: ``xland:XLand-MiniGrid-R1-9x9`` with goal-only rulesets (``rules=0``: hold, or
stand next to, one of three placed objects; the other two are distractors), 1024 rulesets
built offline, 20 % of the goals held out of training (``holdout_by=goals``: the held-out
columns are goals never trained on). K = 3, H = 20, same starts, A2C, the grid encoder,
rewards x 10 in the agent input. Entropy bonuses 0.05 -> 0.01 in both phases, the recipe of
the XLand runs of docs/results.md ("goal-only rulesets"): the navigation recipe's exploit
start of 1.0 kept both programs uniform there until it annealed. lambda_div 0.01 (JS), the
XLand spec's.

Rows, and the program each trains in (``make_plan`` groups rows by topology and memory size):

| row | topology, memory | program folder |
|---|---|---|
| RL2, ERL2 | sequential LSTM 32 | ``sequential/`` |
| Max-Until-Exploit (Central-16) | Central-LSTM 16 (the paper's pairing) | ``central_lstm_h16/`` |
| Max-Until-Exploit (Meta-16) | Meta-LSTM 16 (the paper's pairing) | ``meta_lstm_h16/`` |
| Max-Until-Exploit (Meta-32) | Meta-LSTM 32: exploit memory of ERL2's size | ``meta_lstm_h32/`` |

Every run trains on the same env steps: updates x batch x (K + 1) x H (CMRL: K rollouts and
the exploit sub-episode; RL2 / ERL2: K sub-episodes and the exploit one). The CMRL rows'
memory sizes are fixed (``Row.hidden``): ``--train.hidden`` is refused with them selected.
By default every size sweeps its learning-rate grid, vmapped (``--sweep``), and each row keeps
the rate of the best mean final success on the training rulesets (AuC breaks ties); the
held-out numbers take no part in the choice. ``--no-sweep --learning-rate X`` trains one rate.
The table: final success and AuC on training and held-out goals, 95 % intervals over seeds,
IQM (>= 5 seeds), P(CMRL row > ERL2) on each, and under it the env steps per run and each
program's wall seconds (compile and evaluation included) on the machine that ran it.

Sizes (``SIZES``; ``--updates``, ``--seeds``, ``--batch-size``, ``--chunk-updates`` and every
other table option override a size's):

- ``smoke``: 2 updates, batch 2, 2 seeds, 2 rates, 4 evaluation meta-episodes: the plumbing
  only (tests/test_xland_study.py); compiling is the whole cost: ERL2 and Meta-16 alone
  (``--methods``, ``--jobs 1``) took 221 s on the 2-core CPU beside another run (86 s and
  123 s per program, then the neutral baseline), all four programs some minutes more.
- ``cpu``: 300 updates x batch 16, 5 seeds, 2 rates (2e-3, 1e-3), 512 evaluation
  meta-episodes per split at updates 0, 100, 200, 300. Projection for this project's 2-core
  CPU, from the measured goal-only run (docs/results.md, "goal-only rulesets": 2 programs x 2
  seeds x 1500 updates x 32 = 192,000 training meta-episodes in 2334 s of wall on 2 cores,
  compile included, beside the test suite, i.e. <= 24.4 core-ms per meta-episode):
  runs = 5 rows x 2 rates x 5 seeds = 50 (sequential 20, each CMRL program 10); per run
  300 x 16 = 4,800 training meta-episodes (384,000 env steps) and 4 x 2 x 512 = 4,096
  evaluation ones (forward only: counted at half a training one's cost, unmeasured). Two
  programs at a time (one per core) finish the 20 + 10 + 10 + 10 run-units in 30 at best
  (the sequential program's 20 on one core, then the last CMRL program's 10 alone):
  30 x (4,800 + 2,048) x 24.4 ms = 5,010 s, + ~450 s compile (4 programs x 3 XLA programs
  x ~60 s of a core) and the neutral baseline = ~5,500 s = 1.5 h; 1.9 h if an evaluation
  meta-episode costs a training one's. Slack: the measurement was contested, and 160-320
  meta-episodes per vmapped step are cheaper each than its 64. Unmeasured risk: the
  Meta-LSTM's per-step cost over the sequential LSTM's at these sizes (the compute line
  under the table measures it).
- ``gpu``: 20,000 updates x batch 128 (Table 3's length; 2.56M meta-episodes per run, 53 x
  the cpu run of docs/results.md), 5 seeds, 4 rates (2e-3, 1e-3, 5e-4, 2.5e-4), 1024
  evaluation meta-episodes per split every 500 updates. runs = 5 x 4 x 5 = 100; env steps:
  100 x 20,000 x 128 x 4 x 20 = 20.5 G training + 100 x 41 x 2 x 1024 x 80 = 0.67 G
  evaluation. Projected, not run: no XLand program of this project has been timed on a GPU
  yet. At 1 M env steps/s (``make device-check``'s XLand target for our RL2) ~5.9 h; at the
  rate the H100 measured for Table 2's programs (docs/device: Meta-LSTM and sequential,
  K = 3, A2C, batch 128: ~7 M env steps/s on Color-Choice, a far cheaper env step) ~50 min,
  a lower bound; plus ~10 min of compile. Measure it first on the device: the cost per update
  of every program at the full batch (``benchmarks.table_cost.measure("xland_study",
  seeds=5, batch_size=128)``, one rate: x 4 for the grid, which vmaps 4 x the runs). On this
  2-core CPU (6,600 env steps/s in that run) it would take over a month.

What the cpu size can show: the study end to end at its protocol; intervals, IQM and P(X >
ERL2) over 5 seeds; each row against the neutral policy and training against held-out goals
early in training; each program's measured cost on the CPU (the compute line), which sizes
the gpu run. What it cannot: a plateau, or a ranking at one; at 4,800 meta-episodes per run
(the docs' ERL2 was at 15 % after 8,000, the neutral policy 9.5 %, CMRL rising later) the rows
are near the start of learning, so an early lead, not the final order; the rates the full
length would choose; rulesets with production rules (``rules=0`` throughout).
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal

from cmrl_jax.commands.cli import parse_cli
from cmrl_jax.commands.experiment import run_built
from cmrl_jax.commands.tables import Row, TableArgs, TableSpec
from cmrl_jax.config import ConfigError, TrainConfig

ENV = "xland:XLand-MiniGrid-R1-9x9"
ENV_OPTIONS = (("rules", 0), ("num_rulesets", 1024), ("holdout", 0.2), ("holdout_by", "goals"))
"""Goal-only rulesets, 20 % of the goals held out (``envs/xland.py``)."""

ERL2_ROWS = (Row("RL2", "RL2"), Row("ERL2", "ERL2"))  # sequential LSTM, the method's 32
CMRL = "Max-Until-Exploit"
ROWS = ERL2_ROWS + (
    Row(f"{CMRL} (Central-16)", CMRL, architecture="central_lstm", hidden=16),
    Row(f"{CMRL} (Meta-16)", CMRL, architecture="meta_lstm", hidden=16),
    Row(f"{CMRL} (Meta-32)", CMRL, architecture="meta_lstm", hidden=32),
)
"""The paper's pairing (sequential 32, CMRL 16) on both CMRL topologies, and the Meta-LSTM at
32: the exploit memory of ERL2's size."""

LEARNING_RATE = 1e-3  # every row's with --no-sweep (the XLand spec's)
LAMBDA_DIV = 0.01  # JS, the XLand spec's
THRESHOLDS = (0.25, 0.5, 0.75)

BASE = TrainConfig(
    env=ENV,
    env_kwargs=ENV_OPTIONS,
    k_explore=3,
    horizon=20,
    encoder="grid",
    reward_input_scale=10.0,
    # 0.05 -> 0.01 in both phases (docs/results.md, "goal-only rulesets"); the navigation
    # recipe's exploit start of 1.0 held both programs uniform until it annealed
    entropy_explore_start=0.05,
    entropy_exploit_start=0.05,
    divergence="js",
)


@dataclass(frozen=True)
class Size:
    """A preset of the study: length, width, seeds, learning-rate grid and evaluation."""

    updates: int
    chunk_updates: int  # updates between evaluations (and checkpoints)
    batch_size: int  # meta-episodes per update and run
    seeds: int
    sweep_grid: tuple[float, ...]
    eval_batches: int
    eval_batch_size: int

    @property
    def eval_episodes(self) -> int:
        """Evaluation meta-episodes per split, run and evaluation."""
        return self.eval_batches * self.eval_batch_size


SIZES: dict[str, Size] = {
    "smoke": Size(2, 2, 2, 2, (2e-3, 1e-3), 1, 4),
    "cpu": Size(300, 100, 16, 5, (2e-3, 1e-3), 4, 128),  # ~1.5 h (<= 1.9 h), 2-core CPU
    "gpu": Size(20_000, 500, 128, 5, (2e-3, 1e-3, 5e-4, 2.5e-4), 8, 128),  # 1-6 h, one GPU
}
"""The study's sizes; the module's docstring has the arithmetic of each projection."""


def protocol_lines(env=None) -> str:
    """The lines under the table that say what the study ran (``env``: its bound env)."""
    return ("Study: goal-only rulesets (rules=0), 20 % of goals held out of training "
            "(holdout_by=goals: the held-out columns are goals never trained on); entropy "
            "bonuses 0.05 -> 0.01 in both phases (the XLand recipe of docs/results.md, "
            "\"goal-only rulesets\"); memory: sequential 32, CMRL 16 (the paper's pairing) "
            "and Meta 32 (an exploit memory of ERL2's size); with --sweep each row's rate is "
            "the grid's best mean final success on the training rulesets (sweep.json).")


def study_spec(size: str) -> TableSpec:
    """The study's ``TableSpec`` at ``size`` (a key of ``SIZES``)."""
    s = SIZES[size]
    base = dataclasses.replace(BASE, num_updates=s.updates, chunk_updates=s.chunk_updates,
                               batch_size=s.batch_size, eval_batches=s.eval_batches,
                               eval_batch_size=s.eval_batch_size)
    return TableSpec(
        name=f"xland_study_{size}",
        title=f"XLand-MiniGrid-R1-9x9, goal-only rulesets: RL2, ERL2, CMRL memory matched "
              f"({size} size)",
        cmrl_architecture="meta_lstm",  # the XLand spec's; every CMRL row names its own
        base=base,
        rows=ROWS,
        learning_rates={r.label: LEARNING_RATE for r in ROWS},
        lambda_div=LAMBDA_DIV,
        sweep_grid=s.sweep_grid,
        thresholds=THRESHOLDS,
        paper={},
        num_goals=None,
        oracle=protocol_lines,
        report_compute=True,
        origin="the XLand study",
    )


SPECS: dict[str, TableSpec] = {size: study_spec(size) for size in SIZES}
SPEC = SPECS["gpu"]
"""The full study (``benchmarks.table_cost.measure("xland_study")`` times its programs)."""


@dataclass(frozen=True, kw_only=True)
class StudyArgs(TableArgs):
    """Command-line options of the study (plus every table option)."""

    size: Literal["smoke", "cpu", "gpu"]
    """preset: smoke (the test's, minutes), cpu (<= 2 h on a 2-core CPU) or gpu (the full
    study on one GPU); the module's docstring has each one's numbers and projection"""
    seeds: int | None = None
    """seeds per row (default: the size's, 5 at cpu and gpu)"""
    batch_size: int | None = None
    """meta-episodes per update (default: the size's)"""
    chunk_updates: int | None = None
    """updates per compiled call: evaluation and checkpoint after each (default: the size's)"""
    sweep: bool = True
    """train the size's learning-rate grid for every row and seed, each row keeping its best
    mean final success on the training rulesets (--no-sweep: one rate per row)"""


def table_args(args: StudyArgs) -> tuple[TableSpec, TableArgs]:
    """The size's spec and the table options with the size's defaults filled in; ConfigError
    (one line) for --learning-rate while sweeping."""
    if args.learning_rate is not None and args.sweep:
        raise ConfigError("--learning-rate trains one rate: give --no-sweep with it (the study "
                          "sweeps its size's grid by default)")
    size = SIZES[args.size]
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TableArgs)}
    for key in ("seeds", "batch_size", "chunk_updates"):
        if values[key] is None:
            values[key] = getattr(size, key)
    return SPECS[args.size], TableArgs(**values)


def main(argv: list[str] | None = None) -> dict:
    """Run the study from the command line."""
    args = parse_cli(StudyArgs, argv, __doc__.splitlines()[0])
    return run_built(lambda: table_args(args))


if __name__ == "__main__":
    main()
