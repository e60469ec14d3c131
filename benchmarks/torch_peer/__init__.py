"""PyTorch peer of Table 1's sequential program (RL2 + ERL2, 3 seeds each: 6 runs), timed
against ours in one process (an optional extra: ``pip install -e '.[peer]'``).

    python -m benchmarks.torch_peer                          # make bench-peer
    python -m benchmarks.torch_peer --updates 20 --repeats 3 --threads 1
    python -m benchmarks.torch_peer --no-compile --loop-runs --skip-checks   # quick, no compile
"""

# Layout: model (configuration read from ours, the torch peer itself), checks (the peer
# against our JAX implementation), timing (interleaved timing, table, CLI: its help text is
# this docstring, then model's and timing's); __main__ runs timing.main.
from benchmarks.torch_peer.checks import (
    check_env,
    check_network,
    check_returns,
    check_update,
    ours_random_policy_success,
    random_policy_success,
    run_checks,
)
from benchmarks.torch_peer.model import (
    METHODS,
    NAMES,
    LoopedPeer,
    PeerConfig,
    TorchPeer,
    clip_per_run,
    encode,
    env_step,
    heads,
    init_params,
    lstm_step,
    param_count,
    params_from_flax,
    reference_returns,
    returns,
    sample,
    table1_config,
    table1_program,
    update_loss,
)
from benchmarks.torch_peer.timing import main, measure, pin_threads, render, timed

__all__ = [
    "METHODS", "NAMES", "LoopedPeer", "PeerConfig", "TorchPeer", "check_env", "check_network",
    "check_returns", "check_update", "clip_per_run", "encode", "env_step", "heads",
    "init_params", "lstm_step", "main", "measure", "ours_random_policy_success", "param_count",
    "params_from_flax", "pin_threads", "random_policy_success", "reference_returns", "render",
    "returns", "run_checks", "sample", "table1_config", "table1_program", "timed", "update_loss",
]
