"""schemas/022: llm_calls_1m keeps calls per minute over all series (projection per_minute). The Overview's peak RPM
reads it when no filter is set and the table's rows when one is; both give the busiest minute exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from promptpulse.processor.console import panels

pytest.importorskip("chdb")

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(second=0, microsecond=0)
# (minutes ago, service, calls): minute 30 is the busiest over all (5 + 3), minute 10 the busiest of svc-a alone
CALLS = ((30, "svc-a", 5), (30, "svc-b", 3), (10, "svc-a", 6), (50, "svc-b", 2))
INSERT = """
INSERT INTO llm_calls (timestamp, trace_id_in, span_id_in, service, prompt_name, request_model, provider, latency_in,
                       status)
SELECT {t:DateTime64(6, 'UTC')} + toIntervalSecond(number), hex(rand64()), hex(rand64()), {svc:String}, 'p', 'gpt-4o',
       'openai', toFloat32(100), 'ok'
FROM numbers({n:UInt32})
"""


@pytest.fixture()
def store(tmp_path) -> Iterator:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path / "data"))
    try:
        s.apply_schema()
        for ago, svc, n in CALLS:  # one insert per group: several parts, merged or not
            s.command(INSERT, {"t": NOW - dt.timedelta(minutes=ago), "svc": svc, "n": n})
        yield s
    finally:
        s.close()


def _peak(store, p: panels.PanelParams, settings: str = "") -> tuple[int, str]:
    sql, params = panels.bind(panels.catalog()["peak_rpm"].sql, p)
    plan = "\n".join(r[0] for r in store.query(f"EXPLAIN {sql}{settings}", params).rows)
    return store.query(sql + settings, params).scalar(), plan


@pytest.mark.parametrize("days", [1, 30])
def test_peak_rpm_reads_the_per_minute_projection(store, days: int) -> None:
    p = panels.PanelParams(NOW - dt.timedelta(days=days), NOW + dt.timedelta(minutes=1))
    peak, plan = _peak(store, p)
    assert (peak, "ReadFromMergeTree (per_minute)" in plan) == (8, True)
    assert _peak(store, p, "\nSETTINGS optimize_use_projections = 0")[0] == 8
    for service, want in (("svc-a", 6), ("svc-b", 3)):
        filtered = panels.PanelParams(p.start, p.end, filters={"service": [service]})
        peak, plan = _peak(store, filtered)
        assert (peak, "per_minute" in plan) == (want, False)
    assert store.query("SELECT count() FROM system.projection_parts WHERE active AND database = currentDatabase() "
                       "AND table = 'llm_calls_1m' AND name = 'per_minute'").scalar() > 0
