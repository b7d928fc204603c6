"""Summaries over seeds: t-intervals with ddof 1, and paired differences over the same seeds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raysim.results.summary import interval, summarize

FRAME = pd.DataFrame({
    "arm": ["a"] * 3 + ["b"] * 3,
    "run.seed": [0, 1, 2] * 2,
    "final_accuracy": [0.5, 0.6, 0.7, 0.52, 0.621, 0.719],
})


def test_the_interval_uses_the_sample_std_and_students_t():
    mean, std, low, high = interval([0.5, 0.6, 0.7])
    assert (mean, std) == pytest.approx((0.6, 0.1))
    assert high - mean == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)  # t_{0.975, 2}
    assert math.isnan(interval([0.5])[2])


def test_arms_and_paired_differences():
    summary = summarize(FRAME, by=["arm"])
    assert summary.arms["n"].tolist() == [3, 3] and summary.arms["mean"].tolist() == pytest.approx([0.6, 0.62])
    (diff,) = summary.differences.to_dict("records")
    d = [-0.02, -0.021, -0.019]  # a - b seed by seed: the spread the arms share is gone
    assert diff["mean_diff"] == pytest.approx(-0.02) and diff["n"] == 3
    assert diff["ci_high"] - diff["mean_diff"] == pytest.approx(4.302653 * pd.Series(d).std() / math.sqrt(3), rel=1e-6)
    assert diff["ci_high"] < 0 < summary.arms["ci_high"].min() - summary.arms["mean"].max()  # arms overlap, pairs not
    assert 0 < diff["p"] < 0.05


def test_pairing_refuses_several_rows_per_seed():
    with pytest.raises(ValueError, match="several rows per"):
        summarize(pd.concat([FRAME, FRAME]), by=["arm"])
