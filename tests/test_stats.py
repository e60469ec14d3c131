"""Interval estimates (``reporting.stats``) against cases computed by hand, and the table."""

import numpy as np
import pytest

from cmrl_jax.reporting import stats
from cmrl_jax.reporting.metrics import improvement, render_table, summarize


def test_bootstrap_interval_of_a_mean_by_hand():
    """Five 0s and five 1s: a resampled mean is Binomial(10, 1/2) / 10, whose CDF at 0.1 is
    11/1024 = 1.1 % and at 0.2 is 56/1024 = 5.5 %: the 2.5 % quantile is 0.2 and, by
    symmetry, the 97.5 % one 0.8. Two values {0, 1}: 0 and 1 each have mass 1/4 > 2.5 %."""
    ci = stats.mean_interval([0.0] * 5 + [1.0] * 5)
    assert (ci.estimate, ci.lo, ci.hi) == (0.5, 0.2, 0.8)
    ci = stats.mean_interval([0.0, 1.0])
    assert (ci.lo, ci.hi) == (0.0, 1.0)
    same = stats.mean_interval([0.25, 0.25, 0.25])  # no spread: a point, no warning
    assert (same.lo, same.hi) == (0.25, 0.25)
    assert stats.mean_interval([0.7]) is None  # one seed: no interval


def test_interquartile_mean_by_hand():
    """IQM of 1..8: the middle half 3, 4, 5, 6 -> 4.5; defined from 5 runs on."""
    assert stats.iqm(np.arange(1.0, 9.0)) == 4.5
    assert stats.iqm_interval(np.arange(1.0, 9.0)).estimate == 4.5
    assert stats.iqm_interval([1.0, 2.0, 3.0, 4.0]) is None


def test_probability_of_improvement_by_hand():
    """x = (1, 2, 3), y = (2, 2): pairs won 0 + 0 + 2, tied 0 + 2 + 0 -> (2 + 2 / 2) / 6."""
    assert stats.probability_of_improvement([1, 2, 3], [2, 2]) == pytest.approx(0.5)
    assert stats.probability_of_improvement([3, 4], [1, 2]) == 1.0
    sure = stats.improvement_interval([0.9, 0.95, 1.0], [0.3, 0.4, 0.5])
    assert (sure.estimate, sure.lo, sure.hi) == (1.0, 1.0, 1.0)  # every resample wins
    mixed = stats.improvement_interval([1.0, 2.0, 3.0], [2.0, 2.0])
    assert mixed.lo < 0.5 < mixed.hi
    assert stats.improvement_interval([1.0], [0.0, 1.0]) is None
    from scipy.stats import mannwhitneyu  # the same statistic: U / (N M)

    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 5).astype(float)  # ties
    assert stats.probability_of_improvement(x, y) == pytest.approx(
        mannwhitneyu(x, y).statistic / 35)


def _curve(finals):
    """A learning curve per seed rising linearly from 0 to ``finals`` over 4 chunks."""
    success = np.stack([np.linspace(0.0, f, 5) for f in finals])
    return {"updates": np.arange(5) * 250, "success": success, "visited": np.ones_like(success),
            "seeds": list(range(len(finals))), "learning_rate": 1e-3, "lambda_div": 0.0}


def test_the_table_carries_intervals_iqm_and_improvement():
    cmrl, erl2 = _curve([0.9, 0.95, 1.0, 0.97, 0.99]), _curve([0.3, 0.5, 0.4, 0.6, 0.45])
    ours = {"ERL2": summarize(erl2, (0.5,)), "Max-Until-Exploit": summarize(cmrl, (0.5,))}
    ours["Max-Until-Exploit"]["probability_of_improvement"] = improvement(cmrl, erl2, "ERL2")
    row = ours["ERL2"]
    assert row["final_success_per_seed"] == pytest.approx([30, 50, 40, 60, 45])
    assert row["auc_per_seed"] == pytest.approx([150, 250, 200, 300, 225])  # 1000 f / 2
    lo, hi = row["final_success_ci"]
    assert row["final_success_mean"] == pytest.approx(45.0) and lo < 45.0 < hi
    assert row["final_success_iqm"] == pytest.approx(45.0)  # middle three: 40, 45, 50
    text = render_table(ours, {}, (0.5,), "t")
    assert "| IQM Final | IQM AuC |" in text and f"45.0 ± 10.0% [{lo:.1f}, {hi:.1f}]" in text
    assert row["auc_iqm"] == pytest.approx(225.0)  # middle three: 200, 225, 250
    auc_lo, auc_hi = row["auc_iqm_ci"]
    assert f"| 45.0% [{row['final_success_iqm_ci'][0]:.1f}, " in text
    assert f"| 225.00 [{auc_lo:.2f}, {auc_hi:.2f}] |" in text
    assert "seeds a 95 % interval" not in text  # 5 seeds: no caveat
    assert "P(Max-Until-Exploit > ERL2): final success 1.00 [1.00, 1.00]" in text
    assert "95 % intervals over seeds (percentile bootstrap" in text
    three = summarize(_curve([0.2, 0.4, 0.6]), (0.5,))  # under 5 seeds: no IQM
    assert "final_success_iqm" not in three and "final_success_ci" in three


