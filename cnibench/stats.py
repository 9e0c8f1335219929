"""Statistics of paired, interleaved benchmark repetitions.

A benchmark run measures a reference subject (``host``, the host network) and several
datapaths, with the repetitions interleaved: repetition *i* of the host, then repetition *i*
of each datapath. For each metric we publish the median of the datapath's samples and its
ratio to the host with a confidence interval computed from the pairs ``(datapath_i, host_i)``
of the same repetition. Repetitions are few (n = 3-10), and some are missing (a failed,
invalid or contaminated repetition): a missing side drops that pair only.

Why pairs: whatever drifts from one repetition to the next and hits both subjects alike
(a noisy neighbour on the instance, CPU frequency, the state of the underlay) cancels in the
ratio ``datapath_i / host_i``. The spread that is left is the datapath's own, so the interval
is narrower than one built from two independent sets of samples, and honest about what it
compares.

Why log ratios: ratios are multiplicative ("1.3 times slower", "half as fast"). On the log
scale ``log(x_i / r_i)`` a ratio and its reciprocal are the same distance from 0, so the
interval is symmetric in "x times faster / x times slower"; its back-transform ``exp(...)``
never goes below 0, which a plain interval on the ratios can. The estimate is the geometric
mean of the ratios, ``exp(mean(log(x_i / r_i)))``.

Why a Student t-interval and not a bootstrap: at n = 3-10 the percentile bootstrap
undercovers badly (its resamples cannot be more spread out than the handful of observed
values, so a nominal 95 % interval covers about 83 % at n = 5; ``tests/test_stats.py``
simulates it), while the t-interval is exact
when the log ratios are normal and degrades gently when they are only roughly so.

Assumptions: the pairs are independent of each other (one repetition does not influence the
next) and the ratios are approximately log-normal. Neither holds perfectly; the interval is a
statement of measurement precision, not a guarantee.

Standard library and scipy only; no other ``cnibench`` module is imported (the import-linter
contract puts this module on the ``cnibench.config`` layer).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Mapping, Sequence

from scipy import stats as _scipy_stats

METHOD = "t-interval on log ratios of paired repetitions"
_LOG_MAX = math.log(sys.float_info.max)  # math.exp of more than this raises OverflowError

__all__ = [
    "METHOD",
    "RatioInterval",
    "StopDecision",
    "adaptive_stop",
    "median_interval",
    "paired_ratio_interval",
]


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _finite(value: float | None) -> float | None:
    """The sample as a float, or ``None`` when it is missing: ``None``, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@lru_cache(maxsize=64)
def _t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student t quantile ``t_{(1+confidence)/2, dof}``."""
    return float(_scipy_stats.t.ppf((1.0 + confidence) / 2.0, dof))


@dataclass(frozen=True)
class RatioInterval:
    """The ratio of a subject to its reference over paired repetitions, with its interval.

    ``estimate`` is the geometric mean of the paired ratios (``None`` with no pair at all);
    ``low``/``high`` bound it at ``confidence`` (``None`` when fewer than two pairs: one
    pair says nothing about the spread; also when a bound is beyond a float's range, see
    :func:`paired_ratio_interval`). ``n`` counts the complete pairs used.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float
    method: str = METHOD

    @property
    def half_width(self) -> float | None:
        """Relative half-width of the interval, ``sqrt(high / low) - 1``.

        The interval is symmetric on the log scale, ``[g / f, g * f]`` around the estimate
        ``g``, and this is ``f - 1``: 0.05 means "within a factor 1.05 either way".
        ``None`` without an interval, and when ``f`` itself is beyond a float's range.
        """
        if self.low is None or self.high is None or self.low <= 0.0:
            return None
        ratio = self.high / self.low
        # high / low overflows when the bounds are more than ~308 orders of magnitude apart: roots first
        f = math.sqrt(ratio) if ratio < math.inf else math.sqrt(self.high) / math.sqrt(self.low)
        return f - 1.0 if f < math.inf else None

    def excludes(self, value: float = 1.0) -> bool:
        """True iff there is an interval and ``value`` lies outside ``[low, high]``.

        With the default ``1.0``: the subject differs from the reference at this confidence.
        """
        if self.low is None or self.high is None:
            return False
        return value < self.low or value > self.high

    def as_dict(self) -> dict[str, float | int | str | None]:
        """JSON-ready: floats or ``None`` (never NaN), plus ``n``, ``method`` and ``half_width``."""
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "confidence": self.confidence,
            "method": self.method,
            "half_width": self.half_width,
        }


