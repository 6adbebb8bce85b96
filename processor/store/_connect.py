"""The Store implementation shared by both stores: a clickhouse-connect client (HTTP, or its in-process chDB
backend)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import schema
from .base import OTEL_TRACES_COLUMNS, QueryResult, StoreError, check_columns, check_identifier, dedup_setting

_log = logging.getLogger(__name__)

# Settings of every insert: a retried batch (same token) is dropped by the table *and* by every materialized view
# below it, so llm_calls and the rollups are not double counted either.
# max_partitions_per_insert_block: the default 100 refuses a valid request whose spans fall on over 100 days; a
# request beyond 1,000 is refused on its data and goes to the dead letters (processor/writer.py).
INSERT_SETTINGS = {"insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1,
                   "max_partitions_per_insert_block": 1000}
# Settings of every query: SELECT * on llm_calls shows its ALIAS columns (trace_id, span_id, latency_ms, ttft_ms; the
# stored byte/bit columns behind them are MATERIALIZED, which SELECT * leaves out).
QUERY_SETTINGS = {"asterisk_include_alias_columns": 1}
# On a cluster, the sharded tables (otel_traces by TraceId; llm_calls, llm_scores by trace_id) keep a trace's rows on
# one shard, so a join or IN between them is answered shard by shard: 'local' runs such a subquery on each shard's
# local table instead of refusing it (the default 'deny': "Double-distributed IN/JOIN subqueries is denied").
CLUSTER_QUERY_SETTINGS = {**QUERY_SETTINGS, "distributed_product_mode": "local"}


class ConnectStore:
    """Implements the Store protocol over a clickhouse-connect client (set ``self._client`` before use)."""

    database: str
    schema_options: schema.SchemaOptions

    def __init__(self, client: Any, schema_options: schema.SchemaOptions) -> None:
        self._client = client
        self.schema_options = schema_options
        self.database = schema_options.database
        self.query_settings = CLUSTER_QUERY_SETTINGS if schema_options.cluster else QUERY_SETTINGS
        self._lock = threading.RLock()
        self._insert_contexts: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        self._client.database = self.database

    # --- Store protocol ---------------------------------------------------------------------------------------
    def apply_schema(self) -> None:
        schema.apply(self, self.schema_options)

    def insert_otel_traces(self, rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None) -> None:
        self.insert_rows("otel_traces", OTEL_TRACES_COLUMNS, rows, dedup_token=dedup_token)

    def insert_otel_traces_native(self, data: bytes, *, dedup_token: str | None = None) -> None:
        """Insert a Native block of otel_traces (store.native.encode_otel_traces) as is: chDB loads it with
        ``INSERT ... FROM INFILE ... FORMAT Native``, a server receives it as the body of an HTTP insert. Same
        settings (and dedup token) as insert_rows."""
        settings = {**INSERT_SETTINGS, **dedup_setting(dedup_token)}
        try:
            with self._lock:
                self._client.raw_insert("otel_traces", list(OTEL_TRACES_COLUMNS), insert_block=data,
                                        settings=settings, fmt="Native")
        except Exception as exc:
            raise StoreError(f"insert into otel_traces failed: {exc}") from exc

    def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if not rows:
            return
        check_identifier(table)
        database, _, name = table.rpartition(".")
        cols = tuple(check_columns(columns))
        settings = {**INSERT_SETTINGS, **dedup_setting(dedup_token)}
        try:
            with self._lock:
                key = (table, cols)
                context = self._insert_contexts.get(key)
                if context is None:
                    context = self._client.create_insert_context(
                        table=name, column_names=list(cols), database=database or self.database
                    )
                    self._insert_contexts[key] = context
                context.data = rows
                context.settings = settings
                self._client.insert(context=context, settings=settings)
        except Exception as exc:
            self._insert_contexts.pop((table, cols), None)
            raise StoreError(f"insert into {table} failed: {exc}") from exc

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        """The client a query runs on: the one client, under its lock (EmbeddedStore lends handles of its own)."""
        with self._lock:
            yield self._client

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None, *,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
        """Rows of ``sql``; ``settings`` add to (and may override) the store's query settings, in their order."""
        try:
            with self._reader() as client:
                result = client.query(sql, parameters=dict(parameters) if parameters else None,
                                      settings={**self.query_settings, **settings} if settings else self.query_settings)
        except Exception as exc:
            raise StoreError(str(exc)) from exc
        return QueryResult(tuple(result.column_names), [tuple(r) for r in result.result_rows])

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        try:
            with self._lock:
                self._client.command(sql, parameters=dict(parameters) if parameters else None)
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def ping(self) -> bool:
        try:
            with self._lock:
                return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            self._insert_contexts.clear()
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None

    def __enter__(self) -> ConnectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
