"""Property-based tests of cnibench.stats (hypothesis), and the coverage of its intervals on
synthetic experiments drawn from known distributions (numpy, fixed seeds: deterministic).

Expected values come from the mathematics, worked out here independently of the module: the
t-interval on log ratios with numpy and ``scipy.stats.t.ppf`` as the quantile, the order
statistics of the median interval from the exact binomial sum (``math.comb``), the stopping
rule from its docstring. ``tests/test_stats.py`` holds the hand-worked literal cases; this file
generalises them to drawn inputs and checks coverage at sample sizes and distributions it does
not (n = 2-10 pairs, 80 % and 99 % levels; Cauchy, log-normal and Weibull medians).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from cnibench.stats import METHOD, RatioInterval, StopDecision, adaptive_stop, median_interval, paired_ratio_interval

SETTINGS = settings(max_examples=50, deadline=None)

# benchmark figures: positive, finite, of any realistic magnitude (Gbit/s, µs, msg/s, requests/s)
figures = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
pairs = st.lists(st.tuples(figures, figures), min_size=2, max_size=12)
confidences = st.floats(min_value=0.5, max_value=0.999)
# what a repetition that failed, was invalid or has no logarithm looks like
invalid_figures = st.sampled_from([None, math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -1e-300])


def _log_interval(values, reference, confidence):
    """(mean, margin) of the t-interval on the log ratios, computed with numpy and scipy."""
    d = np.log(np.asarray(values, dtype=float)) - np.log(np.asarray(reference, dtype=float))
    n = d.size
    margin = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return float(d.mean()), margin


LOG_MAX = math.log(sys.float_info.max)  # exp() of more than this is beyond a float


def _representable(values, reference, confidence, slack=1.0):
    mean, margin = _log_interval(values, reference, confidence)
    return abs(mean) + margin < LOG_MAX - slack


def _close(a, b, rel=1e-9):
    return a == pytest.approx(b, rel=rel, abs=1e-300)


# --------------------------------------------------------------------------- paired_ratio_interval


@SETTINGS
@given(pairs, confidences)
def test_the_interval_is_the_t_interval_on_log_ratios(data, confidence):
    values, reference = [x for x, _ in data], [r for _, r in data]
    iv = paired_ratio_interval(values, reference, confidence)
    mean, margin = _log_interval(values, reference, confidence)
    assert iv.n == len(data) and iv.confidence == confidence and iv.method == METHOD
    assert _close(iv.estimate, math.exp(mean))
    assume(abs(abs(mean) + margin - LOG_MAX) > 1e-6)  # not on the edge of the float range
    if abs(mean) + margin > LOG_MAX:  # a bound beyond a float: no interval (not an OverflowError)
        assert iv.low is None and iv.high is None and iv.half_width is None
        return
    assert _close(iv.low, math.exp(mean - margin)) and _close(iv.high, math.exp(mean + margin))
    # it contains its estimate, is symmetric on the log scale, and its half-width is exp(margin) - 1
    assert 0.0 < iv.low <= iv.estimate <= iv.high
    assert iv.high / iv.estimate == pytest.approx(iv.estimate / iv.low, rel=1e-9)
    assert iv.half_width == pytest.approx(math.expm1(margin), rel=1e-6, abs=1e-12)
    assert iv.half_width >= 0.0


@SETTINGS
@given(st.lists(st.tuples(*[st.floats(min_value=1e-150, max_value=1e150)] * 2), min_size=2, max_size=4),
       st.floats(min_value=0.9, max_value=1 - 1e-9))
def test_extreme_spreads_give_finite_bounds_or_none(data, confidence):
    """Ratios many orders of magnitude apart, few pairs, a high confidence: the bounds are
    positive finite floats, or there is no interval; never an OverflowError, an infinity or a 0."""
    values, reference = [x for x, _ in data], [r for _, r in data]
    iv = paired_ratio_interval(values, reference, confidence)
    assert iv.estimate is not None and 0.0 < iv.estimate < math.inf
    if iv.low is None:
        assert iv.high is None and not _representable(values, reference, confidence, slack=1e-6)
    else:
        assert 0.0 < iv.low <= iv.estimate <= iv.high < math.inf
        assert _representable(values, reference, confidence, slack=-1e-6)
    json.dumps(iv.as_dict(), allow_nan=False)


@SETTINGS
@given(pairs, st.lists(st.floats(min_value=1e-2, max_value=1e2), min_size=12, max_size=12), confidences)
def test_a_drift_common_to_both_sides_of_a_repetition_changes_nothing(data, drift, confidence):
    """Scaling both samples of repetition i by the same factor (all by one factor, as a special
    case) leaves the ratio interval as it was: that is the point of pairing."""
    values, reference = [x for x, _ in data], [r for _, r in data]
    assume(_representable(values, reference, confidence))
    a = paired_ratio_interval(values, reference, confidence)
    b = paired_ratio_interval([x * f for x, f in zip(values, drift)], [r * f for r, f in zip(reference, drift)], confidence)
    c = paired_ratio_interval([x * drift[0] for x in values], [r * drift[0] for r in reference], confidence)
    for other in (b, c):
        assert other.n == a.n
        assert _close(other.estimate, a.estimate) and _close(other.low, a.low) and _close(other.high, a.high)


@SETTINGS
@given(pairs, confidences)
def test_swapping_the_sides_inverts_the_ratio_and_its_interval(data, confidence):
    values, reference = [x for x, _ in data], [r for _, r in data]
    assume(_representable(values, reference, confidence))
    iv = paired_ratio_interval(values, reference, confidence)
    inv = paired_ratio_interval(reference, values, confidence)
    assert inv.n == iv.n
    assert _close(inv.estimate, 1.0 / iv.estimate)
    assert _close(inv.low, 1.0 / iv.high) and _close(inv.high, 1.0 / iv.low)
    assert inv.half_width == pytest.approx(iv.half_width, rel=1e-6, abs=1e-12)


@SETTINGS
@given(pairs, confidences, confidences)
def test_more_confidence_never_gives_a_narrower_interval(data, c1, c2):
    assume(c1 != c2)
    lo_c, hi_c = sorted((c1, c2))
    values, reference = [x for x, _ in data], [r for _, r in data]
    assume(_representable(values, reference, hi_c))
    narrow = paired_ratio_interval(values, reference, lo_c)
    wide = paired_ratio_interval(values, reference, hi_c)
    assert wide.estimate == narrow.estimate
    assert wide.low <= narrow.low * (1 + 1e-12) and wide.high >= narrow.high * (1 - 1e-12)
    assert wide.half_width >= narrow.half_width - 1e-12


@SETTINGS
@given(st.lists(st.tuples(figures, figures), max_size=8), st.data())
def test_incomplete_or_non_positive_pairs_are_dropped_and_nothing_else_changes(data, draw):
    """A pair with either side None, NaN, infinite or <= 0 is left out: the result is exactly
    the result of the complete pairs alone, wherever the incomplete ones are."""
    values, reference = [x for x, _ in data], [r for _, r in data]
    confidence = draw.draw(confidences)
    expected = paired_ratio_interval(values, reference, confidence)
    bad = draw.draw(st.lists(st.tuples(st.one_of(invalid_figures, figures), invalid_figures, st.booleans()), max_size=6))
    mixed_v, mixed_r = list(values), list(reference)
    for x, r, swap in bad:
        at = draw.draw(st.integers(0, len(mixed_v)))
        mixed_v.insert(at, r if swap else x)  # the invalid side is on either side of the pair
        mixed_r.insert(at, x if swap else r)
    assert paired_ratio_interval(mixed_v, mixed_r, confidence) == expected
    assert expected.n == len(data)


@SETTINGS
@given(st.lists(st.tuples(st.one_of(invalid_figures, figures), invalid_figures), max_size=6), figures, figures,
       st.booleans(), st.floats(min_value=1e-9, max_value=1e9), confidences)
def test_fewer_than_two_pairs_give_no_interval(bad, x, r, one, probe, confidence):
    values, reference = [b[0] for b in bad], [b[1] for b in bad]
    if one:
        values.append(x)
        reference.append(r)
    iv = paired_ratio_interval(values, reference, confidence)
    assert iv.n == (1 if one else 0)
    assert iv.low is None and iv.high is None and iv.half_width is None
    assert not iv.excludes(probe) and not iv.excludes(1.0)
    if one:
        assert _close(iv.estimate, x / r, rel=1e-12)
    else:
        assert iv == RatioInterval(None, None, None, 0, confidence, METHOD)
    assert json.loads(json.dumps(iv.as_dict(), allow_nan=False)) == iv.as_dict()


@SETTINGS
@given(pairs, confidences, st.floats(min_value=1e-6, max_value=1e6))
def test_excludes_is_being_outside_the_interval(data, confidence, probe):
    values, reference = [x for x, _ in data], [r for _, r in data]
    assume(_representable(values, reference, confidence))
    iv = paired_ratio_interval(values, reference, confidence)
    assert iv.excludes(probe) == (probe < iv.low or probe > iv.high)
    assert not iv.excludes(iv.estimate) and not iv.excludes(iv.low) and not iv.excludes(iv.high)
    d = iv.as_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(d) == {"estimate", "low", "high", "n", "confidence", "method", "half_width"}


@given(figures, st.integers(2, 8))
def test_equal_ratios_collapse_the_interval_to_the_ratio(ratio, n):
    reference = [10.0 * 2.0 ** i for i in range(n)]  # scaled by powers of two: every pair has the same ratio
    iv = paired_ratio_interval([r * ratio for r in reference], reference)
    assert iv.n == n and iv.low == iv.high == iv.estimate
    assert _close(iv.estimate, ratio, rel=1e-12) and iv.half_width == 0.0


not_a_probability = st.one_of(
    st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan), st.none(), st.text(max_size=4),
    st.integers(min_value=1), st.integers(max_value=0), st.booleans(), st.just("0.95"),
)


@SETTINGS
@given(not_a_probability)
def test_a_confidence_outside_0_1_is_refused(confidence):
    with pytest.raises(ValueError, match="confidence"):
        paired_ratio_interval([1.0, 2.0], [1.0, 1.5], confidence)
    with pytest.raises(ValueError, match="confidence"):
        median_interval([float(i) for i in range(10)], confidence)


@SETTINGS
@given(st.lists(figures, max_size=6), st.lists(figures, max_size=6))
def test_repetitions_that_do_not_line_up_are_refused(values, reference):
    assume(len(values) != len(reference))
    with pytest.raises(ValueError, match="line up"):
        paired_ratio_interval(values, reference)


# --------------------------------------------------------------------------- median_interval


def _median_rank(n: int, confidence: float) -> int | None:
    """Largest k with P(X_(k) <= median <= X_(n-k+1)) = 1 - 2 P(B <= k-1) >= confidence,
    B ~ Binomial(n, 1/2), in exact rational arithmetic."""
    best = None
    for k in range(1, n // 2 + 1):
        tail = Fraction(sum(math.comb(n, j) for j in range(k)), 2 ** n)
        if 1 - 2 * tail >= Fraction(confidence):
            best = k
    return best


def _coverage(n: int, k: int) -> float:
    return 1.0 - 2.0 * sum(math.comb(n, j) for j in range(k)) / 2.0 ** n


samples = st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=25)


@SETTINGS
@given(samples, st.lists(st.sampled_from([None, math.nan, math.inf, -math.inf]), max_size=5), confidences, st.randoms())
def test_the_median_interval_is_the_order_statistics_of_the_binomial_rank(xs, missing, confidence, rnd):
    mixed = xs + missing
    rnd.shuffle(mixed)
    lo, hi = median_interval(mixed, confidence)
    k = _median_rank(len(xs), confidence)
    if k is None:
        assert (lo, hi) == (None, None)
        return
    ordered = sorted(xs)
    assert (lo, hi) == (ordered[k - 1], ordered[len(xs) - k])
    assert lo <= statistics.median(xs) <= hi


@SETTINGS
@given(samples, confidences, st.floats(min_value=0.1, max_value=10.0), st.floats(min_value=-100.0, max_value=100.0))
def test_the_median_interval_follows_an_increasing_transformation(xs, confidence, scale, shift):
    """Order statistics commute with any non-decreasing map, and a decreasing one swaps them."""
    lo, hi = median_interval(xs, confidence)
    t_lo, t_hi = median_interval([scale * x + shift for x in xs], confidence)
    n_lo, n_hi = median_interval([-x for x in xs], confidence)
    if lo is None:
        assert (t_lo, t_hi) == (None, None) == (n_lo, n_hi)
    else:
        assert (t_lo, t_hi) == (scale * lo + shift, scale * hi + shift)
        assert (n_lo, n_hi) == (-hi, -lo)


@SETTINGS
@given(samples, confidences, confidences)
def test_more_confidence_never_narrows_the_median_interval(xs, c1, c2):
    lo_c, hi_c = sorted((c1, c2))
    narrow, wide = median_interval(xs, lo_c), median_interval(xs, hi_c)
    if wide != (None, None):
        assert narrow != (None, None)
        assert wide[0] <= narrow[0] and narrow[1] <= wide[1]


@given(st.integers(0, 40))
def test_the_smallest_sample_for_95_percent_is_six(n):
    """[x_(1), x_(n)] covers 1 - 2 / 2**n: at least 95 % from n = 6 (the docstring's claim)."""
    lo, hi = median_interval([float(i) for i in range(n)])
    assert (lo is None) == (n < 6) == (1 - 2 / 2 ** n < 0.95)


# --------------------------------------------------------------------------- adaptive_stop


def _interval(k: int | None) -> RatioInterval:
    """An interval of half-width exactly k/64 (f = 1 + k/64, [1, f**2]: f**2 and its root are exact)."""
    if k is None:
        return RatioInterval(1.0, None, None, 1, 0.95, METHOD)
    f = 1.0 + k / 64
    return RatioInterval(f, 1.0, f * f, 5, 0.95, METHOD)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(st.none(), st.integers(0, 64)), max_size=5),
       st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 64))
