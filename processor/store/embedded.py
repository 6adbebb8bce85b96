"""EmbeddedStore: ClickHouse in-process through chDB, data in a local directory. One process owns a data dir.

Built on clickhouse-connect's chDB backend (the same client code as ServerStore): inserts are serialised to
ClickHouse's Native format by clickhouse-connect's C serialiser and loaded with ``INSERT ... FROM INFILE``.
docs/SCHEMA.md has the measurement that chose this path. OTLP request bodies the engine can decode
(receiver.engine_decode) go in as they are: ``INSERT INTO otel_traces SELECT ... FROM file(..., Protobuf)``.
"""

from __future__ import annotations

import os
import queue
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import schema
from ._connect import INSERT_SETTINGS, ConnectStore
from .base import OTEL_TRACES_COLUMNS, StoreError, dedup_setting


class EmbeddedStore(ConnectStore):
    # concurrent inserts the writer may run: OTLP inserts use their own engine handles (two cores here: two)
    insert_concurrency = 2

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
        # OTLP inserts run on their own engine handles, so two of them (the writer's insert_workers) run at once
        # instead of queueing on the shared client's lock
        self._otlp_clients: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._otlp_all: list[Any] = []
        super().__init__(client, schema_options or schema.SchemaOptions())

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
            client = self._otlp_client()
            try:
                client.command(sql + clause)
            finally:
                self._otlp_clients.put(client)
        except Exception as exc:
            raise StoreError(f"insert into otel_traces failed: {exc}") from exc
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _otlp_client(self) -> Any:
        try:
            return self._otlp_clients.get_nowait()
        except queue.Empty:
            from clickhouse_connect.driver._chdbclient import ChdbClient

            with self._lock:
                client = ChdbClient(path=str(self.data_dir), **self._client_args)
                self._otlp_all.append(client)
            return client

    def close(self) -> None:
        with self._lock:
            for c in self._otlp_all:
                try:
                    c.close()
                except Exception:
                    pass
            self._otlp_all.clear()
        super().close()
