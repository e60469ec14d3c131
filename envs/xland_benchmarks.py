"""XLand-MiniGrid rulesets without a network: build a benchmark file offline, load one safely.

A benchmark is xland-minigrid's format: a bz2 pickle of a dict of arrays
``goals`` [N, 5], ``rules`` [N, R, 7], ``init_tiles`` [N, T, 2] (uint8) and
``num_rules`` [N] (xminigrid's ``Benchmark``; ``xminigrid.load_benchmark`` downloads
the official ones, which these machines cannot). This module writes the same format
from xminigrid's public goal and rule types, with NumPy arrays (a pickle of JAX
arrays is what a later JAX cannot read: xland-minigrid issue #51):

    python -m cmrl_jax_envs.xland_benchmarks --out ~/rulesets.pkl --num-rulesets 4096

The commands cache a seeded benchmark (``cached_rulesets``) under ``~/.cache``; the cache
is checked against the build, rebuilt when damaged, safe to build from several processes at
once, and on a read-only folder or a full disk the rulesets are used from memory with one
warning line (the cache is disposable: nothing depends on it being written).

Rulesets of ``rules`` production rules each (0, 1 or 2 here): the goal is to hold,
or stand next to, a tile that the chain of rules produces from the objects placed
on the grid; every ruleset also places ``distractors`` other objects.
"""

import argparse
import bz2
import hashlib
import os
import pickle
import re
import secrets
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


def check_build(num_rulesets: int, rules: int, distractors: int) -> None:
    """ConfigError (one line) for options no benchmark can be built from."""
    if isinstance(num_rulesets, bool) or not isinstance(num_rulesets, int) or num_rulesets < 1:
        raise ConfigError(f"num_rulesets must be an integer >= 1, got {num_rulesets!r}")
    if rules not in (0, 1, 2):
        raise ConfigError(f"rules must be 0, 1 or 2, got {rules}")
    if isinstance(distractors, bool) or not isinstance(distractors, int) or \
            not 0 <= distractors <= 6:
        raise ConfigError(f"distractors must be in [0, 6], got {distractors}")


def build_benchmark(num_rulesets: int, seed: int = 0, rules: int = 1,
                    distractors: int = 2) -> dict[str, np.ndarray]:
    """``num_rulesets`` seeded rulesets in xminigrid's benchmark layout (NumPy, padded)."""
    check_build(num_rulesets, rules, distractors)
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
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")  # per writer
    try:
        with bz2.open(tmp, "wb") as f:
            pickle.dump({k: np.asarray(benchmark[k]) for k in KEYS}, f, protocol=4)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise
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


def digest(benchmark: dict[str, np.ndarray]) -> str:
    """sha256 of a benchmark's arrays (each one's dtype, shape and bytes, in ``KEYS`` order)."""
    h = hashlib.sha256()
    for k in KEYS:
        a = np.ascontiguousarray(benchmark[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_path(num_rulesets: int, seed: int, rules: int, distractors: int) -> Path:
    """Where the seeded benchmark of these options is cached, outside any checkout
    (``$XDG_CACHE_HOME/cmrl_jax/xland`` or ``~/.cache/cmrl_jax/xland``)."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cmrl_jax" / "xland"
    name = f"n{num_rulesets}-s{seed}-r{rules}-d{distractors}"
    return root / f"{name}-{hashlib.sha1(name.encode()).hexdigest()[:8]}.pkl.bz2"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    return True


def remove_dead_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` (``save_benchmark``'s ``<name>.tmp<pid>-<hex>``)
    whose writing process is gone (killed in the middle of the write); a live writer's is
    left alone. Returns the files removed; a folder that cannot be listed or changed
    (read-only) is left as it is."""
    pattern = re.compile(rf"{re.escape(path.name)}\.tmp(\d+)-[0-9a-f]{{8}}")
    removed = []
    try:
        for tmp in path.parent.iterdir():
            found = pattern.fullmatch(tmp.name)
            if found and int(found.group(1)) != os.getpid() and not _alive(int(found.group(1))):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    except OSError:
        pass
    return removed


def cached_rulesets(num_rulesets: int, seed: int, rules: int,
                    distractors: int) -> tuple[dict[str, np.ndarray], Path, str | None]:
    """The seeded benchmark of these options, its cache file, and a note (one line, or None).

    The cache is disposable and never trusted by name: the benchmark is built (cheap: about
    20 ms per 1,000 rulesets) and the file is used only when its ruleset count and content
    hash (``digest``) equal the build's. A missing file is written; a damaged or different
    one (truncated, empty, another count, another NumPy's draw) is replaced, and the note
    says so; a file that cannot be written (a read-only or full disk) leaves the build in
    memory, and the note says that. Two processes may build it at once: each write is whole
    (temporary file, then rename) and both write the same bytes of content; a temporary
    file whose writer was killed is removed here.

    A read-only cache folder or a full disk is not an error: the cache only saves a
    rebuild, so the command goes on with the rulesets built in memory (identical to the
    cached ones) and says so in one line; nothing is left behind in the folder.
    """
    check_build(num_rulesets, rules, distractors)
    path = cache_path(num_rulesets, seed, rules, distractors)
    remove_dead_temporaries(path)
    built = build_benchmark(num_rulesets, seed, rules, distractors)
    why = None
    if path.is_file():
        try:
            cached = load_benchmark(path)
        except ConfigError as e:
            why = f"unreadable: {str(e).removeprefix(f'benchmark file {path} ')}"
        else:
            if len(cached["goals"]) != num_rulesets:
                why = f"{len(cached['goals'])} rulesets, not {num_rulesets}"
            elif digest(cached) != digest(built):
                why = "its content differs from these options' rulesets"
            else:
                return cached, path, None
    try:
        save_benchmark(built, path)
    except OSError as e:
        reason = f"{e.strerror or type(e).__name__}"
        return built, path, (f"the benchmark cache {path} could not be written ({reason}); "
                             "using the rulesets built in memory")
    note = None if why is None else (f"the benchmark cache {path} was damaged ({why}); "
                                     "rebuilt it (it is a disposable cache)")
    return built, path, note


def cached_benchmark(num_rulesets: int, seed: int, rules: int, distractors: int) -> Path:
    """The path of a seeded benchmark built offline and cached (``cached_rulesets``: checked,
    rebuilt when damaged); built on first use."""
    return cached_rulesets(num_rulesets, seed, rules, distractors)[1]


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
