"""Bad data never blocks the queue: a batch that fails on its data is split until the bad request is alone, that
request goes to the dead letters, everything else is stored once; a store that is down stays a retry. Also: a
resent request is stored once, across a restart; the spool shrinks back after draining."""

from __future__ import annotations

import time
from typing import Any

from fakes import FakeStore

from promptpulse.processor.deadletter import DeadLetters
from promptpulse.processor.spool import Spool
from promptpulse.processor.writer import Writer, store_error_code


class PickyStore(FakeStore):
    """Refuses (like ClickHouse, atomically) any insert holding a row whose first value is in ``poison``."""

    def __init__(self, poison: set[int], code: int = 444) -> None:
        super().__init__()
        self.poison = poison
        self.code = code

    def insert_otel_traces(self, rows: Any, *, dedup_token: str | None = None) -> None:
        if not self.down and any(r[0] in self.poison for r in rows):
            self.attempts += 1
            raise RuntimeError(f"Code: {self.code}. DB::Exception: Protobuf messages are corrupted")
        super().insert_otel_traces(rows, dedup_token=dedup_token)


def _rows(n: int, start: int) -> list:
    return [[start + i, f"{start + i:032x}", f"{start + i:016x}", {"k": "v"}] for i in range(n)]


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_error_codes_are_read_from_the_chain() -> None:
    try:
        try:
            raise RuntimeError("Code: 241. DB::Exception: Memory limit (total) exceeded")
        except RuntimeError as inner:
            raise ValueError("insert into otel_traces failed") from inner
    except ValueError as e:
        assert store_error_code(e) == 241
    assert store_error_code(ConnectionError("refused")) is None


def test_one_bad_request_is_dead_lettered_and_the_rest_stored(tmp_path) -> None:
    store = PickyStore({10 * 7 + 3})  # a row of the 8th request
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.05)
    for i in range(16):
        w.submit(_rows(10, 10 * i))
    w.start()
    _wait(lambda: w.pending_spans == 0)
    assert sorted(r[0] for r in store.rows) == [x for x in range(160) if not 70 <= x < 80]
    assert w.stats["deadletter_requests"] == 1 and w.stats["deadletter_spans"] == 10
    assert w.stats["inserted_spans"] == 150 and w.store_up
    (letter,) = DeadLetters(tmp_path / "deadletter").list()
    assert letter.spans == 10 and letter.kind == "rows" and "Code: 444" in letter.error
    # later requests are stored as usual, and the spool ack moved past the bad one
    w.submit(_rows(5, 1000))
    _wait(lambda: len(store.rows) == 155)
    assert w.spool.acked == w.spool.written_seq
    w.stop()


def test_several_bad_requests_in_one_batch(tmp_path) -> None:
    store = PickyStore({3, 41, 42, 99})
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.05)
    for i in range(10):
        w.submit(_rows(10, 10 * i))
    w.start()
    _wait(lambda: w.pending_spans == 0)
    bad = {0, 4, 9}  # requests holding 3, 41/42, 99
    assert sorted(r[0] for r in store.rows) == [x for x in range(100) if x // 10 not in bad]
    assert w.stats["deadletter_requests"] == 3
    assert len(store.tokens) == len(set(store.tokens))
    w.stop()


def test_store_errors_are_retried_not_dead_lettered(tmp_path) -> None:
    """A store-side error code (memory, too many parts) with the store answering keeps the whole batch."""
    store = PickyStore({5}, code=241)
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.05)
    w.submit(_rows(10, 0))
    w.submit(_rows(10, 10))
    w.start()
    _wait(lambda: store.attempts >= 3)
    assert w.stats["deadletter_requests"] == 0 and not store.rows and not w.store_up
    store.poison = set()  # the store recovers: everything is stored, once
    _wait(lambda: len(store.rows) == 20)
    assert w.stats["deadletter_requests"] == 0
    w.stop()


def test_store_down_during_isolation_is_a_retry_without_doubles(tmp_path) -> None:
    class FlakyPicky(PickyStore):
        def insert_otel_traces(self, rows: Any, *, dedup_token: str | None = None) -> None:
            if len(self.tokens) == 1 and not self.down and self.attempts < 50:
                self.down = True  # the first half is in; the store goes away before the second
            super().insert_otel_traces(rows, dedup_token=dedup_token)

    store = FlakyPicky({55})
    store.down = False
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.05)
    for i in range(8):
        w.submit(_rows(10, 10 * i))
    w.start()
    _wait(lambda: not w.store_up)
    store.attempts = 100
    store.down = False
    _wait(lambda: w.pending_spans == 0)
    assert sorted(r[0] for r in store.rows) == [x for x in range(80) if not 50 <= x < 60]
    assert w.stats["deadletter_requests"] == 1
    w.stop()


def test_crash_mid_isolation_replays_the_plan_and_splits_the_same_way(tmp_path) -> None:
    store = PickyStore({65})
    sp = Spool(tmp_path)
    w = Writer(sp, lambda: store, batch_max_spans=1000, batch_max_age_s=0.05)
    for i in range(8):
        w.submit(_rows(10, 10 * i))
    batch = list(w._q)
    sp.set_plan(batch[0].rec.seq, batch[-1].rec.seq)
    w._insert(batch[:4])  # the split's first half was stored, then kill -9 before anything was acked
    sp.close()
    assert len(store.rows) == 40
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_spans=3, batch_max_age_s=0.05)  # other batch size
    assert w2.stats["replayed_spans"] == 80
    w2.start()
    _wait(lambda: w2.pending_spans == 0)
    assert sorted(r[0] for r in store.rows) == [x for x in range(80) if not 60 <= x < 70]  # nothing twice
    assert w2.stats["deadletter_requests"] == 1
    w2.stop()


