"""ServerStore: a ClickHouse server (or cluster) through clickhouse-connect's HTTP interface."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import schema
from ._connect import ConnectStore


def client_kwargs(url: str) -> dict[str, Any]:
    """``http(s)://user:pass@host:8123/db?compress=false`` -> clickhouse_connect.get_client arguments."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"ClickHouse URL must be http:// or https://, got {url!r}")
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "secure": parts.scheme == "https",
        "username": unquote(parts.username) if parts.username else "default",
        "password": unquote(parts.password) if parts.password else "",
    }
    for key, value in parse_qsl(parts.query):
        if key == "compress":
            kwargs["compress"] = value.lower() not in ("0", "false", "no", "off")
        elif key in ("connect_timeout", "send_receive_timeout"):
            kwargs[key] = float(value)
        elif key == "cluster":
            kwargs["cluster"] = value
    return kwargs


def database_from_url(url: str) -> str:
    path = urlsplit(url).path.strip("/")
    return unquote(path) if path else "default"


class ServerStore(ConnectStore):
    """``ServerStore("http://user:pass@host:8123/db")``; add ``?cluster=NAME`` to apply the cluster schema and
    ``?compress=false`` to switch HTTP compression off."""

    def __init__(self, url: str, *, schema_options: schema.SchemaOptions | None = None, **client_args: Any) -> None:
        import clickhouse_connect

        self.url = url
        kwargs = client_kwargs(url)
        cluster = kwargs.pop("cluster", None)
        kwargs.update(client_args)
        kwargs.setdefault("autogenerate_session_id", False)
        client = clickhouse_connect.get_client(**kwargs)
        opts = schema_options or schema.SchemaOptions(database=database_from_url(url), cluster=cluster)
        super().__init__(client, opts)
