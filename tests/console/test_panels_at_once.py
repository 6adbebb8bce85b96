"""The console runs a request's panels at once on the embedded store's read handles: the answers are the serial
ones, and no more handles are opened than the store says it runs at once."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from console_seed import DAY, NOW

from promptpulse.processor.console import panels


def _rounded(v: Any) -> Any:
    # float sums are not bit-identical run to run (the engine adds in parallel), serial or not: 12 digits
    if isinstance(v, float):
        return float(f"{v:.12g}")
    return [_rounded(x) for x in v] if isinstance(v, list) else v


def _without_timing(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: {"columns": v["columns"], "rows": _rounded(v["rows"])} for k, v in results.items()}


def test_panels_at_once_equal_serial(store: Any) -> None:
    p = panels.PanelParams(NOW - 7 * DAY, NOW + dt.timedelta(minutes=1))
    keys = []
    for k, panel in panels.catalog().items():
        try:
            panels.bind(panel.sql, p)
            keys.append(k)
        except panels.PanelError:  # needs one prompt or a trace id
            pass
    assert store.query_concurrency == 2 and len(keys) > 40
    serial = {k: panels.run(store, k, p) for k in keys}
    at_once = panels.run_many(store, keys, p)
    assert list(at_once) == keys
    assert _without_timing(at_once) == _without_timing(serial)
    assert serial["requests"]["rows"] == [[360]]  # the seed's 7 days
    assert panels.options(store, p)["service"] == ["docs-bot", "support-bot"]


def test_queries_from_many_threads_share_two_handles(store: Any) -> None:
    answers: list[Any] = []

    def ask(i: int) -> None:
        answers.append((i, store.query("SELECT count() + {i:UInt32} FROM llm_calls", {"i": i}).rows))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(i, [(360 + i,)]) for i in range(8)]
    assert len(store._read_handles._all) == 2