def test_the_stopping_rule_is_the_documented_one(widths, done, minimum, maximum, target):
    intervals = {name: _interval(k) for name, k in widths.items()}
    if minimum > maximum:
        with pytest.raises(ValueError, match="minimum"):
            adaptive_stop(intervals, done=done, minimum=minimum, maximum=maximum, target_half_width=target / 64)
        return
    d = adaptive_stop(intervals, done=done, minimum=minimum, maximum=maximum, target_half_width=target / 64)
    assert isinstance(d, StopDecision)
    converged = all(k is not None and k <= target for k in widths.values())
    if done < minimum:
        assert (d.stop, d.reason) == (False, "min-not-reached")
    elif converged:
        assert (d.stop, d.reason) == (True, "converged")
    elif done >= maximum:
        assert (d.stop, d.reason) == (True, "cap")
    else:
        assert (d.stop, d.reason) == (False, "continue")
    # the widest: a metric without an interval if there is one, else the largest half-width
    if not widths:
        assert (d.worst, d.worst_half_width) == (None, None)
    elif None in widths.values():
        assert widths[d.worst] is None and d.worst_half_width is None
    else:
        assert d.worst_half_width == max(widths.values()) / 64 == widths[d.worst] / 64


@given(st.one_of(st.floats(max_value=-1e-300), st.just(math.nan), st.just(-math.inf)))
def test_a_negative_or_nan_target_is_refused(target):
    with pytest.raises(ValueError, match="target_half_width"):
        adaptive_stop({}, done=3, minimum=1, maximum=5, target_half_width=target)


