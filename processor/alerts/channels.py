"""Notification channels: generic webhook (the seed's JSON payload), Slack incoming webhook, PagerDuty Events v2,
email over SMTP.

Every channel has a timeout and retries with exponential backoff, and ``send`` never raises: it returns whether
the notification was delivered, and logs failures by channel name only. Webhook URLs (which carry tokens),
routing keys and passwords are never logged nor shown in reprs: anything secret is scrubbed from error texts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("promptpulse.alerts")

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass
class Notification:
    """One alert transition (or a re-notification, or a test) to deliver."""

    rule: str  # configured rule name (the alert_type)
    rule_type: str  # built-in rule query
    title: str
    status: str  # firing | resolved | test
    severity: str
    metric: str
    labels: dict[str, str]
    value: float
    threshold: float
    timestamp: dt.datetime
    started_at: dt.datetime | None = None
    summary: str = ""
    repeat: bool = False  # a re-notification of an alert that keeps firing
    extra: dict[str, Any] = field(default_factory=dict)  # other columns of the rule query (baseline, n_calls, ...)

    @property
    def prompt_id(self) -> str | None:
        return self.labels.get("prompt_name") or None

    @property
    def dedup_key(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"promptpulse/{self.rule}/{labels}"[:255]

    def text(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if v != "")
        state = "RESOLVED" if self.status == "resolved" else ("TEST" if self.status == "test" else
                                                             self.severity.upper())
        again = " (still firing)" if self.repeat else ""
        return (f"[{state}] {self.title}{again}: {self.metric} = {_num(self.value)} "
                f"(threshold {_num(self.threshold)}){' — ' + where if where else ''}")


def iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(v: Any) -> Any:
    """JSON-safe number: NaN/inf become None, integral floats stay floats."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return iso(v) if isinstance(v, dt.datetime) else v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    try:
        return float(v)  # Decimal
    except (TypeError, ValueError):
        return str(v)


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The seed's payload (alert_type, severity, prompt_id, metric, value, threshold, timestamp) plus context."""
    return {
        "alert_type": n.rule,
        "severity": n.severity,
        "prompt_id": n.prompt_id,
        "metric": n.metric,
        "value": _jsonable(n.value),
        "threshold": _jsonable(n.threshold),
        "timestamp": iso(n.timestamp),
        "status": n.status,
        "rule": n.rule_type,
        "title": n.title,
        "summary": n.summary,
        "labels": dict(n.labels),
        "started_at": iso(n.started_at),
        "repeat": n.repeat,
        "dedup_key": n.dedup_key,
        "details": _jsonable(n.extra),
    }


def slack_payload(n: Notification) -> dict[str, Any]:
    emoji = {"resolved": ":white_check_mark:", "test": ":test_tube:"}.get(
        n.status, ":rotating_light:" if n.severity == "critical" else ":warning:")
    fields = [{"type": "mrkdwn", "text": f"*Severity*\n{n.severity}"},
              {"type": "mrkdwn", "text": f"*Status*\n{n.status}{' (repeat)' if n.repeat else ''}"},
              {"type": "mrkdwn", "text": f"*{n.metric}*\n{_num(n.value)}"},
              {"type": "mrkdwn", "text": f"*Threshold*\n{_num(n.threshold)}"}]
    fields += [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in sorted(n.labels.items()) if v != ""][:6]
    return {
        "text": n.text(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"{n.title}"[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {n.summary or n.text()}"[:3000]},
             "fields": fields[:10]},
            {"type": "context", "elements": [{"type": "mrkdwn",
                                              "text": f"rule `{n.rule}` · {iso(n.timestamp)} · PromptPulse"}]},
        ],
    }


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_payload(n: Notification, routing_key: str, source: str = "promptpulse") -> dict[str, Any]:
    if n.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": n.text()[:1024],
            "source": n.labels.get("service") or source,
            "severity": _PD_SEVERITY.get(n.severity, "error"),
            "timestamp": iso(n.timestamp),
            "component": n.labels.get("prompt_name") or None,
            "group": n.labels.get("service") or None,
            "class": n.rule_type,
            "custom_details": webhook_payload(n),
        },
        "client": "PromptPulse",
    }


