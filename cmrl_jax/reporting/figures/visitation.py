"""Goal visitation by goal position (Figure 6): the statistics (numpy) and their sampling (JAX).

For every goal of every sampled meta-episode: the heatmap bin of its position
and whether any explore step (any rollout or sub-episode) entered it. Per bin::

    frequency = (goals located in the bin that were entered while exploring)
                / (goals located in the bin)
"""

import numpy as np

from cmrl_jax.reporting.figures.hooks import Heatmap

# ------------------------------------------------------------------ statistics (pure numpy)


def visitation_counts(
    positions: np.ndarray, entered: np.ndarray, edges: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: how many goals were located there, and how many of those were explored.

    Args:
      positions: float [E, N, 2] goal coordinates, N goals in each of E meta-episodes.
      entered: bool [E, N] the goal was entered during the explore phase.
      edges: (edges0 [B0 + 1], edges1 [B1 + 1]) increasing bin edges of the two
        coordinates; bins are half-open [lo, hi) except the last, which is closed.
        Positions outside the edges are not counted.
    Returns:
      (entered_counts, located_counts): int64 [B0, B1] each; entered <= located.
    """
    p = np.asarray(positions, np.float64).reshape(-1, 2)
    w = np.asarray(entered, bool).reshape(-1)
    if w.shape[0] != p.shape[0]:
        raise ValueError(f"positions {np.shape(positions)} and entered {np.shape(entered)} differ")
    bins = [np.asarray(edges[0], np.float64), np.asarray(edges[1], np.float64)]
    located, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins)
    hits, _, _ = np.histogram2d(p[w, 0], p[w, 1], bins=bins)
    return hits.astype(np.int64), located.astype(np.int64)


def exploration_frequency(entered: np.ndarray, located: np.ndarray) -> np.ndarray:
    """entered / located per bin: float64 [B0, B1], NaN where no goal was ever located."""
    entered = np.asarray(entered, np.float64)
    located = np.asarray(located, np.float64)
    out = np.full(located.shape, np.nan)
    np.divide(entered, located, out=out, where=located > 0)
    return out


def percent_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Percent change per bin from ``before`` to ``after``: float64 [B0, B1].

    ``100 * (after - before) / before`` where ``before > 0``; where ``before == 0``
    it is 0 if ``after == 0`` too and +inf if ``after > 0`` (explored only
    afterwards); NaN where either input is NaN (no data in that bin).
    """
    before = np.asarray(before, np.float64)
    after = np.asarray(after, np.float64)
    out = np.full(before.shape, np.nan)
    ok = ~np.isnan(before) & ~np.isnan(after)
    pos = ok & (before > 0)
    out[pos] = 100.0 * (after[pos] - before[pos]) / before[pos]
    zero = ok & (before == 0)
    out[zero & (after == 0)] = 0.0
    out[zero & (after > 0)] = np.inf
    return out


def pooled_frequency(entered: np.ndarray, located: np.ndarray) -> float:
    """Fraction of all counted goals entered while exploring (NaN if none counted)."""
    total = float(np.sum(located))
    return float(np.sum(entered)) / total if total > 0 else float("nan")


def mean_bin_frequency(freq: np.ndarray) -> float:
    """Mean over the bins that hold data (NaN if none do)."""
    return float(np.nanmean(freq)) if np.any(~np.isnan(freq)) else float("nan")


# ------------------------------------------------------------------ sampling (JAX)


def make_sampler(runner, heatmap: Heatmap):
    """Jitted ``(params, keys [C, 2]) -> (positions [C, N, 2], entered [C, N])``
    over C meta-episodes with sampled actions."""
    import jax
    import jax.numpy as jnp

    env, env_params = runner.env, runner.env_params

    def one(params, key):
        ep, (_, state0) = runner.run_with_task(params, key, greedy=False)
        pos = heatmap.goal_positions(env, state0, env_params)  # [N, 2]
        goals = jnp.reshape(ep.explore.goal, (-1,))  # every explore step of every rollout
        entered = jnp.any(goals[:, None] == jnp.arange(pos.shape[0])[None, :], axis=0)
        return pos, entered

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def sample_goals(
    policy, heatmap: Heatmap, episodes: int, seed: int, chunk: int, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Goal positions float32 [E, N, 2] and explore-entered flags bool [E, N] of E episodes.

    ``policy``: a ``cmrl_jax.saved.SavedPolicy``. The keys depend only on
    ``seed``, E and ``chunk``, so agents sampled alike meet the same tasks (and
    share the action-sampling keys).
    """
    import jax
    from tqdm.auto import tqdm

    chunk = max(1, min(chunk, episodes))
    n_chunks = -(-episodes // chunk)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_chunks * chunk)
    keys = keys.reshape((n_chunks, chunk) + keys.shape[1:])
    sample = make_sampler(policy.runner, heatmap)  # one shape: the last chunk is padded
    positions, entered = [], []
    label = f"{policy.run_spec.row} seed {policy.run_spec.seed}"
    for c in tqdm(range(n_chunks), desc=label, unit="chunk", disable=not progress):
        pos, ent = jax.device_get(sample(policy.params, keys[c]))
        positions.append(pos)
        entered.append(ent)
    return np.concatenate(positions)[:episodes], np.concatenate(entered)[:episodes]
