"""Dead letters: accepted requests the store refused because of their content, kept so nothing is lost.

The writer moves a request here when an insert fails for a reason about the data (the batch is split until the bad
request is alone, every other request is stored) and then acks it, so bad data never blocks the queue. Each letter is
two files in the dead-letter directory (default ``<spool dir>/deadletter``), written atomically and fsync'd before
the ack::

    <id>.json   {"id", "time", "seq", "spans", "kind": "protobuf" | "json" | "rows", "digest", "error", "path"}
    <id>.bin    the spool payload as it was accepted (the request body, decompressed)

``promptpulse deadletter list|show|replay|purge`` reads them; ``replay`` inserts a letter again (after a fix or an
upgrade) with the same dedup token the writer would have used, so replaying twice stores it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durable import fsync_dir, write_atomic


def payload_kind(payload: bytes) -> tuple[str, str]:
    """(encoding "protobuf" / "json" / "rows", OTLP/HTTP path) of a spool payload (processor.writer's format)."""
    if payload[:1] != b"\x01":
        return "rows", "/v1/traces"
    kind = payload[1:2]
    if kind in (b"P", b"J"):
        return ("json" if kind == b"J" else "protobuf"), "/v1/traces"
    from .receiver.signals import BY_KIND

    sig, is_json = BY_KIND[kind]
    return ("json" if is_json else "protobuf"), sig.path


@dataclass
class Letter:
    id: str
    time: str
    seq: int
    spans: int
    kind: str
    digest: str
    error: str
    path: str = "/v1/traces"  # where `replay` sends it

    @property
    def token(self) -> str:
        """The dedup token of this request inserted on its own (Writer._insert of a one-request batch)."""
        return hashlib.sha256(bytes.fromhex(self.digest)).hexdigest()


class DeadLetters:
    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def add(self, seq: int, payload: bytes, spans: int, error: str) -> Letter:
        """Keep ``payload`` durably (returns once it is on disk)."""
        self.path.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(payload).hexdigest()
        now = dt.datetime.now(dt.timezone.utc)
        kind, path = payload_kind(payload)
        letter = Letter(f"{now:%Y%m%dT%H%M%S}-{seq:012d}-{digest[:12]}", now.isoformat(timespec="seconds"), seq,
                        spans, kind, digest, error[:4000], path)
        write_atomic(self.path / f"{letter.id}.bin", payload, fsync=self.fsync)
        # last: a letter exists once it is listed
        write_atomic(self.path / f"{letter.id}.json", json.dumps(letter.__dict__).encode(), fsync=self.fsync)
        if self.fsync:
            fsync_dir(self.path)
        return letter

    def list(self) -> list[Letter]:
        if not self.path.is_dir():
            return []
        out = []
        for p in sorted(self.path.glob("*.json")):
            try:
                out.append(Letter(**json.loads(p.read_text())))
            except (ValueError, TypeError):
                continue  # not ours
        return out

    def get(self, letter_id: str) -> Letter:
        p = self.path / f"{letter_id}.json"
        if "/" in letter_id or "\\" in letter_id or not p.is_file():
            raise KeyError(f"no dead letter {letter_id!r} in {self.path}")
        return Letter(**json.loads(p.read_text()))

    def payload(self, letter: Letter) -> bytes:
        return (self.path / f"{letter.id}.bin").read_bytes()

    def remove(self, letter: Letter) -> None:
        for ext in (".json", ".bin"):
            (self.path / f"{letter.id}{ext}").unlink(missing_ok=True)

    def stats(self) -> dict[str, Any]:
        letters = self.list()
        return {"letters": len(letters), "spans": sum(x.spans for x in letters)}