class Channel:
    """Base: ``send`` delivers with retries and never raises."""

    type = "channel"

    def __init__(self, name: str, *, timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.timeout_s = float(timeout_s)
        self.retries = max(1, int(retries))
        self.backoff_s = float(backoff_s)
        self._sleep = sleep
        self.secrets: list[str] = []
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:  # never the URL or key
        return f"<{type(self).__name__} {self.name!r}>"

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s:
                text = text.replace(s, "***")
        return text

    def deliver(self, n: Notification) -> None:  # raise Retryable / other exceptions
        raise NotImplementedError

    def send(self, n: Notification) -> bool:
        for attempt in range(1, self.retries + 1):
            try:
                self.deliver(n)
                self.sent += 1
                log.info("alert %s %s sent to %s channel %r", n.rule, n.status, self.type, self.name)
                return True
            except Exception as e:
                permanent = isinstance(e, PermanentError)
                log.warning("alert %s %s: %s channel %r failed (attempt %d/%d): %s", n.rule, n.status, self.type,
                            self.name, attempt, self.retries, self.scrub(f"{type(e).__name__}: {e}")[:300])
                if permanent or attempt == self.retries:
                    break
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        self.failed += 1
        return False


class PermanentError(Exception):
    """Not worth retrying (HTTP 4xx other than 408/429, bad configuration)."""


class HttpChannel(Channel):
    ok_status = (200, 201, 202, 204)

    def __init__(self, name: str, url: str, *, headers: Mapping[str, str] | None = None, **kw: Any) -> None:
        super().__init__(name, **kw)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"alert channel {name!r}: url must be http(s)")
        self.url = url
        self.headers = dict(headers or {})
        self.secrets += [url, *self.headers.values()]
        parts = urlsplit(url)
        self.secrets += [p for p in (parts.path, parts.query, parts.password) if p and len(p) > 3]

    def post(self, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(self.url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "promptpulse-alerts",
                                              **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
        if status in self.ok_status:
            return
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentError(f"HTTP {status}")
        raise ConnectionError(f"HTTP {status}")


class WebhookChannel(HttpChannel):
    type = "webhook"

    def deliver(self, n: Notification) -> None:
        self.post(webhook_payload(n))


class SlackChannel(HttpChannel):
    type = "slack"

    def deliver(self, n: Notification) -> None:
        self.post(slack_payload(n))


class PagerDutyChannel(HttpChannel):
    type = "pagerduty"

    def __init__(self, name: str, routing_key: str, *, url: str = PAGERDUTY_URL, source: str = "promptpulse",
                 **kw: Any) -> None:
        super().__init__(name, url, **kw)
        if not routing_key:
            raise ValueError(f"alert channel {name!r}: routing_key is required")
        self.routing_key = routing_key
        self.source = source
        self.secrets.append(routing_key)

    def deliver(self, n: Notification) -> None:
        self.post(pagerduty_payload(n, self.routing_key, self.source))


class EmailChannel(Channel):
    type = "email"

    def __init__(self, name: str, *, host: str, to: list[str] | str, sender: str, port: int | None = None,
                 username: str | None = None, password: str | None = None, starttls: bool = False,
                 ssl_: bool = False, subject_prefix: str = "[PromptPulse]", **kw: Any) -> None:
        super().__init__(name, **kw)
        self.host = host
        self.port = int(port or (465 if ssl_ else 587 if starttls else 25))
        self.to = [to] if isinstance(to, str) else list(to)
        if not self.to:
            raise ValueError(f"alert channel {name!r}: `to` is required")
        self.sender = sender
        self.username, self.password = username, password
        self.starttls, self.ssl = bool(starttls), bool(ssl_)
        self.subject_prefix = subject_prefix
        self.secrets += [password or ""]

    def message(self, n: Notification) -> EmailMessage:
        m = EmailMessage()
        state = "RESOLVED" if n.status == "resolved" else n.status.upper() if n.status == "test" else n.severity.upper()
        where = n.prompt_id or n.labels.get("service") or ""
        m["Subject"] = f"{self.subject_prefix} [{state}] {n.title}{' — ' + where if where else ''}"
        m["From"] = self.sender
        m["To"] = ", ".join(self.to)
        body = [n.text(), "", n.summary, ""]
        body += [f"{k}: {v}" for k, v in webhook_payload(n).items() if k not in ("details", "labels")]
        body += [f"label {k}: {v}" for k, v in sorted(n.labels.items())]
        m.set_content("\n".join(str(x) for x in body) + "\n")
        return m

    def deliver(self, n: Notification) -> None:
        ctx = ssl.create_default_context()
        cls = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        kw: dict[str, Any] = {"context": ctx} if self.ssl else {}
        with cls(self.host, self.port, timeout=self.timeout_s, **kw) as smtp:
            if self.starttls:
                smtp.starttls(context=ctx)
            if self.username:
                try:
                    smtp.login(self.username, self.password or "")
                except smtplib.SMTPAuthenticationError as e:
                    raise PermanentError(f"SMTP authentication failed ({e.smtp_code})")
            smtp.send_message(self.message(n))


_COMMON = ("timeout_s", "retries", "backoff_s")


def make_channel(name: str, cfg: Mapping[str, Any], **overrides: Any) -> Channel:
    """A channel from its ``[alerts.channels.<name>]`` table (env already expanded)."""
    cfg = dict(cfg)
    kind = cfg.pop("type")
    common = {k: cfg.pop(k) for k in _COMMON if k in cfg} | overrides
    ch: Channel
    try:
        if kind == "webhook":
            ch = WebhookChannel(name, cfg.pop("url"), headers=cfg.pop("headers", None), **common)
        elif kind == "slack":
            ch = SlackChannel(name, cfg.pop("webhook_url", None) or cfg.pop("url"), **common)
        elif kind == "pagerduty":
            ch = PagerDutyChannel(name, cfg.pop("routing_key", None) or cfg.pop("integration_key", ""),
                                  url=cfg.pop("url", PAGERDUTY_URL), source=cfg.pop("source", "promptpulse"),
                                  **common)
        elif kind == "email":
            ch = EmailChannel(name, host=cfg.pop("host", "localhost"), port=cfg.pop("port", None), to=cfg.pop("to"),
                              sender=cfg.pop("from", None) or cfg.pop("sender", "promptpulse@localhost"),
                              username=cfg.pop("username", None), password=cfg.pop("password", None),
                              starttls=cfg.pop("starttls", False), ssl_=cfg.pop("ssl", False),
                              subject_prefix=cfg.pop("subject_prefix", "[PromptPulse]"), **common)
        else:
            raise ValueError(f"alert channel {name!r}: unknown type {kind!r}")
    except KeyError as e:
        raise ValueError(f"alert channel {name!r} ({kind}): {e.args[0]!r} is required")
    if cfg:
        raise ValueError(f"alert channel {name!r} ({kind}): unknown key(s) {', '.join(sorted(cfg))}")
    return ch


def make_channels(channels: Mapping[str, Mapping[str, Any]], **overrides: Any) -> dict[str, Channel]:
    out = {}
    for name, cfg in channels.items():
        c = make_channel(name, cfg, **overrides)
        out[name] = c
    return out
