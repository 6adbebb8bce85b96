"""Write-ahead spool: every accepted OTLP batch is on disk (fsync'd) before the exporter hears "accepted".

Layout of the spool directory::

    00000000000000000001.seg   segment files, named by the sequence number of their first record
    checkpoint                 JSON {"acked": N, "plans": [[first, last], ...]}, replaced atomically
    digests                    SHA-256 digests (32 bytes each) of the last records before the newest deletion

A segment is a sequence of records ``<u32 length><u32 crc32(payload)><u64 seq>`` + payload (little endian); the
payload is the writer's (``marshal``-encoded rows). Sequence numbers increase by one per record. ``acked`` is the
last sequence number known to be inserted into the store; ``plans`` are the batches the writer is inserting right now
(or has inserted while an earlier one is still running), each written before its insert so a restart replays exactly
those batches again with the same dedup tokens (an older checkpoint's single ``plan`` reads as one).
Segments whose records are all acked are deleted. A torn record at the tail (crash during a write, so never
acknowledged to an exporter) is truncated on open. Limits: ``max_bytes`` of segment files in total (the writer
answers 503/429 beyond it), ``segment_bytes`` per segment before rotation (at most a quarter of ``max_bytes``, so
acked segments can always be deleted before the spool is full).

:attr:`Spool.recent` holds the payload digests of the last ``recent_max`` records (from ``digests`` and the segments
at open, then every append): the writer drops a request whose body it has accepted already, so an exporter that
resends after a reset connection (e.g. the processor killed before it answered) is stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .durable import fsync_dir, write_atomic

_HDR = struct.Struct("<IIQ")


@dataclass
class Record:
    seq: int
    segment: Path
    offset: int  # of the payload
    length: int


class Spool:
    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20,
                 fsync: bool = True, recent_max: int = 16384) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # rotate early enough that fully acked segments can be deleted before the spool is full
        self.segment_bytes = max(1, min(segment_bytes, max_bytes // 4))
        self.recent: deque[bytes] = deque(maxlen=recent_max)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._ck_lock = threading.Lock()
        self._fd: int | None = None
        self._seg_path: Path | None = None
        self._seg_size = 0
        self._segments: list[tuple[int, Path]] = []  # (first seq, path), in order
        self.written_seq = 0
        self.synced_seq = 0
        self.fsyncs = 0
        self._read_digests()
        ck = self._read_checkpoint()
        self.acked: int = ck.get("acked", 0)
        plans = ck.get("plans") or ([ck["plan"]] if ck.get("plan") else [])
        self.plans: list[tuple[int, int]] = sorted((int(f), int(la)) for f, la in plans if la > self.acked)
        self.recovered: list[Record] = self._scan()
        self.bytes = sum(p.stat().st_size for _, p in self._segments)
        self.written_seq = self.synced_seq = max([self.acked] + [r.seq for r in self.recovered])

    # --- open / recovery ----------------------------------------------------------------------------------------
    def _read_checkpoint(self) -> dict:
        try:
            return json.loads((self.path / "checkpoint").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _read_digests(self) -> None:
        try:
            data = (self.path / "digests").read_bytes()
        except FileNotFoundError:
            return
        self.recent.extend(data[i:i + 32] for i in range(0, len(data) - len(data) % 32, 32))

    def _write_digests(self) -> None:  # caller holds _lock: before segments (and their digests) are deleted
        write_atomic(self.path / "digests", b"".join(self.recent), fsync=self.fsync)

    def _scan(self) -> list[Record]:
        out: list[Record] = []
        for p in sorted(self.path.glob("*.seg")):
            first = int(p.stem)
            data = p.read_bytes()
            i = 0
            last = first - 1
            while i + _HDR.size <= len(data):
                n, crc, seq = _HDR.unpack_from(data, i)
                j = i + _HDR.size + n
                if j > len(data) or zlib.crc32(data[i + _HDR.size:j]) != crc:
                    break
                self.recent.append(hashlib.sha256(data[i + _HDR.size:j]).digest())
                if seq > self.acked:
                    out.append(Record(seq, p, i + _HDR.size, n))
                last = seq
                i = j
            if i < len(data):  # torn tail: never acknowledged
                with open(p, "r+b") as fh:
                    fh.truncate(i)
                    os.fsync(fh.fileno())
            if last < first or last <= self.acked:
                p.unlink()
            else:
                self._segments.append((first, p))
        return out

    # --- writing ------------------------------------------------------------------------------------------------
    def full(self, nbytes: int) -> bool:
        return self.bytes + nbytes > self.max_bytes

    def append(self, payload: bytes, digest: bytes | None = None) -> Record:
        """Append one record (not yet durable: call sync(rec.seq)). Caller keeps ordering (see Writer.submit).
        ``digest``: sha256(payload), when the caller has it already."""
        with self._lock:
            self.recent.append(digest or hashlib.sha256(payload).digest())
            seq = self.written_seq + 1
            if self._fd is None or self._seg_size >= self.segment_bytes:
                self._rotate(seq)
            rec = _HDR.pack(len(payload), zlib.crc32(payload), seq) + payload
            os.write(self._fd, rec)
            out = Record(seq, self._seg_path, self._seg_size + _HDR.size, len(payload))  # type: ignore[arg-type]
            self._seg_size += len(rec)
            self.bytes += len(rec)
            self.written_seq = seq
            return out

    def _rotate(self, first_seq: int) -> None:
        if self._fd is not None:
            if self.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
        p = self.path / f"{first_seq:020d}.seg"
        self._fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._seg_path, self._seg_size = p, 0
        self._segments.append((first_seq, p))
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        if self.fsync:
            fsync_dir(self.path)

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` is on disk. Concurrent callers share one fsync (group commit)."""
        if self.synced_seq >= seq:
            return
        with self._sync_lock:
            if self.synced_seq >= seq:
                return
            with self._lock:
                target, fd = self.written_seq, self._fd
            if self.fsync and fd is not None:
                os.fsync(fd)
                self.fsyncs += 1
            self.synced_seq = max(self.synced_seq, target)

    # --- reading / acking ---------------------------------------------------------------------------------------
    def read(self, rec: Record) -> bytes:
        with open(rec.segment, "rb") as fh:
            fh.seek(rec.offset)
            return fh.read(rec.length)

    def _write_checkpoint(self) -> None:  # caller holds _ck_lock
        doc = {"acked": self.acked, "plans": [list(p) for p in self.plans]}
        write_atomic(self.path / "checkpoint", json.dumps(doc).encode(), fsync=self.fsync)

    def set_plan(self, first: int, last: int) -> None:
        """Record a batch about to be inserted (kept until ``ack`` passes its last record)."""
        with self._ck_lock:
            if (first, last) not in self.plans:
                self.plans = sorted([*self.plans, (first, last)])
            self._write_checkpoint()

    def ack(self, last: int) -> None:
        """Records up to ``last`` are in the store: checkpoint and drop fully acked segments."""
        with self._ck_lock:
            self.acked = max(self.acked, last)
            self.plans = [p for p in self.plans if p[1] > self.acked]
            self._write_checkpoint()
        with self._lock:
            drop = []
            while len(self._segments) > 1 and self._segments[1][0] <= self.acked + 1:
                drop.append(self._segments.pop(0)[1])
            if (self._segments and self.written_seq == self.acked
                    and (self._fd is None or self.bytes >= self.segment_bytes // 4 or self.full(0))):
                # everything acked: delete the rest too — always when no segment is open (recovered at start),
                # else once it is big (an idle spool keeps its small open segment rather than churn files)
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                drop += [p for _, p in self._segments]
                self._segments.clear()
            if drop:
                self._write_digests()
            for p in drop:
                self.bytes -= p.stat().st_size
                p.unlink()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if self.fsync:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
