"""XLand-MiniGrid rulesets without a network: build a benchmark file offline, load one safely.

A benchmark is xland-minigrid's format: a bz2 pickle of a dict of arrays
``goals`` [N, 5], ``rules`` [N, R, 7], ``init_tiles`` [N, T, 2] (uint8) and
``num_rules`` [N] (xminigrid's ``Benchmark``; ``xminigrid.load_benchmark`` downloads
the official ones, which these machines cannot). This module writes the same format
from xminigrid's public goal and rule types, with NumPy arrays (a pickle of JAX
arrays is what a later JAX cannot read: xland-minigrid issue #51):

    python -m cmrl_jax_envs.xland_benchmarks --out ~/rulesets.pkl --num-rulesets 4096

Rulesets of ``rules`` production rules each (0, 1 or 2 here): the goal is to hold,
or stand next to, a tile that the chain of rules produces from the objects placed
on the grid; every ruleset also places ``distractors`` other objects.
"""

import argparse
import bz2
import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from cmrl_jax.errors import ConfigError

# xminigrid's ids (xminigrid.core.constants, .goals, .rules): the public encoding.
PICKABLE = (3, 4, 5, 7, 11, 12)  # ball, square, pyramid, key, hex, star
COLORS = tuple(range(1, 12))  # every colour but EMPTY
GOAL_LEN, RULE_LEN = 5, 7
AGENT_HOLD_GOAL, AGENT_NEAR_GOAL = 1, 3
AGENT_HOLD_RULE, TILE_NEAR_RULE = 1, 3
KEYS = ("goals", "rules", "init_tiles", "num_rules")


def _tiles(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """``n`` distinct pickable (tile, colour) pairs."""
    pairs = [(t, c) for t in PICKABLE for c in COLORS]
    return [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]


def _ruleset(rng: np.random.Generator, rules: int, distractors: int):
    """One ruleset: (goal [5], rules [max(rules, 1), 7], init_tiles [T, 2])."""
    tiles = _tiles(rng, 2 * rules + 1 + distractors + 1)
    goal_tile = tiles.pop()
    chain, placed, target = [], [], goal_tile
    for _ in range(rules):  # each rule makes the current target from one or two inputs
        if rng.random() < 0.5:
            a = tiles.pop()
            chain.append([AGENT_HOLD_RULE, *a, *target, 0, 0])  # pick up a -> hold target
            target = a
        else:
            a, b = tiles.pop(), tiles.pop()
            chain.append([TILE_NEAR_RULE, *a, *b, *target])  # a next to b -> target
            placed.append(b)
            target = a
    placed.append(target)
    placed.extend(tiles[:distractors])
    kind = AGENT_HOLD_GOAL if rng.random() < 0.5 else AGENT_NEAR_GOAL
    goal = np.array([kind, *goal_tile, 0, 0], np.uint8)
    rule_rows = np.array(chain[::-1] or [[0] * RULE_LEN], np.uint8).reshape(-1, RULE_LEN)
    return goal, rule_rows, np.array(placed, np.uint8).reshape(-1, 2)


def build_benchmark(num_rulesets: int, seed: int = 0, rules: int = 1,
                    distractors: int = 2) -> dict[str, np.ndarray]:
    """``num_rulesets`` seeded rulesets in xminigrid's benchmark layout (NumPy, padded)."""
    if num_rulesets < 1:
        raise ConfigError(f"num_rulesets must be >= 1, got {num_rulesets}")
    if not 0 <= rules <= 2:
        raise ConfigError(f"rules must be 0, 1 or 2, got {rules}")
    if not 0 <= distractors <= 6:
        raise ConfigError(f"distractors must be in [0, 6], got {distractors}")
    rng = np.random.default_rng(seed)
    made = [_ruleset(rng, rules, distractors) for _ in range(num_rulesets)]
    r = max(len(m[1]) for m in made)
    t = max(len(m[2]) for m in made)
    pad = lambda a, n: np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], a.dtype)])  # noqa: E731
    return {
        "goals": np.stack([m[0] for m in made]),
        "rules": np.stack([pad(m[1], r) for m in made]),
        "init_tiles": np.stack([pad(m[2], t) for m in made]),
        "num_rules": np.full((num_rulesets,), rules, np.uint8),
    }


def save_benchmark(benchmark: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write ``benchmark`` as xminigrid's bz2 pickle, whole (temporary file, then rename)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with bz2.open(tmp, "wb") as f:
        pickle.dump({k: np.asarray(benchmark[k]) for k in KEYS}, f, protocol=4)
    os.replace(tmp, path)
    return path


def load_benchmark(path: str | Path) -> dict[str, np.ndarray]:
    """Read a benchmark file (ours or xminigrid's) as NumPy arrays; ConfigError (one line)
    for a missing, unreadable or malformed file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"benchmark file {path} does not exist")
    try:
        with bz2.open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise ConfigError(f"benchmark file {path} is not a bz2 pickle ({type(e).__name__}: "
                          f"{e})") from None
    except Exception as e:  # noqa: BLE001 - e.g. JAX arrays another JAX pickled
        raise ConfigError(
            f"benchmark file {path} cannot be read by this JAX ({type(e).__name__}: {e}); "
            "xland-minigrid issue #51: benchmarks pickled as JAX arrays load only in the JAX "
            "that wrote them; rebuild one with `python -m cmrl_jax_envs.xland_benchmarks`"
        ) from None
    if not isinstance(data, dict) or any(k not in data for k in KEYS):
        raise ConfigError(f"benchmark file {path} lacks {', '.join(KEYS)}")
    out = {k: np.asarray(data[k]) for k in KEYS}
    n = len(out["goals"])
    if n < 1 or any(len(out[k]) != n for k in KEYS):
        raise ConfigError(f"benchmark file {path}: its arrays do not hold the same number of "
                          "rulesets (or none)")
    return out


def cached_benchmark(num_rulesets: int, seed: int, rules: int, distractors: int) -> Path:
    """The path of a seeded benchmark built offline, cached outside any checkout
    (``$XDG_CACHE_HOME/cmrl_jax/xland`` or ``~/.cache/cmrl_jax/xland``); built on first use."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cmrl_jax" / "xland"
    name = f"n{num_rulesets}-s{seed}-r{rules}-d{distractors}"
    path = root / f"{name}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.pkl.bz2"
    if not path.is_file():
        save_benchmark(build_benchmark(num_rulesets, seed, rules, distractors), path)
    return path


def main(argv: list[str] | None = None) -> None:
    """Build a benchmark file offline."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="file to write (xminigrid's bz2 pickle)")
    p.add_argument("--num-rulesets", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rules", type=int, default=1, help="production rules per ruleset (0-2)")
    p.add_argument("--distractors", type=int, default=2, help="extra objects per ruleset")
    a = p.parse_args(argv)
    try:
        bench = build_benchmark(a.num_rulesets, a.seed, a.rules, a.distractors)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {save_benchmark(bench, a.out)}: {a.num_rulesets} rulesets, {a.rules} rule(s) "
          f"and {a.distractors} distractor(s) each")


if __name__ == "__main__":
    main()
