"""`promptpulse eval list|test|run` (registered with promptpulse.processor.cli.register).

Rules come from the ``[evaluation]`` table of ``--config`` (or PROMPTPULSE_CONFIG). ``test`` runs one rule on text
given on the command line (nothing is read or written); ``run`` evaluates the stored calls of a past window with the
processor rules — ``--dry-run`` prints the results without writing them. ``run`` asks the running service first
(POST /api/evaluation/run: the service's own rules) and otherwise opens the store itself: ``--clickhouse-url``, or
``--data-dir`` for embedded chDB when no service owns that directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from promptpulse.evaluation.record import Call
from promptpulse.evaluation.rules import RuleError, load_evaluation, parse_duration
from promptpulse.instrumentation import semconv as sc

from .cli import register


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_action", required=True)
    for name, help_ in (("list", "the configured rules"),
                        ("test", "run one rule on the given text (nothing read or written)"),
                        ("run", "evaluate stored calls of a past window with the processor rules")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", help="TOML settings file with the [evaluation] table")
        s.add_argument("--format", choices=("table", "json"), default="table")
        if name == "test":
            s.add_argument("rule", help="rule name")
            s.add_argument("--input", help="the user's message")
            s.add_argument("--output", help="the answer")
            s.add_argument("--context", help="a context field (attributes.context)")
            s.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", help="a span attribute")
        if name == "run":
            s.add_argument("--since", default="1h", help="ISO time or a duration back from now (default 1h)")
            s.add_argument("--until", help="ISO time (default now)")
            s.add_argument("--rule", action="append", help="only this rule (repeatable)")
            s.add_argument("--dry-run", action="store_true", help="print the results; write nothing")
            s.add_argument("--api", help="API URL of a running service (default http://<host>:<api_port>)")
            s.add_argument("--auth-token", dest="auth_token")
            s.add_argument("--data-dir", dest="data_dir", help="open this data dir (no service may own it)")
            s.add_argument("--clickhouse-url", dest="clickhouse_url")


def _table(cols: list[str], rows: list[list[Any]]) -> None:
    cells = [cols] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    for n, r in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _time(value: str) -> dt.datetime:
    from .timerange import parse_since

    try:
        return parse_since(value, lambda v: parse_duration(v, "--since"))
    except ValueError:
        raise SystemExit(f"promptpulse eval: not a time or duration: {value!r}")


def _list(args: argparse.Namespace, config: Any) -> int:
    rules = [r.describe() for r in config.rules]
    if args.format == "json":
        print(json.dumps(rules, indent=2))
        return 0
    _table(["NAME", "METRIC", "RUNS", "TARGET", "SAMPLING", "GUARDRAIL", "JUDGE", "FILTERS"],
           [[r["name"], r["metric"], r["runs"], r["target"] + (f" (idle {r['idle_s']:g}s)" if "idle_s" in r else ""),
             f"{r['sampling']:g}", r["guardrail"] or "-",
             f"{r['judge']['provider']}/{r['judge']['model']}" if "judge" in r else "-",
             ", ".join(f"{k}={'|'.join(v)}" for k, v in r["filters"].items()) or "-"] for r in rules])
    print(f"({len(rules)} rule(s))", file=sys.stderr)
    return 0


def _test(args: argparse.Namespace, config: Any) -> int:
    from promptpulse.evaluation.metrics import evaluate

    rule = next((r for r in config.rules if r.name == args.rule), None)
    if rule is None:
        raise SystemExit(f"promptpulse eval: no rule {args.rule!r} in [evaluation]")
    attrs: dict[str, Any] = {}
    for kv in args.attr:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"promptpulse eval: --attr {kv!r}: expected KEY=VALUE")
        attrs[k] = v
    if args.context is not None:
        attrs["context"] = args.context
    call = Call(trace_id="0" * 32, span_id="0" * 16, attributes=attrs,
                input_messages=None if args.input is None else [{"role": "user", "content": args.input}],
                output_messages=None if args.output is None else [{"role": "assistant", "content": args.output}])
    attrs.setdefault(sc.GEN_AI_OPERATION_NAME, "chat")
    result = evaluate(rule, rule.inputs(call))
    doc = {"rule": rule.name, "metric": rule.metric, "value": result.value, "label": result.label,
           "reason": result.reason, "error": result.error or None, "judge_model": result.judge_model or None,
           "judge_cost_usd": result.judge_cost_usd}
    if args.format == "json":
        print(json.dumps(doc))
    else:
        for k, v in doc.items():
            if v is not None:
                print(f"{k}: {v}")
    return 1 if result.error else 0


def _via_api(args: argparse.Namespace, s: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    """The service's answer, or None when no service answers (and --api was not given)."""
    import urllib.error
    import urllib.request

    if (args.data_dir or args.clickhouse_url) and not args.api:
        return None
    url = (args.api or f"http://{s.host}:{s.api_port}").rstrip("/") + "/api/evaluation/run"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if s.auth_token:
        req.add_header("Authorization", "Bearer " + s.auth_token)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raw = e.read() or b"{}"
        if e.code == 404 and not args.api and b"no rule" not in raw:
            return None  # an older service without /api/evaluation
        try:
            msg = json.loads(raw).get("error", str(e))
        except ValueError:
            msg = str(e)
        raise SystemExit(f"promptpulse eval: {msg}")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        if args.api:
            raise SystemExit(f"promptpulse eval: cannot reach {args.api}: {e}")
        return None


