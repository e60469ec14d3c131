"""XLand-MiniGrid and its MiniGrid ports as gymnax environments (``--env xland:<id>``,
``--env minigrid:<id>``; the optional extra ``pip install 'cmrl-jax[xland]'``).

The task of a meta-episode is what ``reset_env`` draws: for ``xland:`` a ruleset
(goal, production rules, initial objects) sampled from a benchmark, then the layout
and the agent's start; for ``minigrid:`` whatever the MiniGrid env's own reset
draws. The engine reuses one reset for every sub-episode and rollout (the paper's
protocol), so all of them face the same ruleset on the same grid; with
``--subepisode-start fresh`` each starts from its own layout of the same ruleset
(``reset_state``), as in xland-minigrid's RL2.

Observations are xminigrid's symbolic view [V, V, 2] (tile id, colour id); actions its
six (forward, right, left, pick up, put down, toggle). A sub-episode ends when the goal
is reached (reward 1 - 0.9 t / max_steps, xminigrid's) or after H decisions;
``info["goal"]`` is 0 on the step that reaches it, so success (the default for
envs that report goals) is: the exploit sub-episode reaches the ruleset's goal.

Held-out tasks: ``holdout`` (0.2) of the benchmark's goals are kept out of training
(``split=train``): a ruleset is held out when a seeded hash of its goal (the goal row: kind
and arguments) falls under ``holdout``, so no training ruleset has a held-out ruleset's goal,
and a ruleset's side depends on its content and ``seed`` alone, not on ``num_rulesets``
(a larger offline benchmark extends both sides). ``holdout_by=rulesets`` hashes the whole
ruleset (goal, rules, initial objects) instead: unseen rulesets, possibly of seen goals.
Identical rulesets are kept once. Every evaluation also runs on the held-out part
(``EnvSpec.heldout``), tables show both (AMAGO's 80 / 20 protocol on XLand, by goal), and
one line says what was held out (``describe_split``: rulesets, goals, duplicates).

Benchmarks: ``benchmark_path=`` a file of xminigrid's format (``xminigrid.load_benchmark``
downloads the official ones; pass the downloaded file), or none: a small seeded
benchmark is built offline and cached outside the repository
(``cmrl_jax_envs.xland_benchmarks``), said so on the first line; the cache is checked
against the build (count and content hash) and rebuilt when damaged, said in one more
line. Bad options (``holdout``, ``split``, ``holdout_by``, an offline benchmark the holdout
leaves a side of empty) are refused before any benchmark is read, built, written or
anything printed.
"""

import hashlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from cmrl_jax.envspec import EnvSpec
from cmrl_jax.errors import ConfigError
from cmrl_jax_envs import xland_benchmarks
from cmrl_jax_envs.recipes import NAVIGATION_RECIPE

EXTRA = "pip install 'cmrl-jax[xland]' (or pip install xminigrid)"


def _xminigrid():
    """The xminigrid package, or ConfigError naming the extra."""
    try:
        import xminigrid
    except ImportError:
        raise ConfigError(f"XLand-MiniGrid envs need the xland extra: {EXTRA}") from None
    return xminigrid


@struct.dataclass
class EnvState(environment.EnvState):
    """One sub-episode: xminigrid's timestep (grid, agent, goal and rule encodings)."""

    timestep: Any
    ruleset: jax.Array  # int32: index of the meta-episode's ruleset in the benchmark (-1: none)
    time: jax.Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """The benchmark's rulesets (arrays; none for a MiniGrid port) and the step limit."""

    goals: jax.Array | None = None  # uint8 [N, 5]
    rules: jax.Array | None = None  # uint8 [N, R, 7]
    init_tiles: jax.Array | None = None  # uint8 [N, T, 2]
    max_steps_in_episode: int = struct.field(pytree_node=False, default=243)


