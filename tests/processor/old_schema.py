"""A data dir as an older release left it, for the upgrade tests: the schema files below a version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptpulse.processor.store import schema


def apply_before(store: Any, version: int, *, texts: Mapping[str, str] | None = None, prices: bool = True) -> None:
    """Every migration below ``version`` (``texts``: a migration's name -> the text it had then), and the price rows
    when ``prices``; ``store.apply_schema()`` afterwards is the upgrade."""
    opts = schema.SchemaOptions()
    for m in schema.migrations():
        if m.version < version:
            for stmt in schema.render((texts or {}).get(m.name, m.sql), opts):
                store.command(stmt)
    if prices:
        schema.load_model_prices(store)
