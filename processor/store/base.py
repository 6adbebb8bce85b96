"""The store interface the receiver, writer, API and alerts use, whichever ClickHouse is behind it.

Two implementations: ``EmbeddedStore`` (chDB in-process, a local data directory) and ``ServerStore`` (a ClickHouse
server through clickhouse-connect). SQL parameters always use ClickHouse's server-side ``{name:Type}`` syntax.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Insert column order of otel_traces (schemas/001_otel_traces.sql), Nested columns flattened.
OTEL_TRACES_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)

# Tables the processor writes; insert_rows refuses anything else (table names cannot be query parameters).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class StoreError(RuntimeError):
    """A store operation failed (connection, SQL or data error)."""


@dataclass(slots=True)
class QueryResult:
    column_names: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=False)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


@runtime_checkable
class Store(Protocol):
    database: str

    def apply_schema(self) -> None: ...

    def insert_otel_traces(self, rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None) -> None:
        """Rows in OTEL_TRACES_COLUMNS order; Timestamp as int ns since epoch or datetime; maps as dict[str, str];
        Nested columns as lists. A retried batch with the same dedup_token is not counted twice."""
        ...

    def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None: ...

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None, *,
              settings: Mapping[str, Any] | None = None) -> QueryResult: ...

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain table name: {name!r}")
    return name


def check_columns(columns: Sequence[str]) -> list[str]:
    for name in columns:
        if not _COLUMN.match(name):
            raise ValueError(f"not a plain column name: {name!r}")
    return list(columns)


def dedup_setting(token: str | None) -> dict[str, str]:
    """Insert settings for a dedup token. Tokens outside [A-Za-z0-9_.:-] are replaced by their SHA-256, so the
    value is always safe to pass as a setting."""
    if token is None:
        return {}
    if not _SAFE_TOKEN.match(token):
        token = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return {"insert_deduplication_token": token}
