"""xland-minigrid's own RL2 trainer as a throughput peer: its ``training/train_meta_task.py``,
run from a checkout the user points to (outside this repository), at our task,
environments, hidden size and trial length.

Used by ``python -m benchmarks.xland_throughput --peer CHECKOUT`` (one run: ours, then the
peer, per number of environments, and the ratio). Nothing of the peer is copied into this
repository; at run time:

* its ``training/`` folder is copied to a scratch folder and the compatibility changes in
  ``PATCHES`` are applied to the copy (the user's checkout is never written);
* the benchmark it loads by name (``trivial-21k``, a download) is our offline benchmark
  file, put under its data folder (``XLAND_MINIGRID_DATA``), so both sides draw rulesets
  from the same file (ours trains on its 80 % training split, the peer on all of it);
* W&B is disabled (``WANDB_MODE=disabled``); it then prints no steps/s, so steps/s = its
  total steps (meta-updates x environments x trial steps) / the seconds of its
  ``Training... Done in`` line; its compile is timed apart, as it times it;
* its evaluation (512 environments x 10 episodes after every meta-update by default, inside
  its timed program) is set to ``eval_envs`` x ``eval_episodes`` (1 x 1): ours is not timed;
* it runs in its own virtualenv (``~/.cache/cmrl_jax/xland-peer/venv`` unless
  ``--peer-python`` names one), built on first use with this environment's jax, jaxlib,
  flax, optax and chex versions pinned beside its baselines' dependencies (distrax,
  pyrallis, wandb, orbax-checkpoint); its ``xminigrid`` is the checkout's own ``src``.

Written against the snapshot 0d306d1 of dunnolab/xland-minigrid.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cmrl_jax.config import ConfigError

SNAPSHOT = "0d306d1"
SCRIPT = Path("training") / "train_meta_task.py"
BENCHMARK_ID, BENCHMARK_FILE = "trivial-21k", "trivial_21k"  # its name -> its file name
STEPS_PER_UPDATE = 32  # its default num_steps_per_update: a PPO update every 32 steps
PINNED = ("jax", "jaxlib", "flax", "optax", "chex")  # the same versions as ours
PEER_DEPS = ("distrax", "pyrallis", "wandb", "orbax-checkpoint", "rich", "imageio", "tqdm")


@dataclass(frozen=True)
class Patch:
    """One compatibility change to a copied file of the peer: a regex substitution."""

    file: str
    pattern: str
    replacement: str
    why: str


PATCHES = (
    Patch("utils.py", r"^(    \w+: jax\.Array) = jnp\.asarray\(([^()]*)\)$",
          r"\1 = struct.field(default_factory=lambda: jnp.asarray(\2))",
          "RolloutStats's jnp.asarray(...) field defaults: current flax (Python's "
          "dataclasses) rejects them as mutable defaults"),
)


@dataclass(frozen=True)
class PeerSize:
    """What one peer run trains: its environments, GRU size, trial steps, meta-updates."""

    envs: int
    hidden: int
    trial: int
    updates: int
    minibatches: int = 16
    epochs: int = 1
    eval_envs: int = 1
    eval_episodes: int = 1

    def __post_init__(self):
        for name in ("envs", "hidden", "trial", "updates", "minibatches", "epochs",
                     "eval_envs", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"peer {name} must be >= 1, got {getattr(self, name)}")
        if self.trial % STEPS_PER_UPDATE:
            raise ConfigError(f"the peer updates every {STEPS_PER_UPDATE} steps: a trial of "
                              f"{self.trial} steps ((K + 1) x H) must be a multiple of it")
        if self.envs % self.minibatches:
            raise ConfigError(f"the peer's {self.minibatches} minibatches must divide its "
                              f"{self.envs} environments")

    @property
    def steps(self) -> int:
        """Environment steps of the whole run, as the peer counts them."""
        return self.updates * self.envs * self.trial

    def args(self) -> list[str]:
        """The peer script's pyrallis flags for this size."""
        flags = {"env_id": "XLand-MiniGrid-R1-9x9", "benchmark_id": BENCHMARK_ID,
                 "num_envs": self.envs, "rnn_hidden_dim": self.hidden,
                 "num_steps_per_env": self.trial, "num_steps_per_update": STEPS_PER_UPDATE,
                 "total_timesteps": self.steps, "num_minibatches": self.minibatches,
                 "update_epochs": self.epochs, "eval_num_envs": self.eval_envs,
                 "eval_num_episodes": self.eval_episodes}
        return [a for k, v in flags.items() for a in (f"--{k}", str(v))]