def paired_ratio_interval(
    values: Sequence[float | None],
    reference: Sequence[float | None],
    confidence: float = 0.95,
) -> RatioInterval:
    """Ratio ``values / reference`` over pairs of the same repetition, with a t-interval.

    ``values[i]`` and ``reference[i]`` are repetition *i* of the subject and of the reference
    (pairs by index; both sequences must have the same length, a missing repetition is
    ``None``). A pair is dropped when either side is ``None``, NaN, infinite or ``<= 0``
    (a ratio of those has no logarithm); ``n`` counts the pairs left.

    With ``d_i = log(values[i] / reference[i])``, mean ``m``, sample standard deviation ``s``
    and ``t`` the Student quantile ``t_{(1+confidence)/2, n-1}`` (``scipy.stats.t.ppf``)::

        estimate = exp(m),  low = exp(m - t * s / sqrt(n)),  high = exp(m + t * s / sqrt(n))

    With fewer than two pairs there is an estimate (or none with no pair) but no interval.
    Nor is there one when a bound is beyond a float's range (``m +- t * s / sqrt(n)`` past
    ``+-log(sys.float_info.max)``, about 709.8: ratios orders of magnitude apart at few pairs
    and a high confidence, e.g. two pairs at 99 % whose ratios differ by a factor 1e10),
    rather than an infinite or zero bound (or math.exp's OverflowError).
    When all log ratios are equal (zero spread) the interval collapses to the estimate,
    ``low == high == estimate``.
    """
    _check_confidence(confidence)
    if len(values) != len(reference):
        raise ValueError(
            f"paired repetitions must line up: {len(values)} values for {len(reference)} reference values "
            "(record a missing repetition as None)"
        )
    logs: list[float] = []
    for raw_x, raw_r in zip(values, reference):
        x, r = _finite(raw_x), _finite(raw_r)
        if x is not None and r is not None and x > 0.0 and r > 0.0:
            ratio = x / r  # one correctly rounded division: equal ratios give equal logs
            logs.append(math.log(ratio) if 0.0 < ratio < math.inf else math.log(x) - math.log(r))
    n = len(logs)
    if n == 0:
        return RatioInterval(None, None, None, 0, confidence, METHOD)
    if min(logs) == max(logs):
        # zero spread: take the common value as is (a mean of equal floats can round off it)
        estimate = math.exp(logs[0])
        if n == 1:
            return RatioInterval(estimate, None, None, 1, confidence, METHOD)
        return RatioInterval(estimate, estimate, estimate, n, confidence, METHOD)
    mean = math.fsum(logs) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in logs) / (n - 1))
    margin = _t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    if mean - margin < -_LOG_MAX or mean + margin > _LOG_MAX:
        return RatioInterval(math.exp(mean), None, None, n, confidence, METHOD)
    return RatioInterval(math.exp(mean), math.exp(mean - margin), math.exp(mean + margin), n, confidence, METHOD)


