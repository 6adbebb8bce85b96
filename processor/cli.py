"""`promptpulse` command line: serve, query, schema — and registration points for demo, dashboards, report, alerts.

Other modules add subcommands with :func:`register` (name, help, a function adding arguments, a function running
the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}
# top-level modules of pyproject's [processor] extra: missing, a command says which extra to install
PROCESSOR_EXTRA = ("chdb", "clickhouse_connect", "grpc", "google", "fastapi", "uvicorn", "pydantic", "h11",
                   "jsonschema")


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    COMMANDS[name] = Command(help, add_arguments, run)


# ------------------------------------------------------------------------------------------------------- serve
def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML settings file (flags > env PROMPTPULSE_* > file > defaults)")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--clickhouse-url", dest="clickhouse_url", help="http(s)://user:pass@host:8123/db")
    p.add_argument("--host")
    p.add_argument("--otlp-grpc-port", dest="otlp_grpc_port", type=int)
    p.add_argument("--otlp-http-port", dest="otlp_http_port", type=int)
    p.add_argument("--api-port", dest="api_port", type=int)
    p.add_argument("--auth-token", dest="auth_token", help="bearer token required from exporters and API clients")
    p.add_argument("--tls-cert", dest="tls_cert")
    p.add_argument("--tls-key", dest="tls_key")
    p.add_argument("--spool-dir", dest="spool_dir")
    p.add_argument("--max-body-bytes", dest="max_body_bytes", type=int)
    p.add_argument("--queue-max-spans", dest="queue_max_spans", type=int)
    p.add_argument("--batch-max-spans", dest="batch_max_spans", type=int)
    p.add_argument("--batch-max-age", dest="batch_max_age_s", type=float)
    p.add_argument("--spool-max-bytes", dest="spool_max_bytes", type=int)
    p.add_argument("--log-level", default=os.environ.get("PROMPTPULSE_LOG_LEVEL", "INFO"))


def _settings(args: argparse.Namespace) -> Any:
    from .config import Settings, load

    flags = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__}
    return load(flags, config_file=getattr(args, "config", None))


def _serve(args: argparse.Namespace) -> int:
    from .config import check
    from .service import Service

    settings = _settings(args)
    check(settings)  # a bad [alerts]/[reports]/[evaluation] table, an unset ${VAR}: one line now, not a traceback
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Service(settings).run_forever()
    return 0


# ------------------------------------------------------------------------------------------------------- query
def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--api", help="API URL of a running service (default http://127.0.0.1:<api_port>)")
    p.add_argument("--data-dir", dest="data_dir", help="open this data dir directly (no service may own it)")
    p.add_argument("--auth-token", dest="auth_token")
    p.add_argument("--config")


def _query_api(url: str, sql: str, token: str | None) -> tuple[list[str], list[list[Any]]]:
    req = urllib.request.Request(url.rstrip("/") + "/api/query", data=json.dumps({"sql": sql}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            doc = json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"promptpulse query: {json.loads(e.read() or b'{}').get('error', e)}")
    return doc["columns"], doc["rows"]


def _print(cols: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        from .api import json_default

        for r in rows:
            print(json.dumps(dict(zip(cols, r, strict=False)), default=json_default))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        cells = [[str(c) for c in cols]] + [["" if v is None else str(v) for v in r] for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        for n, row in enumerate(cells):
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
            if n == 0:
                print("  ".join("-" * w for w in widths))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", file=sys.stderr)


def _query(args: argparse.Namespace) -> int:
    from .api import check_read_only, run_read_only
    from .config import load

    s = load({"data_dir": args.data_dir, "auth_token": args.auth_token}, config_file=args.config)
    urls = [args.api] if args.api else ([] if args.data_dir else [f"http://{s.host}:{s.api_port}"])
    for url in urls:
        try:
            cols, rows = _query_api(url, args.sql, s.auth_token)
        except (urllib.error.URLError, ConnectionError) as e:
            if args.api:
                raise SystemExit(f"promptpulse query: cannot reach {url}: {e}")
            continue
        _print(cols, rows, args.format)
        return 0
    try:
        check_read_only(args.sql)
    except ValueError as e:
        raise SystemExit(f"promptpulse query: {e}")
    from .store import open_store
    from .store.owner import DataDirInUse

    try:
        store = open_store(data_dir=s.data_dir, clickhouse_url=s.clickhouse_url)
    except DataDirInUse as e:
        if not e.api:
            raise SystemExit(f"promptpulse query: {e}")
        raise SystemExit(f"promptpulse query: the data dir {e.data_dir} is in use by `promptpulse serve` "
                         f"(pid {e.pid}); ask it instead:\n  promptpulse query --api {e.api} {shlex.quote(args.sql)}")
    try:
        cols, rows = run_read_only(store, args.sql)
    except Exception as e:
        raise SystemExit(f"promptpulse query: {e}")
    finally:
        store.close()
    _print(cols, [list(r) for r in rows], args.format)
    return 0


# ------------------------------------------------------------------------------------------------------ schema
def _schema_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("apply", "print"))
    p.add_argument("--cluster")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--clickhouse-url", dest="clickhouse_url")
    p.add_argument("--config")


def _schema(args: argparse.Namespace) -> int:
    from .config import load
    from .store import SchemaOptions, open_store, print_schema

    if args.action == "print":
        print(print_schema(SchemaOptions(cluster=args.cluster)))
        return 0
    s = load({"data_dir": args.data_dir, "clickhouse_url": args.clickhouse_url}, config_file=args.config)
    if s.clickhouse_url:
        from .store.server import database_from_url  # the URL's database, as `serve` uses it

        opts = SchemaOptions(database=database_from_url(s.clickhouse_url), cluster=args.cluster)
    else:
        opts = SchemaOptions(cluster=args.cluster)
    store = open_store(data_dir=s.data_dir, clickhouse_url=s.clickhouse_url, schema_options=opts)
    try:
        store.apply_schema()
    finally:
        store.close()
    print("schema applied")
    return 0


def _not_yet(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        print(f"promptpulse {name}: not yet available", file=sys.stderr)
        return 2

    return run


register("serve", "run the OTLP receiver, writer and API", _serve_args, _serve)
register("query", "run a read-only SQL query (through the running service, else the data dir)", _query_args,
         _query)
register("schema", "apply or print the ClickHouse schema", _schema_args, _schema)
def _dashboards_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("export",))
    p.add_argument("directory", help="where to write the dashboard JSON, alert SQL and provisioning files")
    p.add_argument("--trace-url", help="trace backend URL the dashboards' trace ids link to (the id is appended), "
                                       "e.g. https://jaeger.example.com/trace/")
    p.add_argument("--runbook-url", help="where docs/ALERTS.md is published (the rules' runbook_url links)")
    p.add_argument("--dashboards-path", help="where Grafana will read DIR/grafana/dashboards "
                                             "(the dashboard provider's path; default /var/lib/grafana/dashboards/"
                                             "promptpulse)")


def _dashboards(args: argparse.Namespace) -> int:
    from promptpulse.dashboards import grafana_files
    from promptpulse.dashboards.build import export

    channels = grafana_files.channels_from_env()
    print("notification channels: " + (", ".join(f"{c.kind} (${c.env})" for c in channels) or "none (set "
          + ", ".join(c.env for c in grafana_files.CHANNELS) + ")"), file=sys.stderr)
    for path in export(args.directory, trace_url=args.trace_url, runbook_url=args.runbook_url, channels=channels,
                       dashboards_path=args.dashboards_path or grafana_files.DEFAULT_DASHBOARDS_PATH):
        print(path)
    return 0


register("dashboards", "export the Grafana dashboards, alert rules and provisioning", _dashboards_args, _dashboards)
from . import reports as _reports  # noqa: E402

register("report", _reports.HELP, _reports.add_arguments, _reports.run)
from . import demo as _demo  # noqa: E402 - light; the demo's heavy imports happen when it runs

register("demo", _demo.HELP, _demo.add_arguments, _demo.run)
from . import deadletter_cli as _deadletter_cli  # noqa: E402, F401 - registers `promptpulse deadletter`
from . import evaluation_cli as _evaluation_cli  # noqa: E402, F401 - registers `promptpulse eval`
from .alerts import cli as _alerts_cli  # noqa: E402, F401 - registers `promptpulse alerts`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptpulse",
                                     description="LLM observability on OpenTelemetry and ClickHouse")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help))
    args = parser.parse_args(argv)
    from .config import ConfigError
    from .store.owner import DataDirInUse

    try:
        return COMMANDS[args.command].run(args)
    except (ConfigError, DataDirInUse) as e:  # one line: what, where, the fix (no traceback)
        raise SystemExit(f"promptpulse {args.command}: {e}") from None
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in PROCESSOR_EXTRA:
            raise
        raise SystemExit(f"promptpulse {args.command}: no module {top!r}: the [processor] extra is not installed "
                         "(pip install -e '.[processor]' in a checkout)") from None


if __name__ == "__main__":
    sys.exit(main())
