"""The built-in alert evaluator on chDB: the rule queries of promptpulse.dashboards.alerts over seeded calls with
injected incidents (an error burst, a latency spike), evaluated minute by minute; states pending → firing →
resolved in alert_events; exactly one notification per transition to loopback webhook, Slack, PagerDuty and SMTP
receivers; re-notification; state rebuilt after a restart; nothing on normal data.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from promptpulse.processor.alerts import (
    AlertConfigError,
    AlertEvaluator,
    Notification,
    load_alerts,
    make_channels,
    pagerduty_payload,
    slack_payload,
    webhook_payload,
)
from promptpulse.processor.alerts.channels import WebhookChannel

pytest.importorskip("chdb")

UTC = dt.timezone.utc
# Recent (the raw tables have a TTL of days) and fixed within the run: minute 0 of the scenario.
BASE = (dt.datetime.now(UTC) - dt.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
CALLS_PER_MINUTE = 20


def at(minute: float) -> dt.datetime:
    return BASE + dt.timedelta(minutes=minute)


# --------------------------------------------------------------------------------------------- loopback receivers
class HttpReceiver:
    """Records JSON POSTs by path; /flaky answers 503 to its first request."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.flaky_failures = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/flaky" and receiver.flaky_failures > 0:
                    receiver.flaky_failures -= 1
                    code = 503
                else:
                    receiver.posts.append((self.path, body))
                    code = 202 if self.path == "/pd" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def take(self, path: str) -> list[Any]:
        out = [b for p, b in self.posts if p == path]
        self.posts = [(p, b) for p, b in self.posts if p != path]
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """A tiny SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) keeping the messages it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 localhost test SMTP")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode().strip().split(" ")[0].upper()
                    if cmd in ("EHLO", "HELO"):
                        self.reply("250 localhost")
                    elif cmd in ("MAIL", "RCPT", "RSET", "NOOP"):
                        self.reply("250 OK")
                    elif cmd == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                        receiver.messages.append(email.message_from_bytes(b"".join(data)))
                        self.reply("250 queued")
                    elif cmd == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def take(self) -> list[email.message.Message]:
        out, self.messages = self.messages, []
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------------ fixtures
def _span(ts: dt.datetime, i: int, prompt: str, latency_ms: float, error: str = "", http: int = 0) -> list:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
             "gen_ai.response.model": "gpt-4o", "gen_ai.prompt.name": prompt, "gen_ai.prompt.version": "1.0",
             "gen_ai.usage.input_tokens": "100", "gen_ai.usage.output_tokens": "20",
             "promptpulse.cost.usd": "0.001"}
    if error:
        attrs["error.type"] = error
    if http:
        attrs["http.response.status_code"] = str(http)
    trace = f"{int(ts.timestamp()):08x}{i:06x}{hash(prompt) & 0xffff:04x}".ljust(32, "0")
    return [ts, trace, trace[:16], "", "", "chat gpt-4o", "Client", "shop",
            {"service.name": "shop", "deployment.environment.name": "prod"}, "promptpulse", "0.1", attrs,
            int(latency_ms * 1_000_000), "Error" if error else "Ok", "", [], [], [], [], [], [], []]


def seed_rows() -> list[list]:
    """Minutes -30..70, 20 calls a minute for each of two prompts. Incidents: support_reply fails half its calls in
    minutes [10, 20) (429s: no 5xx); summarize takes 4 s instead of 0.5 s in minutes [30, 40)."""
    rows = []
    for m in range(-30, 70):
        for i in range(CALLS_PER_MINUTE):
            ts = at(m) + dt.timedelta(seconds=i * 60 / CALLS_PER_MINUTE + 0.5)
            failed = 10 <= m < 20 and i % 2 == 0
            rows.append(_span(ts, m * 100 + i, "support_reply", 400 + i * 10,
                              error="RateLimitError" if failed else "", http=429 if failed else 0))
            slow = 30 <= m < 40
            rows.append(_span(ts, m * 100 + i, "summarize", 4000 + i if slow else 500 + i * 5))
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb-alerts")), schema_options=SchemaOptions(database="pp_alerts"))
    try:
        s.apply_schema()
        s.insert_otel_traces(seed_rows())
        assert s.query("SELECT sum(calls) FROM llm_calls_1m").scalar() == 100 * 2 * CALLS_PER_MINUTE
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def http() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    r = SmtpReceiver()
    yield r
    r.close()


def config(http: HttpReceiver, smtp: SmtpReceiver, rules: list[dict], **alerts: Any) -> Any:
    fast = {"timeout_s": 2, "retries": 2, "backoff_s": 0.01}
    return load_alerts({
        "channels": {
            "hook": {"type": "webhook", "url": http.url + "/hook", **fast},
            "slack": {"type": "slack", "webhook_url": http.url + "/slack", **fast},
            "pd": {"type": "pagerduty", "routing_key": "R0UT1NGKEY", "url": http.url + "/pd", **fast},
            "mail": {"type": "email", "host": "127.0.0.1", "port": smtp.port, "from": "pp@example.com",
                     "to": ["oncall@example.com"], **fast},
        },
        "rules": rules, **alerts})


def events(store: Any, rule: str) -> list[tuple[str, dt.datetime, dict]]:
    rows = store.query("SELECT state, timestamp, labels, severity, value, threshold FROM alert_events "
                       "WHERE rule = {r:String} ORDER BY timestamp, state", {"r": rule}).rows
    return [(str(s), t.replace(tzinfo=UTC) if t.tzinfo is None else t, dict(lab)) for s, t, lab, *_ in rows]


# --------------------------------------------------------------------------------------------------------- tests
def test_error_burst_pending_firing_resolved_with_restart(store: Any, http: HttpReceiver,
                                                          smtp: SmtpReceiver) -> None:
    cfg = config(http, smtp, [{"name": "errors", "rule": "error_rate", "for": "2m", "severity": "critical",
                               "channels": ["hook", "slack", "pd", "mail"], "scope": {"prompt": "support_reply"}}])
    ev = AlertEvaluator.from_config(store, cfg)
    seen: dict[int, list] = {}
    for m in range(0, 17):
        seen[m] = [(t.state, t.previous) for t in ev.evaluate_once(at(m) + dt.timedelta(seconds=20))]
        if m < 11:  # normal data: nothing pending, nothing sent
            assert seen[m] == [] and http.posts == [] and smtp.messages == [], m
    assert seen[11] == [("pending", None)]  # window [6, 11) holds minute 10: 10 of 100 calls failed
    assert seen[12] == []
    assert seen[13] == [("firing", "pending")]  # pending for 2 minutes
    assert all(seen[m] == [] for m in range(14, 17))

    hooks, slacks, pds, mails = http.take("/hook"), http.take("/slack"), http.take("/pd"), smtp.take()
    assert len(hooks) == len(slacks) == len(pds) == len(mails) == 1  # one notification per transition
    p = hooks[0]
    assert {k: p[k] for k in ("alert_type", "severity", "prompt_id", "metric", "threshold", "timestamp")} == {
        "alert_type": "errors", "severity": "critical", "prompt_id": "support_reply", "metric": "error_rate_pct",
        "threshold": 5.0, "timestamp": at(13).strftime("%Y-%m-%dT%H:%M:20Z")}
    assert p["value"] == pytest.approx(30.0)  # window [8, 13): minutes 10-12, 30 failed of 100
    assert p["status"] == "firing" and p["labels"]["service"] == "shop" and p["labels"]["model"] == "gpt-4o"
    assert pds[0]["event_action"] == "trigger" and pds[0]["routing_key"] == "R0UT1NGKEY"
    assert pds[0]["dedup_key"] == p["dedup_key"] and pds[0]["payload"]["severity"] == "critical"
    assert pds[0]["payload"]["custom_details"]["alert_type"] == "errors"
    assert slacks[0]["text"].startswith("[CRITICAL]") and slacks[0]["blocks"][0]["type"] == "header"
    assert "[CRITICAL]" in mails[0]["Subject"] and "support_reply" in mails[0]["Subject"]
    assert mails[0]["To"] == "oncall@example.com"

    # restart: a new evaluator rebuilds the firing state from alert_events and sends nothing twice
    ev2 = AlertEvaluator.from_config(store, cfg)
    for m in range(17, 30):
        seen[m] = [(t.state, t.previous) for t in ev2.evaluate_once(at(m) + dt.timedelta(seconds=20))]
    assert [m for m in range(17, 30) if seen[m]] == [25]
    assert seen[25] == [("resolved", "firing")]  # window [20, 25) is clean
    hooks, pds, mails = http.take("/hook"), http.take("/pd"), smtp.take()
    assert [h["status"] for h in hooks] == ["resolved"] and len(http.take("/slack")) == 1 and len(mails) == 1
    assert pds == [{"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": p["dedup_key"]}]
    assert "RESOLVED" in mails[0]["Subject"]

    rows = events(store, "errors")
    assert [(s, t) for s, t, _ in rows] == [("pending", at(11) + dt.timedelta(seconds=20)),
                                            ("firing", at(13) + dt.timedelta(seconds=20)),
                                            ("resolved", at(25) + dt.timedelta(seconds=20))]
    assert rows[0][2]["prompt_name"] == "support_reply" and rows[0][2]["provider"] == "openai"


def test_latency_spike_fires_at_once_and_renotifies(store: Any, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    cfg = config(http, smtp, [{"name": "slow", "rule": "latency_p95", "threshold": 2000, "renotify": "5m",
                               "channels": ["hook"]},
                              {"name": "slow_p99", "rule": "latency_p99", "channels": ["hook"]}])  # 4 s < 5 s
    ev = AlertEvaluator.from_config(store, cfg)
    fired = {m: [(t.rule, t.state, t.repeat) for t in ev.evaluate_once(at(m))] for m in range(26, 50)}
    assert {m: f for m, f in fired.items() if f} == {
        31: [("slow", "firing", False)],  # for = 0: no pending state; window [26, 31) has 20% slow calls
        36: [("slow", "firing", True)],
        41: [("slow", "firing", True)],
        45: [("slow", "resolved", False)],
    }
    hooks = http.take("/hook")
    assert [(h["status"], h["repeat"], h["prompt_id"]) for h in hooks] == [
        ("firing", False, "summarize"), ("firing", True, "summarize"), ("firing", True, "summarize"),
        ("resolved", False, "summarize")]
    assert hooks[0]["metric"] == "p95_latency" and hooks[0]["threshold"] == 2000.0
    assert hooks[0]["value"] == pytest.approx(4000, rel=0.02) and hooks[0]["severity"] == "warning"
    # re-notifications are not state changes: alert_events has firing and resolved only
    assert [s for s, _, _ in events(store, "slow")] == ["firing", "resolved"]
    assert events(store, "slow_p99") == [] and http.posts == [] and smtp.messages == []


def test_all_builtin_rules_run_and_stay_quiet_on_normal_data(store: Any, http: HttpReceiver,
                                                             smtp: SmtpReceiver) -> None:
    cfg = load_alerts({"channels": {"hook": {"type": "webhook", "url": http.url + "/hook"}}})
    assert len(cfg.rules) >= 13 and cfg.interval_s == 60 and cfg.channels_for(cfg.rules[0]) == ("hook",)
    ev = AlertEvaluator.from_config(store, cfg)
    for m in (2, 5, 8, 55, 65):
        assert ev.evaluate_once(at(m)) == [], m
        assert ev.errors == {}, ev.errors  # every built-in query runs on chDB with the evaluator's parameters
    assert http.posts == [] and smtp.messages == []


def test_dry_run_writes_and_sends_nothing(store: Any, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    cfg = config(http, smtp, [{"name": "dry", "rule": "error_rate", "channels": ["hook"]}])
    ev = AlertEvaluator.from_config(store, cfg)
    would = ev.evaluate_once(at(15), dry_run=True)
    assert [(t.rule, t.state, t.notify) for t in would] == [("dry", "firing", True)]
    assert ev.states["dry"] == {} and events(store, "dry") == [] and http.posts == []
    status = ev.status()
    assert status[0]["name"] == "dry" and status[0]["state"] == "ok" and status[0]["channels"] == ["hook"]


def test_scope_and_overrides(store: Any, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    cfg = config(http, smtp, [
        {"name": "other_prompt", "rule": "error_rate", "scope": {"prompt_name": ["summarize"]}, "channels": ["hook"]},
        {"name": "high_bar", "rule": "error_rate", "threshold": 60, "window": "2m", "channels": ["hook"]},
    ])
    ev = AlertEvaluator.from_config(store, cfg)
    assert [t.rule for m in range(9, 22) for t in ev.evaluate_once(at(m))] == []  # the burst is 50% < 60%
    assert http.take("/hook") == []
    assert cfg.rules[1].query_parameters(at(0))["max_error_pct"] == 60.0
    assert cfg.rules[1].query_parameters(at(0))["window_s"] == 120


def test_query_error_and_store_down_do_not_crash(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    class Broken:
        def query(self, *a: Any, **k: Any) -> Any:
            raise ConnectionError("store down")

        def insert_rows(self, *a: Any, **k: Any) -> None:
            raise ConnectionError("store down")

    ev = AlertEvaluator.from_config(Broken(), config(http, smtp, [{"rule": "error_rate"}]))
    assert ev.evaluate_once(at(0)) == []  # restore failed: retried next time, nothing evaluated
    ev._restored = True
    assert ev.evaluate_once(at(1)) == [] and "store down" in ev.errors["error_rate"]

    def unreachable() -> Any:  # the service passes its lazy get_store, which raises while the store is down
        raise ConnectionError("no route to host")

    ev = AlertEvaluator.from_config(unreachable, config(http, smtp, [{"rule": "error_rate"}]))
    assert ev.evaluate_once(at(2)) == [] and "no route" in ev.errors["error_rate"]


def _note(**kw: Any) -> Notification:
    base = dict(rule="latency_spike", rule_type="latency_p95", title="p95 latency above 2 s", status="firing",
                severity="warning", metric="p95_latency", labels={"prompt_name": "abc123", "service": "shop"},
                value=3500.0, threshold=2000.0, timestamp=dt.datetime(2024, 1, 15, 10, 30, tzinfo=UTC))
    return Notification(**(base | kw))


def test_payload_shapes() -> None:
    p = webhook_payload(_note())
    assert {k: p[k] for k in ("alert_type", "severity", "prompt_id", "metric", "value", "threshold", "timestamp")} \
        == {"alert_type": "latency_spike", "severity": "warning", "prompt_id": "abc123", "metric": "p95_latency",
            "value": 3500, "threshold": 2000, "timestamp": "2024-01-15T10:30:00Z"}  # the seed's example
    assert webhook_payload(_note(value=float("nan")))["value"] is None
    s = slack_payload(_note())
    assert s["text"] and [b["type"] for b in s["blocks"]] == ["header", "section", "context"]
    pd = pagerduty_payload(_note(), "key")
    assert pd["event_action"] == "trigger" and pd["payload"]["source"] == "shop"
    assert set(pd["payload"]) >= {"summary", "source", "severity", "timestamp", "custom_details"}
    assert pagerduty_payload(_note(status="resolved"), "key") == {
        "routing_key": "key", "event_action": "resolve", "dedup_key": pd["dedup_key"]}


def test_channels_retry_never_raise_and_never_log_secrets(http: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flaky = WebhookChannel("flaky", http.url + "/flaky", retries=3, backoff_s=0.01, timeout_s=2)
    assert flaky.send(_note()) is True and http.take("/flaky")[0]["alert_type"] == "latency_spike"
    channels = make_channels({
        "dead": {"type": "slack", "webhook_url": "http://127.0.0.1:9/services/T000/B000/SECRETTOKEN",
                 "retries": 2, "backoff_s": 0.01, "timeout_s": 1},
        "pd": {"type": "pagerduty", "routing_key": "SECRETROUTINGKEY", "url": "http://127.0.0.1:9/enqueue",
               "retries": 1, "timeout_s": 1},
        "mail": {"type": "email", "host": "127.0.0.1", "port": 9, "to": "a@example.com", "username": "u",
                 "password": "SECRETPASSWORD", "retries": 1, "timeout_s": 1},
    })
    for c in channels.values():
        assert c.send(_note()) is False and c.failed == 1
        assert "SECRET" not in repr(c)
    assert "failed" in caplog.text and "SECRET" not in caplog.text


def test_config_errors_and_env() -> None:
    with pytest.raises(AlertConfigError, match="unknown rule"):
        load_alerts({"rules": [{"rule": "nope"}]})
    with pytest.raises(AlertConfigError, match="no channel"):
        load_alerts({"rules": [{"rule": "error_rate", "channels": ["x"]}]})
    with pytest.raises(AlertConfigError, match="scope"):
        load_alerts({"rules": [{"rule": "daily_budget", "scope": {"prompt": "x"}}]})
    with pytest.raises(AlertConfigError, match="MISSING_VAR"):
        load_alerts({"channels": {"h": {"type": "webhook", "url": "${MISSING_VAR}"}}}, env={})
    cfg = load_alerts({"interval_s": 15, "renotify": "1h", "channels": {
        "h": {"type": "webhook", "url": "https://x.example/${TOKEN}"}},
        "rules": [{"rule": "daily_budget", "threshold": 50, "for": "10m", "severity": "critical"}]},
        env={"TOKEN": "t0k"})
    assert cfg.channels["h"]["url"] == "https://x.example/t0k" and cfg.interval_s == 15 and cfg.renotify_s == 3600
    r = cfg.rules[0]
    assert (r.name, r.for_s, r.severity, dict(r.params)) == ("daily_budget", 600, "critical",
                                                             {"daily_budget_usd": 50.0})


def test_settings_carry_the_alerts_table(tmp_path: Any) -> None:
    from promptpulse.processor.config import as_dict, load

    f = tmp_path / "pp.toml"
    f.write_text('api_port = 9999\n[alerts]\ninterval_s = 30\n[alerts.channels.h]\ntype = "webhook"\n'
                 'url = "https://hooks.example/SECRET"\n[[alerts.rules]]\nrule = "error_rate"\n')
    s = load(config_file=str(f), env={})
    assert s.api_port == 9999 and load_alerts(s.alerts).interval_s == 30
    assert "SECRET" not in json.dumps(as_dict(s)) and "SECRET" not in repr(s)


def test_cli_test_list_history(tmp_path: Any, http: HttpReceiver) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("promptpulse"))
    f = tmp_path / "pp.toml"
    f.write_text(f'[alerts.channels.hook]\ntype = "webhook"\nurl = "{http.url}/cli?token=${{HOOK_TOKEN}}"\n'
                 '[[alerts.rules]]\nname = "cli-errors"\nrule = "error_rate"\nfor = "5m"\n')
    env = {**os.environ, "HOOK_TOKEN": "SECRETTOKEN", "PROMPTPULSE_API_PORT": "9"}  # no service answers
    out = subprocess.run([cli, "alerts", "test", "--config", str(f)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert [p["status"] for p in http.take("/cli?token=SECRETTOKEN")] == ["test"]
    data = str(tmp_path / "data")
    out = subprocess.run([cli, "alerts", "list", "--config", str(f), "--data-dir", data, "--format", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [rule] = json.loads(out.stdout)
    assert (rule["name"], rule["rule"], rule["for_s"], rule["channels"]) == ("cli-errors", "error_rate", 300, ["hook"])
    assert "SECRETTOKEN" not in out.stdout + out.stderr


def test_a_notification_names_the_threshold_that_fired(store: Any, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    from promptpulse.dashboards.alerts import RULES
    from promptpulse.processor.alerts import default_rules

    # with the defaults every rule's title is the built-in one (Grafana shows those)
    assert [r.title for r in default_rules()] == [r.title for r in RULES]
    cfg = config(http, smtp, [{"name": "tight", "rule": "error_rate", "threshold": 3, "window": "10m",
                               "channels": ["hook"]}])
    assert cfg.rules[0].title == "Error rate above 3% for 10 minutes"
    ev = AlertEvaluator.from_config(store, cfg)
    fired = [t for m in range(9, 22) for t in ev.evaluate_once(at(m)) if t.state == "firing"]
    assert len(fired) == 1 and fired[0].threshold == 3.0
    assert fired[0].message.startswith("Error rate above 3% for 10 minutes: error_rate_pct = ")
    assert fired[0].message.endswith(", threshold 3")
    (hook,) = http.take("/hook")
    assert hook["title"] == "Error rate above 3% for 10 minutes" and hook["threshold"] == 3.0
    assert "above 5%" not in json.dumps(hook)
    budget = load_alerts({"rules": [{"rule": "daily_budget", "threshold": 250}]}).rules[0]
    assert budget.title == "Daily spend above 110% of budget ($250)"
    assert load_alerts({"rules": [{"rule": "latency_p95", "threshold": 1500}]}).rules[0].title == \
        "p95 latency above 1500 ms"