def test_every_table_row_names_its_units():
    """Success is a fraction in the logs and a percent in the tables; each table.json row
    says so, and so does a line under the table (issue 33, friction 1). The curve's last
    success 0.45 (a log's fraction) is 45 % in the row; AuC is fraction x updates."""
    row = summarize(_curve([0.45]), (0.25,))
    assert row["final_success_mean"] == pytest.approx(100 * 0.45)
    assert row["auc"] == pytest.approx(0.45 * 1000 / 2)  # a linear rise over 1000 updates
    assert row["units"]["final_success"].startswith("percent")
    assert row["units"]["auc"].startswith("success fraction x updates")
    assert list(row["updates_until"]) == ["25"] and "percent" in row["units"]["updates_until"]
    assert "Units: success in % (eval.jsonl, TensorBoard and W&B log it as a fraction)" in \
        render_table({"x": row}, {}, (0.25,), "t")


@pytest.mark.parametrize("seeds, how", [(2, "exactly"), (3, "exactly"), (4, "nearly")])
def test_few_seeds_intervals_are_said_to_be_the_seeds_range(seeds, how):
    """With 2-3 seeds the percentile bootstrap of a mean gives the seeds' own [min, max]
    (the all-lowest resample has mass (1/3)^3 = 3.7 % > 2.5 %); with 4 it lies just inside
    (1/4^4 = 0.4 %). One line under the table says so, for the fewest seeds of any row."""
    finals = [0.2, 0.7, 0.4, 0.55][:seeds]
    ci = stats.mean_interval(finals)
    if how == "exactly":
        assert (ci.lo, ci.hi) == pytest.approx((min(finals), max(finals)))
    else:
        assert min(finals) < ci.lo < ci.hi < max(finals)
    ours = {"RL2": summarize(_curve([0.0] * 5), (0.5,)),  # 5 seeds: an IQM, no caveat
            "ERL2": summarize(_curve(finals), (0.5,)),
            "Max-Until-Exploit": summarize(_curve([0.9]), (0.5,))}  # 1 seed: no interval
    text = render_table(ours, {}, (0.5,), "t")
    assert text.splitlines()[-1] == (
        f"With {seeds} seeds a 95 % interval of a mean is {how} the seeds' [min, max] (the "
        "bootstrap only re-averages them: it says where they fell, not how sure the mean is); "
        "use >= 5 seeds for intervals.")
    assert "| ERL2 | ours |" in text and text.count("| - | - |") == 2  # no IQM under 5 seeds
    alone = render_table({"x": summarize(_curve([0.9]), (0.5,))}, {}, (0.5,), "t")
    assert "interval" not in alone  # one seed: no interval, nothing to caveat


def test_heldout_auc_by_hand():
    """Held-out success rising linearly to 0.2 .. 1.0 over 1000 updates: AuC per seed 1000 f / 2
    = 100 .. 500, mean and IQM (middle three) 300; final 20 .. 100 %. The table shows both
    held-out columns, and P(X > ERL2) on the held-out results where both rows have them."""
    cmrl = _curve([0.9, 0.95, 1.0, 0.97, 0.99])
    cmrl["heldout_success"] = np.stack([np.linspace(0.0, f, 5) for f in (0.2, 0.4, 0.6, 0.8, 1.0)])
    erl2 = _curve([0.3, 0.5, 0.4, 0.6, 0.45])
    erl2["heldout_success"] = np.zeros_like(erl2["success"])  # never above 0 held out
    row = summarize(cmrl, (0.5,))
    assert row["heldout_auc_per_seed"] == pytest.approx([100, 200, 300, 400, 500])
    assert row["heldout_auc"] == pytest.approx(300.0) and row["heldout_auc_iqm"] == 300.0
    assert row["heldout_auc_std"] == pytest.approx(np.std([100, 200, 300, 400, 500]))
    lo, hi = row["heldout_auc_ci"]
    assert 100 < lo < 300 < hi < 500
    assert row["heldout_final_success_per_seed"] == pytest.approx([20, 40, 60, 80, 100])
    imp = improvement(cmrl, erl2, "ERL2")
    assert imp["heldout_auc"] == 1.0 and imp["heldout_final_success"] == 1.0  # every pair wins
    ours = {"ERL2": summarize(erl2, (0.5,)), "Max-Until-Exploit": row}
    ours["Max-Until-Exploit"]["probability_of_improvement"] = imp
    text = render_table(ours, {}, (0.5,), "t")
    assert "| Final Perf. | Held-out Final | Held-out AuC | IQM Final |" in text
    assert f"| 300.00 [{lo:.2f}, {hi:.2f}] |" in text and "| 0.00 [0.00, 0.00] |" in text
    assert ("held-out final success 1.00 [1.00, 1.00], held-out AuC 1.00 [1.00, 1.00]."
            in text)
    plain = improvement(_curve([0.9, 1.0]), _curve([0.3, 0.5]), "ERL2")  # no held-out
    assert set(plain) == {"over", "final_success", "final_success_ci", "auc", "auc_ci"}
