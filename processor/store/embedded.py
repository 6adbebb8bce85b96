"""EmbeddedStore: ClickHouse in-process through chDB, data in a local directory. One process owns a data dir.

Built on clickhouse-connect's chDB backend (the same client code as ServerStore): inserts are serialised to
ClickHouse's Native format by clickhouse-connect's C serialiser and loaded with ``INSERT ... FROM INFILE``.
docs/SCHEMA.md has the measurement that chose this path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import schema
from ._connect import ConnectStore


class EmbeddedStore(ConnectStore):
    def __init__(self, data_dir: str | os.PathLike[str], *, schema_options: schema.SchemaOptions | None = None,
                 **client_args: Any) -> None:
        from clickhouse_connect.driver._chdbclient import ChdbClient

        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client = ChdbClient(path=str(self.data_dir), **client_args)
        super().__init__(client, schema_options or schema.SchemaOptions())