@lru_cache(maxsize=256)
def _median_rank(n: int, confidence: float) -> int | None:
    """Largest k >= 1 with ``P(X_(k) <= median <= X_(n-k+1)) >= confidence``, or ``None``.

    The coverage of ``[X_(k), X_(n-k+1)]`` is ``1 - 2 * P(B <= k - 1)`` with
    ``B ~ Binomial(n, 1/2)``, computed exactly with fractions.
    """
    best: int | None = None
    target = Fraction(confidence)
    tail = Fraction(0)
    for k in range(1, n // 2 + 1):
        tail += Fraction(math.comb(n, k - 1), 2**n)  # P(B <= k - 1)
        if 1 - 2 * tail >= target:
            best = k
        else:
            break
    return best


def median_interval(samples: Sequence[float | None], confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Distribution-free interval of the median from order statistics.

    Missing samples (``None``, NaN, infinities) are dropped. With the n samples sorted,
    ``x_(1) <= ... <= x_(n)``, the interval is ``[x_(k), x_(n-k+1)]`` for the largest k whose
    coverage ``1 - 2 * P(B <= k - 1)``, ``B ~ Binomial(n, 1/2)``, is at least ``confidence``.
    It assumes only independent samples from a continuous distribution (no normality).

    Returns ``(None, None)`` when n is too small for the confidence: even ``[x_(1), x_(n)]``
    covers only ``1 - 2 / 2**n``, so 95 % needs **n >= 6** (n = 5 gives 93.75 %).
    At 95 %: n = 6-8 give ``[x_(1), x_(n)]``, n = 9-10 ``[x_(2), x_(n-1)]``.
    """
    _check_confidence(confidence)
    xs = sorted(x for x in map(_finite, samples) if x is not None)
    k = _median_rank(len(xs), float(confidence))
    if k is None:
        return None, None
    return xs[k - 1], xs[len(xs) - k]


@dataclass(frozen=True)
class StopDecision:
    """Whether an adaptive run has enough repetitions.

    ``reason`` is one of ``"converged"``, ``"cap"``, ``"continue"``, ``"min-not-reached"``;
    ``worst`` names the metric with the widest interval (a metric with no interval yet
    counts as the widest, with ``worst_half_width`` ``None``), ``None`` with no metric.
    """

    stop: bool
    reason: str
    worst: str | None
    worst_half_width: float | None


def adaptive_stop(
    intervals: Mapping[str, RatioInterval],
    *,
    done: int,
    minimum: int,
    maximum: int,
    target_half_width: float,
) -> StopDecision:
    """Decide whether to run another repetition, given the intervals after ``done`` of them.

    - ``done < minimum``: go on (``"min-not-reached"``).
    - every metric has an interval with ``half_width <= target_half_width``: stop
      (``"converged"``; also at the cap, the more informative reason). An empty mapping
      converges as soon as the minimum is reached.
    - ``done >= maximum``: stop (``"cap"``).
    - otherwise go on (``"continue"``). A metric with no interval yet (n < 2) keeps the run
      going until the cap.

    Note that stopping on a precision target is a sequential procedure: the published
    interval is then slightly optimistic (it was looked at after each repetition); the
    minimum number of repetitions keeps that effect small.
    """
    if minimum > maximum:
        raise ValueError(f"minimum ({minimum}) must not exceed maximum ({maximum})")
    if not (target_half_width >= 0.0):  # also rejects NaN
        raise ValueError(f"target_half_width must be >= 0, got {target_half_width!r}")

    worst: str | None = None
    worst_hw: float | None = None
    converged = True
    for name, interval in intervals.items():
        hw = interval.half_width
        if hw is None:
            converged = False
            if worst is None or worst_hw is not None:  # the first metric without interval wins
                worst, worst_hw = name, None
            continue
        if hw > target_half_width:
            converged = False
        if worst is None or (worst_hw is not None and hw > worst_hw):
            worst, worst_hw = name, hw

    if done < minimum:
        return StopDecision(False, "min-not-reached", worst, worst_hw)
    if converged:
        return StopDecision(True, "converged", worst, worst_hw)
    if done >= maximum:
        return StopDecision(True, "cap", worst, worst_hw)
    return StopDecision(False, "continue", worst, worst_hw)