# --------------------------------------------------------------------------- coverage
# Deterministic Monte-Carlo experiments (numpy, fixed seeds, not drawn by hypothesis). The
# tolerance is binomial: with R runs the empirical coverage of a method of exact coverage p has
# standard error sqrt(p (1 - p) / R); 4.5 standard errors is the band (a correct method falls
# outside it with probability ~7e-6; the seeds make the outcome fixed anyway).

RUNS = 4000
TRUE_RATIO = 0.8


def _band(p: float, runs: int = RUNS) -> float:
    return 4.5 * math.sqrt(p * (1.0 - p) / runs)


def _paired_runs(rng: np.random.Generator, n: int, runs: int = RUNS, spread: float = 0.15):
    """``runs`` experiments of ``n`` interleaved repetitions: a drift common to host and datapath
    (log-normal, sd 0.4 on the log scale), the host's own noise (sd 0.05), and a log-normal
    ratio datapath/host with median TRUE_RATIO and log-sd ``spread``."""
    drift = rng.normal(0.0, 0.4, size=(runs, n))
    host = 1000.0 * np.exp(drift + rng.normal(0.0, 0.05, size=(runs, n)))
    datapath = host * np.exp(rng.normal(math.log(TRUE_RATIO), spread, size=(runs, n)))
    return datapath, host