def test_resent_request_is_stored_once_also_after_a_restart(tmp_path) -> None:
    store = FakeStore()
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.02)
    w.start()
    body = b'{"resourceSpans": []}'  # the payload's identity is the body (rows stand in for its decoding)
    w.submit(_rows(10, 0), body, is_json=True)
    _wait(lambda: len(store.rows) == 10)
    w.submit(_rows(10, 0), body, is_json=True)  # the exporter's retry: answered, not stored again
    w.flush()
    assert len(store.rows) == 10 and w.stats["duplicate_requests"] == 1
    w.stop()
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_spans=1000, batch_max_age_s=0.02)  # kill -9 and restart
    w2.start()
    w2.submit(_rows(10, 0), body, is_json=True)
    w2.submit(_rows(10, 10), b'{"resourceSpans": [ ]}', is_json=True)  # another body is new
    w2.flush()
    assert len(store.rows) == 20 and w2.stats["duplicate_requests"] == 1
    w2.stop()


def test_dedup_survives_the_deletion_of_drained_segments(tmp_path) -> None:
    store = FakeStore()
    w = Writer(Spool(tmp_path, segment_bytes=2000), lambda: store, batch_max_spans=1000, batch_max_age_s=0.02)
    w.start()
    bodies = [f'{{"n": {i}}}'.encode() for i in range(40)]
    for i, b in enumerate(bodies):
        w.submit(_rows(2, 2 * i), b, is_json=True)
    w.flush()
    _wait(lambda: w.spool.acked == w.spool.written_seq)
    w.stop()
    sp = Spool(tmp_path, segment_bytes=2000)
    assert len(list(tmp_path.glob("*.seg"))) <= 1  # drained segments were deleted…
    w2 = Writer(sp, lambda: store, batch_max_spans=1000, batch_max_age_s=0.02)
    w2.start()
    for i, b in enumerate(bodies):  # …and every one of these is still known
        w2.submit(_rows(2, 2 * i), b, is_json=True)
    w2.flush()
    assert len(store.rows) == 80 and w2.stats["duplicate_requests"] == 40
    w2.stop()


def _fill_and_drain(tmp_path: Any, *, max_bytes: int, segment_bytes: int, restart: bool) -> None:
    store = FakeStore()
    store.down = True
    kw = {"max_bytes": max_bytes, "segment_bytes": segment_bytes}
    w = Writer(Spool(tmp_path, **kw), lambda: store, batch_max_spans=50, batch_max_age_s=0.01, queue_wait_s=0)
    w.start()
    n = 0
    try:
        while True:  # fill the spool while the store is down
            w.submit(_rows(10, 10 * n))
            n += 1
    except Exception:
        pass
    assert n > 4
    if restart:
        w.stop(timeout=1)
        w = Writer(Spool(tmp_path, **kw), lambda: store, batch_max_spans=50, batch_max_age_s=0.01, queue_wait_s=0)
        w.start()
    store.down = False
    _wait(lambda: w.pending_spans == 0 and w.spool.acked == w.spool.written_seq)
    assert len(store.rows) == 10 * n
    _wait(lambda: w.spool.bytes < max_bytes // 2)  # the drained spool shrinks…
    for i in range(2 * n):  # …and takes as many requests again, and more
        w.submit(_rows(10, 100_000 + 10 * i))
        _wait(lambda: w.pending_spans == 0)
    assert len(store.rows) == 30 * n
    w.stop()


def test_spool_shrinks_after_a_restart_with_a_full_spool(tmp_path) -> None:
    _fill_and_drain(tmp_path, max_bytes=20_000, segment_bytes=1 << 20, restart=True)


def test_spool_shrinks_with_max_bytes_below_a_quarter_segment(tmp_path) -> None:
    _fill_and_drain(tmp_path, max_bytes=20_000, segment_bytes=1 << 20, restart=False)


def test_stalled_writer_is_reported(tmp_path) -> None:
    store = FakeStore()
    store.down = True
    w = Writer(Spool(tmp_path), lambda: store, batch_max_age_s=0.01, stall_after_s=0.2)
    assert not w.stalled()
    w._progress_t -= 3600  # idle for an hour (nobody asked /readyz meanwhile): new work is not stalled at once
    w.start()
    w.submit(_rows(3, 0))
    assert w.stalled_s() < 0.2 and not w.stalled()
    _wait(lambda: w.stalled())
    store.down = False
    _wait(lambda: not w.stalled())
    w.stop()


def test_dead_letters_know_their_signal(tmp_path) -> None:
    """A dead-lettered metrics or logs body is replayed to its own path, not /v1/traces."""
    from promptpulse.processor.deadletter import payload_kind

    dl = DeadLetters(tmp_path)
    cases = {b"\x01P": ("protobuf", "/v1/traces"), b"\x01J": ("json", "/v1/traces"),
             b"\x01M": ("protobuf", "/v1/metrics"), b"\x01m": ("json", "/v1/metrics"),
             b"\x01L": ("protobuf", "/v1/logs"), b"\x01l": ("json", "/v1/logs")}
    for i, (head, want) in enumerate(cases.items()):
        assert payload_kind(head + b"\0\0\0\0body") == want
        letter = dl.add(i + 1, head + b"\1\0\0\0body", 1, "Code: 444")
        assert (letter.kind, letter.path) == want
    assert payload_kind(b"\xe3marshal") == ("rows", "/v1/traces")
    assert sorted((x.kind, x.path) for x in dl.list()) == sorted(cases.values())