class XLandMiniGrid(environment.Environment[EnvState, EnvParams]):
    """An xminigrid env behind gymnax's API; its reset draws a ruleset, then a layout."""

    def __init__(self, env_id: str, rulesets: bool, **xparams: Any):
        """``env_id``: an xminigrid id; ``rulesets``: draw a ruleset per reset (XLand);
        ``xparams``: fields of xminigrid's env params (view_size, max_steps, ...)."""
        xminigrid = _xminigrid()
        self.env_id = env_id
        self.rulesets = rulesets
        self.xenv, self.xparams = xminigrid.make(env_id, **xparams)
        # Traced once per signature, then reused by every call site of the program (the
        # engine steps the env in several scans): xminigrid's step is long to trace.
        self._xreset, self._xstep = jax.jit(self.xenv.reset), jax.jit(self.xenv.step)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=int(self.xparams.max_steps))

    def _ruleset(self, key: jax.Array, params: EnvParams) -> jax.Array:
        """A ruleset index drawn uniformly from the benchmark (int32 scalar)."""
        return jax.random.randint(key, (), 0, params.goals.shape[0])

    def _reset(self, key: jax.Array, index: jax.Array, params: EnvParams):
        """xminigrid's reset in ruleset ``index`` (XLand; ignored for a MiniGrid port)."""
        xparams = self.xparams
        if self.rulesets:
            from xminigrid.benchmarks import get_ruleset

            xparams = xparams.replace(
                ruleset=get_ruleset(params.goals, params.rules, params.init_tiles, index))
        timestep = self._xreset(xparams, key)
        state = EnvState(timestep=timestep, ruleset=jnp.int32(index), time=jnp.int32(0))
        return self._obs(timestep), state

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """Draw the task: a ruleset (XLand), then xminigrid's layout and start."""
        k_task, k_state = jax.random.split(key)
        index = self._ruleset(k_task, params) if self.rulesets else jnp.int32(-1)
        return self._reset(k_state, index, params)

    def reset_state(self, key: jax.Array, state: EnvState, params: EnvParams):
        """A fresh start in the task of ``state`` (``--subepisode-start fresh``): the same
        ruleset with a new layout and agent start (a MiniGrid port: a new reset)."""
        return self._reset(key, state.ruleset, params)

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        """One xminigrid step; the goal and rules live in the state's encodings."""
        del key
        timestep = self._xstep(self.xparams, state.timestep, jnp.asarray(action, jnp.int32))
        reached = timestep.discount == 0  # xminigrid: 0 only when the goal is reached
        state = state.replace(timestep=timestep, time=state.time + 1)
        info = {"goal": jnp.where(reached, 0, -1).astype(jnp.int32)}
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return self._obs(timestep), state, reward, reached, info

    def _obs(self, timestep) -> jax.Array:
        return jnp.asarray(timestep.observation, jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.timestep.discount == 0

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return self.env_id

    @property
    def num_actions(self) -> int:
        return int(self.xenv.num_actions(self.xparams))

    @property
    def num_goals(self) -> int:
        """One goal per task: the ruleset's (``info["goal"]`` = 0)."""
        return 1

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """Tile and colour ids [V, V, 2]: ``high`` is each channel's largest id (what the
        ``grid`` encoder's embedding tables size themselves by)."""
        from xminigrid.core.constants import NUM_COLORS, NUM_TILES

        shape = tuple(self.xenv.observation_shape(self.xparams))
        high = np.broadcast_to(np.asarray([NUM_TILES - 1, NUM_COLORS - 1], np.float32), shape)
        return spaces.Box(0.0, high, shape, jnp.float32)


def _check_id(prefix: str, env_id: str) -> None:
    xminigrid = _xminigrid()
    want = "XLand-MiniGrid" if prefix == "xland" else "MiniGrid"
    known = [i for i in xminigrid.registered_environments() if i.startswith(want + "-")]
    if env_id not in known:
        raise ConfigError(f"unknown {prefix} env {env_id!r}; xminigrid has: {', '.join(known)}")


HOLDOUT_BY = ("goals", "rulesets")


def check_split(holdout: float, split: str, by: str = "goals") -> None:
    """ConfigError (one line) for a ``holdout`` / ``split`` / ``by`` (``holdout_by``) no
    benchmark can serve: made before any benchmark is read or built."""
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or \
            not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1), got {holdout}")
    if split not in ("train", "test"):
        raise ConfigError(f"split must be train or test, got {split!r}")
    if by not in HOLDOUT_BY:
        raise ConfigError(f"holdout_by must be {' or '.join(HOLDOUT_BY)}, got {by!r}")
    if holdout == 0 and split == "test":
        raise ConfigError("split=test needs holdout > 0")


