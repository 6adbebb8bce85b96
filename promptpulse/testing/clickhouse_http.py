"""A loopback server speaking enough of ClickHouse's HTTP interface, over chDB, for clickhouse-connect.

Tests use it to run ServerStore for real with the engine we ship. What it answers: GET/POST with the query in the
``query`` URL argument and/or the body (an INSERT's data follows its statement in the body, or the statement is in
the URL and the body is all data — chunked transfer encoding accepted); ``param_NAME`` arguments become chDB query
parameters; other unknown URL arguments are applied as settings for the one request; ``database`` selects the
database; ``FORMAT X`` at the end of a query picks the output format. Errors come back as HTTP 500 with
``X-ClickHouse-Exception-Code``. Not supported: compression (requests with Content-Encoding get 415; response
compression is never applied), sessions, external data, multipart forms, progress headers.

``chdb`` allows one engine path per process: pass the data directory the process already uses, if any.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_FORMAT_AT_END = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code:\s*(\d+)")
# URL arguments that are part of the HTTP protocol, not settings.
_CONTROL = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "user",
    "password",
    "quota_key",
    "compress",
    "decompress",
    "client_protocol_version",
    "role",
}
# Settings that only mean something to a real HTTP server; accepted and ignored.
_HTTP_ONLY = {
    "enable_http_compression",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close",
    "wait_end_of_query",
    "buffer_size",
    "http_zlib_compression_level",
    "output_format_json_quote_64bit_integers",
}


def _quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClickHouseHTTPServer:
    """``with ClickHouseHTTPServer(data_dir) as srv: ServerStore(srv.url + "/db?compress=false")``."""

    def __init__(self, data_dir: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        import chdb

        self.data_dir = data_dir
        self._conn = chdb.connect(data_dir or ":memory:")
        self._lock = threading.Lock()
        self.requests = 0
        handler = type("_Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ClickHouseHTTPServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="clickhouse-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ClickHouseHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- execution ------------------------------------------------------------------------------------------
    def execute(
        self, sql: str, fmt: str, params: dict[str, str], settings: dict[str, str], database: str | None
    ) -> tuple[bytes, dict[str, Any]]:
        with self._lock:
            self.requests += 1
            readonly = settings.get("readonly", "0") not in ("", "0")
            # readonly cannot be set back in a session (that is its point): a read-only request gets a session of
            # its own on the same data, as a server gives each HTTP request its own settings
            conn = chdb_connect(self.data_dir or ":memory:") if readonly and self.data_dir else self._conn
            if database:
                conn.query(f"USE `{database.replace('`', '')}`", "TabSeparated")
            applied = []
            try:
                for key, value in sorted(settings.items(), key=lambda kv: kv[0] == "readonly"):  # readonly last
                    conn.query(f"SET {key} = {_quote_value(value)}", "TabSeparated")
                    applied.append(key)
                result = conn.query(sql, fmt, params=params)
                data = result.bytes() or b""
                try:
                    summary = {
                        "read_rows": str(result.rows_read()),
                        "read_bytes": str(result.bytes_read()),
                        "elapsed_ns": str(int(result.elapsed() * 1e9)),
                    }
                except Exception:
                    summary = {}
                return data, summary
            finally:
                if conn is not self._conn:
                    conn.close()
                else:
                    for key in applied:
                        try:
                            conn.query(f"SET {key} = DEFAULT", "TabSeparated")
                        except Exception:
                            pass


def chdb_connect(path: str) -> Any:
    import chdb

    return chdb.connect(path)


def _form_fields(ctype: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (as ClickHouse's HTTP interface reads query and param_* from it)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = (part.get_payload(decode=True) or b"").decode()
    return out


class _Handler(BaseHTTPRequestHandler):
    owner: ClickHouseHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        if self.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
            self._send(
                415,
                b"Code: 1. DB::Exception: compressed requests are not supported by the loopback server",
                {"X-ClickHouse-Exception-Code": "1"},
            )
            return
        self._handle(self._read_body())

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Timezone", "UTC")
        self.send_header("X-ClickHouse-Query-Id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/"):
            args = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path == "/ping" or ("query" not in args and not body):
                self._send(200, b"Ok.\n")
                return
        else:
            args = dict(parse_qsl(url.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            args.update(parse_qsl(body.decode(), keep_blank_values=True))
            body = b""
        elif ctype.startswith("multipart/form-data"):  # clickhouse-connect sends long query parameters so
            args.update(_form_fields(ctype, body))
            body = b""
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in args.items()
            if not k.startswith("param_") and k not in _CONTROL and k not in _HTTP_ONLY and _SETTING_NAME.match(k)
        }
        database = args.get("database")
        query = args.get("query", "")
        data = b""
        if query:
            data = body
        else:
            text = body
            if text.lstrip()[:6].upper() == b"INSERT":
                newline = text.find(b"\n")
                query, data = (text.decode(), b"") if newline < 0 else (text[:newline].decode(), text[newline + 1 :])
            else:
                query = text.decode()
        try:
            out, summary, fmt = self._run(query, data, params, settings, database, args.get("default_format"))
        except Exception as exc:
            message = str(exc)
            code = _CODE.search(message)
            self._send(
                500,
                message.encode(),
                {
                    "X-ClickHouse-Exception-Code": code.group(1) if code else "1",
                    "Content-Type": "text/plain; charset=UTF-8",
                },
            )
            return
        headers = {"X-ClickHouse-Summary": json.dumps(summary)}
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        self._send(200, out, headers)

    def _run(
        self,
        query: str,
        data: bytes,
        params: dict[str, str],
        settings: dict[str, str],
        database: str | None,
        default_format: str | None,
    ) -> tuple[bytes, dict[str, Any], str | None]:
        insert = _INSERT.match(query)
        if insert and data:
            fd, path = tempfile.mkstemp(suffix=".bin")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                sql = f"INSERT INTO {insert.group(1)} FROM INFILE {_quote_value(path)} FORMAT {insert.group(2)}"
                started = time.perf_counter()
                self.owner.execute(sql, "TabSeparated", params, settings, database)
                summary = {"written_rows": "0", "elapsed_ns": str(int((time.perf_counter() - started) * 1e9))}
                return b"", summary, None
            finally:
                os.unlink(path)
        fmt_match = _FORMAT_AT_END.search(query)
        if fmt_match:
            fmt = fmt_match.group(1)
            query = query[: fmt_match.start()]
        else:
            fmt = default_format or "TabSeparated"
        out, summary = self.owner.execute(query, fmt, params, settings, database)
        return out, summary, fmt if (out or fmt_match) else None
