"""The statistics of paired, interleaved repetitions: known values, coverage, missing pairs,
the median's order statistics and the adaptive stopping rule.

Expected values are worked out by hand here as literals (the Student quantiles are copied
from a t table), so a change of formula in ``cnibench.stats`` cannot also change what it is
checked against.
"""

from __future__ import annotations

import json
import math
import random

import pytest

from cnibench.stats import (
    METHOD,
    RatioInterval,
    StopDecision,
    adaptive_stop,
    median_interval,
    paired_ratio_interval,
)

# Student t quantiles t_{0.975, dof} and t_{0.95, dof}, from a t table
T975 = {1: 12.706205, 2: 4.302653, 4: 2.776445}
T95_2 = 2.919986


def _pairs(ratios, base=100.0):
    """(values, reference) whose pairs have exactly these ratios, on a drifting reference."""
    reference = [base * (1.0 + 0.25 * i) for i in range(len(ratios))]
    return [r * q for r, q in zip(reference, ratios)], reference


# --- known values ---------------------------------------------------------------------------
def test_equal_ratios_collapse_the_interval():
    values, reference = _pairs([2.0, 2.0, 2.0])
    iv = paired_ratio_interval(values, reference)
    assert iv.n == 3 and iv.confidence == 0.95 and iv.method == METHOD
    assert iv.estimate == pytest.approx(2.0, abs=1e-12)
    assert iv.low == iv.high == iv.estimate
    assert iv.half_width == 0.0
    assert iv.excludes(1.0) and not iv.excludes(iv.estimate)


