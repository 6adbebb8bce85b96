"""ClickHouse storage: the Store protocol, the embedded (chDB) and server (clickhouse-connect) stores, and the
migrations of contract 2 (schemas/*.sql)."""

from __future__ import annotations

from typing import Any

from .base import OTEL_TRACES_COLUMNS, QueryResult, Store, StoreError
from .schema import SchemaOptions, print_schema


def open_store(*, data_dir: str | None = None, clickhouse_url: str | None = None, **kwargs: Any) -> Store:
    """ServerStore when a URL is given, else EmbeddedStore over data_dir."""
    if clickhouse_url:
        from .server import ServerStore

        return ServerStore(clickhouse_url, **kwargs)
    if not data_dir:
        raise ValueError("either data_dir or clickhouse_url is required")
    from .embedded import EmbeddedStore

    return EmbeddedStore(data_dir, **kwargs)


__all__ = ["OTEL_TRACES_COLUMNS", "QueryResult", "SchemaOptions", "Store", "StoreError", "open_store",
           "print_schema"]
