"""Writer: accepted spans → spool (write-ahead, fsync'd) → batches by size and age → store, exactly once.

``submit(rows)`` returns only when the rows are durably spooled, so an exporter told "accepted" never loses them,
even to kill -9. A background thread forms batches of consecutive spool records, records each batch's plan in the
spool checkpoint, inserts it with a deterministic dedup token (SHA-256 over the records' payload digests) and acks
it. Up to ``insert_workers`` batches (default: the store's ``insert_concurrency``; the embedded store takes two, one
per core) are inserted at once; a finished batch is acked only when every earlier one is, so the spool's ack stays a
prefix. When the store fails the batch stays, the store is marked down and the same batch is retried with the same
token (backoff 0.2 s → 5 s, one batch at a time); meanwhile new requests keep being spooled until the spool is full.
After a crash the spool replays unacked records in order, the planned batches first exactly as planned, with the
same tokens: ClickHouse drops a batch that had been inserted already (insert_deduplication_token, also for the
materialized views). A batch that mixes decode paths (engine-decoded request bodies, Native column pieces, rows)
is inserted as one insert per path, each with the batch token plus the path's name.

Bad data never blocks the queue: when an insert fails while the store answers (ping) and the error is not one of
the store's own (connection, timeout, memory, too many parts, missing table: :data:`STORE_ERROR_CODES`), the batch is
split in halves, each inserted with its own token, until the request that fails is alone; it is tried once more and
then moved to the dead-letter directory (processor.deadletter) with its error, and acked. A replay after a crash
mid-split inserts the planned batch, which fails the same way and splits the same way: the halves already stored
are dropped by their tokens. A store that is down stays a retry of the whole batch.

A request whose body was accepted already (its digest is among the spool's last records, processor.spool) is
answered "accepted" and not stored again: an exporter's retry after a reset connection is stored once.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from .deadletter import DeadLetters
from .receiver.decode_signal import SignalRows
from .receiver.engine_decode import EngineSpans
from .spool import Record, Spool
from .store.native import SpanColumns, encode_otel_traces

log = logging.getLogger(__name__)


# Spool payloads: marshal((n, rows)) (its first byte is a marshal type code, never 0x01), or a request body:
# 0x01, a kind byte, u32 item count, the body as received (decompressed). Kinds: b"P" / b"J" traces protobuf /
# OTLP/JSON; the other signals' (receiver.signals: b"M" / b"m" metrics, b"L" / b"l" logs).
_BODY_PB = b"\x01P"
_BODY_JSON = b"\x01J"
_TRACE_KINDS = (b"P", b"J")
_U32 = struct.Struct("<I")


def _payload_count(payload: bytes) -> int:
    if payload[:1] == b"\x01":
        return _U32.unpack_from(payload, 2)[0]
    return marshal.loads(payload)[0]


def _payload_rows(payload: bytes) -> list:
    if payload[:1] != b"\x01":
        return marshal.loads(payload)[1]
    from .receiver import decode, engine_decode

    body = payload[6:]
    kind = payload[1:2]
    if kind in _TRACE_KINDS:
        rows = (decode.decode_json(body) if kind == b"J" else engine_decode.decode_protobuf(body)).rows
    else:
        from .receiver import signals

        sig, is_json = signals.BY_KIND[kind]
        rows = sig.decode(body, is_json=is_json)
    if len(rows) != _U32.unpack_from(payload, 2)[0]:
        raise RuntimeError("spooled request decodes to a different count")  # never: decoding is deterministic
    return rows


def _payload_signal(payload: bytes) -> str:
    """The payload's signal: "traces", else a metrics / logs body's signal name (the insert counters')."""
    if payload[:1] != b"\x01" or payload[1:2] in _TRACE_KINDS:
        return "traces"
    from .receiver import signals

    return signals.BY_KIND[payload[1:2]][0].name


# ClickHouse error codes that are about the store, not the data: the batch is retried as it is
STORE_ERROR_CODES = frozenset({
    3,  # UNEXPECTED_END_OF_FILE (a connection cut mid-answer)
    16, 47, 60, 81,  # NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_IDENTIFIER, UNKNOWN_TABLE, UNKNOWN_DATABASE: schema not there
    74, 75, 76, 159, 164, 202, 203, 209, 210, 236, 241, 242, 243, 252, 285, 286, 319, 394, 425, 497, 516,
    999, 1000,
})
# code 252 is also "too many parts" (merges behind: the store's problem); this one is the batch's days
_TOO_MANY_PARTITIONS = "Too many partitions for single INSERT block"
_CODE = re.compile(r"\bCode: (\d+)\b")


def store_error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in ``exc`` or its causes, if any."""
    e: BaseException | None = exc
    while e is not None:
        m = _CODE.search(str(e))
        if m:
            return int(m.group(1))
        e = e.__cause__ or e.__context__
    return None


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
    signal: str = "traces"


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
                 reorder: list[int] | None = None, insert_workers: int | None = None,
                 queue_wait_s: float = 1.0, dead_letters: DeadLetters | None = None, stall_after_s: float = 30.0
                 ) -> None:
        self.spool = spool
        self._get_store = get_store  # returns a Store or raises (store down)
        self.batch_max_spans = batch_max_spans
        self.batch_max_age_s = batch_max_age_s
        self.queue_max_spans = queue_max_spans
        self.queue_wait_s = queue_wait_s  # a request finding the queue full waits this long for room before 429
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
        # batches inserted at the same time (each its own token; completed ones are acked in spool order). None:
        # what the store says it takes (its insert_concurrency, learned at the first insert), else 1
        self.insert_workers = insert_workers
        self._inflight: list[list[Any]] = []  # [batch, done], in spool order
        self._ndispatched = 0  # entries at the head of _q that belong to _inflight batches
        self._pool: ThreadPoolExecutor | None = None
        self._store_workers = 0  # 0: not known yet
        self._burst = False  # the last batch was dispatched full
        self._bodies_ok: bool | None = None
        self.dead_letters = dead_letters or DeadLetters(spool.path / "deadletter", fsync=spool.fsync)
        self.stall_after_s = stall_after_s  # /readyz: pending work and no batch done for this long = stalled
        self._progress_t = time.monotonic()
        self.stats = {"inserted_spans": 0, "inserted_batches": 0, "insert_failures": 0, "spooled_spans": 0,
                      "replayed_spans": 0, "rejected_queue_full": 0, "rejected_spool_full": 0,
                      "deadletter_requests": 0, "deadletter_spans": 0, "split_inserts": 0,
                      "duplicate_requests": 0, "duplicate_spans": 0,
                      "inserted_metrics": 0, "inserted_logs": 0}  # data points, log records
        self._seen: dict[bytes, None] = dict.fromkeys(spool.recent)  # digests of the spool's last records
        for letter in self.dead_letters.list():  # but not the dead letters': replaying one must be tried again
            self._seen.pop(bytes.fromhex(letter.digest), None)
        self.insert_latency = Histogram()
        self._plans = list(spool.plans)  # recovered: replayed first, each exactly as planned
        now = time.monotonic()
        for rec in spool.recovered:  # replay what a previous process accepted but had not inserted
            payload = spool.read(rec)
            n = _payload_count(payload)
            self._q.append(_Entry(rec, n, hashlib.sha256(payload).digest(), None, now, _payload_signal(payload)))
            self.pending_spans += n
            self.stats["replayed_spans"] += n

    # --- accepting ------------------------------------------------------------------------------------------------
    def submit(self, rows: Any, body: bytes | None = None, *, is_json: bool = False,
               signal: Any = None) -> None:
        """Durably accept rows (decode.COLUMNS order) or raise QueueFull / StoreUnavailable.

        With ``body`` (the OTLP request the rows were decoded from) the spool keeps the body itself instead of
        the marshalled rows: no serialisation on the request path, and a replay decodes it again (decoding is
        deterministic, so the rows and the batch's dedup token are the same). ``signal`` (a receiver.signals
        Signal, with ``body``): ``rows`` is its decoder's SignalRows, whose len() is the item count."""
        n = len(rows)
        if not n:
            return
        if signal is not None:
            payload = b"".join((b"\x01", signal.kind(is_json), _U32.pack(n), body))
        elif body is not None:
            payload = b"".join((_BODY_JSON if is_json else _BODY_PB, _U32.pack(n), body))
        else:
            payload = marshal.dumps((n, rows))
        digest = hashlib.sha256(payload).digest()  # (outside the lock: hashing a body takes ~1 ms)
        if self.store_up and self.pending_spans + n > self.queue_max_spans and self.queue_wait_s > 0:
            # the inserts are behind: wait a little for room (they free a batch every few hundred ms) rather than
            # send the exporter away for Retry-After seconds at once
            deadline = time.monotonic() + self.queue_wait_s
            with self._cv:
                while self.store_up and self.pending_spans > 0 and self.pending_spans + n > self.queue_max_spans:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
        with self._submit_lock:
            if digest in self._seen:  # the same body again: a retry of a request we accepted (and answered late)
                self.stats["duplicate_requests"] += 1
                self.stats["duplicate_spans"] += n
                return
            if self.spool.full(len(payload)):
                if self.store_up:
                    self.stats["rejected_queue_full"] += 1
                    raise QueueFull("spool full")
                self.stats["rejected_spool_full"] += 1
                raise StoreUnavailable("store unavailable and spool full")
            if self.store_up and self.pending_spans + n > self.queue_max_spans and self.pending_spans > 0:
                self.stats["rejected_queue_full"] += 1
                raise QueueFull("queue full")
            rec = self.spool.append(payload, digest)
            self._seen[digest] = None
            if len(self._seen) > (self.spool.recent.maxlen or 0):
                del self._seen[next(iter(self._seen))]
            keep = self.mem_spans + n <= self.queue_max_spans  # beyond that, replay reads it back from disk
            e = _Entry(rec, n, digest, rows if keep else None, time.monotonic(),
                       signal.name if signal is not None else "traces")
            with self._cv:
                if not self._q:  # an idle writer gets work: the stall clock starts now, not at the last batch
                    self._progress_t = e.t
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
        """Entries for the next batch (caller holds _cv), or [] when it is not time yet: the entries after those
        already dispatched; a recovered plan exactly."""
        synced = self.spool.synced_seq
        q = self._q
        if len(q) <= self._ndispatched or q[self._ndispatched].rec.seq > synced:
            return []
        if self._plans:
            _first, last = self._plans[0]
            out = []
            for e in islice(q, self._ndispatched, None):
                if e.rec.seq > last or e.rec.seq > synced:
                    break
                out.append(e)
            return out if out and out[-1].rec.seq == last else []
        total = 0
        out = []
        full = False
        for e in islice(q, self._ndispatched, None):
            if e.rec.seq > synced:
                break
            if out and total + e.nspans > self.batch_max_spans:
                full = True  # the next request does not fit: this batch cannot grow (not: wait for the age limit)
                break
            out.append(e)
            total += e.nspans
        if full or total >= self.batch_max_spans:
            self._burst = True
            return out
        if self._stopping or self._force or not self.store_up:
            return out
        now = time.monotonic()
        if now - out[0].t >= self.batch_max_age_s:
            self._burst = False
            return out
        if self._burst and now - self._q[-1].t >= self.batch_max_age_s / 20:
            # the tail of a burst (the last batch was full, then the receivers went quiet): insert it now rather
            # than after batch_max_age_s; steady low traffic never fills a batch and still batches by age
            self._burst = False
            return out
        return []

    def _run(self) -> None:
        """Dispatch batches in spool order, up to insert_workers at a time (while the store is down: one, retried)."""
        while True:
            with self._cv:
                while True:
                    if self._stopping and (not self.store_up or len(self._q) == self._ndispatched):
                        while self._inflight and self.store_up:  # let the running inserts finish
                            self._cv.wait(0.05)
                        if not self._inflight or not self.store_up:
                            return
                    batch: list[_Entry] = []
                    if len(self._inflight) < (self._workers() if self.store_up else 1):
                        batch = self._ready()
                    if batch:
                        break
                    self._cv.wait(0.05 if self._q else 0.5)
                workers = self._workers()
                if self._plans:
                    self._plans.pop(0)
                self._ndispatched += len(batch)
                slot = [batch, False]
                self._inflight.append(slot)
            if workers == 1:
                self._work(slot)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="promptpulse-insert")
                self._pool.submit(self._work, slot)

    def takes_request_bodies(self) -> bool:
        """Whether the store inserts request bodies the engine decodes (receiver.engine_decode): the receivers then
        check bodies for that path; otherwise (a ClickHouse server, the store not reachable yet) they decode in
        Python right away."""
        if self._bodies_ok is None:
            try:
                self._bodies_ok = getattr(self._get_store(), "insert_otel_traces_otlp", None) is not None
            except Exception:
                return False
        return self._bodies_ok

    def _workers(self) -> int:
        if self.insert_workers:
            return self.insert_workers
        if not self._store_workers:
            try:
                self._store_workers = max(1, int(getattr(self._get_store(), "insert_concurrency", 1)))
            except Exception:  # store not reachable yet: one at a time until it is
                return 1
        return self._store_workers

    def _work(self, slot: list[Any]) -> None:
        """Insert one batch, retrying it (same token) while the store is down, isolating bad requests when it is
        up; then ack what is done in order."""
        batch = slot[0]
        backoff = 0.2
        split = False  # once split, a retry goes on splitting (the halves have their own tokens)
        while True:
            try:
                if split:
                    self._isolate(batch)
                else:
                    self._insert(batch, plan=True)
                break
            except Exception as exc:
                self.stats["insert_failures"] += 1
                if not split and self._about_data(exc):
                    log.warning("insert of %d request(s) failed on their data, isolating the bad one: %s",
                                len(batch), _short(exc))
                    split = True
                    continue
                if self.store_up:  # store down: keep the batch (it is spooled) and retry the same batch
                    log.warning("store insert failed, spooling until it returns: %s", _short(exc))
                self.store_up = False
                if self._stopping:
                    return  # shutting down with the store down: everything stays in the spool for the next start
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if not self.store_up:
            log.warning("store is back; replaying the spool")
        self.store_up = True
        ack = 0
        with self._cv:
            slot[1] = True
            while self._inflight and self._inflight[0][1]:
                done = self._inflight.pop(0)[0]
                for _ in done:
                    e = self._q.popleft()
                    self.pending_spans -= e.nspans
                    if e.rows is not None:
                        self.mem_spans -= e.nspans
                self._ndispatched -= len(done)
                ack = done[-1].rec.seq
            self._progress_t = time.monotonic()
            self._cv.notify_all()
        if ack:
            self.spool.ack(ack)  # monotonic: a later ack that overtakes this one only moves it further

    def _about_data(self, exc: BaseException) -> bool:
        """Whether a failed insert failed on its data: not a store error code, and the store answers."""
        code = store_error_code(exc)
        if code in STORE_ERROR_CODES and not (code == 252 and _TOO_MANY_PARTITIONS in str(exc)):
            return False
        try:
            return bool(self._get_store().ping())
        except Exception:
            return False

    def _isolate(self, batch: list[_Entry]) -> None:
        """Insert ``batch`` in halves until each failing request is alone, then dead-letter it. Raises when the
        store goes down meanwhile (the caller retries; halves already in are dropped by their tokens)."""
        if len(batch) == 1:
            try:  # once more on its own: a passing hiccup must not dead-letter good data
                self._insert(batch)
            except Exception as exc:
                if not self._about_data(exc):
                    raise
                self._dead_letter(batch[0], exc)
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            self.stats["split_inserts"] += 1
            try:
                self._insert(half)
            except Exception as exc:
                if not self._about_data(exc):
                    raise
                self._isolate(half)

    def _dead_letter(self, e: _Entry, exc: BaseException) -> None:
        letter = self.dead_letters.add(e.rec.seq, self.spool.read(e.rec), e.nspans, f"{type(exc).__name__}: {exc}")
        with self._submit_lock:  # forget the body: a replay of the letter (or a resend) is tried again
            self._seen.pop(e.digest, None)
        with self._cv:
            self.stats["deadletter_requests"] += 1
            self.stats["deadletter_spans"] += e.nspans
        log.error("request of %d span(s) moved to the dead letters as %s (see `promptpulse deadletter`): %s",
                  e.nspans, letter.id, _short(exc))

    def stalled_s(self) -> float:
        """Seconds since the last batch was done, or since work arrived at an idle writer, while work is pending
        (0 when idle)."""
        with self._cv:
            return time.monotonic() - self._progress_t if self._q else 0.0

    def stalled(self) -> bool:
        return self.stalled_s() > self.stall_after_s

    def _insert(self, batch: list[_Entry], *, plan: bool = False) -> None:
        """Insert ``batch`` with its token; ``plan``: a dispatched batch, recorded in the spool checkpoint first
        (the halves of a split are not: a replay splits the planned batch again the same way)."""
        first, last = batch[0].rec.seq, batch[-1].rec.seq
        token = hashlib.sha256(b"".join(e.digest for e in batch)).hexdigest()
        for e in batch:
            if e.rows is None:
                e.rows = _payload_rows(self.spool.read(e.rec))
                with self._cv:
                    self.mem_spans += e.nspans
        store = self._get_store()
        groups = self._groups(store, batch)
        if plan:
            self.spool.set_plan(first, last)
        t0 = time.perf_counter()
        for kind, run in groups:
            # one group keeps the batch token; a mixed batch gives each group its own (deterministic) token, so a
            # retry after a partial failure drops the groups already inserted
            run(token if len(groups) == 1 else f"{token}-{kind}")
        self.insert_latency.observe(time.perf_counter() - t0)
        with self._cv:
            for e in batch:
                self.stats["inserted_spans" if e.signal == "traces" else f"inserted_{e.signal}"] += e.nspans
            self.stats["inserted_batches"] += 1

    def _groups(self, store: Any, batch: list[_Entry]) -> list[tuple[str, Callable[[str], None]]]:
        """The batch's inserts by path: request bodies the engine decodes (EngineSpans, embedded store), Native
        blocks of the Python decoder's column pieces, and rows (OTLP/JSON, marshalled rows, or a store without
        the faster paths); metrics and logs (SignalRows): one insert per target table, named after it."""
        otlp = getattr(store, "insert_otel_traces_otlp", None)
        native = getattr(store, "insert_otel_traces_native", None) if self.native else None
        bodies: list[bytes] = []
        cols: list[SpanColumns] = []
        rows: list = []
        tables: dict[str, list] = {}
        for e in batch:
            r = e.rows
            if isinstance(r, SignalRows):
                for table, trows in r.tables.items():
                    tables.setdefault(table, []).extend(trows)
                continue
            if isinstance(r, EngineSpans):
                if otlp is not None:
                    bodies.append(r.body)
                    continue
                if native is not None:
                    cols.append(r.columns())
                    continue
            if isinstance(r, SpanColumns) and native is not None:
                cols.append(r)
            else:
                rows.extend(r)  # a SpanColumns / EngineSpans yields its rows (decoded again from the body)
        out: list[tuple[str, Callable[[str], None]]] = []
        if bodies:
            out.append(("otlp", lambda tok: otlp(bodies, dedup_token=tok)))
        if cols:
            data = encode_otel_traces(cols)
            out.append(("native", lambda tok: native(data, dedup_token=tok)))
        if rows:
            if self._reorder:
                idx = self._reorder
                rows = [[r[i] for i in idx] for r in rows]
            out.append(("rows", lambda tok: store.insert_otel_traces(rows, dedup_token=tok)))
        if tables:
            from .receiver.signals import TABLE_COLUMNS

            for table in sorted(tables):  # (sorted: the same groups, hence tokens, at a replay)
                out.append((table, lambda tok, t=table: store.insert_rows(t, TABLE_COLUMNS[t], tables[t],
                                                                          dedup_token=tok)))
        return out

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
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self.spool.close()


def _short(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:500]