def _parts(bench: dict, by: str) -> list[np.ndarray]:
    """The rulesets' identities as uint8 arrays [N, L] (xminigrid's encodings are uint8):
    the goal rows [N, 5] for ``by="goals"``; for ``"rulesets"`` also the rules [N, R * 7]
    and initial tiles [N, T * 2]."""
    n = len(bench["goals"])
    keys = ("goals",) if by == "goals" else ("goals", "rules", "init_tiles")
    return [np.asarray(bench[k], np.uint8).reshape(n, -1) for k in keys]


def _unit_hash(parts: list[np.ndarray], seed: int) -> float:
    """A hash in [0, 1) of ``seed`` and ``parts`` (1-D uint8): blake2b, stable across
    processes (Python's hash() of bytes is salted per process). Trailing zeros are padding
    (empty rules, empty tiles): stripped, a ruleset hashes alike whatever R and T its
    benchmark pads to."""
    h = hashlib.blake2b(str(seed).encode(), digest_size=8)
    for part in parts:
        data = part.tobytes().rstrip(b"\0")
        h.update(len(data).to_bytes(4, "little") + data)
    return int.from_bytes(h.digest(), "little") / 2.0 ** 64


def held_out(bench: dict, holdout: float, seed: int,
             by: str = "goals") -> tuple[np.ndarray, np.ndarray]:
    """The distinct rulesets of ``bench`` (goal, rules and initial tiles; the first of
    identical ones) as indices into it (int [M], ascending), and which of them are held out
    (bool [M]): those whose goal (``by="goals"``) or whole ruleset (``"rulesets"``) hashes
    with ``seed`` under ``holdout``. A ruleset's side reads only its content, so it is the
    same in every benchmark holding it, and all rulesets of a goal share one side."""
    whole = np.concatenate(_parts(bench, "rulesets"), axis=1)
    kept = np.sort(np.unique(whole, axis=0, return_index=True)[1])
    parts = [p[kept] for p in _parts(bench, by)]
    # one hash per distinct identity: large benchmarks repeat goals many times over
    ids, inverse = np.unique(np.concatenate(parts, axis=1), axis=0, return_inverse=True)
    cuts = np.cumsum([p.shape[1] for p in parts])[:-1]
    under = np.array([_unit_hash(np.split(i, cuts), seed) < holdout for i in ids], bool)
    return kept, under[inverse.reshape(-1)]


def _distinct(rows: np.ndarray) -> int:
    """How many distinct rows ``rows`` [M, L] holds."""
    return len(np.unique(rows, axis=0))


def _phrase(bench: dict, kept: np.ndarray, held: np.ndarray, holdout: float, seed: int,
            by: str) -> str:
    """What ``held_out``'s ``kept`` / ``held`` hold out of ``bench``, counted (one line)."""
    goals = np.asarray(bench["goals"])[kept]
    shared = _distinct(goals[held]) + _distinct(goals[~held]) - _distinct(goals)
    return (f"held out by {by} (holdout {holdout}, seed {seed}): {int(held.sum())} of "
            f"{len(kept)} rulesets, {_distinct(goals[held])} of {_distinct(goals)} goals "
            f"({shared} also trained on), {len(bench['goals']) - len(kept)} duplicate "
            "ruleset(s) dropped")


def describe_split(bench: dict, holdout: float, seed: int, by: str = "goals") -> str:
    """``split_rulesets``'s split of ``bench`` in one line: by what, rulesets and goals on
    the held-out side, goals on both sides, duplicates dropped."""
    return _phrase(bench, *held_out(bench, holdout, seed, by), holdout, seed, by)


def split_rulesets(bench: dict, holdout: float, seed: int, split: str,
                   by: str = "goals") -> dict:
    """The ``split`` ("train" or "test") of ``bench``'s distinct rulesets as ``held_out``
    decides it (every array indexed alike: [M', ...]); ConfigError (one line) for bad
    options (``check_split``) or a holdout that leaves one side empty, with the counts."""
    check_split(holdout, split, by)
    kept, held = held_out(bench, holdout, seed, by)
    if holdout > 0 and (held.all() or not held.any()):
        raise ConfigError(f"holdout {holdout} of {len(kept)} rulesets leaves "
                          f"{'no training' if held.all() else 'no held-out'} ruleset; "
                          f"{_phrase(bench, kept, held, holdout, seed, by)}")
    keep = kept[held] if split == "test" else kept[~held]
    return {k: v[keep] for k, v in bench.items()}