def test_t_interval_on_log_ratios_by_hand():
    # log ratios 0.1, 0.2, 0.3: mean 0.2, sample sd 0.1, n = 3, t_{0.975,2} = 4.302653
    values, reference = _pairs([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
    iv = paired_ratio_interval(values, reference)
    margin = 4.302653 * 0.1 / math.sqrt(3)  # = 0.248414...
    assert iv.n == 3
    assert iv.estimate == pytest.approx(math.exp(0.2), abs=1e-6)
    assert iv.low == pytest.approx(math.exp(0.2 - margin), abs=1e-6)
    assert iv.high == pytest.approx(math.exp(0.2 + margin), abs=1e-6)
    assert iv.low == pytest.approx(0.952739, abs=1e-6) and iv.high == pytest.approx(1.565826, abs=1e-6)
    # symmetric on the log scale: high / estimate == estimate / low, half-width = exp(margin) - 1
    assert iv.high / iv.estimate == pytest.approx(iv.estimate / iv.low, rel=1e-12)
    assert iv.half_width == pytest.approx(math.exp(margin) - 1.0, abs=1e-6)
    assert not iv.excludes(1.0) and iv.excludes(0.95) and iv.excludes(1.6)


def test_t_interval_other_confidence():
    values, reference = _pairs([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
    iv = paired_ratio_interval(values, reference, confidence=0.90)
    margin = T95_2 * 0.1 / math.sqrt(3)
    assert iv.confidence == 0.90
    assert iv.low == pytest.approx(math.exp(0.2 - margin), abs=1e-6)
    assert iv.high == pytest.approx(math.exp(0.2 + margin), abs=1e-6)


def test_two_pairs_use_one_degree_of_freedom():
    # ratios 1 and 4: log ratios 0 and log 4, mean log 2, sd log4/sqrt2, margin t * log 2
    iv = paired_ratio_interval([10.0, 40.0], [10.0, 10.0])
    assert iv.n == 2
    assert iv.estimate == pytest.approx(2.0, abs=1e-9)
    assert iv.low == pytest.approx(2.0 ** (1 - 12.706205), rel=1e-6)
    assert iv.high == pytest.approx(2.0 ** (1 + 12.706205), rel=1e-6)


def test_ratio_below_one_and_reciprocal_symmetry():
    ratios = [0.8, 0.7, 0.75, 0.9]
    values, reference = _pairs(ratios)
    iv = paired_ratio_interval(values, reference)
    inv = paired_ratio_interval(reference, values)  # the same comparison the other way round
    assert iv.estimate == pytest.approx(1.0 / inv.estimate, rel=1e-12)
    assert iv.low == pytest.approx(1.0 / inv.high, rel=1e-12)
    assert iv.high == pytest.approx(1.0 / inv.low, rel=1e-12)
    assert iv.half_width == pytest.approx(inv.half_width, rel=1e-12)
    assert iv.excludes(1.0) and iv.high < 1.0


def test_pairing_removes_common_drift_exactly():
    """Scaling both sides of repetition i by the same factor changes nothing."""
    rng = random.Random(7)
    values = [rng.uniform(90, 110) for _ in range(6)]
    reference = [rng.uniform(70, 80) for _ in range(6)]
    drift = [rng.uniform(0.2, 5.0) for _ in range(6)]
    a = paired_ratio_interval(values, reference)
    b = paired_ratio_interval([x * d for x, d in zip(values, drift)], [r * d for r, d in zip(reference, drift)])
    for field in ("estimate", "low", "high"):
        assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-12)


# --- coverage against a known distribution --------------------------------------------------
TRUE_RATIO = 1.3
RUNS = 2000
N_PAIRS = 5


def _simulated_runs(seed):
    """``RUNS`` runs of ``N_PAIRS`` interleaved repetitions: the log ratio of each pair is
    Normal(log 1.3, 0.1); each repetition also has a drift (sd 0.3 on the log scale, ~35 %)
    common to both subjects, and the host its own small noise."""
    rng = random.Random(seed)
    for _ in range(RUNS):
        host, datapath = [], []
        for _ in range(N_PAIRS):
            h = 1000.0 * math.exp(rng.gauss(0.0, 0.3) + rng.gauss(0.0, 0.05))
            host.append(h)
            datapath.append(h * math.exp(rng.gauss(math.log(TRUE_RATIO), 0.1)))
        yield datapath, host


def _percentile_bootstrap(values, reference, rng, resamples=200, confidence=0.95):
    """The naive percentile bootstrap of the mean log ratio (the method *not* used)."""
    logs = [math.log(x / r) for x, r in zip(values, reference)]
    n = len(logs)
    means = sorted(math.fsum(rng.choices(logs, k=n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return math.exp(means[int(tail * resamples)]), math.exp(means[int((1.0 - tail) * resamples) - 1])


def test_coverage_of_the_t_interval_and_of_a_percentile_bootstrap():
    """The 95 % interval contains the true ratio in 95 % of the runs.

    Binomial tolerance: with 2,000 runs the coverage estimate has a standard error of
    sqrt(0.95 * 0.05 / 2000) = 0.49 points, so 93-97 % is about +-4 standard errors (a
    correct method fails this with probability ~1e-4; the seed makes it deterministic anyway).
    An interval with the normal quantile 1.96 instead of t_{0.975,4} = 2.78 would cover
    ~88 %, and the naive percentile bootstrap of the same data covers ~83 %: at n = 5 its
    resamples are never more spread out than the five observed values. That is why the module
    uses the t-interval.
    """
    rng = random.Random(99)
    t_hits = boot_hits = 0
    widths = []
    for datapath, host in _simulated_runs(seed=20240601):
        iv = paired_ratio_interval(datapath, host)
        assert iv.n == N_PAIRS
        t_hits += iv.low <= TRUE_RATIO <= iv.high
        widths.append(iv.half_width)
        lo, hi = _percentile_bootstrap(datapath, host, rng)
        boot_hits += lo <= TRUE_RATIO <= hi
    t_coverage, boot_coverage = t_hits / RUNS, boot_hits / RUNS
    assert 0.93 <= t_coverage <= 0.97, t_coverage
    assert boot_coverage < 0.90, boot_coverage
    # pairing: despite a 35 % drift between repetitions, the interval is as narrow as the
    # 10 % spread of the log ratios allows (E[half-width] ~ exp(2.78 * 0.094 / sqrt 5) - 1 ~ 12 %)
    assert sorted(widths)[RUNS // 2] < 0.15


# --- missing pairs --------------------------------------------------------------------------
def test_incomplete_pairs_are_dropped():
    values = [20.0, None, 30.0, float("nan"), 0.0, -5.0, 40.0, 12.0, float("inf")]
    reference = [10.0, 10.0, None, 10.0, 10.0, 10.0, 20.0, -1.0, 10.0]
    # only pairs 0 (ratio 2) and 6 (ratio 2) are complete and positive
    iv = paired_ratio_interval(values, reference)
    assert iv.n == 2
    assert iv.estimate == pytest.approx(2.0) and iv.low == iv.high == iv.estimate


def test_one_pair_gives_an_estimate_but_no_interval():
    iv = paired_ratio_interval([None, 30.0, 5.0], [10.0, 10.0, 0.0])
    assert iv.n == 1
    assert iv.estimate == pytest.approx(3.0)
    assert iv.low is None and iv.high is None and iv.half_width is None
    assert not iv.excludes(1.0) and not iv.excludes(100.0)


def test_no_pair_gives_nothing():
    iv = paired_ratio_interval([None, float("nan")], [1.0, 1.0])
    assert iv == RatioInterval(None, None, None, 0, 0.95, METHOD)
    assert paired_ratio_interval([], []).n == 0


def test_sequences_must_line_up():
    with pytest.raises(ValueError, match="line up"):
        paired_ratio_interval([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 95, float("nan")])
def test_confidence_must_be_a_probability(confidence):
    with pytest.raises(ValueError, match="confidence"):
        paired_ratio_interval([1.0, 2.0], [1.0, 1.0], confidence=confidence)
    with pytest.raises(ValueError, match="confidence"):
        median_interval([1.0] * 10, confidence=confidence)


def test_as_dict_is_json_ready():
    values, reference = _pairs([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
    d = paired_ratio_interval(values, reference).as_dict()
    assert set(d) == {"estimate", "low", "high", "n", "confidence", "method", "half_width"}
    assert d["n"] == 3 and d["method"] == METHOD and d["confidence"] == 0.95
    assert all(isinstance(d[k], float) for k in ("estimate", "low", "high", "half_width"))
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    empty = paired_ratio_interval([3.0], [1.0]).as_dict()
    assert empty["low"] is None and empty["high"] is None and empty["half_width"] is None
    json.dumps(empty, allow_nan=False)


# --- median interval ------------------------------------------------------------------------
# [x_(k), x_(n-k+1)] covers 1 - 2 P(B <= k-1), B ~ Bin(n, 1/2), worked out by hand:
#   n=6  k=1: 1 - 2/64 = 0.969      k=2: 1 - 14/64 = 0.78
#   n=7  k=1: 1 - 2/128 = 0.984     k=2: 1 - 16/128 = 0.875
#   n=8  k=1: 1 - 2/256 = 0.992     k=2: 1 - 18/256 = 0.930 (< 0.95)
#   n=9  k=2: 1 - 20/512 = 0.961    k=3: 1 - 92/512 = 0.820
#   n=10 k=2: 1 - 22/1024 = 0.979   k=3: 1 - 112/1024 = 0.891
MEDIAN_RANKS_95 = {6: (1, 6), 7: (1, 7), 8: (1, 8), 9: (2, 8), 10: (2, 9)}


@pytest.mark.parametrize("n", sorted(MEDIAN_RANKS_95))
def test_median_interval_order_statistics(n):
    ordered = [10.0 * (i + 1) + 0.5 * i * i for i in range(n)]  # distinct, increasing
    shuffled = ordered[:]
    random.Random(n).shuffle(shuffled)
    lo_rank, hi_rank = MEDIAN_RANKS_95[n]
    assert median_interval(shuffled) == (ordered[lo_rank - 1], ordered[hi_rank - 1])


def test_median_interval_literal_values():
    assert median_interval([5, 1, 4, 2, 6, 3]) == (1, 6)
    assert median_interval([9, 3, 7, 1, 5, 8, 2, 6, 4]) == (2, 8)
    assert median_interval([10, 3, 7, 1, 5, 8, 2, 6, 4, 9]) == (2, 9)


def test_median_interval_needs_six_samples_at_95():
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (None, None)  # at most 93.75 %
    assert median_interval([]) == (None, None)
    # missing samples do not count
    assert median_interval([1.0, 2.0, None, 3.0, float("nan"), 4.0, 5.0]) == (None, None)
    assert median_interval([6.0, 1.0, 2.0, None, 3.0, float("nan"), 4.0, 5.0]) == (1.0, 6.0)


def test_median_interval_other_confidence():
    assert median_interval([1, 2, 3, 4, 5, 6, 7], confidence=0.99) == (None, None)  # 0.984 < 0.99
    assert median_interval([1, 2, 3, 4, 5, 6, 7, 8], confidence=0.99) == (1, 8)  # 0.992
    assert median_interval([1, 2, 3, 4, 5], confidence=0.90) == (1, 5)  # 0.9375
    assert median_interval(list(range(1, 11)), confidence=0.80) == (3, 8)  # 0.891; k=4: 0.656


def test_median_interval_coverage():
    """Distribution-free: on a skewed distribution (exponential, median log 2) it covers the
    median in 1 - 20/512 = 96.1 % of the runs at n = 9 (+-4 standard errors of 0.43 points: 94.4-97.8 %)."""
    rng = random.Random(5)
    runs, hits = 2000, 0
    for _ in range(runs):
        lo, hi = median_interval([rng.expovariate(1.0) for _ in range(9)])
        hits += lo <= math.log(2) <= hi
    assert 0.944 <= hits / runs <= 0.978


# --- adaptive stopping ----------------------------------------------------------------------
def _iv(half_width: float | None, n: int = 5) -> RatioInterval:
    if half_width is None:
        return RatioInterval(1.0, None, None, 1, 0.95, METHOD)
    f = 1.0 + half_width
    return RatioInterval(1.0, 1.0 / f, f, n, 0.95, METHOD)


def test_half_width_helper():
    assert _iv(0.05).half_width == pytest.approx(0.05)


def test_adaptive_stop_converged():
    d = adaptive_stop({"tcp": _iv(0.02), "udp": _iv(0.04), "rr": _iv(0.03)}, done=5, minimum=3, maximum=10, target_half_width=0.05)
    assert d.stop and d.reason == "converged"
    assert d.worst == "udp" and d.worst_half_width == pytest.approx(0.04)
    # the boundary is inclusive
    assert adaptive_stop({"tcp": _iv(0.05)}, done=3, minimum=3, maximum=10, target_half_width=0.05 + 1e-12).stop


def test_adaptive_stop_continue():
    d = adaptive_stop({"tcp": _iv(0.02), "udp": _iv(0.08)}, done=5, minimum=3, maximum=10, target_half_width=0.05)
    assert d == StopDecision(False, "continue", "udp", d.worst_half_width)
    assert d.worst_half_width == pytest.approx(0.08)


def test_adaptive_stop_cap():
    d = adaptive_stop({"tcp": _iv(0.02), "udp": _iv(0.08)}, done=10, minimum=3, maximum=10, target_half_width=0.05)
    assert d.stop and d.reason == "cap" and d.worst == "udp"
    assert adaptive_stop({"udp": _iv(0.08)}, done=12, minimum=3, maximum=10, target_half_width=0.05).reason == "cap"


def test_adaptive_stop_converged_at_the_cap_says_converged():
    d = adaptive_stop({"tcp": _iv(0.02)}, done=10, minimum=3, maximum=10, target_half_width=0.05)
    assert d.stop and d.reason == "converged"


def test_adaptive_stop_min_not_reached():
    # even with every interval already narrow enough
    d = adaptive_stop({"tcp": _iv(0.01)}, done=2, minimum=3, maximum=10, target_half_width=0.05)
    assert not d.stop and d.reason == "min-not-reached" and d.worst == "tcp"
    d = adaptive_stop({}, done=0, minimum=3, maximum=10, target_half_width=0.05)
    assert d == StopDecision(False, "min-not-reached", None, None)


def test_adaptive_stop_metric_without_interval_keeps_going_until_the_cap():
    intervals = {"tcp": _iv(0.01), "udp": _iv(None), "rr": _iv(0.2), "pps": _iv(None)}
    d = adaptive_stop(intervals, done=5, minimum=3, maximum=10, target_half_width=0.05)
    assert d == StopDecision(False, "continue", "udp", None)  # no interval counts as the widest
    d = adaptive_stop({"tcp": _iv(0.01), "udp": _iv(None)}, done=9, minimum=3, maximum=10, target_half_width=0.05)
    assert not d.stop and d.reason == "continue"
    d = adaptive_stop({"tcp": _iv(0.01), "udp": _iv(None)}, done=10, minimum=3, maximum=10, target_half_width=0.05)
    assert d == StopDecision(True, "cap", "udp", None)


def test_adaptive_stop_empty_mapping_converges_once_the_minimum_is_reached():
    assert adaptive_stop({}, done=3, minimum=3, maximum=10, target_half_width=0.05) == StopDecision(True, "converged", None, None)


def test_adaptive_stop_with_real_intervals():
    values, reference = _pairs([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
    wide = paired_ratio_interval(values, reference)  # half-width ~28 %
    tight = paired_ratio_interval(*_pairs([1.30, 1.31, 1.29, 1.30]))
    d = adaptive_stop({"tcp": tight, "udp": wide}, done=4, minimum=3, maximum=10, target_half_width=0.05)
    assert d.reason == "continue" and d.worst == "udp"
    assert adaptive_stop({"tcp": tight}, done=4, minimum=3, maximum=10, target_half_width=0.05).reason == "converged"


def test_adaptive_stop_rejects_bad_bounds():
    with pytest.raises(ValueError, match="minimum"):
        adaptive_stop({}, done=0, minimum=5, maximum=3, target_half_width=0.05)
    with pytest.raises(ValueError, match="target_half_width"):
        adaptive_stop({}, done=0, minimum=1, maximum=3, target_half_width=-0.1)
    with pytest.raises(ValueError, match="target_half_width"):
        adaptive_stop({}, done=0, minimum=1, maximum=3, target_half_width=float("nan"))
