"""Writer + spool: batching, dedup tokens, store outage → spool → replay, crash recovery, 429/503."""

from __future__ import annotations

import json
import marshal
import threading
import time

import pytest
from fakes import FakeStore

from promptpulse.processor.spool import Spool
from promptpulse.processor.writer import QueueFull, StoreUnavailable, Writer


def _rows(n: int, start: int = 0) -> list:
    return [[start + i, f"{start + i:032x}", f"{start + i:016x}", {"k": "v"}] for i in range(n)]


def _wait(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_by_size_and_age(tmp_path) -> None:
    store = FakeStore()
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=100, batch_max_age_s=0.2)
    w.start()
    for i in range(5):
        w.submit(_rows(50, i * 50))
    _wait(lambda: w.stats["inserted_spans"] == 250)
    assert len(store.rows) == 250 and w.stats["inserted_batches"] == 3  # 100 + 100 by size, the last 50 by age
    w.stop()


def test_outage_spools_and_replays_in_order_without_doubles(tmp_path) -> None:
    store = FakeStore()
    store.down = True
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=100, batch_max_age_s=0.05, queue_max_spans=150)
    w.start()
    w.submit(_rows(40))
    _wait(lambda: not w.store_up)
    for i in range(1, 10):  # more than queue_max_spans: the rest is kept on disk only
        w.submit(_rows(40, i * 40))
    store.down = False
    _wait(lambda: len(store.rows) == 400, 10)
    assert [r[0] for r in store.rows] == list(range(400))
    w.stop()


def test_crash_after_insert_before_ack_is_deduplicated(tmp_path) -> None:
    store = FakeStore()
    sp = Spool(tmp_path)
    w = Writer(sp, lambda: store, batch_max_spans=1000, batch_max_age_s=0.01)
    w.submit(_rows(30))
    w.submit(_rows(30, 30))
    # simulate: the plan was written and the insert happened, then kill -9 before the ack
    batch = list(w._q)
    w._insert = None  # not used; do the steps by hand
    sp.set_plan(batch[0].rec.seq, batch[-1].rec.seq)
    import hashlib

    token = hashlib.sha256(b"".join(e.digest for e in batch)).hexdigest()
    store.insert_otel_traces(_rows(30) + _rows(30, 30), dedup_token=token)
    sp.close()
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_spans=7, batch_max_age_s=0.01)  # other batch size
    assert w2.stats["replayed_spans"] == 60
    w2.start()
    _wait(lambda: w2.pending_spans == 0)
    assert len(store.rows) == 60 and store.attempts == 2
    w2.stop()


def test_torn_tail_and_restart(tmp_path) -> None:
    store = FakeStore()
    store.down = True
    w = Writer(Spool(tmp_path), lambda: store)
    w.submit(_rows(10))
    w.submit(_rows(10, 10))
    w.spool.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    with open(seg, "ab") as fh:
        fh.write(b"\x10\x00\x00\x00torn")  # a write the crash interrupted (never acknowledged)
    store.down = False
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_age_s=0.01)
    w2.start()
    _wait(lambda: len(store.rows) == 20)
    w2.stop()
    w3 = Writer(Spool(tmp_path), lambda: store)
    assert w3.pending_spans == 0  # acked: nothing to replay


def test_queue_full_and_spool_full(tmp_path) -> None:
    store = FakeStore()
    store.gate.clear()  # inserts block: the queue fills
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=10, batch_max_age_s=0.01, queue_max_spans=100)
    w.start()
    w.submit(_rows(60))
    with pytest.raises(QueueFull):
        w.submit(_rows(60, 60))
    store.gate.set()
    _wait(lambda: w.pending_spans == 0)
    w.stop()
    store.down = True
    w = Writer(Spool(tmp_path / "b", max_bytes=3000), lambda: store, batch_max_age_s=0.01)
    w.start()
    w.submit(_rows(10))
    _wait(lambda: not w.store_up)
    with pytest.raises(StoreUnavailable):
        for i in range(100):
            w.submit(_rows(10, i))
    w.stop()


def test_spooled_request_bodies_replay_as_the_same_rows(tmp_path) -> None:
    """submit(rows, body) spools the OTLP body, not the rows; a restart decodes it again to identical rows, and
    old marshal records in the same spool still replay."""
    import json

    from promptpulse.processor.receiver import decode

    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat m",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span, {**span, "spanId": "b7ad6b7169203332"}]}]}]})
    res = decode.decode_json(body.encode())
    store = FakeStore()
    store.down = True
    w = Writer(Spool(tmp_path), lambda: store)
    w.submit(_rows(3))  # marshal record
    w.submit(res.rows, body.encode(), is_json=True)  # body record
    w.spool.close()
    store.down = False
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_age_s=0.01)
    assert w2.stats["replayed_spans"] == 5
    w2.start()
    _wait(lambda: len(store.rows) == 5)
    w2.stop()
    assert store.rows[:3] == _rows(3) and store.rows[3:] == res.rows


class _TwoAtATime(FakeStore):
    """Takes two inserts at once; the first batch waits until the test lets it finish."""

    insert_concurrency = 2

    def __init__(self) -> None:
        super().__init__()
        self.first = threading.Event()
        self.running = 0
        self.most = 0

    def insert_otel_traces(self, rows, *, dedup_token=None) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if rows[0][0] == 0:
                self.first.wait(5)
            super().insert_otel_traces(rows, dedup_token=dedup_token)
        finally:
            self.running -= 1


