"""The analytics API (processor/api_routes.py, processor/analytics.py) on a real embedded store seeded with known
calls: every answer agrees with numbers computed here from the seed (exactly for counts, sums and costs; within the
histogram's 2% for percentiles); bad parameters get 400; the OpenAPI document lists every route."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from analytics_seed import UTC, call, close, insert, success_summary, summary

pytest.importorskip("chdb")

TOKEN = "s3cret"
NOW = dt.datetime.now(UTC)
B = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)  # end of the analysed range (an hour)
A = B - dt.timedelta(hours=24)
RANGE = {"start": A.isoformat(), "end": B.isoformat()}


def _seed() -> list[dict[str, Any]]:
    rng = random.Random(7)
    calls: list[dict[str, Any]] = []

    def at() -> dt.datetime:
        return A + dt.timedelta(seconds=rng.randint(0, 24 * 3600 - 3700))  # not in the last hour (anomaly window)

    for i in range(120):
        err = ("RateLimitError", "429", "") if i % 20 == 0 else None
        msg = f"Rate limit reached for org-{rng.getrandbits(24):06x}1a in {rng.randint(1, 60)}s" if err else ""
        calls.append(call(at(), "support", "1.0", latency_ms=rng.randint(300, 1500), inp=rng.randint(100, 300),
                          out=rng.randint(20, 80), cost=f"{rng.uniform(0.001, 0.004):.6f}", error=err, message=msg,
                          user=f"u{i % 30}", feature="chat", tags=("beta",) if i % 2 else ()))
    for i in range(80):
        err = ("APITimeoutError", "", "") if i in (3, 40) else None
        calls.append(call(at(), "support", "2.0", model="gpt-4o-mini", latency_ms=rng.randint(200, 900),
                          inp=rng.randint(80, 200), out=rng.randint(10, 60), cost=f"{rng.uniform(0.0002, 0.001):.6f}",
                          error=err, user=f"n{i % 20}", feature="chat", tags=("beta", "v2")))
    for i in range(60):
        err = ("InternalServerError", "500", "") if i % 10 == 0 else None
        msg = f"Internal server error, request id {rng.randint(10000, 99999)}" if err else ""
        calls.append(call(at(), "summarize", "1", latency_ms=rng.randint(1000, 4000), inp=rng.randint(1000, 3000),
                          out=rng.randint(100, 400), cost=f"{rng.uniform(0.01, 0.03):.6f}", error=err, message=msg,
                          feature="docs"))
    for _ in range(40):
        calls.append(call(at(), "classify", "1", model="gpt-4o-mini", latency_ms=rng.randint(100, 400),
                          inp=rng.randint(50, 100), out=rng.randint(1, 5), cost=f"{rng.uniform(0.0001, 0.0003):.6f}",
                          feature="triage"))
    # returning users: u0..u9 called days before the range
    for i in range(10):
        calls.append(call(A - dt.timedelta(days=3, minutes=i), "support", "1.0", user=f"u{i}", feature="chat"))
    # anomaly: support/gpt-4o in the last hour of the range vs the same hour in the previous 4 weeks
    for k, n in ((1, 8), (2, 10), (3, 9), (4, 11)):
        for j in range(n):
            calls.append(call(B - dt.timedelta(hours=1, weeks=k) + dt.timedelta(minutes=j * 5), "support", "1.0"))
        for j in range(10):  # a steady series
            calls.append(call(B - dt.timedelta(hours=1, weeks=k) + dt.timedelta(minutes=j * 5), "steady", "1",
                              model="gpt-4o-mini"))
    for j in range(60):
        calls.append(call(B - dt.timedelta(minutes=60) + dt.timedelta(seconds=j * 50), "support", "1.0"))
    for j in range(10):
        calls.append(call(B - dt.timedelta(minutes=60) + dt.timedelta(minutes=j * 5 + 1), "steady", "1",
                          model="gpt-4o-mini"))
    return calls


CALLS = _seed()


def in_range(c: dict[str, Any], start: dt.datetime = A, end: dt.datetime = B) -> bool:
    return start <= c["t"] < end


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from promptpulse.processor import api_server
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    store = EmbeddedStore(str(tmp_path_factory.mktemp("chdb-api")), schema_options=SchemaOptions(database="pp_api"))
    try:
        store.apply_schema()
        insert(store, CALLS)
        svc = SimpleNamespace(get_store=lambda: store,
                              ingest=SimpleNamespace(authorized=lambda h: h == f"Bearer {TOKEN}"))
        srv = api_server.make_server("127.0.0.1", 0, svc)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        yield {"store": store, "url": f"http://127.0.0.1:{srv.server_address[1]}"}
        srv.shutdown()
        srv.server_close()
    finally:
        store.close()


def req(api: dict[str, Any], path: str, params: dict[str, Any] | None = None, *, body: Any = None,
        token: str | None = TOKEN, raw: bool = False) -> tuple[int, Any]:
    url = api["url"] + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                               headers={"Content-Type": "application/json"})
    if token:
        r.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            payload = resp.read()
            return resp.status, payload.decode() if raw else json.loads(payload)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def check_metrics(got: dict[str, Any], calls: list[dict[str, Any]], *, success_basis: bool = False) -> None:
    want = success_summary(calls) if success_basis else summary(calls)
    assert got["requests"] == want["requests"]
    assert got["errors"] == want["errors"]
    assert got["success_rate"] == pytest.approx(want["success_rate"], abs=1e-4)
    assert got["avg_tokens"] == pytest.approx(want["avg_tokens"], abs=1e-4)
    assert Decimal(str(got["total_cost_usd"])).quantize(Decimal("1e-9")) == want["total_cost_usd"].quantize(
        Decimal("1e-9"))
    assert got["cost_per_request"] == pytest.approx(want["cost_per_request"], rel=1e-9)
    for q in ("p50", "p95", "p99"):
        assert close(got[f"{q}_latency_ms"], want[q]), (q, got[f"{q}_latency_ms"], want[q])


# ---------------------------------------------------------------------------------------------------------- compare
def test_compare_prompts_with_winner(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/compare", {"prompts": "support,summarize,classify", **RANGE})
    assert code == 200, doc
    items = {i["item"]: i for i in doc["items"]}
    assert list(items) == ["support", "summarize", "classify"]
    per = {p: [c for c in CALLS if c["prompt"] == p and in_range(c)] for p in items}
    for p, calls in per.items():
        check_metrics(items[p], calls, success_basis=True)
        assert items[p]["successes"] == sum(1 for c in calls if not c["error"])
    assert doc["basis"]["latency"] == doc["basis"]["cost_per_request"] == "successful calls"
    assert doc["criteria"] == ["success_rate", "p95_latency_ms", "cost_per_request"]
    assert doc["alpha"] == 0.05 and doc["alpha_per_test"] == pytest.approx(0.05 / 3)
    assert len(doc["tests"]) == 3 * 3  # three pairs, three criteria
    # classify: no errors (not yet significant against 8/260 and 6/60) and a p95 of ~400 ms against >= 1400
    assert doc["winner"] == "classify" and doc["more_calls_needed"] is None
    assert doc["verdict"].startswith("classify is better")
    sr = {(t["a"], t["b"]): t for t in doc["tests"] if t["metric"] == "success_rate"}
    assert not any(t["significant"] for t in sr.values())
    assert sr[("summarize", "classify")]["test"] == "Fisher exact test"
    # Fisher, 54/60 against 40/40 (6 failures): the tables no likelier than the observed one put 6, 1 or 0 of the
    # failures in classify: (C(60,6) + C(60,1) C(40,5) + C(40,6)) / C(100,6) = 0.0783
    c = math.comb
    assert sr[("summarize", "classify")]["p_value"] == pytest.approx(
        (c(60, 6) + 60 * c(40, 5) + c(40, 6)) / c(100, 6), rel=1e-9)
    p95 = {(t["a"], t["b"]): t for t in doc["tests"] if t["metric"] == "p95_latency_ms"}
    assert p95[("support", "classify")]["better"] == "classify"
    assert p95[("summarize", "classify")]["better"] == "classify"
    assert doc["winners"]["p95_latency_ms"] == "classify"
    assert doc["winners"]["success_rate"] is None


def test_compare_versions(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/compare", {"prompt_id": "support", "versions": "1.0,2.0", **RANGE})
    assert code == 200, doc
    assert doc["by"] == "version" and [i["item"] for i in doc["items"]] == ["1.0", "2.0"]
    for item in doc["items"]:
        check_metrics(item, [c for c in CALLS if c["prompt"] == "support" and c["version"] == item["item"]
                             and in_range(c)], success_basis=True)
    assert doc["period"]["resolution"] == "raw"
    assert doc["winner"] == "2.0"  # success rates alike (6/180 vs 2/80 errors), p95 ~880 against ~1450 ms
    (sr,) = [t for t in doc["tests"] if t["metric"] == "success_rate"]
    n1, x1, n2, x2 = 180, 174, 80, 78
    pool = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    assert sr["test"] == "Fisher exact test"  # 8 errors in all: the expected count in 2.0 is 2.5 < 5
    assert sr["statistic"] == pytest.approx(z, rel=1e-9)
    assert not sr["significant"]


# ------------------------------------------------------------------------------------------------------- timeseries
def test_timeseries_hourly_matches_the_calls(api: dict[str, Any]) -> None:
    for metric in ("requests", "cost", "tokens", "error_rate"):
        code, doc = req(api, "/api/timeseries", {"metric": metric, "interval": "1h", **RANGE})
        assert code == 200, doc
        assert doc["period"]["resolution"] == "1h"
        points = doc["series"][0]["points"]
        assert len(points) == 24
        for p in points:
            t = dt.datetime.fromisoformat(p["t"])
            calls = [c for c in CALLS if in_range(c, t, t + dt.timedelta(hours=1))]
            if metric == "requests":
                assert p["v"] == len(calls)
            elif metric == "cost":
                assert p["v"] == pytest.approx(float(sum((c["cost"] for c in calls), Decimal(0))), abs=1e-9)
            elif metric == "tokens":
                assert p["v"] == sum(c["inp"] + c["out"] for c in calls)
            else:
                want = 100 * sum(1 for c in calls if c["error"]) / len(calls) if calls else None
                assert p["v"] == (pytest.approx(want, abs=1e-6) if want is not None else None)


def test_timeseries_minutes_grouped_and_p95(api: dict[str, Any]) -> None:
    start = B - dt.timedelta(hours=1)
    code, doc = req(api, "/api/timeseries", {"metric": "requests", "interval": "15m", "group_by": "prompt",
                                             "start": start.isoformat(), "end": B.isoformat()})
    assert code == 200, doc
    assert doc["period"]["resolution"] == "1m"
    series = {s["name"]: s["points"] for s in doc["series"]}
    assert set(series) == {"support", "steady"}
    for name, points in series.items():
        assert sum(p["v"] for p in points) == sum(1 for c in CALLS if c["prompt"] == name and in_range(c, start, B))
    code, doc = req(api, "/api/timeseries", {"metric": "p95_latency_ms", "interval": "1d", "prompt_id": "summarize",
                                             "start": A.isoformat(), "end": B.isoformat()})
    assert code == 200, doc
    checked = 0
    for p in doc["series"][0]["points"]:
        t = dt.datetime.fromisoformat(p["t"])
        day = [c for c in CALLS if c["prompt"] == "summarize" and in_range(c, t, t + dt.timedelta(days=1))]
        if day:
            assert close(p["v"], summary(day)["p95"]), (p, summary(day)["p95"])
            checked += 1
        else:
            assert p["v"] is None
    assert checked >= 1


# ---------------------------------------------------------------------------------------------------------- cohorts
@pytest.mark.parametrize("by,key", [
    ("prompt_version", lambda c: f"{c['prompt']} v{c['version']}"), ("feature", lambda c: c["feature"]),
    ("model", lambda c: c["model"]),
    ("hour", lambda c: c["t"].replace(minute=0, second=0, microsecond=0).isoformat()),
])
def test_cohorts(api: dict[str, Any], by: str, key: Any) -> None:
    code, doc = req(api, "/api/cohorts", {"by": by, **RANGE})
    assert code == 200, doc
    want: dict[str, list] = {}
    for c in CALLS:
        if in_range(c):
            want.setdefault(key(c), []).append(c)
    got = {c["cohort"]: c for c in doc["cohorts"]}
    assert set(got) == set(want)
    for k, calls in want.items():
        check_metrics(got[k], calls)


def test_cohorts_users_and_tags(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/cohorts", {"by": "user_type", **RANGE})
    assert code == 200, doc
    got = {c["cohort"]: c for c in doc["cohorts"]}
    first: dict[str, dt.datetime] = {}
    for c in CALLS:
        if c["user"] and c["t"] < B:
            first[c["user"]] = min(first.get(c["user"], c["t"]), c["t"])
    want: dict[str, list] = {}
    for c in CALLS:
        if in_range(c):
            kind = "anonymous" if not c["user"] else ("new" if first[c["user"]] >= A else "returning")
            want.setdefault(kind, []).append(c)
    assert set(got) == {"anonymous", "new", "returning"}
    for k, calls in want.items():
        check_metrics(got[k], calls)
        assert got[k]["users"] == len({c["user"] for c in calls if c["user"]})
    code, doc = req(api, "/api/cohorts", {"by": "tag", "prompt_id": "support", **RANGE})
    got = {c["cohort"]: c["requests"] for c in doc["cohorts"]}
    sup = [c for c in CALLS if in_range(c) and c["prompt"] == "support"]
    assert got == {"": sum(1 for c in sup if not c["tags"]), "beta": sum(1 for c in sup if "beta" in c["tags"]),
                   "v2": sum(1 for c in sup if "v2" in c["tags"])}
    code, doc = req(api, "/api/cohorts", {"by": "feature", "tag": "v2", **RANGE})  # a raw-only filter
    assert code == 200 and doc["period"]["resolution"] == "raw"
    assert {c["cohort"]: c["requests"] for c in doc["cohorts"]} == {"chat": 80}


# -------------------------------------------------------------------------------------------------------- anomalies
def test_anomalies_hour_of_week(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/anomalies", {"metric": "requests", "window": "1h", "end": B.isoformat()})
    assert code == 200, doc
    found = {(a["series"]["prompt"], a["series"]["model"], a["metric"]): a for a in doc["anomalies"]}
    a = found[("support", "gpt-4o", "requests")]
    assert a["current"] == 60 and a["baseline"] == 9.5 and a["direction"] == "up"
    assert a["history"] == [8, 10, 9, 11]
    assert ("steady", "gpt-4o-mini", "requests") not in found
    assert "median" in doc["method"] and "MAD" in doc["method"]
    # series without history (summarize, classify ...) are new, not anomalous
    assert {k[0] for k in found} == {"support"}


# -------------------------------------------------------------------------------------------------------------- SLA
def test_sla_error_budget_and_burn(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/sla", {"target_success": "99", "target_p95_ms": "2000", "window": "30d",
                                      "end": B.isoformat()})
    assert code == 200, doc
    win = [c for c in CALLS if in_range(c, B - dt.timedelta(days=30), B)]
    n, e = len(win), sum(1 for c in win if c["error"])
    assert doc["requests"] == n and doc["errors"] == e
    assert doc["availability"] == pytest.approx(100 * (n - e) / n, abs=1e-4)
    assert doc["error_budget"]["total"] == pytest.approx(0.01 * n, abs=1e-4)
    assert doc["error_budget"]["consumed"] == e
    assert doc["error_budget"]["remaining"] == pytest.approx(0.01 * n - e, abs=1e-4)
    assert close(doc["p95_latency_ms"], summary(win)["p95"])
    assert doc["status"] == ("meeting" if 100 * (n - e) / n >= 99 and summary(win)["p95"] <= 2000 else "violating")
    for name, hours in (("1h", 1), ("6h", 6), ("24h", 24)):
        w = [c for c in CALLS if in_range(c, B - dt.timedelta(hours=hours), B)]
        b = doc["burn_rate"][name]
        assert b["requests"] == len(w) and b["errors"] == sum(1 for c in w if c["error"])
        assert b["burn_rate"] == pytest.approx(b["errors"] / len(w) / 0.01, abs=1e-3)


# ----------------------------------------------------------------------------------------------------------- errors
def test_error_groups(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/errors", RANGE)
    assert code == 200, doc
    errs = [c for c in CALLS if in_range(c) and c["error"]]
    assert doc["total_errors"] == len(errs)
    assert doc["by_category"] == {"rate_limit": 6, "timeout": 2, "model_error": 6}
    groups = {(g["error_type"], g["message"]): g for g in doc["groups"]}
    assert set(groups) == {("RateLimitError", "Rate limit reached for org-<hex> in <n>s"),
                           ("APITimeoutError", None),
                           ("InternalServerError", "Internal server error, request id <n>")}
    for (etype, _), g in groups.items():
        mine = [c for c in errs if c["error"][0] == etype]
        assert g["count"] == len(mine)
        assert dt.datetime.fromisoformat(g["first_seen"]) == min(c["t"] for c in mine)
        assert dt.datetime.fromisoformat(g["last_seen"]) == max(c["t"] for c in mine)
        assert 1 <= len(g["sample_trace_ids"]) <= 3
        assert set(g["sample_trace_ids"]) <= {c["trace_id"] for c in mine}
    assert groups[("RateLimitError", "Rate limit reached for org-<hex> in <n>s")]["http_statuses"] == [429]


def test_normalise_twin() -> None:
    from promptpulse.processor.analytics import normalise_message

    assert normalise_message("Rate limit reached for org-0a1b2c1a in 20s") == "Rate limit reached for org-<hex> in <n>s"
    assert normalise_message("model 'gpt-x' id 123e4567-e89b-12d3-a456-426614174000") == "model <str> id <uuid>"


# ----------------------------------------------------------------------------------------------------------- scores
def test_scores_post_and_summaries(api: dict[str, Any]) -> None:
    v1 = [c for c in CALLS if c["prompt"] == "support" and c["version"] == "1.0" and in_range(c)][:4]
    v2 = [c for c in CALLS if c["prompt"] == "support" and c["version"] == "2.0" and in_range(c)][:2]
    body = [{"trace_id": c["trace_id"], "span_id": c["span_id"], "name": "helpfulness", "value": v, "label": lab}
            for c, v, lab in zip(v1 + v2, [1.0, 0.5, 0.0, 1.0, 0.25, 0.75], ["good", "ok", "bad", "good", "bad",
                                                                              "ok"], strict=True)]
    code, doc = req(api, "/api/scores", body=body)
    assert code == 201 and doc == {"inserted": 6}
    code, doc = req(api, "/api/scores", body={"trace_id": v2[0]["trace_id"], "name": "helpfulness", "value": 1,
                                              "comment": "whole trace"})
    assert code == 201
    code, doc = req(api, "/api/scores", {"prompt_id": "support", "name": "helpfulness"})
    assert code == 200, doc
    (s,) = doc["scores"]
    values = [1.0, 0.5, 0.0, 1.0, 0.25, 0.75, 1.0]
    assert s["count"] == 7 and s["avg"] == pytest.approx(sum(values) / 7)
    assert s["min"] == 0.0 and s["max"] == 1.0
    assert sum(b["count"] for b in s["distribution"]) == 7
    assert s["labels"] == {"good": 2, "ok": 2, "bad": 2}
    by = {b["version"]: b for b in s["by_version"]}
    assert by["1.0"]["count"] == 4 and by["1.0"]["avg"] == pytest.approx(2.5 / 4)
    assert by["2.0"]["count"] == 3 and by["2.0"]["avg"] == pytest.approx(2.0 / 3)
    code, doc = req(api, "/api/scores", {"prompt_id": "summarize"})
    assert code == 200 and doc["scores"] == []


@pytest.mark.parametrize("body", [
    {"trace_id": "abc", "name": "x", "value": "high"}, {"name": "x", "value": 1},
    {"trace_id": "abc", "name": "x", "value": True}, {"trace_id": "abc", "name": "x'); DROP TABLE x; --", "value": 1},
    {"trace_id": "abc", "name": "x", "value": 1, "extra": 1}, {"trace_id": "a" * 65, "name": "x", "value": 1},
    [], "just a string",
])
def test_scores_validation(api: dict[str, Any], body: Any) -> None:
    code, doc = req(api, "/api/scores", body=body)
    assert code == 400 and doc["error"]


# ----------------------------------------------------------------------------------------------------------- export
def test_export_jsonl_and_csv(api: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from promptpulse.processor import analytics

    monkeypatch.setattr(analytics, "EXPORT_PAGE", 37)  # several keyset pages
    code, text = req(api, "/api/export", {"format": "jsonl", "prompt_id": "summarize", **RANGE}, raw=True)
    assert code == 200
    rows = [json.loads(x, parse_float=Decimal) for x in text.splitlines()]
    want = [c for c in CALLS if c["prompt"] == "summarize" and in_range(c)]
    assert len(rows) == len(want) == 60
    assert len({r["span_id"] for r in rows}) == 60
    assert all(isinstance(r["cost_usd"], Decimal) for r in rows)  # a JSON number, not a string
    assert sum(r["cost_usd"] for r in rows) == sum(c["cost"] for c in want)
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    code, text = req(api, "/api/export", {"format": "csv", "limit": "7", "status": "error", **RANGE}, raw=True)
    assert code == 200
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 7 and all(r["status"] == "error" for r in table)
    code, text = req(api, "/api/export", {"format": "csv", "tag": "v2", **RANGE}, raw=True)
    assert len(list(csv.DictReader(io.StringIO(text)))) == 80


# ------------------------------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize("path,params", [
    ("/api/timeseries", {"metric": "bogus"}), ("/api/timeseries", {}),
    ("/api/timeseries", {"metric": "requests", "start": "in a while"}),
    ("/api/timeseries", {"metric": "requests", "start": "2025-02-01", "end": "2025-01-01"}),
    ("/api/timeseries", {"metric": "requests", "interval": "7s"}),
    ("/api/timeseries", {"metric": "requests", "interval": "1m", "start": "2020-01-01", "end": "2020-12-01"}),
    ("/api/compare", {"prompts": "a,b,c,d"}), ("/api/compare", {"prompts": "a"}), ("/api/compare", {}),
    ("/api/compare", {"prompts": "a,a"}), ("/api/compare", {"versions": "1,2"}),
    ("/api/cohorts", {"by": "nope"}), ("/api/cohorts", {}), ("/api/cohorts", {"by": "model", "limit": "x"}),
    ("/api/anomalies", {"metric": "nope"}), ("/api/anomalies", {"window": "soon"}),
    ("/api/anomalies", {"by": "user"}), ("/api/anomalies", {"threshold": "nan"}),
    ("/api/sla", {"window": "abc"}), ("/api/sla", {"target_success": "200"}), ("/api/sla", {"end": "x"}),
    ("/api/errors", {"end": "2020-13-45"}), ("/api/export", {"format": "xml"}), ("/api/export", {"limit": "-1"}),
    ("/api/export", {"status": "meh"}), ("/api/scores", {"start": "soon"}), ("/api/report", {"period": "hourly"}),
])
def test_bad_parameters_get_400(api: dict[str, Any], path: str, params: dict[str, str]) -> None:
    code, doc = req(api, path, params)
    assert code == 400, doc
    assert isinstance(doc.get("error"), str) and doc["error"]


def test_values_never_reach_sql_text(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/compare", {"prompts": "support' OR 1=1 --,summarize", **RANGE})
    assert code == 404 and "support' OR 1=1 --" in doc["error"], doc  # a name, looked up, not SQL
    code, doc = req(api, "/api/cohorts", {"by": "model", "prompt_id": "x') OR ('1'='1", **RANGE})
    assert code == 200 and doc["cohorts"] == []


def test_auth_required(api: dict[str, Any]) -> None:
    for path in ("/api/compare", "/api/openapi.json", "/api/export"):
        code, _ = req(api, path, {"prompts": "a,b"}, token=None)
        assert code == 401
        code, _ = req(api, path, {"prompts": "a,b"}, token="wrong")
        assert code == 401


def test_report_endpoint(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/report", {"period": "weekly"})
    assert code == 200 and doc["period"]["name"] == "weekly" and "metrics" in doc
    code, text = req(api, "/api/report", {"period": "daily", "format": "markdown"}, raw=True)
    assert code == 200 and text.startswith("# PromptPulse daily report")


# ---------------------------------------------------------------------------------------------------------- openapi
def test_openapi_lists_every_route(api: dict[str, Any]) -> None:
    from promptpulse.processor import api_app, api_routes

    code, doc = req(api, "/api/openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    # FastAPI generates the document from the routes: each one is there, with the fields of its query model
    routes = [*api_app.builtin.routes, *api_routes.router.routes]
    assert len(routes) == 16
    for r in routes:
        for method in r.methods:
            op = paths[r.path][method.lower()]
            assert op["responses"] and op["summary"]
            models = [f.field_info.annotation for f in r.dependant.query_params]
            assert [p["name"] for p in op.get("parameters", [])] == [n for m in models for n in m.model_fields]
    assert set(paths) >= {"/api/compare", "/api/timeseries", "/api/cohorts", "/api/anomalies", "/api/sla",
                          "/api/errors", "/api/scores", "/api/export", "/api/openapi.json", "/api/metrics",
                          "/api/query", "/api/alerts", "/healthz", "/readyz", "/metrics"}
    assert {"get", "post"} <= set(paths["/api/scores"])
    ts = {p["name"]: p for p in paths["/api/timeseries"]["get"]["parameters"]}
    assert ts["metric"]["required"] and {"requests", "error_rate", "p95_latency_ms", "cost", "tokens"} <= set(
        ts["metric"]["schema"]["enum"])
    limit = next(p for p in paths["/api/cohorts"]["get"]["parameters"] if p["name"] == "limit")["schema"]
    assert limit["type"] == "integer" and limit["default"] == 100
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert paths["/healthz"]["get"]["security"] == []
    assert "sql" in paths["/api/query"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"]


def test_typed_parameters_are_validated_before_the_store(api: dict[str, Any]) -> None:
    code, doc = req(api, "/api/cohorts", {"by": "model", "limit": "x"})
    assert code == 400 and doc == {"error": "bad limit 'x': Input should be a valid integer, unable to parse string "
                                            "as an integer", "path": "/api/cohorts"}
    code, doc = req(api, "/api/timeseries", {"interval": "1h"})
    assert (code, doc["error"]) == (400, "metric is required")
    code, doc = req(api, "/api/cohorts", {"by": "model", "limit": "", **RANGE})  # blank: the default
    assert code == 200 and len(doc["cohorts"]) == 2
    code, doc = req(api, "/api/nope")
    assert (code, doc) == (404, {"error": "not found", "path": "/api/nope"})
    code, doc = req(api, "/api/compare", body={"x": 1})
    assert (code, doc["error"]) == (405, "method not allowed")


# ------------------------------------------------------------------------------------------- filters on every endpoint
# One value per filter that the seed carries, and the calls it selects. tag and user_id read raw llm_calls; the
# others the rollups (issue 16 §5: anomalies with tag/user_id answered 503 on a DateTime64 `end` parameter).
FILTER_VALUES: dict[str, tuple[str, Any]] = {
    "tag": ("beta", lambda c: "beta" in c["tags"]), "user_id": ("u1", lambda c: c["user"] == "u1"),
    "feature": ("chat", lambda c: c["feature"] == "chat"), "service": ("app", lambda c: c["service"] == "app"),
    "environment": ("prod", lambda c: True), "model": ("gpt-4o-mini", lambda c: c["model"] == "gpt-4o-mini"),
    "provider": ("openai", lambda c: True),
}
ENDPOINTS = ("anomalies", "timeseries", "cohorts", "sla", "errors", "compare", "export")


@pytest.mark.parametrize("name", FILTER_VALUES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_filter_on_every_endpoint(api: dict[str, Any], endpoint: str, name: str) -> None:
    value, keep = FILTER_VALUES[name]
    mine = [c for c in CALLS if keep(c) and in_range(c)]
    f = {name: value}
    if endpoint == "anomalies":
        code, doc = req(api, "/api/anomalies", {"metric": "requests", "end": B.isoformat(), "min_periods": "1", **f})
        assert code == 200, doc
        hour = [c for c in mine if c["t"] >= B - dt.timedelta(hours=1)]
        got = {(a["series"]["prompt"], a["series"]["model"]): a["current"] for a in doc["anomalies"]}
        want: dict[tuple[str, str], int] = {}
        for c in hour:
            want[(c["prompt"], c["model"])] = want.get((c["prompt"], c["model"]), 0) + 1
        assert all(got[k] == want[k] for k in got), (got, want)
    elif endpoint == "timeseries":
        code, doc = req(api, "/api/timeseries", {"metric": "requests", "interval": "1h", **RANGE, **f})
        assert code == 200, doc
        assert sum(p["v"] for p in doc["series"][0]["points"]) == len(mine)
    elif endpoint == "cohorts":
        code, doc = req(api, "/api/cohorts", {"by": "prompt", **RANGE, **f})
        assert code == 200, doc
        assert sum(c["requests"] for c in doc["cohorts"]) == len(mine)
    elif endpoint == "sla":
        code, doc = req(api, "/api/sla", {"window": "30d", "end": B.isoformat(), **f})
        assert code == 200, doc
        assert doc["requests"] == sum(1 for c in CALLS if keep(c) and in_range(c, B - dt.timedelta(days=30), B))
        assert doc["burn_rate"]["24h"]["requests"] == len(mine)
    elif endpoint == "errors":
        code, doc = req(api, "/api/errors", {**RANGE, **f})
        assert code == 200, doc
        assert doc["total_errors"] == sum(1 for c in mine if c["error"])
    elif endpoint == "compare":
        code, doc = req(api, "/api/compare", {"prompt_id": "support", "versions": "1.0,2.0", **RANGE, **f})
        assert code == 200, doc
        assert [i["requests"] for i in doc["items"]] == [
            sum(1 for c in mine if c["prompt"] == "support" and c["version"] == v) for v in ("1.0", "2.0")]
    else:
        code, text = req(api, "/api/export", {"format": "jsonl", "limit": "100000", **RANGE, **f}, raw=True)
        assert code == 200, text
        assert len(text.splitlines()) == len(mine)
