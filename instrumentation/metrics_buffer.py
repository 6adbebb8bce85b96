"""Histogram records taken off the call path.

The OpenTelemetry SDK charges ~12 µs per histogram record (attribute hashing, view matching, aggregation) and a call
makes three or four of them — more than the rest of PromptPulse's per-call work together. So a call only appends
``(histogram, value, attributes)`` to a deque (thread-safe, ~0.1 µs) and a daemon thread records the batch every
``FLUSH_INTERVAL_S``. The CPU is still spent, once, but not while the app waits for its LLM call. ``flush()`` records
everything pending now; it runs at interpreter exit before the SDK's own shutdown hooks (atexit is LIFO and the
MeterProvider registers first), and readers that need exact numbers immediately (tests) call it before collecting.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from typing import Any

_log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
MAX_PENDING = 100_000  # beyond this (a stalled flusher), record inline rather than grow without bound

_pending: deque[tuple[Any, float, dict[str, Any]]] = deque()
_lock = threading.Lock()
_wakeup = threading.Event()
_thread: threading.Thread | None = None


def record(histogram: Any, value: float, attributes: dict[str, Any]) -> None:
    if len(_pending) >= MAX_PENDING:
        flush()
    _pending.append((histogram, value, attributes))
    if _thread is None:
        _start()


def flush() -> None:
    """Record every pending measurement now (in the caller's thread)."""
    popleft = _pending.popleft
    while True:
        try:
            histogram, value, attributes = popleft()
        except IndexError:
            return
        try:
            histogram.record(value, attributes)
        except Exception:
            _log.debug("promptpulse: recording a metric failed", exc_info=True)


def _run() -> None:
    while True:
        _wakeup.wait(FLUSH_INTERVAL_S)
        flush()


def _start() -> None:
    global _thread
    with _lock:
        if _thread is None:
            thread = threading.Thread(target=_run, name="promptpulse-metrics", daemon=True)
            thread.start()
            _thread = thread


def _after_fork_in_child() -> None:
    # The flusher thread does not survive fork (gunicorn, multiprocessing): start a new one on first use.
    global _thread
    _thread = None


atexit.register(flush)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
