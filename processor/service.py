"""`promptpulse serve`: store + spool + writer + OTLP receivers (gRPC, HTTP) + API, with graceful shutdown.

SIGTERM/SIGINT: stop accepting (receivers closed), flush everything accepted to the store, close. If the store is
down at that moment, accepted data stays in the spool and is replayed at the next start.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from typing import Any

from . import http_limits
from .config import Settings
from .deadletter import DeadLetters
from .receiver import decode, otlp_grpc, otlp_http
from .spool import Spool
from .writer import Writer

log = logging.getLogger("promptpulse.processor")


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self._store: Any = None
        self._store_lock = threading.Lock()
        self._schema_applied = False
        self.spool = Spool(s.spool_path, max_bytes=s.spool_max_bytes, segment_bytes=s.spool_segment_bytes,
                           fsync=s.spool_fsync)
        _cols, reorder = decode.column_order()
        self.writer = Writer(self.spool, self.get_store, batch_max_spans=s.batch_max_spans,
                             batch_max_age_s=s.batch_max_age_s, queue_max_spans=s.queue_max_spans,
                             reorder=reorder, dead_letters=DeadLetters(s.deadletter_path, fsync=s.spool_fsync))
        self.ingest = otlp_http.Ingest(self.writer, auth_token=s.auth_token, retry_after_s=s.retry_after_s)
        self._stopped = threading.Event()
        self.http = self.grpc = self.api = None
        self.alerts: Any = None  # AlertScheduler (processor/alerts), started with the API
        self.reports: Any = None  # ReportScheduler (processor/reports.py) when [reports] schedule is set
        self.evaluation: Any = None  # EvaluationScheduler (processor/evaluation.py) when [evaluation] has rules
        self.ports: dict[str, int] = {}

    @property
    def store(self) -> Any:
        """The store (see get_store); what API routes reach as ``request.app.state.service.store``."""
        return self.get_store()

    def get_store(self) -> Any:
        """The store, opened (and the schema applied) on first use; raises while it cannot be reached."""
        if self._store is not None and self._schema_applied:
            return self._store
        with self._store_lock:
            if self._store is None:
                from .store import open_store

                self._store = open_store(data_dir=self.settings.data_dir, clickhouse_url=self.settings.clickhouse_url)
            if not self._schema_applied:
                if self.settings.apply_schema:
                    self._store.apply_schema()
                self._schema_applied = True
        return self._store

    def start(self) -> None:
        s = self.settings
        tls = (s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None
        try:
            self.get_store()
        except Exception as e:
            if not s.clickhouse_url:
                raise
            log.warning("ClickHouse not reachable yet (%s); accepting into the spool", e)
            self.writer.store_up = False
        # Spans waiting in the queue are acyclic lists/dicts, millions of GC-tracked objects at 100k spans: with the
        # default thresholds (700) the cyclic GC keeps re-walking them (py-spy: ~5% of ingest CPU). Collect
        # rarely and keep the startup objects (store, schema, modules) out of every collection.
        if os.environ.get("PROMPTPULSE_GC_DEFAULT") != "1":
            gc.collect()
            gc.freeze()
            gc.set_threshold(100_000, 50, 50)
        self.writer.start()
        self.grpc, self.ports["grpc"] = otlp_grpc.make_server(
            s.host, s.otlp_grpc_port, self.ingest, max_body_bytes=s.max_body_bytes, workers=s.grpc_workers, tls=tls)
        self.grpc.start()
        self.http = otlp_http.make_server(s.host, s.otlp_http_port, self.ingest, max_body_bytes=s.max_body_bytes,
                                          tls=tls, limits=http_limits.Limits.from_settings(s))
        self.ports["http"] = self.http.server_address[1]
        from .api_server import make_server as api_server  # FastAPI on uvicorn, in a thread of its own

        self.api = api_server(s.host, s.api_port, self, tls=tls)
        self.ports["api"] = self.api.server_address[1]
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.api.start()
        if not s.clickhouse_url:  # say who holds the data dir, so `query --data-dir` can point at the API
            from .store import owner

            scheme = "https" if tls else "http"
            host = "127.0.0.1" if s.host in ("0.0.0.0", "", "::") else s.host
            owner.claim(s.data_dir, f"{scheme}://{host}:{self.ports['api']}")
        from .alerts import start_scheduler

        self.alerts = start_scheduler(self)  # the [alerts] rules every alerts.interval_s (default 60 s)
        from . import reports

        self.reports = reports.start_scheduler(self)  # [reports] schedule = daily | weekly | monthly
        from . import evaluation

        self.evaluation = evaluation.start_scheduler(self)  # [[evaluation.rules]] with runs = "processor"
        log.info("promptpulse serving: OTLP/gRPC %s:%d, OTLP/HTTP %s:%d, API %s:%d, store %s, spool %s",
                 s.host, self.ports["grpc"], s.host, self.ports["http"], s.host, self.ports["api"],
                 "clickhouse " + _redact(s.clickhouse_url) if s.clickhouse_url else f"embedded {s.data_dir}",
                 s.spool_path)

    def stop(self, timeout: float = 30.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.alerts:
            self.alerts.stop()
        if self.reports:
            self.reports.stop()
        if self.evaluation:
            self.evaluation.stop()
        if self.grpc:
            self.grpc.stop(grace=5).wait(6)
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        flushed = self.writer.flush(timeout) if self.writer.store_up else False
        self.writer.stop(timeout=5 if flushed else 1)
        if not flushed:
            log.warning("shutdown with %d span(s) not inserted; they stay in the spool for the next start",
                        self.writer.pending_spans)
        if self.api:
            self.api.shutdown()
            self.api.server_close()
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass
        if not self.settings.clickhouse_url:
            from .store import owner

            owner.release(self.settings.data_dir)
        log.info("promptpulse stopped: %d span(s) inserted", self.writer.stats["inserted_spans"])

    def run_forever(self) -> None:
        done = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        print(f"promptpulse: ready grpc={self.ports['grpc']} http={self.ports['http']} api={self.ports['api']}",
              flush=True)
        while not done.wait(0.5):
            pass
        self.stop()
        time.sleep(0)


def _redact(url: str | None) -> str:
    import re

    return re.sub(r"//[^@/]*@", "//***@", url or "")
