"""`promptpulse alerts list|test|history` (registered with promptpulse.processor.cli.register).

Each talks to the running service's API first (GET /api/alerts, POST /api/query) and otherwise opens the store
itself (``--data-dir`` for embedded chDB — only when no service owns that directory — or ``--clickhouse-url``).
Rules and channels come from the ``[alerts]`` table of ``--config`` (or PROMPTPULSE_CONFIG).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import urllib.error
import urllib.request
from typing import Any

from ..cli import register
from .rules import AlertConfigError, load_alerts, parse_duration

_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="alerts_action", required=True)
    for name, help_ in (("list", "configured rules and their current state"),
                        ("test", "send a test notification through the channels (--dry-run: evaluate once and "
                                 "print what would fire)"),
                        ("history", "alert state changes from alert_events")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", help="TOML settings file with the [alerts] table")
        s.add_argument("--api", help="API URL of a running service (default http://<host>:<api_port>)")
        s.add_argument("--data-dir", dest="data_dir", help="open this data dir directly (no service may own it)")
        s.add_argument("--clickhouse-url", dest="clickhouse_url")
        s.add_argument("--auth-token", dest="auth_token")
        s.add_argument("--format", choices=("table", "json"), default="table")
        if name == "test":
            s.add_argument("--channel", action="append", help="only this channel (repeatable)")
            s.add_argument("--dry-run", action="store_true", help="evaluate the rules once; send nothing")
        if name == "history":
            s.add_argument("--rule", help="only this rule")
            s.add_argument("--state", choices=("pending", "firing", "resolved"))
            s.add_argument("--since", default="7d", help="ISO time or a duration back from now (default 7d)")
            s.add_argument("--limit", type=int, default=100)


def _settings(args: argparse.Namespace) -> Any:
    from ..config import load

    return load({"data_dir": args.data_dir, "clickhouse_url": args.clickhouse_url, "auth_token": args.auth_token},
                config_file=args.config)


def _api(args: argparse.Namespace, s: Any, path: str, body: Any = None) -> Any:
    """JSON from the service, or None when no service answers (and --api was not given)."""
    if (args.data_dir or args.clickhouse_url) and not args.api:
        return None
    url = (args.api or f"http://{s.host}:{s.api_port}").rstrip("/") + path
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"}, method="POST" if body else "GET")
    if s.auth_token:
        req.add_header("Authorization", "Bearer " + s.auth_token)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        msg = json.loads(e.read() or b"{}").get("error", str(e))
        if e.code == 404 and path.startswith("/api/alerts") and not args.api:
            return None  # a service without the evaluator: read the store
        raise SystemExit(f"promptpulse alerts: {msg}")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        if args.api:
            raise SystemExit(f"promptpulse alerts: cannot reach {args.api}: {e}")
        return None


def _open_store(s: Any) -> Any:
    from pathlib import Path

    from ..store import open_store

    if not s.clickhouse_url and not Path(s.data_dir).is_dir():  # do not create an empty data dir
        raise FileNotFoundError(f"no service answers and there is no data dir at {s.data_dir}")
    return open_store(data_dir=s.data_dir, clickhouse_url=s.clickhouse_url)


def _table(cols: list[str], rows: list[list[Any]]) -> None:
    cells = [cols] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    for n, r in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _labels(d: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(d.items()) if v not in ("", None))


# ------------------------------------------------------------------------------------------------------------
def _list(args: argparse.Namespace, s: Any, config: Any) -> int:
    doc = _api(args, s, "/api/alerts")
    if doc is not None:
        status = doc["rules"]
    else:
        from .evaluator import AlertEvaluator

        ev = AlertEvaluator.from_config(None, config)
        try:
            store = _open_store(s)
        except Exception as e:
            print(f"promptpulse alerts: no state ({str(e).splitlines()[0][:200]})", file=sys.stderr)
            status = ev.status()
            for r in status:
                r["state"] = "unknown"
        else:
            ev._store = store
            try:
                ev.restore()
            except Exception as e:
                print(f"promptpulse alerts: no state ({str(e).splitlines()[0][:200]})", file=sys.stderr)
            finally:
                store.close()
            status = ev.status()
            for r in status:
                if r["state"] == "ok":
                    r["state"] = "ok (last recorded)"
    if args.format == "json":
        print(json.dumps(status, default=str, indent=2))
        return 0
    rows = []
    for r in status:
        active = [x for x in r["series"] if x["state"] in ("pending", "firing")]
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items())
        rows.append([r["name"], r["rule"], r["severity"], f"{r['for_s']:g}s", ",".join(r["channels"] or []) or "-",
                     r["state"], len(active), params])
        for x in active:
            rows.append(["", "", x["severity"], "", "", "  " + x["state"], "",
                         f"{_labels(x['labels'])} value={x['value']} threshold={x['threshold']} "
                         f"since {x['active_at']}"])
    _table(["NAME", "RULE", "SEVERITY", "FOR", "CHANNELS", "STATE", "ACTIVE", "PARAMETERS / SERIES"], rows)
    return 0


def _test(args: argparse.Namespace, s: Any, config: Any) -> int:
    if args.dry_run:
        doc = _api(args, s, "/api/alerts?dry_run=1")
        if doc is not None:
            would, errors = doc["would"], doc["errors"]
        else:
            from .evaluator import AlertEvaluator

            try:
                store = _open_store(s)
            except Exception as e:
                raise SystemExit(f"promptpulse alerts: cannot open the store: {e}")
            try:
                ev = AlertEvaluator.from_config(store, config)
                would = [t.__dict__ for t in ev.evaluate_once(dry_run=True)]
                errors = ev.dry_run_errors
            finally:
                store.close()
        if args.format == "json":
            print(json.dumps({"would": would, "errors": errors}, default=str, indent=2))
        else:
            _table(["RULE", "STATE", "FROM", "SEVERITY", "NOTIFY", "LABELS", "VALUE", "THRESHOLD"],
                   [[t["rule"], t["state"] + (" (repeat)" if t["repeat"] else ""), t["previous"] or "-",
                     t["severity"], "yes" if t["notify"] else "no", _labels(t["labels"]), t["value"],
                     t["threshold"]] for t in would])
            for rule, err in errors.items():
                print(f"rule {rule}: error: {err}", file=sys.stderr)
            print(f"({len(would)} transition(s) would happen; nothing sent)", file=sys.stderr)
        return 1 if errors else 0
    from .channels import Notification, make_channels

    channels = make_channels(config.channels, retries=1)
    names = args.channel or list(channels)
    unknown = [n for n in names if n not in channels]
    if unknown:
        raise SystemExit(f"promptpulse alerts: no channel {', '.join(unknown)} in [alerts.channels]")
    if not names:
        raise SystemExit("promptpulse alerts: no channels configured ([alerts.channels.<name>] in --config)")
    n = Notification(rule="promptpulse_test", rule_type="test", title="PromptPulse test notification",
                     status="test", severity="info", metric="test", labels={"prompt_name": "test"}, value=1.0,
                     threshold=0.0, timestamp=dt.datetime.now(dt.timezone.utc),
                     summary="A test of the alert channel: no action needed.")
    failed = 0
    for name in names:
        ok = channels[name].send(n)
        failed += not ok
        print(f"{name} ({channels[name].type}): {'sent' if ok else 'FAILED (see the log above)'}")
    return 1 if failed else 0


def _since(value: str) -> dt.datetime:
    from ..timerange import parse_since

    try:
        return parse_since(value, parse_duration)
    except ValueError:
        raise SystemExit(f"promptpulse alerts: --since: not a time or duration: {value!r}")


def _history(args: argparse.Namespace, s: Any) -> int:
    since = _since(args.since).strftime("%Y-%m-%d %H:%M:%S.%f")
    if args.rule and not _NAME.match(args.rule):
        raise SystemExit("promptpulse alerts: --rule: not a rule name")
    limit = max(1, int(args.limit))
    where = ["timestamp >= {since:DateTime64(6, 'UTC')}"]
    params: dict[str, Any] = {"since": since}
    if args.rule:
        where.append("rule = {rule:String}")
        params["rule"] = args.rule
    if args.state:
        where.append("state = {state:String}")
        params["state"] = args.state
    sql = ("SELECT timestamp, rule, state, severity, labels, value, threshold, message FROM alert_events "
           f"WHERE {' AND '.join(where)} ORDER BY timestamp DESC, rule LIMIT {limit}")
    literal = sql  # /api/query takes literal SQL: the values are checked above (names, enum, formatted time)
    for k, v in params.items():
        literal = re.sub(r"\{" + k + r":[^}]+\}", "'" + str(v).replace("'", "") + "'", literal)
    doc = _api(args, s, "/api/query", {"sql": literal})
    if doc is not None:
        rows = [list(r) for r in doc["rows"]]
    else:
        try:
            store = _open_store(s)
        except Exception as e:
            raise SystemExit(f"promptpulse alerts: {e}")
        try:
            rows = [list(r) for r in store.query(sql, params).rows]
        except Exception as e:
            raise SystemExit(f"promptpulse alerts: {str(e).splitlines()[0][:300]}")
        finally:
            store.close()
    cols = ["timestamp", "rule", "state", "severity", "labels", "value", "threshold", "message"]
    if args.format == "json":
        for r in rows:
            print(json.dumps(dict(zip(cols, r, strict=False)), default=str))
        return 0
    _table([c.upper() for c in cols], [[r[0], r[1], r[2], r[3], _labels(dict(r[4])), _g(r[5]), _g(r[6]), r[7]]
                                      for r in rows])
    print(f"({len(rows)} event(s))", file=sys.stderr)
    return 0


def _g(v: Any) -> str:
    try:
        return f"{float(v):.6g}"
    except (TypeError, ValueError):
        return str(v)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError

    try:
        s = _settings(args)
    except ConfigError as e:
        raise SystemExit(f"promptpulse alerts: {e}") from None
    # only sending a test notification needs the channels' secrets
    sends = args.alerts_action == "test" and not args.dry_run
    try:
        config = load_alerts(s.alerts, secrets=sends)
    except (AlertConfigError, ValueError) as e:
        raise SystemExit(f"promptpulse alerts: {s.config_file or 'config'}: {e}") from None
    if args.alerts_action == "list":
        return _list(args, s, config)
    if args.alerts_action == "test":
        return _test(args, s, config)
    return _history(args, s)


register("alerts", "built-in alert evaluator: list rules and states, test channels, show history", _args, run)
