"""Writer: accepted spans → spool (write-ahead, fsync'd) → batches by size and age → store, exactly once.

``submit(rows)`` returns only when the rows are durably spooled, so an exporter told "accepted" never loses them,
even to kill -9. A background thread forms batches of consecutive spool records, records the batch plan in the
spool checkpoint, inserts it with a deterministic dedup token (SHA-256 over the records' payload digests) and then
acks it. When the store fails the batch stays, the store is marked down and the same batch is retried with the same
token (backoff 0.2 s → 5 s); meanwhile new requests keep being spooled until the spool is full. After a crash the
spool replays unacked records in order, the in-flight plan first, with the same tokens: ClickHouse drops a batch
that had been inserted already (insert_deduplication_token, also for the materialized views).
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .spool import Record, Spool
from .store.native import SpanColumns, encode_otel_traces

log = logging.getLogger(__name__)


# Spool payloads: marshal((n, rows)) (its first byte is a marshal type code, never 0x01), or a request body:
# 0x01, b"P" (protobuf) / b"J" (OTLP/JSON), u32 span count, the body as received (decompressed).
_BODY_PB = b"\x01P"
_BODY_JSON = b"\x01J"
_U32 = struct.Struct("<I")


def _payload_count(payload: bytes) -> int:
    if payload[:1] == b"\x01":
        return _U32.unpack_from(payload, 2)[0]
    return marshal.loads(payload)[0]


def _payload_rows(payload: bytes) -> list:
    if payload[:1] != b"\x01":
        return marshal.loads(payload)[1]
    from .receiver import decode

    body = payload[6:]
    res = decode.decode_json(body) if payload[1:2] == b"J" else decode.decode_protobuf(body)
    if len(res.rows) != _U32.unpack_from(payload, 2)[0]:
        raise RuntimeError("spooled request decodes to a different span count")  # never: decoding is deterministic
    return res.rows


class QueueFull(Exception):
    """Too many accepted spans wait for the store (→ 429 / RESOURCE_EXHAUSTED, retry later)."""


class StoreUnavailable(Exception):
    """The store is down and the spool is full (→ 503 / UNAVAILABLE)."""


@dataclass
class _Entry:
    rec: Record
    nspans: int
    digest: bytes
    rows: list | None
    t: float


class Histogram:
    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        i = 0
        while i < len(self.BUCKETS) and v > self.BUCKETS[i]:
            i += 1
        self.counts[i] += 1
        self.sum += v
        self.count += 1


class Writer:
    def __init__(self, spool: Spool, get_store: Callable[[], Any], *, batch_max_spans: int = 20_000,
                 batch_max_age_s: float = 1.0, queue_max_spans: int = 100_000,
                 reorder: list[int] | None = None) -> None:
        self.spool = spool
        self._get_store = get_store  # returns a Store or raises (store down)
        self.batch_max_spans = batch_max_spans
        self.batch_max_age_s = batch_max_age_s
        self.queue_max_spans = queue_max_spans
        self._reorder = reorder
        # insert SpanColumns batches as Native blocks when the store can (PROMPTPULSE_NATIVE_INSERT=0: rows)
        self.native = os.environ.get("PROMPTPULSE_NATIVE_INSERT", "1") != "0"
        self._q: deque[_Entry] = deque()
        self._cv = threading.Condition()
        self._submit_lock = threading.Lock()
        self.pending_spans = 0
        self.mem_spans = 0
        self.store_up = True
        self._stopping = False
        self._force = False
        self._thread: threading.Thread | None = None
        self.stats = {"inserted_spans": 0, "inserted_batches": 0, "insert_failures": 0, "spooled_spans": 0,
                      "replayed_spans": 0, "rejected_queue_full": 0, "rejected_spool_full": 0}
        self.insert_latency = Histogram()
        self._plan = spool.plan
        now = time.monotonic()
        for rec in spool.recovered:  # replay what a previous process accepted but had not inserted
            payload = spool.read(rec)
            n = _payload_count(payload)
            self._q.append(_Entry(rec, n, hashlib.sha256(payload).digest(), None, now))
            self.pending_spans += n
            self.stats["replayed_spans"] += n

    # --- accepting ------------------------------------------------------------------------------------------------
    def submit(self, rows: list, body: bytes | None = None, *, is_json: bool = False) -> None:
        """Durably accept rows (decode.COLUMNS order) or raise QueueFull / StoreUnavailable.

        With ``body`` (the OTLP request the rows were decoded from) the spool keeps the body itself instead of
        the marshalled rows: no serialisation on the request path, and a replay decodes it again (decoding is
        deterministic, so the rows and the batch's dedup token are the same)."""
        n = len(rows)
        if not n:
            return
        if body is not None:
            payload = b"".join((_BODY_JSON if is_json else _BODY_PB, _U32.pack(n), body))
        else:
            payload = marshal.dumps((n, rows))
        with self._submit_lock:
            if self.spool.full(len(payload)):
                if self.store_up:
                    self.stats["rejected_queue_full"] += 1
                    raise QueueFull("spool full")
                self.stats["rejected_spool_full"] += 1
                raise StoreUnavailable("store unavailable and spool full")
            if self.store_up and self.pending_spans + n > self.queue_max_spans and self.pending_spans > 0:
                self.stats["rejected_queue_full"] += 1
                raise QueueFull("queue full")
            rec = self.spool.append(payload)
            keep = self.mem_spans + n <= self.queue_max_spans  # beyond that, replay reads it back from disk
            e = _Entry(rec, n, hashlib.sha256(payload).digest(), rows if keep else None, time.monotonic())
            with self._cv:
                self._q.append(e)
                self.pending_spans += n
                if keep:
                    self.mem_spans += n
        self.spool.sync(rec.seq)
        if not self.store_up:
            self.stats["spooled_spans"] += n
        with self._cv:
            self._cv.notify()

    # --- the insert loop ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promptpulse-writer", daemon=True)
        self._thread.start()

    def _ready(self) -> list[_Entry]:
        """Entries for the next batch (caller holds _cv), or [] when it is not time yet."""
        synced = self.spool.synced_seq
        if not self._q or self._q[0].rec.seq > synced:
            return []
        if self._plan:
            _first, last = self._plan
            out = []
            for e in self._q:
                if e.rec.seq > last or e.rec.seq > synced:
                    break
                out.append(e)
            return out if out and out[-1].rec.seq == last else []
        total = 0
        out = []
        for e in self._q:
            if e.rec.seq > synced or (out and total + e.nspans > self.batch_max_spans):
                break
            out.append(e)
            total += e.nspans
        if total >= self.batch_max_spans or self._stopping or self._force or not self.store_up:
            return out
        if time.monotonic() - out[0].t >= self.batch_max_age_s:
            return out
        return []

    def _run(self) -> None:
        backoff = 0.2
        while True:
            with self._cv:
                while True:
                    batch = self._ready()
                    if batch or (self._stopping and not self._q):
                        break
                    if self._stopping and not self.store_up:
                        return
                    self._cv.wait(0.05 if self._q else 0.5)
                if not batch:
                    return
            try:
                self._insert(batch)
            except Exception as exc:  # store down: keep the batch (it is spooled) and retry the same batch
                self.stats["insert_failures"] += 1
                if self.store_up:
                    log.warning("store insert failed, spooling until it returns: %s", exc)
                self.store_up = False
                if self._stopping:
                    return  # shutting down with the store down: everything stays in the spool for the next start
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if not self.store_up:
                log.warning("store is back; replaying the spool")
            self.store_up = True
            with self._cv:
                for _ in batch:
                    e = self._q.popleft()
                    self.pending_spans -= e.nspans
                    if e.rows is not None:
                        self.mem_spans -= e.nspans
                self._cv.notify_all()

    def _insert(self, batch: list[_Entry]) -> None:
        first, last = batch[0].rec.seq, batch[-1].rec.seq
        token = hashlib.sha256(b"".join(e.digest for e in batch)).hexdigest()
        for e in batch:
            if e.rows is None:
                e.rows = _payload_rows(self.spool.read(e.rec))
                self.mem_spans += e.nspans
        store = self._get_store()
        native = getattr(store, "insert_otel_traces_native", None) if self.native else None
        if native is not None and all(isinstance(e.rows, SpanColumns) for e in batch):
            # the decoder's column pieces → one Native block, inserted as is (no per-row re-encoding)
            data = encode_otel_traces([e.rows for e in batch])
            nrows = sum(e.nspans for e in batch)

            def insert() -> None:
                native(data, dedup_token=token)
        else:
            rows = []
            for e in batch:
                rows.extend(e.rows)  # a SpanColumns yields its rows (decoded again from the body)
            if self._reorder:
                idx = self._reorder
                rows = [[r[i] for i in idx] for r in rows]
            nrows = len(rows)

            def insert() -> None:
                store.insert_otel_traces(rows, dedup_token=token)
        if self._plan != (first, last):
            self.spool.set_plan(first, last)
            self._plan = (first, last)
        t0 = time.perf_counter()
        insert()
        self.insert_latency.observe(time.perf_counter() - t0)
        self.spool.ack(last)
        self._plan = None
        self.stats["inserted_spans"] += nrows
        self.stats["inserted_batches"] += 1

    # --- shutdown -------------------------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything accepted so far is inserted (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            self._force = True
            try:
                target = self.spool.written_seq
                while self._q and self._q[0].rec.seq <= target:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cv.notify_all()
                    self._cv.wait(min(left, 0.05))
            finally:
                self._force = False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread:
            self._thread.join(timeout)
        self.spool.close()
