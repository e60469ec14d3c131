"""Data parallelism over devices: each update's meta-episodes are split across a mesh.

The training program is unchanged; the batch of meta-episode keys of every
update is constrained to be sharded along the mesh's ``data`` axis, so XLA
(GSPMD) runs each device's share of the meta-episodes where it lives and
all-reduces the mean loss and its gradient. Parameters, optimizer state and
metrics stay replicated. The maths is the same as on one device: the same
keys, the same meta-episodes, the same mean (up to the order of float sums).

    mesh = data_mesh(4)                       # the first 4 devices
    trainer = make_trainer(cfg, mesh=mesh)    # or run_training(cfg, folder, mesh=mesh)

On several hosts (TPU pods) call ``jax.distributed.initialize()`` first; the
mesh then spans ``jax.devices()`` of every host.
"""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cmrl_jax.config import ConfigError

DATA_AXIS = "data"


def data_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (0: all of them)."""
    devices = jax.devices()
    if num_devices < 0:
        raise ConfigError(f"--devices must be >= 0, got {num_devices}")
    if num_devices > len(devices):
        raise ConfigError(
            f"--devices {num_devices}: only {len(devices)} {devices[0].platform} device(s) here"
        )
    return Mesh(devices[: num_devices or len(devices)], (DATA_AXIS,))


def check_batch(mesh: Mesh | None, batch_size: int) -> None:
    """ConfigError unless ``batch_size`` splits evenly over the mesh's devices."""
    if mesh is not None and batch_size % mesh.size:
        raise ConfigError(
            f"batch size {batch_size} does not split over {mesh.size} devices; "
            "use a multiple of the device count"
        )


def check_config(mesh: Mesh | None, cfg) -> None:
    """ConfigError unless ``cfg``'s training and evaluation batches split over the mesh."""
    check_batch(mesh, cfg.batch_size)
    check_batch(mesh, cfg.eval_batch_size)


def shard_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Constrain the leading (batch) axis of ``x`` to the mesh's data axis (no-op without one)."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))