def check_checkout(path: str | Path) -> Path:
    """``path`` as a checkout of xland-minigrid; ConfigError (one line) when it is not one."""
    root = Path(path).expanduser().resolve()
    missing = [p for p in (SCRIPT, Path("training") / "utils.py", Path("src") / "xminigrid")
               if not (root / p).exists()]
    if missing:
        raise ConfigError(f"--peer {path}: not a checkout of dunnolab/xland-minigrid (no "
                          f"{', '.join(map(str, missing))})")
    here = Path(__file__).resolve().parents[1]
    if root == here or here in root.parents:
        raise ConfigError(f"--peer {path}: the peer's checkout must lie outside this "
                          "repository")
    return root


def patch_text(text: str, patch: Patch) -> tuple[str, int]:
    """``text`` with ``patch`` applied, and how many lines it changed."""
    return re.subn(patch.pattern, patch.replacement, text, flags=re.MULTILINE)


def prepare(checkout: Path, work: Path, benchmark: Path) -> Path:
    """Copy the peer's ``training/`` under ``work``, patch the copy, put ``benchmark`` in
    its data folder; return the copied training folder. Says what it changed."""
    training = work / "training"
    shutil.copytree(checkout / "training", training)
    for p in PATCHES:
        path = training / p.file
        text, n = patch_text(path.read_text(), p)
        path.write_text(text)
        print(f"peer: patched {n} line(s) of training/{p.file} in a scratch copy: {p.why}"
              if n else f"peer: training/{p.file} needs no patch ({p.why}: not found)",
              file=sys.stderr, flush=True)
    (work / "data").mkdir()
    shutil.copyfile(benchmark, work / "data" / BENCHMARK_FILE)
    return training


def peer_python(python: str | None = None) -> str:
    """The peer's interpreter: ``python``, else its virtualenv (built once, outside any
    checkout, with our JAX stack's versions pinned)."""
    if python:
        if not Path(python).exists():
            raise ConfigError(f"--peer-python {python} does not exist")
        return python
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cmrl_jax"
    venv = root / "xland-peer" / "venv"
    exe = venv / "bin" / "python"
    pins = [f"{name}=={metadata.version(name)}" for name in PINNED]
    stamp = venv / ".pins"
    if exe.exists() and stamp.exists() and stamp.read_text() == " ".join(pins):
        return str(exe)
    print(f"peer: building its virtualenv {venv} ({' '.join(pins)}; once)", file=sys.stderr,
          flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *pins, *PEER_DEPS],
                   check=True)
    stamp.write_text(" ".join(pins))
    return str(exe)


_DONE = r"{}\.\.\.\s*Done in ([0-9.]+)s"


def parse(output: str) -> dict:
    """The peer's compile and training seconds and final return from its stdout."""
    found = {k: re.search(_DONE.format(label), output)
             for k, label in (("compile_s", "Compiling"), ("train_s", "Training"))}
    if not all(found.values()):
        raise RuntimeError("the peer's output has no 'Compiling... / Training... Done in' "
                           "lines")
    final = re.search(r"Final return:\s*([-0-9.e]+)", output)
    return {k: float(m.group(1)) for k, m in found.items()} | {
        "final_return": float(final.group(1)) if final else None}


def run(checkout: Path, python: str, benchmark: Path, size: PeerSize,
        timeout_s: float = 3600) -> dict:
    """One run of the peer at ``size`` -> a row like ours (steps/s, compile apart)."""
    with tempfile.TemporaryDirectory(prefix="cmrl-xland-peer-") as tmp:
        training = prepare(checkout, Path(tmp), benchmark)
        env = os.environ | {"PYTHONPATH": str(checkout / "src"),
                            "XLAND_MINIGRID_DATA": str(Path(tmp) / "data"),
                            "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}
        try:
            done = subprocess.run([python, SCRIPT.name, *size.args()], cwd=training,
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the peer ran past {timeout_s:.0f} s") from None
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"the peer exited {done.returncode}: {tail[0]}")
    got = parse(done.stdout)
    return {"envs": size.envs, "hidden": size.hidden, "trial_steps": size.trial,
            "updates_timed": size.updates, "compile_s": round(got["compile_s"], 1),
            "s_per_update": round(got["train_s"] / size.updates, 4),
            "steps_per_s": round(size.steps / got["train_s"]),
            "final_return": got["final_return"]}