def _run(args: argparse.Namespace, s: Any, config: Any) -> int:
    from pathlib import Path

    from .evaluation import ProcessorEvaluator
    from .store import open_store

    start = _time(args.since)
    end = _time(args.until) if args.until else dt.datetime.now(dt.timezone.utc)
    doc = _via_api(args, s, {"since": start.isoformat(), "until": end.isoformat(), "rules": args.rule,
                             "dry_run": args.dry_run})
    if doc is not None:
        return _print_run(args, doc)
    rules = config.for_place("processor")
    if args.rule:
        unknown = set(args.rule) - {r.name for r in config.rules}
        if unknown:
            raise SystemExit(f"promptpulse eval: no rule {', '.join(sorted(unknown))} in [evaluation]")
        rules = tuple(r for r in config.rules if r.name in args.rule)
    if not s.clickhouse_url and not Path(s.data_dir).is_dir():
        raise SystemExit(f"promptpulse eval: no service answers and there is no data dir at {s.data_dir}")
    store = open_store(data_dir=s.data_dir, clickhouse_url=s.clickhouse_url)
    try:
        ev = ProcessorEvaluator(store, config, rules=rules)
        report = ev.run_pass(start, end, dry_run=args.dry_run)
    except Exception as e:
        raise SystemExit(f"promptpulse eval: {str(e).splitlines()[0][:300] if str(e) else e}")
    finally:
        store.close()
    doc = report.as_dict()
    doc["results"] = [{"rule": o.rule.name, "trace_id": o.trace_id, "span_id": o.span_id, "value": o.result.value,
                       "label": o.result.label, "reason": o.result.reason, "error": o.result.error or None}
                      for o in report.outcomes]
    return _print_run(args, doc)


def _print_run(args: argparse.Namespace, doc: dict[str, Any]) -> int:
    if args.format == "json":
        print(json.dumps(doc, default=str))
        return 0
    _table(["RULE", "MATCHED", "SAMPLED", "NO CONTENT", "ALREADY", "SCORED", "ERRORS", "JUDGE COST USD"],
           [[name, r["matched"], r["sampled"], r["no_content"], r["already"], r["scored"], r["errors"],
             f"{r['judge_cost_usd']:.6f}"] for name, r in doc["rules"].items()])
    verb = "would be written (dry run)" if args.dry_run else "written"
    print(f"({doc['calls']} call(s) read; {len(doc['results'])} result(s) {verb})", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from .config import load

    flags = {k: getattr(args, k, None) for k in ("data_dir", "clickhouse_url", "auth_token")}
    try:
        s = load(flags, config_file=args.config)
        config = load_evaluation(s.evaluation)
    except (RuleError, ValueError, TypeError) as e:
        raise SystemExit(f"promptpulse eval: {e}")
    if args.eval_action == "list":
        return _list(args, config)
    if args.eval_action == "test":
        return _test(args, config)
    return _run(args, s, config)


register("eval", "online evaluation rules: list them, test one on given text, run them over stored calls",
         _args, run)
