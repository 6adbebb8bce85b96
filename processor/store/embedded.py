"""EmbeddedStore: ClickHouse in-process through chDB, data in a local directory. One process owns a data dir.

Built on clickhouse-connect's chDB backend (the same client code as ServerStore): inserts are serialised to
ClickHouse's Native format by clickhouse-connect's C serialiser and loaded with ``INSERT ... FROM INFILE``.
docs/SCHEMA.md has the measurement that chose this path. OTLP request bodies the engine can decode
(receiver.engine_decode) go in as they are: ``INSERT INTO otel_traces SELECT ... FROM file(..., Protobuf)``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import schema
from ._connect import INSERT_SETTINGS, ConnectStore
from .base import OTEL_TRACES_COLUMNS, StoreError, dedup_setting


class _Handles:
    """At most ``size`` extra engine handles on the data dir, opened when first needed and lent one at a time: work
    on different handles runs at once (the engine releases the GIL) instead of queueing on the main client's lock."""

    def __init__(self, size: int, open_handle: Callable[[], Any]) -> None:
        self._open = open_handle
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lend(self) -> Iterator[Any]:
        with self._slots:  # fewer than size handles are lent, so one is free or may be opened
            try:
                handle = self._free.get_nowait()
            except queue.Empty:
                handle = self._open()
                with self._lock:
                    self._all.append(handle)
            try:
                yield handle
            finally:
                self._free.put(handle)

    def close(self) -> None:
        with self._lock:
            for handle in self._all:
                with contextlib.suppress(Exception):
                    handle.close()
            self._all.clear()


class EmbeddedStore(ConnectStore):
    # concurrent inserts the writer may run: OTLP inserts use their own engine handles (two cores here: two)
    insert_concurrency = 2
    # concurrent queries (the console's panels, the API): reads use their own handles; two cores here: two
    query_concurrency = 2

    def __init__(self, data_dir: str | os.PathLike[str], *, schema_options: schema.SchemaOptions | None = None,
                 **client_args: Any) -> None:
        from clickhouse_connect.driver._chdbclient import ChdbClient

        from . import owner

        held = owner.holder(data_dir)
        if held:  # chDB would fail with "Error initializing EmbeddedServer"
            raise owner.DataDirInUse(str(data_dir), held.get("pid"), held.get("api"))
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            client = ChdbClient(path=str(self.data_dir), **client_args)
        except Exception as e:
            if "EmbeddedServer" in str(e):  # another process has the directory open
                raise owner.DataDirInUse(str(data_dir), None, None) from None
            raise
        self._client_args = client_args
        self._otlp_sql: str | None = None
        # OTLP inserts (the writer's insert_workers) and queries each have handles of their own
        self._otlp_handles = _Handles(self.insert_concurrency, self._open_handle)
        self._read_handles = _Handles(self.query_concurrency, self._open_handle)
        super().__init__(client, schema_options or schema.SchemaOptions())

    def _open_handle(self) -> Any:
        from clickhouse_connect.driver._chdbclient import ChdbClient

        client = ChdbClient(path=str(self.data_dir), **self._client_args)
        client.database = self.database
        return client

    def _reader(self) -> contextlib.AbstractContextManager[Any]:
        return self._read_handles.lend()

    def _otlp_insert_sql(self) -> str:
        """The INSERT ... SELECT of receiver.engine_decode, with its .proto written next to the data."""
        if self._otlp_sql is None:
            from ..receiver import engine_decode

            proto = self.data_dir / "format_schemas" / engine_decode.FAST_FILE.name
            text = engine_decode.proto_text()
            if not proto.exists() or proto.read_text() != text:
                proto.parent.mkdir(parents=True, exist_ok=True)
                tmp = proto.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.replace(proto)
            cols = ", ".join(f"`{c}`" for c in OTEL_TRACES_COLUMNS)
            source = f"file('{{path}}', 'Protobuf', '{engine_decode.STRUCTURE}')"
            self._otlp_sql = (f"INSERT INTO `{self.database}`.otel_traces ({cols})\n"
                              + engine_decode.select_sql(source, OTEL_TRACES_COLUMNS)
                              + f"\nSETTINGS format_schema = '{proto}:{engine_decode.ROOT}'")
        return self._otlp_sql

    def insert_otel_traces_otlp(self, bodies: Sequence[bytes], *, dedup_token: str | None = None) -> None:
        """Insert OTLP ExportTraceServiceRequest bodies that receiver.engine_decode.check accepted: the engine
        decodes and renders them (no Python per span). Same settings and dedup token as insert_rows."""
        from ..receiver import engine_decode

        settings = {**INSERT_SETTINGS, **dedup_setting(dedup_token)}
        clause = "".join(f", {k} = '{v}'" for k, v in settings.items())  # values: digits or [A-Za-z0-9_.:-]
        fd, path = tempfile.mkstemp(prefix="pp-otlp-", suffix=".pb")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(engine_decode.frame(bodies))
            sql = self._otlp_insert_sql().replace("{path}", path.replace("\\", "\\\\").replace("'", "\\'"), 1)
            with self._otlp_handles.lend() as client:
                client.command(sql + clause)
        except Exception as exc:
            raise StoreError(f"insert into otel_traces failed: {exc}") from exc
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def close(self) -> None:
        self._otlp_handles.close()
        self._read_handles.close()
        super().close()
