"""Histogram records taken off the call path.

The OpenTelemetry SDK charges ~8–12 µs per histogram record (attribute cleaning and hashing, view matching,
aggregation) and a call makes three or four of them — more than the rest of PromptPulse's per-call work together.
So a call only appends one ``(function, arguments)`` item to a deque (thread-safe, ~0.1 µs) — for an LLM call, the
function that builds the metric attributes and records its histograms — and a daemon thread runs the batch every
``FLUSH_INTERVAL_S``. The CPU is still spent, once, but not while the app waits for its LLM call. ``flush()`` runs
everything pending now; it also runs at interpreter exit before the SDK's own shutdown hooks (registered when the
flusher starts, i.e. after the app's MeterProvider exists: atexit is LIFO), and readers that need exact numbers
immediately (tests) call it before collecting.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
MAX_PENDING = 100_000  # beyond this (a stalled flusher), run inline rather than grow without bound

_pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
_lock = threading.Lock()
_wakeup = threading.Event()
_thread: threading.Thread | None = None
_atexit_registered = False


def defer(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in the flusher thread (its exceptions are logged at debug level and dropped)."""
    if len(_pending) >= MAX_PENDING:
        flush()
    _pending.append((fn, args))
    if _thread is None:
        _start()


def record(histogram: Any, value: float, attributes: dict[str, Any]) -> None:
    """``histogram.record(value, attributes)`` in the flusher thread."""
    defer(histogram.record, value, attributes)


def flush() -> None:
    """Run everything pending now (in the caller's thread)."""
    popleft = _pending.popleft
    while True:
        try:
            fn, args = popleft()
        except IndexError:
            return
        try:
            fn(*args)
        except Exception:
            _log.debug("promptpulse: recording a metric failed", exc_info=True)


def _run() -> None:
    while True:
        _wakeup.wait(FLUSH_INTERVAL_S)
        flush()


def _start() -> None:
    global _thread, _atexit_registered
    with _lock:
        if _thread is None:
            if not _atexit_registered:
                # Registered now rather than at import: the first call comes after the app set up its providers, so
                # this flush runs before their shutdown hooks (atexit is LIFO) whatever the import order was.
                atexit.register(flush)
                _atexit_registered = True
            thread = threading.Thread(target=_run, name="promptpulse-metrics", daemon=True)
            thread.start()
            _thread = thread


def _after_fork_in_child() -> None:
    # The flusher thread does not survive fork (gunicorn, multiprocessing): start a new one on first use.
    global _thread
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
