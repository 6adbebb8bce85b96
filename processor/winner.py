"""Which of 2-3 prompts or versions is better, and only when the data says so (pure: per-item samples in, tests and
a verdict out). Used by /api/compare, the reports and the demo; the method is written down in docs/API.md.

Criteria, in order: success rate (higher), p95 latency of successful calls (lower; tested from 20 successful calls
a side), cost per successful call (lower). Every pair of items is tested on each criterion at alpha / (number of
pairs) (Bonferroni). Item a beats b
when the first criterion with a significant difference favours a, and no earlier criterion that is not yet
significant points the other way (a version that looks less reliable is never crowned for being faster or cheaper
while the success-rate question is open). The winner beats every other item; otherwise there is none, and
``more_calls`` estimates how many more calls (in the same proportions) would let the rule name one if the observed
effects held: each statistic grows with sqrt(n), so criterion c turns significant at factor f_c = (z_crit / z_c)^2;
the smallest f_c at which the rule names a winner gives N = ceil((f - 1) x calls so far).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from . import stats

ALPHA = 0.05
# Below 20 calls the nearest-rank p95 is the sample maximum, whose bootstrap distribution is degenerate (~63% of it
# on the observed maximum): too narrow an interval. Fewer successful calls on a side: p95 is not tested.
P95_MIN_CALLS = 20
CRITERIA = ("success_rate", "p95_latency_ms", "cost_per_request")
HIGHER_IS_BETTER = {"success_rate": True, "p95_latency_ms": False, "cost_per_request": False}


@dataclass
class Sample:
    item: str
    calls: int
    successes: int
    latency_hist: list[tuple[float, int]] = field(default_factory=list)  # successful calls, (value ms, count)
    cost_mean: float | None = None  # per successful call
    cost_var: float | None = None  # sample variance over successful calls


@dataclass
class Test:
    a: str
    b: str
    metric: str
    result: stats.Result | None  # None: not testable (no successful calls on a side)
    significant: bool
    better: str | None  # the significantly better item
    min_factor: float = 1.0  # the sample must grow this much before the test may be applied (projections)

    def direction(self) -> int:
        """+1 when a looks better, -1 when b does, 0 when neither (or untested)."""
        if self.result is None or self.result.difference == 0:
            return 0
        up = self.result.difference > 0
        return 1 if up == HIGHER_IS_BETTER[self.metric] else -1

    def doc(self) -> dict[str, Any]:
        r = self.result
        return {"a": self.a, "b": self.b, "metric": self.metric, "test": r.test if r else None,
                "applicable": self.min_factor <= 1,
                "statistic": _f(r.statistic) if r else None, "p_value": _f(r.p_value) if r else None,
                "difference": _f(r.difference) if r else None,
                "interval": [_f(x) for x in r.interval] if r and r.interval else None,
                "significant": self.significant, "better": self.better}


def _f(v: float) -> float | None:
    return float(f"{v:.10g}") if math.isfinite(v) else None


def pair_tests(a: Sample, b: Sample, alpha: float) -> list[Test]:
    out = []
    for m in CRITERIA:
        r: stats.Result | None = None
        if m == "success_rate":
            r = stats.success_rate_test(a.successes, a.calls, b.successes, b.calls)
        elif m == "p95_latency_ms" and a.latency_hist and b.latency_hist:
            r = stats.quantile_difference(a.latency_hist, b.latency_hist, 0.95, alpha)
            low = min(a.successes, b.successes)
            if low < P95_MIN_CALLS:
                out.append(Test(a.item, b.item, m, r, False, None, P95_MIN_CALLS / low))
                continue
        elif m == "cost_per_request" and a.successes >= 2 and b.successes >= 2 and a.cost_mean is not None \
                and b.cost_mean is not None:
            r = stats.welch_t(a.successes, a.cost_mean, a.cost_var or 0.0, b.successes, b.cost_mean,
                              b.cost_var or 0.0)
        if r is not None and r.interval is not None:
            sig = r.interval[0] > 0 or r.interval[1] < 0
        else:
            sig = r is not None and r.p_value < alpha
        t = Test(a.item, b.item, m, r, sig, None)
        if sig:
            t.better = a.item if t.direction() > 0 else b.item
        out.append(t)
    return out


def pair_winner(tests: Sequence[Test], significant: Sequence[bool] | None = None) -> int:
    """+1 a beats b, -1 b beats a, 0 undecided (``significant`` overrides the tests' own flags: projections)."""
    open_dirs: set[int] = set()
    for i, t in enumerate(tests):
        d = t.direction()
        if (significant[i] if significant is not None else t.significant) and d:
            return 0 if -d in open_dirs else d
        if d:
            open_dirs.add(d)
    return 0


def _winner(samples: Sequence[Sample], by_pair: dict[tuple[int, int], list[Test]],
            sig: dict[tuple[int, int], list[bool]] | None = None) -> int | None:
    for i in range(len(samples)):
        if all((pair_winner(ts, sig[(x, y)] if sig else None) == (1 if x == i else -1))
               for (x, y), ts in by_pair.items() if i in (x, y)):
            return i
    return None


@dataclass
class Verdict:
    winner: str | None
    tests: list[Test]
    alpha_per_test: float
    more_calls: int | None  # None: a winner, or nothing observed that more calls could resolve
    reason: str


def decide(samples: Sequence[Sample], alpha: float = ALPHA) -> Verdict:
    pairs = list(combinations(range(len(samples)), 2))
    a_test = alpha / max(1, len(pairs))
    empty = [s.item for s in samples if s.calls == 0]
    if empty:
        return Verdict(None, [], a_test, None, f"no clear winner: no calls for {', '.join(empty)} in the range")
    by_pair = {(i, j): pair_tests(samples[i], samples[j], a_test) for i, j in pairs}
    tests = [t for ts in by_pair.values() for t in ts]
    w = _winner(samples, by_pair)
    if w is not None:
        return Verdict(samples[w].item, tests, a_test, None, _why(samples[w].item, by_pair))
    # project: every statistic grows with sqrt(f); try the factors at which some test turns significant
    factors = sorted({g for t in tests if t.result is not None and not t.significant
                      and (f := stats.scale_to_significance(t.result.z, a_test)) is not None
                      and (g := max(f, t.min_factor)) > 1})
    total = sum(s.calls for s in samples)
    zc = stats.z_crit(a_test) * (1 - 1e-9)  # f was solved for equality: do not lose it to rounding
    for f in factors:
        sig = {k: [t.significant or (t.result is not None and f >= t.min_factor * (1 - 1e-9)
                                     and abs(t.result.z) * math.sqrt(f) >= zc) for t in ts]
               for k, ts in by_pair.items()}
        if _winner(samples, by_pair, sig) is not None:
            n = max(1, math.ceil((f - 1) * total))
            return Verdict(None, tests, a_test, n, f"no clear winner, need {n} more calls")
    return Verdict(None, tests, a_test, None, "no clear winner: no difference that more calls would resolve")


def _why(item: str, by_pair: dict[tuple[int, int], list[Test]]) -> str:
    parts = []
    for ts in by_pair.values():
        t = next((t for t in ts if t.significant), None)
        if t is not None and item in (t.a, t.b):
            other = t.b if t.a == item else t.a
            r = t.result
            p = f"p = {r.p_value:.2g}" if r else ""
            parts.append(f"{t.metric.replace('_', ' ')} vs {other} ({r.test if r else ''}, {p})")
    return f"{item} is better: " + "; ".join(parts)
