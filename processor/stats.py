"""Significance tests behind "which version is better" (pure functions, no store): two-proportion z-test and Fisher's
exact test for success rates, Welch's t-test for means (cost per request), and the exact bootstrap of a quantile
read from a histogram (p95 latency), plus the sample-size projection used for "need N more calls".

All p-values are two-sided. Only the standard library: the t and binomial tails come from the regularized
incomplete beta function (continued fraction, Numerical Recipes 6.4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_N = NormalDist()


def norm_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def z_crit(alpha: float) -> float:
    """The two-sided critical value: P(|Z| > z) = alpha."""
    return _N.inv_cdf(1 - alpha / 2)


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return betainc(k, n - k + 1, p)


def t_two_sided(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's T with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class Result:
    """One test of a against b. ``z`` is the normal-equivalent statistic, signed so that > 0 means a is *larger*
    (it is what grows with the square root of the sample size in :func:`scale_to_significance`)."""

    test: str
    statistic: float
    p_value: float
    z: float
    difference: float  # a - b
    interval: tuple[float, float] | None = None  # of a - b at the test's level, when the test gives one


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> Result:
    """Pooled two-proportion z-test of x1/n1 against x2/n2."""
    p1, p2 = x1 / n1, x2 / n2
    pool = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / se if se > 0 else 0.0
    return Result("two-proportion z-test", z, 2 * norm_sf(abs(z)) if se > 0 else 1.0, z, p1 - p2)


def fisher_exact(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p of Fisher's exact test on [[x1, n1 - x1], [x2, n2 - x2]]: the total probability (hypergeometric,
    margins fixed) of the tables no more likely than the observed one."""
    k, n = x1 + x2, n1 + n2
    lo, hi = max(0, k - n2), min(k, n1)

    def logp(a: int) -> float:
        return (math.lgamma(n1 + 1) - math.lgamma(a + 1) - math.lgamma(n1 - a + 1) + math.lgamma(n2 + 1)
                - math.lgamma(k - a + 1) - math.lgamma(n2 - k + a + 1) - math.lgamma(n + 1) + math.lgamma(k + 1)
                + math.lgamma(n - k + 1))

    obs = logp(x1)
    p = sum(math.exp(logp(a)) for a in range(lo, hi + 1) if logp(a) <= obs + 1e-7)
    return min(1.0, p)


def success_rate_test(x1: int, n1: int, x2: int, n2: int) -> Result:
    """The z-test, or Fisher's exact test when an expected cell count is below 5 (where the normal approximation
    fails); ``z`` stays the pooled z either way, for the sample-size projection."""
    r = two_proportion_z(x1, n1, x2, n2)
    k, n = x1 + x2, n1 + n2
    expected = min(n1 * k / n, n1 * (n - k) / n, n2 * k / n, n2 * (n - k) / n)
    if expected < 5:
        return Result("Fisher exact test", r.statistic, fisher_exact(x1, n1, x2, n2), r.z, r.difference)
    return r


def welch_t(n1: int, mean1: float, var1: float, n2: int, mean2: float, var2: float) -> Result:
    """Welch's unequal-variance t-test of two means (sample variances), Welch-Satterthwaite degrees of freedom."""
    s1, s2 = var1 / n1, var2 / n2
    se = math.sqrt(s1 + s2)
    diff = mean1 - mean2
    if se == 0:
        t = math.copysign(math.inf, diff) if diff else 0.0
        return Result("Welch t-test", t, 0.0 if diff else 1.0, t, diff)
    t = diff / se
    df = (s1 + s2) ** 2 / ((s1 * s1 / (n1 - 1) if n1 > 1 else 0) + (s2 * s2 / (n2 - 1) if n2 > 1 else 0))
    return Result("Welch t-test", t, t_two_sided(t, df), t, diff)