@pytest.mark.parametrize("n, confidence, seed", [
    (2, 0.95, 11), (3, 0.95, 12), (4, 0.95, 13), (6, 0.95, 14), (10, 0.95, 15), (5, 0.80, 16), (8, 0.99, 17),
])
def test_coverage_of_the_ratio_interval_on_log_normal_ratios(n, confidence, seed):
    """With log-normal ratios the t-interval on log ratios is exact: its coverage of the true
    ratio is the nominal level at every n, down to two pairs (where the normal quantile 1.96
    instead of t_{0.975,1} = 12.7 would cover about 70 %)."""
    datapath, host = _paired_runs(np.random.default_rng(seed), n)
    hits = wrong_hits = 0
    for x, r in zip(datapath.tolist(), host.tolist()):
        iv = paired_ratio_interval(x, r, confidence)
        assert iv.n == n
        hits += iv.low <= TRUE_RATIO <= iv.high
        wrong_hits += iv.low <= TRUE_RATIO * 1.25 <= iv.high  # a ratio 25 % off the true one
    coverage = hits / RUNS
    assert abs(coverage - confidence) <= _band(confidence), (coverage, confidence)
    if n >= 5:  # and it is informative, not merely wide: a wrong ratio is mostly excluded
        assert wrong_hits / RUNS < 0.5, wrong_hits / RUNS


