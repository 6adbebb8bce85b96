"""Comparisons that pick the right winner (issue 12 §1): the statistics against textbook values, the decision rule
on hand-made samples, and /api/compare on a store seeded with the issue's case (a version failing half its calls,
fast and free when it fails), a clearly better version and a sample too small to tell."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from analytics_seed import UTC, call, insert, success_summary

from promptpulse.processor import stats
from promptpulse.processor import winner as win


# ------------------------------------------------------------------------------------------------------ statistics
def test_normal_and_t_tails() -> None:
    assert stats.z_crit(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert 2 * stats.norm_sf(1.959964) == pytest.approx(0.05, abs=1e-6)
    # t tables: t(0.975, 10) = 2.228, t(0.975, 1) = 12.706; P(|T10| > 2) = 0.0734
    assert stats.t_two_sided(2.228, 10) == pytest.approx(0.05, abs=2e-5)
    assert stats.t_two_sided(12.706, 1) == pytest.approx(0.05, abs=2e-5)
    assert stats.t_two_sided(2.0, 10) == pytest.approx(0.073388, abs=1e-6)


def test_incomplete_beta_and_binomial_tail() -> None:
    # I_x(a, b) = P(Binomial(a + b - 1, x) >= a): I_0.4(2, 3) = 1 - 0.6^4 - 4 (0.4) 0.6^3 = 0.5248
    assert stats.betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)
    assert stats.betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-12)
    assert stats.binom_sf(8, 10, 0.5) == pytest.approx((45 + 10 + 1) / 1024, abs=1e-12)
    assert stats.binom_sf(950, 1000, 0.95) == pytest.approx(
        sum(math.comb(1000, k) * 0.95 ** k * 0.05 ** (1000 - k) for k in range(950, 1001)), rel=1e-9)


def test_two_proportion_z_textbook() -> None:
    # 45/100 against 30/100: pooled p = 0.375, SE = sqrt(0.375 x 0.625 x 0.02) = 0.068465, z = 2.1909, p = 0.0285
    r = stats.two_proportion_z(45, 100, 30, 100)
    assert r.z == pytest.approx(2.190890, abs=1e-6)
    assert r.p_value == pytest.approx(0.028460, abs=1e-6)


def test_fisher_exact_textbook() -> None:
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70
    assert stats.fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70, abs=1e-12)
    # [[1, 9], [11, 3]] (Wikipedia's dieting example): two-sided p = 0.002759
    assert stats.fisher_exact(1, 10, 11, 14) == pytest.approx(0.0027594, abs=1e-7)
    # small expected counts switch the success-rate test to Fisher
    assert stats.success_rate_test(5, 5, 3, 5).test == "Fisher exact test"
    assert stats.success_rate_test(90, 100, 70, 100).test == "two-proportion z-test"


def test_welch_t() -> None:
    # n 10, mean 20, var 4 against n 12, mean 18, var 9: SE = sqrt(0.4 + 0.75), df = 1.3225 / (0.16/9 + 0.5625/11)
    r = stats.welch_t(10, 20.0, 4.0, 12, 18.0, 9.0)
    df = 1.15 ** 2 / (0.4 ** 2 / 9 + 0.75 ** 2 / 11)
    assert r.statistic == pytest.approx(2 / math.sqrt(1.15), rel=1e-12)
    assert df == pytest.approx(19.19, abs=0.01)
    assert r.p_value == pytest.approx(stats.t_two_sided(2 / math.sqrt(1.15), df), rel=1e-12)
    assert r.p_value == pytest.approx(0.07755, abs=1e-4)


def test_exact_bootstrap_of_a_quantile_equals_enumeration() -> None:
    sample = [1.0, 2.0, 2.0, 5.0, 7.0]
    for q in (0.5, 0.95):
        r = max(1, math.ceil(q * len(sample)))
        counts = Counter(sorted(s)[r - 1] for s in itertools.product(sample, repeat=len(sample)))
        want = {v: c / len(sample) ** len(sample) for v, c in counts.items()}
        got = dict(stats.quantile_bootstrap(list(Counter(sample).items()), q))
        assert set(got) == set(want)
        for v in want:
            assert got[v] == pytest.approx(want[v], abs=1e-12)


def test_quantile_difference_interval() -> None:
    fast = [(100.0, 50), (200.0, 50)]
    slow = [(300.0, 50), (400.0, 50)]
    r = stats.quantile_difference(fast, slow, 0.95, 0.05)
    assert r.difference == -200.0 and r.interval == (-200.0, -200.0) and r.p_value == 0.0
    same = stats.quantile_difference(fast, fast, 0.95, 0.05)
    assert same.difference == 0.0 and same.interval[0] <= 0 <= same.interval[1]
    assert stats.scale_to_significance(same.z, 0.05) is None
    assert stats.scale_to_significance(1.0, 0.05) == pytest.approx(1.959964 ** 2, rel=1e-6)


# ------------------------------------------------------------------------------------------------- decision rule
def _sample(item: str, calls: int, ok: int, lat: float = 500.0, cost: float = 0.001) -> win.Sample:
    return win.Sample(item, calls, ok, [(lat, ok)] if ok else [], cost if ok else None, 0.0 if ok else None)


def test_success_rate_comes_first() -> None:
    # b is much faster and cheaper but fails half its calls: a wins on success rate
    v = win.decide([_sample("a", 40, 40, 1000.0, 0.002), _sample("b", 40, 20, 200.0, 0.0005)])
    assert v.winner == "a" and v.reason.startswith("a is better: success rate")


def test_an_open_success_question_blocks_a_faster_version() -> None:
    # b looks less reliable (not yet significant) and is significantly faster: no crown for b
    v = win.decide([_sample("a", 20, 20, 1000.0), _sample("b", 20, 18, 200.0)])
    assert v.winner is None and v.more_calls is not None
    assert v.reason == f"no clear winner, need {v.more_calls} more calls"
    # once success rates are alike, the faster one wins
    v = win.decide([_sample("a", 20, 20, 1000.0), _sample("b", 20, 20, 200.0)])
    assert v.winner == "b"


def test_more_calls_needed_is_the_projection() -> None:
    # 5/5 against 3/5, nothing else differs: pooled z = 0.4 / sqrt(0.8 x 0.2 x 0.4) = 1.5811;
    # f = (1.95996 / 1.5811)^2 = 1.5366, N = ceil(0.5366 x 10) = 6
    v = win.decide([_sample("a", 5, 5), _sample("b", 5, 3)])
    z = 0.4 / math.sqrt(0.8 * 0.2 * 0.4)
    assert v.winner is None and v.more_calls == math.ceil(((1.959964 / z) ** 2 - 1) * 10) == 6
    nothing = win.decide([_sample("a", 5, 5), _sample("b", 5, 5)])
    assert nothing.winner is None and nothing.more_calls is None
    assert "no difference" in nothing.reason


def test_three_items_need_a_winner_over_both() -> None:
    v = win.decide([_sample("a", 200, 200), _sample("b", 200, 150), _sample("c", 200, 100)])
    assert v.winner == "a" and v.alpha_per_test == pytest.approx(0.05 / 3)
    v = win.decide([_sample("a", 200, 200), _sample("b", 200, 200), _sample("c", 200, 100)])
    assert v.winner is None  # a and b cannot be told apart


# ------------------------------------------------------------------------------------------------------ the store
pytest.importorskip("chdb")
TOKEN = "t"
NOW = dt.datetime.now(UTC)
END = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
START = END - dt.timedelta(hours=24)
RANGE = {"start": START.isoformat(), "end": END.isoformat()}


def _seed() -> list[dict[str, Any]]:
    calls = []

    def at(i: int, n: int) -> dt.datetime:
        return START + dt.timedelta(seconds=(i + 0.5) * 86000 / n)

    # the issue: 2.1.0 always succeeds; 2.2.0 fails half its calls, and a failure is fast (50 ms), token-less, free
    for i in range(40):
        calls.append(call(at(i, 40), "support_reply", "2.1.0", latency_ms=800 + 10 * i, inp=200, out=50,
                          cost="0.002"))
        ok = i % 2 == 0
        calls.append(call(at(i, 40), "support_reply", "2.2.0", latency_ms=850 + 10 * i if ok else 50,
                          inp=210 if ok else 0, out=55 if ok else 0, cost="0.0021" if ok else "0",
                          error=None if ok else ("APITimeoutError", "", "")))
    # clearly better: the same success (all calls), 3.0 answers in half the time for less
    for i in range(100):
        calls.append(call(at(i, 100), "summarize", "2.0", latency_ms=1000 + 5 * i, cost=f"{0.003 + i * 1e-6:.6f}"))
        calls.append(call(at(i, 100), "summarize", "3.0", latency_ms=500 + 3 * i, cost=f"{0.002 + i * 1e-6:.6f}"))
    # too small to tell: 5/5 against 3/5, same latency and cost
    for i in range(5):
        calls.append(call(at(i, 5), "classify", "1", latency_ms=300, cost="0.0001"))
        calls.append(call(at(i, 5), "classify", "2", latency_ms=300, cost="0.0001",
                          error=("RateLimitError", "429", "") if i < 2 else None))
    # a version with calls only outside the range
    calls.append(call(START - dt.timedelta(days=2), "classify", "0", latency_ms=300))
    return calls


CALLS = _seed()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from promptpulse.processor import api_server
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    store = EmbeddedStore(str(tmp_path_factory.mktemp("chdb-win")), schema_options=SchemaOptions(database="pp_win"))
    try:
        store.apply_schema()
        insert(store, CALLS)
        svc = SimpleNamespace(get_store=lambda: store,
                              ingest=SimpleNamespace(authorized=lambda h: h == f"Bearer {TOKEN}"))
        srv = api_server.make_server("127.0.0.1", 0, svc)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        yield f"http://127.0.0.1:{srv.server_address[1]}"
        srv.shutdown()
        srv.server_close()
    finally:
        store.close()


def get(url: str, params: dict[str, str]) -> tuple[int, Any]:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    r = urllib.request.Request(url + "/api/compare?" + urllib.parse.urlencode(params),
                               headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def mine(prompt: str, version: str) -> list[dict[str, Any]]:
    return [c for c in CALLS if c["prompt"] == prompt and c["version"] == version and START <= c["t"] < END]


def test_a_failing_version_is_not_crowned(api: str) -> None:
    code, doc = get(api, {"prompt_id": "support_reply", "versions": "2.1.0,2.2.0", **RANGE})
    assert code == 200, doc
    old, new = doc["items"]
    assert (old["success_rate"], new["success_rate"]) == (100.0, 50.0)
    # over successful calls 2.2.0 is the *dearer* and *slower* one (its failures no longer count as fast and free)
    want = success_summary(mine("support_reply", "2.2.0"))
    assert new["successes"] == 20 and new["avg_tokens"] == 265.0 == want["avg_tokens"]
    assert new["cost_per_request"] == pytest.approx(0.0021, abs=1e-15)
    assert new["avg_latency_ms"] == pytest.approx(want["avg_latency_ms"], abs=1e-3) == 1040.0
    assert old["cost_per_request"] == pytest.approx(0.002, abs=1e-15) and old["avg_tokens"] == 250.0
    assert doc["winner"] == "2.1.0" and doc["verdict"].startswith("2.1.0 is better: success rate")
    (sr,) = [t for t in doc["tests"] if t["metric"] == "success_rate"]
    # 40/40 against 20/40: pooled p = 0.75, z = 0.5 / sqrt(0.75 x 0.25 x 0.05) = 5.1640, p = 2.42e-7
    z = 0.5 / math.sqrt(0.75 * 0.25 * 0.05)
    assert sr["test"] == "two-proportion z-test" and sr["statistic"] == pytest.approx(z, rel=1e-9)
    assert sr["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-6)
    assert sr["p_value"] == pytest.approx(2.4166e-7, rel=1e-3)
    assert sr["significant"] and sr["better"] == "2.1.0"
    assert doc["winners"]["success_rate"] == "2.1.0" and doc["basis"]["latency"] == "successful calls"


def test_a_clearly_better_version_is_crowned(api: str) -> None:
    code, doc = get(api, {"prompt_id": "summarize", "versions": "2.0,3.0", **RANGE})
    assert code == 200, doc
    assert doc["winner"] == "3.0" and doc["more_calls_needed"] is None
    tests = {t["metric"]: t for t in doc["tests"]}
    assert not tests["success_rate"]["significant"] and tests["success_rate"]["p_value"] == 1.0
    p95 = tests["p95_latency_ms"]
    # nearest-rank p95 of 100 calls is the 95th: 1000 + 5 x 94 = 1470 ms against 500 + 3 x 94 = 782 ms (to 2%)
    assert p95["significant"] and p95["better"] == "3.0"
    assert p95["difference"] == pytest.approx(1470 - 782, rel=0.03)
    assert p95["interval"][0] > 0
    assert doc["items"][1]["p95_latency_ms"] == pytest.approx(782, rel=0.01)
    # Welch on cost: a difference of 0.001 with equal spreads (sd of 0..99 x 1e-6): t = 0.001 / sqrt(2 var / 100)
    var = sum((i - 49.5) ** 2 for i in range(100)) / 99 * 1e-12
    assert tests["cost_per_request"]["statistic"] == pytest.approx(0.001 / math.sqrt(2 * var / 100), rel=1e-6)
    assert doc["winners"] == {"success_rate": None, "p95_latency_ms": "3.0", "cost_per_request": "3.0"}


def test_a_small_sample_needs_more_calls(api: str) -> None:
    code, doc = get(api, {"prompt_id": "classify", "versions": "1,2", **RANGE})
    assert code == 200, doc
    assert doc["winner"] is None
    (sr,) = [t for t in doc["tests"] if t["metric"] == "success_rate"]
    # Fisher on 5/5 against 3/5 (2 failures): the tables putting 0 or 2 failures in version 1 are no likelier than
    # the observed one: (C(5,5) C(5,3) + C(5,3) C(5,5)) / C(10,8) = 20 / 45
    assert sr["test"] == "Fisher exact test" and sr["p_value"] == pytest.approx(20 / 45, rel=1e-9)
    assert doc["more_calls_needed"] == 6 and doc["verdict"] == "no clear winner, need 6 more calls"


def test_unknown_names_are_404_and_an_empty_range_is_null(api: str) -> None:
    code, doc = get(api, {"prompt_id": "nope", "versions": "1,2"})
    assert code == 404 and doc["error"] == "unknown prompt 'nope'"
    code, doc = get(api, {"prompt_id": "classify", "versions": "1,9"})
    assert code == 404 and doc["error"] == "unknown version '9' of prompt 'classify'"
    code, doc = get(api, {"prompts": "classify,nope,nada"})
    assert code == 404 and doc["error"] == "unknown prompts 'nope', 'nada'"
    code, doc = get(api, {"prompt_id": "classify", "versions": "0,1", **RANGE})  # 0 has calls, not in the range
    assert code == 200, doc
    empty = doc["items"][0]
    assert empty["requests"] == 0 and empty["successes"] == 0
    for k in ("success_rate", "error_rate", "p95_latency_ms", "avg_tokens", "cost_per_request", "avg_latency_ms"):
        assert empty[k] is None, k
    assert doc["winner"] is None and doc["more_calls_needed"] is None
    assert doc["verdict"] == "no clear winner: no calls for 0 in the range"


def test_p95_needs_20_successful_calls_a_side() -> None:
    # 12 calls: the nearest-rank p95 is the maximum, whose bootstrap is degenerate; the test is not applied
    small = win.decide([win.Sample("a", 12, 12, [(1000.0, 12)], 0.001, 0.0),
                        win.Sample("b", 45, 45, [(200.0, 45)], 0.001, 0.0)])
    (p95,) = [t for t in small.tests if t.metric == "p95_latency_ms"]
    assert not p95.significant and not p95.doc()["applicable"] and small.winner is None
    assert small.more_calls == math.ceil((20 / 12 - 1) * 57)  # the projection waits for the 20th call of a
    big = win.decide([win.Sample("a", 20, 20, [(1000.0, 20)], 0.001, 0.0),
                      win.Sample("b", 45, 45, [(200.0, 45)], 0.001, 0.0)])
    assert big.winner == "b"