def test_two_inserts_at_once_are_acked_in_spool_order(tmp_path) -> None:
    store = _TwoAtATime()
    sp = Spool(tmp_path)
    w = Writer(sp, lambda: store, batch_max_spans=50, batch_max_age_s=0.05)
    for i in range(4):  # all spooled before the writer starts: two full batches, however slow the fsyncs are
        w.submit(_rows(25, i * 25))
    w.start()
    _wait(lambda: len(store.rows) == 50)  # the second batch is in; the first still runs
    assert store.most == 2 and [r[0] for r in store.rows] == list(range(50, 100))
    assert sp.acked == 0 and sp.plans == [(1, 2), (3, 4)]  # nothing acked past the unfinished first batch
    assert json.loads((tmp_path / "checkpoint").read_text()) == {"acked": 0, "plans": [[1, 2], [3, 4]]}
    store.first.set()
    _wait(lambda: w.pending_spans == 0)
    assert sorted(r[0] for r in store.rows) == list(range(100)) and w.stats["inserted_batches"] == 2
    assert sp.acked == 4 and sp.plans == []
    w.stop()


def test_crash_with_two_batches_planned_replays_both_with_their_tokens(tmp_path) -> None:
    import hashlib

    store = FakeStore()
    sp = Spool(tmp_path)
    w = Writer(sp, lambda: store, batch_max_spans=1000)
    for i in range(4):
        w.submit(_rows(10, i * 10))
    q = list(w._q)
    sp.set_plan(1, 2)
    sp.set_plan(3, 4)
    token = hashlib.sha256(b"".join(e.digest for e in q[2:])).hexdigest()
    store.insert_otel_traces(_rows(20, 20), dedup_token=token)  # the second batch made it in, then kill -9
    sp.close()
    w2 = Writer(Spool(tmp_path), lambda: store, batch_max_spans=7, batch_max_age_s=0.01)  # other batch size
    assert w2.spool.plans == [(1, 2), (3, 4)] and w2.stats["replayed_spans"] == 40
    w2.start()
    _wait(lambda: w2.pending_spans == 0)
    assert sorted(r[0] for r in store.rows) == list(range(40)) and store.attempts == 3
    w2.stop()


def test_an_old_checkpoint_with_one_plan_still_replays_it(tmp_path) -> None:
    sp = Spool(tmp_path)
    for i in range(3):
        sp.append(marshal.dumps((1, _rows(1, i))))
    sp.sync(3)
    sp.close()
    (tmp_path / "checkpoint").write_text(json.dumps({"acked": 1, "plan": [2, 3]}))
    assert Spool(tmp_path).plans == [(2, 3)]


def test_the_tail_of_a_burst_is_inserted_without_waiting_for_the_age_limit(tmp_path) -> None:
    store = FakeStore()
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=100, batch_max_age_s=3.0)
    w.start()
    t0 = time.monotonic()
    w.submit(_rows(60))
    w.submit(_rows(60, 60))  # does not fit: the first batch (60) goes now, full
    _wait(lambda: len(store.rows) == 120)  # the tail (60) once the receivers are quiet for 3.0 / 20 s
    assert time.monotonic() - t0 < 2.0 and w.stats["inserted_batches"] == 2
    w.submit(_rows(10, 120))  # steady low traffic after that: batched by age again
    time.sleep(1.0)
    assert len(store.rows) == 120
    _wait(lambda: len(store.rows) == 130)
    w.stop()


def test_request_bodies_only_for_a_store_that_decodes_them(tmp_path) -> None:
    def down() -> FakeStore:
        raise ConnectionError("not yet")

    assert Writer(Spool(tmp_path / "a"), FakeStore).takes_request_bodies() is False
    assert Writer(Spool(tmp_path / "b"), down).takes_request_bodies() is False
    pytest.importorskip("chdb")
    from promptpulse.processor.store.embedded import EmbeddedStore

    embedded = EmbeddedStore(tmp_path / "data")
    up = [False]

    def later() -> EmbeddedStore:  # not reachable at first, then the embedded store
        if not up[0]:
            raise ConnectionError("not yet")
        return embedded

    w = Writer(Spool(tmp_path / "c"), later)
    assert w.takes_request_bodies() is False  # unknown yet: Python decoding, and not remembered
    up[0] = True
    assert w.takes_request_bodies() is True
    embedded.close()


def test_a_full_queue_waits_briefly_for_room_before_429(tmp_path) -> None:
    store = FakeStore()
    store.gate.clear()
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=10, batch_max_age_s=0.01, queue_max_spans=100,
               queue_wait_s=2.0)
    w.start()
    w.submit(_rows(60))
    threading.Timer(0.3, store.gate.set).start()  # the inserts catch up within the wait
    t0 = time.monotonic()
    w.submit(_rows(60, 60))
    assert 0.2 < time.monotonic() - t0 < 2.0 and w.stats["rejected_queue_full"] == 0
    _wait(lambda: len(store.rows) == 120)
    w.stop()