def test_the_ratio_interval_narrows_as_the_pairs_grow():
    """The median half-width is exp(t_{n-1} * median(s) / sqrt(n)) - 1, s the sample sd of log
    ratios of true sd 0.15: the width is of the right size (not only the coverage right)."""
    rng = np.random.default_rng(21)
    medians = {}
    for n in (3, 6, 10):
        datapath, host = _paired_runs(rng, n, runs=1000)
        widths = sorted(paired_ratio_interval(x, r).half_width for x, r in zip(datapath.tolist(), host.tolist()))
        medians[n] = widths[len(widths) // 2]
        # the median of s is 0.15 * sqrt(median of chi2_{n-1} / (n-1)); 1000 runs estimate it within 5 %
        s_median = 0.15 * math.sqrt(scipy_stats.chi2.ppf(0.5, n - 1) / (n - 1))
        expected = math.expm1(scipy_stats.t.ppf(0.975, n - 1) * s_median / math.sqrt(n))
        assert medians[n] == pytest.approx(expected, rel=0.05), (n, medians[n], expected)
    assert medians[3] > medians[6] > medians[10]


# distributions with a known median: (name, sampler, median)
MEDIAN_CASES = {
    "cauchy": (lambda rng, size: rng.standard_cauchy(size), 0.0),
    "lognormal": (lambda rng, size: rng.lognormal(mean=1.0, sigma=2.0, size=size), math.e),
    "weibull-0.5": (lambda rng, size: rng.weibull(0.5, size), math.log(2.0) ** 2),  # median (ln 2)^(1/k)
}


@pytest.mark.parametrize("name, n, confidence, seed", [
    ("cauchy", 6, 0.95, 31), ("cauchy", 13, 0.95, 32), ("lognormal", 7, 0.95, 33), ("lognormal", 20, 0.95, 34),
    ("weibull-0.5", 10, 0.95, 35), ("weibull-0.5", 15, 0.90, 36),
])
def test_coverage_of_the_median_interval_on_known_distributions(name, n, confidence, seed):
    """Distribution-free: whatever the (continuous) distribution, even one without a mean, the
    interval covers the median with the exact binomial probability 1 - 2 P(B <= k-1), which is at
    least the nominal level (the interval is conservative: its coverage moves in steps)."""
    sampler, median = MEDIAN_CASES[name]
    k = _median_rank(n, confidence)
    assert k is not None
    exact = _coverage(n, k)
    assert exact >= confidence
    draws = sampler(np.random.default_rng(seed), (RUNS, n))
    hits = 0
    for row in draws.tolist():
        lo, hi = median_interval(row, confidence)
        hits += lo <= median <= hi
    coverage = hits / RUNS
    assert abs(coverage - exact) <= _band(exact), (coverage, exact)
    assert coverage >= confidence - _band(confidence)
