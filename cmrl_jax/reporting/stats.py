"""Interval estimates over seeds, as rliable reports them, computed with scipy.

Every table row is one task and a few seeds (runs). Following rliable
(Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"):

- a 95 % confidence interval of the mean over seeds from the percentile
  bootstrap (rliable's default method; with one task its stratified bootstrap
  is the plain bootstrap over seeds), ``scipy.stats.bootstrap``;
- the interquartile mean (IQM, the mean of the middle 50 % of runs,
  ``scipy.stats.trim_mean(x, 0.25)``) where there are at least 5 runs;
- the probability of improvement P(X > Y): the chance that a run of one method
  beats a run of the other (ties count half), the Mann-Whitney U statistic over
  n m, with its bootstrap interval over both methods' seeds resampled
  independently.

Resampling is seeded (``SEED``): the same rows give the same table.
"""

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
IQM_MIN_RUNS = 5


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval (``lo <= hi``)."""

    estimate: float
    lo: float
    hi: float

    def to_json(self) -> list[float]:
        """``[lo, hi]``, as table.json stores an interval."""
        return [self.lo, self.hi]


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, vectorized: bool) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` over ``samples`` (each resampled
    independently)."""
    from scipy import stats

    result = stats.bootstrap(
        samples, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
        method="percentile", vectorized=vectorized, paired=False,
        rng=np.random.default_rng(SEED),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def _interval(values, statistic, min_runs: int) -> Interval | None:
    """[S] per-seed values -> ``statistic`` with a 95 % bootstrap interval (None: fewer than
    ``min_runs`` seeds)."""
    x = np.asarray(values, np.float64)
    if x.size < min_runs:
        return None
    point = float(statistic(x))
    if np.all(x == x[0]):  # every resample is the same: no spread (scipy warns)
        return Interval(point, point, point)
    lo, hi = _bootstrap((x,), statistic, vectorized=True)
    return Interval(point, lo, hi)


def mean_interval(values) -> Interval | None:
    """[S] per-seed values -> their mean with a 95 % bootstrap interval (None: < 2 seeds)."""
    return _interval(values, np.mean, 2)


def iqm(values, axis: int = -1):
    """Interquartile mean: the mean of the middle 50 % of ``values`` along ``axis``."""
    from scipy import stats

    return stats.trim_mean(values, 0.25, axis=axis)


def iqm_interval(values) -> Interval | None:
    """[S] -> their IQM with a 95 % bootstrap interval (None: fewer than 5 runs)."""
    return _interval(values, iqm, IQM_MIN_RUNS)


def _wins(a, b, axis: int = -1):
    """[..., N], [..., M] -> [...]: the share of pairs where ``a`` beats ``b`` (ties half)."""
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    d = a[..., :, None] - b[..., None, :]
    return np.mean((d > 0) + 0.5 * (d == 0), axis=(-2, -1))


def probability_of_improvement(x, y) -> float:
    """[N], [M] -> P(X > Y) + P(X = Y) / 2 over all N M pairs of runs (the Mann-Whitney U
    statistic over N M)."""
    return float(_wins(np.asarray(x, np.float64), np.asarray(y, np.float64)))


def improvement_interval(x, y) -> Interval | None:
    """``probability_of_improvement`` with a 95 % bootstrap interval over both methods'
    seeds (None: fewer than 2 seeds on either side)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or y.size < 2:
        return None
    point = probability_of_improvement(x, y)
    if np.all(x == x[0]) and np.all(y == y[0]):
        return Interval(point, point, point)
    lo, hi = _bootstrap((x, y), _wins, vectorized=True)
    return Interval(point, lo, hi)