def quantile_bootstrap(hist: Sequence[tuple[float, int]], q: float, *,
                       tail: float = 1e-12) -> list[tuple[float, float]]:
    """The exact bootstrap distribution of the nearest-rank q-quantile of the sample ``hist`` ((value, count) pairs):
    resampling n values with replacement, the r-th smallest (r = ceil(q n)) is <= v_j exactly when at least r draws
    are <= v_j, a Binomial(n, F(v_j)) event. Returns (value, probability) pairs; values with less than ``tail``
    probability are dropped (no Monte Carlo: the same sample always gives the same interval)."""
    h = sorted((float(v), int(c)) for v, c in hist if c > 0)
    n = sum(c for _, c in h)
    if n == 0:
        return []
    r = max(1, math.ceil(q * n))
    out: list[tuple[float, float]] = []
    prev, cum = 0.0, 0
    far = q - 12 * math.sqrt(q * (1 - q) / n) if n >= 1000 else -1.0  # mass below ~1e-30: skip the beta
    for v, c in h:
        cum += c
        cdf = 1.0 if cum == n else 0.0 if cum / n < far else binom_sf(r, n, cum / n)
        if cdf - prev > tail:
            out.append((v, cdf - prev))
        prev = cdf
        if cdf >= 1 - tail:
            break
    return out


def difference_of(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]],
                  alpha: float) -> tuple[float, float, float, float]:
    """(lower, upper, mean, standard deviation) of A - B for independent discrete A and B; the interval is the
    equal-tailed 1 - alpha percentile interval."""
    pairs = sorted((va - vb, pa * pb) for va, pa in a for vb, pb in b)
    total = sum(p for _, p in pairs)
    mean = sum(d * p for d, p in pairs) / total
    sd = math.sqrt(max(0.0, sum((d - mean) ** 2 * p for d, p in pairs) / total))
    lo = hi = pairs[-1][0]
    cum, lo_set = 0.0, False
    for d, p in pairs:
        cum += p / total
        if not lo_set and cum >= alpha / 2 - 1e-12:
            lo, lo_set = d, True
        if cum >= 1 - alpha / 2 - 1e-12:
            hi = d
            break
    return lo, hi, mean, sd


def quantile_difference(a: Sequence[tuple[float, int]], b: Sequence[tuple[float, int]], q: float,
                        alpha: float) -> Result:
    """Exact-bootstrap test of the q-quantile of a against b: significant when the 1 - alpha percentile interval of
    the difference excludes 0; p is twice the smaller tail mass at 0 (capped at 1)."""
    da, db = quantile_bootstrap(a, q), quantile_bootstrap(b, q)
    lo, hi, _, sd = difference_of(da, db, alpha)
    pairs = [(va - vb, pa * pb) for va, pa in da for vb, pb in db]
    total = sum(p for _, p in pairs)
    below = sum(p for d, p in pairs if d <= 0) / total
    above = sum(p for d, p in pairs if d >= 0) / total
    point = _nearest_rank(a, q) - _nearest_rank(b, q)
    z = point / sd if sd > 0 else (0.0 if point == 0 else math.copysign(math.inf, point))
    return Result("exact bootstrap of the quantile difference", point, min(1.0, 2 * min(below, above)), z, point,
                  (lo, hi))


def _nearest_rank(hist: Sequence[tuple[float, int]], q: float) -> float:
    h = sorted((float(v), int(c)) for v, c in hist if c > 0)
    r = max(1, math.ceil(q * sum(c for _, c in h)))
    cum = 0
    for v, c in h:
        cum += c
        if cum >= r:
            return v
    raise ValueError("empty histogram")


def scale_to_significance(z: float, alpha: float) -> float | None:
    """The factor by which both samples must grow for the observed effect to reach significance at alpha, taking
    the effect and spread as observed: a normal-approximation statistic grows with sqrt(n), so f = (z_crit / z)^2.
    None when there is no effect to detect (z = 0)."""
    if z == 0 or math.isnan(z):
        return None
    return (z_crit(alpha) / abs(z)) ** 2