def _xland_factory(env_id: str):
    def factory(benchmark_path: str = "", num_rulesets: int = 1024, seed: int = 0,
                rules: int = 1, distractors: int = 2, holdout: float = 0.2,
                split: str = "train", holdout_by: str = "goals", view_size: int = 5,
                max_steps: int = 0):
        """``benchmark_path``: a benchmark file (empty: a seeded one built offline from
        ``num_rulesets``, ``seed``, ``rules``, ``distractors``); ``holdout``: the fraction
        of goals (``holdout_by=goals``) or of rulesets (``rulesets``) held out of training,
        drawn by a hash with ``seed`` (0: none); ``split``: which part this env draws from
        (train / test); ``view_size``: the agent's view; ``max_steps``: xminigrid's step
        limit per sub-episode (0: its 3 * h * w)."""
        # every refusal first: nothing read, built, written or printed before it
        check_split(holdout, split, holdout_by)
        if not benchmark_path:
            xland_benchmarks.check_build(num_rulesets, rules, distractors)
            # the sides are known only from the rulesets: split a build in memory (cheap)
            # so that an empty side is refused before the cache is written
            split_rulesets(xland_benchmarks.build_benchmark(num_rulesets, seed, rules,
                                                            distractors),
                           holdout, seed, split, holdout_by)
        xparams = {"view_size": view_size} | ({"max_steps": max_steps} if max_steps else {})
        env = XLandMiniGrid(env_id, True, **xparams)
        if benchmark_path:
            bench = xland_benchmarks.load_benchmark(benchmark_path)
        else:
            bench, path, note = xland_benchmarks.cached_rulesets(num_rulesets, seed, rules,
                                                                 distractors)
            _say_once(f"{env_id}: no benchmark_path given; using {num_rulesets} rulesets built "
                      f"offline (seed {seed}, {rules} rule(s), {distractors} distractor(s)): "
                      f"{path}")
            if note is not None:
                _say_once(f"{env_id}: {note}")
        part = split_rulesets(bench, holdout, seed, split, holdout_by)
        if holdout > 0:
            _say_once(f"{env_id}: {describe_split(bench, holdout, seed, holdout_by)}")
        params = env.default_params.replace(
            goals=jnp.asarray(part["goals"]), rules=jnp.asarray(part["rules"]),
            init_tiles=jnp.asarray(part["init_tiles"]))
        return env, params

    return factory


def _minigrid_factory(env_id: str):
    def factory(view_size: int = 7, max_steps: int = 0):
        """``view_size``: the agent's view; ``max_steps``: the step limit (0: the env's)."""
        xparams = {"view_size": view_size} | ({"max_steps": max_steps} if max_steps else {})
        env = XLandMiniGrid(env_id, False, **xparams)
        return env, env.default_params

    return factory


_SAID: set[str] = set()


def _say_once(line: str) -> None:
    """Print ``line`` once per process (the factory runs once per program and per check)."""
    if line not in _SAID:
        _SAID.add(line)
        print(line, file=sys.stderr, flush=True)


# Starting points, not measured on XLand yet: the grid-navigation recipe of Color-Choice
# (envs/recipes.py), its K and architecture, the JS divergence at 0.01.
_COMMON = dict(
    k_explore=3, horizon=20, architecture="meta_lstm", learning_rate=1e-3, lambda_div=0.01,
    config=NAVIGATION_RECIPE + (("encoder", "grid"),),
)


def _heldout_rulesets(options: dict) -> dict | None:
    """The env on its held-out rulesets (``EnvSpec.heldout``); None without a holdout."""
    if options.get("holdout", 0.2) == 0 or options.get("split", "train") == "test":
        return None
    return {**options, "split": "test"}


def xland_family(env_id: str) -> EnvSpec:
    """``xland:<id>``'s spec (entry point of the ``cmrl_jax.env_families`` group)."""
    _check_id("xland", env_id)
    return EnvSpec(factory=_xland_factory(env_id), description=(
        "an XLand-MiniGrid ruleset per meta-episode; success: the exploit sub-episode "
        "reaches the ruleset's goal"), heldout=_heldout_rulesets, **_COMMON)


def minigrid_family(env_id: str) -> EnvSpec:
    """``minigrid:<id>``'s spec (entry point of the ``cmrl_jax.env_families`` group)."""
    _check_id("minigrid", env_id)
    return EnvSpec(factory=_minigrid_factory(env_id), description=(
        "an xminigrid MiniGrid port; success: the exploit sub-episode reaches its goal"),
        **_COMMON)
