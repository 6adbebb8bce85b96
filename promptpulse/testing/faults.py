"""Injected failures: HTTP errors, hangs past the client timeout, streams cut mid-way.

A fault comes from (first match wins) the ``x-fake-fault`` request header, the programmatic queue
(``Scenario.faults`` / ``FakeProvider.fail_next``), or a random draw (``Scenario.fault_rate``).

Header syntax, comma-separated per attempt: ``429``, ``500:0.01`` (status, retry-after seconds),
``timeout`` / ``timeout:5`` (sleep seconds, then drop the connection), ``cut`` / ``cut:3`` (close after N
stream events, without the final usage / [DONE] / message_stop), ``ok``.  ``500,500,ok`` fails the first two
attempts of a request and lets the third through; the attempt number is the SDKs' ``x-stainless-retry-count``
header (or, without it, a per-spec counter). Past the end of the list the last entry repeats.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["ok", "status", "timeout", "cut"]

FAULT_HEADER = "x-fake-fault"
# 429s without a retry-after make the SDKs back off 0.5 s+; a fake should keep test suites fast.
DEFAULT_RATE_LIMIT_RETRY_AFTER = 0.05


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    retry_after: float | None = None  # seconds; sent as retry-after (ceil, integer) and retry-after-ms
    should_retry: bool | None = None  # sent as x-should-retry when set
    message: str | None = None  # overrides the provider's canned error message
    seconds: float = 30.0  # timeout: how long the server sits on the request
    after_chunks: int = 2  # cut: stream events sent before the connection is dropped

    @classmethod
    def http(
        cls,
        status: int,
        retry_after: float | None = None,
        *,
        should_retry: bool | None = None,
        message: str | None = None,
    ) -> Fault:
        if retry_after is None and status == 429:
            retry_after = DEFAULT_RATE_LIMIT_RETRY_AFTER
        return cls("status", status=status, retry_after=retry_after, should_retry=should_retry, message=message)

    @classmethod
    def timeout(cls, seconds: float = 30.0) -> Fault:
        return cls("timeout", seconds=seconds)

    @classmethod
    def cut(cls, after_chunks: int = 2) -> Fault:
        return cls("cut", after_chunks=after_chunks)

    @classmethod
    def ok(cls) -> Fault:
        return cls("ok")

    @classmethod
    def parse(cls, token: str) -> Fault:
        name, _, arg = token.strip().lower().partition(":")
        if name == "ok":
            return cls.ok()
        if name == "timeout":
            return cls.timeout(float(arg)) if arg else cls.timeout()
        if name == "cut":
            return cls.cut(int(arg)) if arg else cls.cut()
        if name.isdigit():
            return cls.http(int(name), float(arg) if arg else None)
        raise ValueError(f"unknown fault {token!r}")

    @classmethod
    def parse_sequence(cls, spec: str) -> list[Fault]:
        return [cls.parse(t) for t in spec.split(",") if t.strip()]

    def __str__(self) -> str:
        if self.kind == "status":
            return str(self.status) if self.retry_after is None else f"{self.status}:{self.retry_after:g}"
        if self.kind == "timeout":
            return f"timeout:{self.seconds:g}"
        if self.kind == "cut":
            return f"cut:{self.after_chunks}"
        return "ok"


class FaultPlan:
    """Thread-safe source of the fault for each request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._spec_counters: dict[str, int] = {}

    def push(self, faults: Iterable[Fault]) -> None:
        with self._lock:
            self._queue.extend(faults)

    def reset(self, faults: Iterable[Fault] = ()) -> None:
        with self._lock:
            self._queue = deque(faults)
            self._spec_counters.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def from_header(self, headers: Mapping[str, str]) -> Fault | None:
        spec = headers.get(FAULT_HEADER)
        if not spec:
            return None
        seq = Fault.parse_sequence(spec)
        if not seq:
            return None
        retry = headers.get("x-stainless-retry-count", "")
        if retry.isdigit():
            attempt = int(retry)
        else:
            with self._lock:
                attempt = self._spec_counters.get(spec, 0)
                self._spec_counters[spec] = attempt + 1
        return seq[min(attempt, len(seq) - 1)]

    def next_queued(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None
