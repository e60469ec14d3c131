"""Device parallelism: a 2-D mesh ``('runs', 'data')`` over which a training program is split.

Runs (seeds x methods x learning rates of one program) are independent: the
``runs`` axis splits them over devices with no communication at all. The
``data`` axis splits each update's batch of meta-episodes; XLA (GSPMD) runs
each device's share where it lives and all-reduces the mean loss and its
gradient. Parameters and optimizer state live with their run (sharded along
``runs``, replicated along ``data``); metrics come back replicated.

    mesh = device_mesh(num_runs=len(cfg.runs))   # every device; runs split where they divide
    trainer = make_trainer(cfg, mesh=mesh)       # or run_training(cfg, folder, mesh=mesh)

The default split puts as many devices on ``runs`` as divide both the device
count and the number of runs (their gcd) and the rest on ``data``. The
maths is the same on any layout: the same keys, the same meta-episodes, the
same means (up to the order of float sums). The mesh is a runtime choice,
never part of a results folder's identity. On several hosts call
``runtime.init_distributed()`` first; ``jax.devices()`` then spans them all.
"""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cmrl_jax.errors import ConfigError

RUNS_AXIS = "runs"
DATA_AXIS = "data"


def mesh_shape(num_devices: int, runs_devices: int, num_runs: int) -> tuple[int, int]:
    """(runs, data) sizes for ``num_devices`` devices and ``num_runs`` runs.

    ``runs_devices`` 0: the gcd of the two counts. ConfigError (naming the CLI
    options) when the split is impossible.
    """
    if runs_devices < 0:
        raise ConfigError(f"--runs-devices must be >= 0, got {runs_devices}")
    if runs_devices == 0:
        runs_devices = math.gcd(num_devices, num_runs)
    if num_devices % runs_devices:
        raise ConfigError(
            f"--runs-devices {runs_devices} does not divide the {num_devices} devices used"
        )
    if num_runs % runs_devices:
        raise ConfigError(
            f"--runs-devices {runs_devices}: {num_runs} runs do not split over "
            f"{runs_devices} devices; use a divisor of {num_runs}"
        )
    return runs_devices, num_devices // runs_devices


def device_mesh(num_devices: int = 0, runs_devices: int = 0, num_runs: int = 1) -> Mesh:
    """A ``('runs', 'data')`` mesh over the first ``num_devices`` devices (0: all of them)."""
    devices = jax.devices()
    if num_devices < 0:
        raise ConfigError(f"--devices must be >= 0, got {num_devices}")
    if num_devices > len(devices):
        raise ConfigError(
            f"--devices {num_devices}: only {len(devices)} {devices[0].platform} device(s) here"
        )
    num_devices = num_devices or len(devices)
    shape = mesh_shape(num_devices, runs_devices, num_runs)
    grid = np.asarray(devices[:num_devices], dtype=object).reshape(shape)
    return Mesh(grid, (RUNS_AXIS, DATA_AXIS))


def data_mesh(num_devices: int = 0) -> Mesh:
    """A mesh that splits only the batch, over the first ``num_devices`` devices (0: all)."""
    return device_mesh(num_devices, runs_devices=1)


def check_batch(mesh: Mesh | None, batch_size: int) -> None:
    """ConfigError unless ``batch_size`` splits evenly over the mesh's ``data`` axis."""
    if mesh is not None and batch_size % mesh.shape[DATA_AXIS]:
        n = mesh.shape[DATA_AXIS]
        raise ConfigError(
            f"batch size {batch_size} does not split over the {n} devices of the data axis; "
            f"use a multiple of {n}, fewer --devices or more --runs-devices"
        )


def check_config(mesh: Mesh | None, cfg) -> None:
    """ConfigError unless ``cfg``'s runs and batches split over the mesh."""
    if mesh is None:
        return
    if len(cfg.runs) % mesh.shape[RUNS_AXIS]:
        raise ConfigError(
            f"{len(cfg.runs)} runs do not split over the {mesh.shape[RUNS_AXIS]} devices "
            "of the runs axis"
        )
    check_batch(mesh, cfg.batch_size)
    check_batch(mesh, cfg.eval_batch_size)


def shard_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Constrain the leading (batch) axis of ``x`` to the mesh's data axis (no-op without one).

    Inside ``jax.vmap(..., spmd_axis_name=RUNS_AXIS)`` the run axis is added in front.
    """
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def runs_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (run) axis split over ``runs``, everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(RUNS_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (small outputs every process reads)."""
    return NamedSharding(mesh, PartitionSpec())


def put_runs(tree, mesh: Mesh | None):
    """Place a pytree whose leaves have a leading run axis on the mesh (identity without one).

    Works with several processes: each builds its own devices' shards from its
    (identical) host copy.
    """
    if mesh is None:
        return tree
    sharding = runs_sharding(mesh)

    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def program_mesh(cfg, num_devices: int = 0, runs_devices: int = 0) -> Mesh | None:
    """The mesh a training program of ``cfg`` runs on, checked against its runs and batches.

    ``num_devices`` 0: every device; ``runs_devices`` 0: the default split. None
    for a single device (the plain jitted program). ConfigError, naming the CLI
    options, when the split is impossible; nothing has compiled yet.
    """
    mesh = device_mesh(num_devices, runs_devices, len(cfg.runs))
    check_config(mesh, cfg)
    return mesh if mesh.size > 1 else None
