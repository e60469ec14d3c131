"""Where a run executes: backend facts, the runtime record of a results folder, multi-host set-up.

Every run prints one line naming the backend, the device kind and count, and
appends the same facts (with the jax / jaxlib / flax / mujoco versions) as one
JSON line to ``runtime.jsonl`` in its results folder. These are facts about a
session, not part of the folder's identity (``config.json``): a folder made on
a CPU resumes on a GPU, and the other way round, and its ``runtime.jsonl``
then lists both sessions.

Multi-host (several processes, e.g. the hosts of a TPU pod slice) runs on
JAX's own multi-controller runtime: ``init_distributed`` calls
``jax.distributed.initialize``; every process then runs the same program on
the global device mesh, and only the main process (``is_main_process``)
writes files and draws progress.
"""

import datetime
import json
import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

from cmrl_jax.results import paths
from cmrl_jax.config import ConfigError
from cmrl_jax.results.folder import RUNTIME_FILE

VERSIONED = ("jax", "jaxlib", "flax", "mujoco", "mujoco-mjx", "orbax-checkpoint")
# Environment variables by which jax.distributed finds a cluster without arguments.
CLUSTER_VARIABLES = (
    "JAX_COORDINATOR_ADDRESS",  # explicit: with JAX_NUM_PROCESSES and JAX_PROCESS_ID
    "SLURM_JOB_ID",  # SLURM
    "OMPI_COMM_WORLD_SIZE",  # Open MPI
    "TPU_WORKER_HOSTNAMES",  # Cloud TPU VMs
    "MEGASCALE_COORDINATOR_ADDRESS",  # multi-slice TPU
)


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on most."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def mesh_shape(mesh) -> dict[str, int]:
    """Axis sizes of a mesh, e.g. ``{"runs": 2, "data": 4}``; None (one device): all 1."""
    if mesh is None:
        return {"runs": 1, "data": 1}
    return {str(k): int(v) for k, v in mesh.shape.items()}


def backend_facts(meshes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Backend, device kind and counts, processes, host, versions (JSON-able), and the
    mesh of each program in ``meshes`` (program name -> ``Mesh`` or None for one device)."""
    devices = jax.devices()
    facts: dict[str, Any] = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "host": socket.gethostname(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions(),
        # The networks' float32 matmuls: "default" is the backend's choice (TF32 on recent
        # NVIDIA GPUs, one bfloat16 pass on TPUs; full float32 on CPUs). Set with
        # JAX_DEFAULT_MATMUL_PRECISION=highest for full float32 everywhere.
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
    }
    if meshes:
        facts["meshes"] = {name: mesh_shape(m) for name, m in meshes.items()}
    return facts


def describe(facts: dict[str, Any]) -> str:
    """One line for the start of a run, e.g. ``backend gpu: 8 x NVIDIA H100 ..., jax 0.10.2``."""
    line = (f"backend {facts['backend']}: {facts['device_count']} x {facts['device_kind']}"
            f" ({facts['process_count']} process{'es' if facts['process_count'] > 1 else ''})")
    for name, shape in facts.get("meshes", {}).items():
        line += f", {name} on " + " x ".join(f"{k} {v}" for k, v in shape.items())
    if facts.get("matmul_precision", "default") != "default":
        line += f", matmul precision {facts['matmul_precision']}"
    v = facts["versions"]
    return line + f"; jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, mujoco {v['mujoco']}"


def record(folder: Path, facts: dict[str, Any]) -> None:
    """Append ``facts`` as one JSON line to ``folder / RUNTIME_FILE`` (main process only).

    A line torn by a kill is left alone: the new one starts on a fresh line. On an
    object store the file is rewritten whole (``paths.append_text``).
    """
    if not is_main_process():
        return
    path = folder / RUNTIME_FILE
    data = path.read_bytes() if path.exists() else b""
    torn = bool(data) and not data.endswith(b"\n")
    paths.append_text(path, ("\n" if torn else "") + json.dumps(facts, sort_keys=True) + "\n")


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The runtime facts of every session that ran in ``folder``, oldest first (torn lines
    skipped)."""
    path = folder / RUNTIME_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def is_main_process() -> bool:
    """True on process 0: the one that writes files and draws progress."""
    return jax.process_index() == 0


def cluster_detected() -> bool:
    """Whether the environment names a cluster that ``jax.distributed`` can join."""
    return any(os.environ.get(name) for name in CLUSTER_VARIABLES)


def init_distributed() -> None:
    """Join the cluster this process belongs to (``jax.distributed.initialize``).

    ConfigError (one line, exit 2 from the CLIs) when no cluster is detected or
    joining fails. Must run before anything touches a device; a second call
    does nothing.
    """
    if jax.distributed.is_initialized():
        return
    if not cluster_detected():
        raise ConfigError(
            "--distributed: no cluster found; set JAX_COORDINATOR_ADDRESS=host:port, "
            "JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run under SLURM, MPI or on a TPU pod"
        )
    kwargs = {}
    if "JAX_NUM_PROCESSES" in os.environ:
        kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
    if "JAX_PROCESS_ID" in os.environ:
        kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    if jax.config.jax_platforms == "cpu" or os.environ.get("JAX_PLATFORMS") == "cpu":
        # CPU-only clusters (and the two-process test) need JAX's gloo collectives.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--distributed: could not join the cluster: {first}") from None


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing to wait for with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
