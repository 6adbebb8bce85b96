"""A daemon thread that runs one task every few seconds until stopped: the alert and evaluation schedulers."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls ``tick()`` every ``interval_s``; the first call waits up to 5 s so the service can finish starting.

    ``tick`` failures go to ``on_error`` and never end the loop.
    """

    def __init__(self, name: str, tick: Callable[[], object], interval_s: float,
                 on_error: Callable[[Exception], None]) -> None:
        self.interval_s = float(interval_s)
        self._tick, self._on_error = tick, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def _loop(self) -> None:
        self._stop.wait(min(5.0, self.interval_s))
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:
                self._on_error(e)
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
