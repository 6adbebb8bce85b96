"""Alert rules of the built-in evaluator: the ``[alerts]`` table of the TOML config file.

Every rule runs one of the built-in rule queries of :mod:`promptpulse.dashboards.alerts` (the same SQL Grafana
runs, ``dashboards/alerts/<rule>.sql``) with parameter overrides; nothing here copies SQL. Without any
``[[alerts.rules]]`` every built-in rule is on with its defaults.

.. code-block:: toml

    [alerts]
    interval_s = 60                # evaluate every N seconds inside `promptpulse serve`
    renotify = "4h"                # repeat a notification while an alert keeps firing ("0" = never)
    send_resolved = true
    default_channels = ["ops"]     # channels of rules that name none (default: all channels)

    [alerts.channels.ops]          # type = webhook | slack | pagerduty | email; "${ENV}" is expanded
    type = "webhook"
    url = "https://hooks.example.com/promptpulse?token=${OPS_TOKEN}"

    [[alerts.rules]]
    name = "checkout-errors"       # unique; the alert_type of notifications (default: the rule)
    rule = "error_rate"            # a built-in rule query (alias: metric)
    threshold = 3.0                # the rule's main threshold parameter (here max_error_pct)
    window = "10m"                 # window_s of the rule query
    for = "5m"                     # pending this long before firing
    severity = "critical"          # default: the rule's (or the query's per-row severity)
    channels = ["ops"]
    scope = { prompt_name = ["checkout"], model = "gpt-4o" }   # keep only these series
    params = { min_calls = 20 }    # any other parameter of the rule query
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptpulse.dashboards.alerts import RULES, RULES_BY_NAME, AlertRule
from promptpulse.evaluation.rules import parse_duration as _parse_duration

from .channels import make_channel

DEFAULT_INTERVAL_S = 60.0
DEFAULT_RENOTIFY_S = 4 * 3600.0
SEVERITIES = ("info", "warning", "critical")

# The main threshold parameter of each built-in rule, for the `threshold = ...` shorthand.
THRESHOLD_PARAMS: dict[str, str] = {
    "error_rate": "max_error_pct",
    "http_5xx": "max_5xx",
    "success_rate": "warning_below",
    "latency_p95": "threshold_ms",
    "latency_p99": "threshold_ms",
    "daily_budget": "daily_budget_usd",
    "cost_anomaly": "ratio",
    "traffic_spike": "ratio",
    "traffic_drop": "ratio",
    "latency_baseline": "ratio",
    "quality_regression": "drop_pct",
    "guardrail_failure_rate": "max_failure_pct",
    "version_latency_regression": "ratio",
    "sla_burn_rate": "slo_target",
}

# What `value` measures, per built-in rule (the `metric` field of notifications).
METRICS: dict[str, str] = {
    "error_rate": "error_rate_pct",
    "http_5xx": "http_5xx_count",
    "success_rate": "success_rate_pct",
    "latency_p95": "p95_latency",
    "latency_p99": "p99_latency",
    "daily_budget": "daily_cost_usd",
    "cost_anomaly": "cost_usd",
    "traffic_spike": "request_count",
    "traffic_drop": "request_count",
    "latency_baseline": "p95_latency",
    "quality_regression": "quality_score",
    "guardrail_failure_rate": "guardrail_failure_rate_pct",
    "version_latency_regression": "latency_ms",
    "sla_burn_rate": "burn_rate",
}



def _n(v: Any) -> str:
    return f"{float(v):g}"


def _dur(seconds: Any) -> str:
    s = int(seconds)
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= n and s % n == 0:
            return f"{s // n} {unit}{'s' if s // n != 1 else ''}"
    return f"{s} seconds"


def _ms(v: Any) -> str:
    return f"{float(v) / 1000:g} s" if float(v) % 1000 == 0 else f"{float(v):g} ms"


# A rule's title from its parameters, so a notification says the threshold that fired ("above 3%" once
# max_error_pct = 3); with the defaults each gives the built-in rule's title (a test holds them equal).
TITLES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "error_rate": lambda p: f"Error rate above {_n(p['max_error_pct'])}% for {_dur(p['window_s'])}",
    "http_5xx": lambda p: ("Any 5xx from a provider" if float(p["max_5xx"]) == 0
                           else f"More than {_n(p['max_5xx'])} 5xx from a provider in {_dur(p['window_s'])}"),
    "success_rate": lambda p: (f"Success rate below {_n(p['warning_below'])}% (warning) / "
                               f"{_n(p['critical_below'])}% (critical)"),
    "latency_p95": lambda p: f"p95 latency above {_ms(p['threshold_ms'])}",
    "latency_p99": lambda p: f"p99 latency above {_ms(p['threshold_ms'])}",
    "daily_budget": lambda p: (f"Daily spend above {_n(round(float(p['budget_ratio']) * 100, 6))}% of budget"
                               + ("" if float(p["daily_budget_usd"]) == 100 else f" (${_n(p['daily_budget_usd'])})")),
    "cost_anomaly": lambda p: f"Cost above {_n(p['ratio'])}x expected",
    "traffic_spike": lambda p: f"Traffic spike above {_n(p['ratio'])}x normal",
    "traffic_drop": lambda p: ("Sudden traffic drop" if float(p["ratio"]) == 0.5
                               else f"Sudden traffic drop below {_n(p['ratio'])}x normal"),
    "latency_baseline": lambda p: f"p95 latency above {_n(p['ratio'])}x baseline",
    "quality_regression": lambda p: f"Quality score {_n(p['drop_pct'])}% below baseline",
    "guardrail_failure_rate": lambda p: f"Guardrail failure rate above {_n(p['max_failure_pct'])}%",
    "version_latency_regression": lambda p: (f"Prompt version latency {_n(round((float(p['ratio']) - 1) * 100, 6))}% "
                                             "above baseline"),
    "sla_burn_rate": lambda p: ("SLA error budget burning (multi-window)" if float(p["slo_target"]) == 0.999
                                else f"SLA error budget of {_n(round(float(p['slo_target']) * 100, 6))}% burning "
                                     "(multi-window)"),
}

# Scope keys users may type for the label columns the queries return.
SCOPE_ALIASES = {"prompt": "prompt_name", "prompt_id": "prompt_name", "env": "environment"}

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AlertConfigError(ValueError):
    """The [alerts] configuration is invalid."""


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from 300, 2.5, "90s", "5m", "4h", "1d", "2w": the configuration's one duration parser
    (promptpulse.evaluation.rules), raising AlertConfigError."""
    return _parse_duration(value, what, error=AlertConfigError)


def expand_env(value: Any, env: Mapping[str, str] | None = None, where: str = "", *, strict: bool = True) -> Any:
    """``${NAME}`` in strings (also inside lists and tables) replaced from the environment, so secrets can stay
    out of the file. An unset variable is an error naming ``where`` (the table and key); with ``strict=False`` it
    stays as written (for commands that send nothing)."""
    env = os.environ if env is None else env
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in env:
                return env[name]
            if not strict:
                return m.group(0)
            raise AlertConfigError(f"{where + ': ' if where else ''}environment variable {name} is not set "
                                   f"(export {name}=... before starting, or write the value in the file)")

        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, env, where, strict=strict) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{where}{' ' if where.endswith(']') else '.'}{k}" if where else str(k),
                              strict=strict) for k, v in value.items()}
    return value


def label_names(rule: AlertRule) -> tuple[str, ...]:
    """The label column names a rule query returns (``expr AS model`` -> ``model``)."""
    return tuple(lab.split(" AS ")[-1].strip() for lab in rule.labels)


@dataclass(frozen=True)
class RuleConfig:
    name: str
    rule: str
    params: Mapping[str, Any] = field(default_factory=dict)
    for_s: float = 0.0
    severity: str | None = None  # None: the built-in rule's severity (or the query's per-row `severity` column)
    channels: tuple[str, ...] | None = None  # None: the default channels
    scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    renotify_s: float | None = None  # None: the [alerts] default
    enabled: bool = True

    @property
    def definition(self) -> AlertRule:
        return RULES_BY_NAME[self.rule]

    @property
    def metric(self) -> str:
        return METRICS.get(self.rule, self.rule)

    @property
    def title(self) -> str:
        """The rule's title with its own thresholds (the built-in title when they are the defaults)."""
        d = self.definition
        title = TITLES.get(self.rule)
        return title({p.name: p.default for p in d.params} | dict(self.params)) if title else d.title

    def query_parameters(self, now: Any) -> dict[str, Any]:
        return self.definition.parameters(now=now, **self.params)

    def in_scope(self, labels: Mapping[str, str]) -> bool:
        return all(str(labels.get(k, "")) in allowed for k, allowed in self.scope.items())

    def describe(self) -> dict[str, Any]:
        d = self.definition
        return {"name": self.name, "rule": self.rule, "title": self.title, "severity": self.severity or d.severity,
                "for_s": self.for_s, "parameters": {p.name: p.default for p in d.params} | dict(self.params),
                "channels": list(self.channels) if self.channels is not None else None,
                "scope": {k: list(v) for k, v in self.scope.items()}, "enabled": self.enabled}


@dataclass(frozen=True)
class AlertsConfig:
    rules: tuple[RuleConfig, ...]
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)  # raw channel tables
    interval_s: float = DEFAULT_INTERVAL_S
    renotify_s: float = DEFAULT_RENOTIFY_S
    send_resolved: bool = True
    default_channels: tuple[str, ...] | None = None  # None: all channels
    enabled: bool = True

    def channels_for(self, rule: RuleConfig) -> tuple[str, ...]:
        if rule.channels is not None:
            return rule.channels
        if self.default_channels is not None:
            return self.default_channels
        return tuple(self.channels)


def default_rules() -> tuple[RuleConfig, ...]:
    """Every built-in rule with its defaults (what runs when no [[alerts.rules]] are configured)."""
    return tuple(RuleConfig(name=r.name, rule=r.name, for_s=parse_duration(r.pending)) for r in RULES)


_RULE_KEYS = {"name", "rule", "metric", "threshold", "window", "for", "for_s", "severity", "channels", "scope",
              "params", "renotify", "enabled"}


def parse_rule(doc: Mapping[str, Any], index: int = 0) -> RuleConfig:
    where = f"[[alerts.rules]] #{index + 1}"
    kind = doc.get("rule", doc.get("metric"))
    if not kind:
        raise AlertConfigError(f"{where}: `rule` is required (one of {', '.join(RULES_BY_NAME)})")
    if kind not in RULES_BY_NAME:
        raise AlertConfigError(f"{where}: unknown rule {kind!r} (one of {', '.join(RULES_BY_NAME)})")
    definition = RULES_BY_NAME[kind]
    name = str(doc.get("name") or kind)
    where = f"alert rule {name!r}"
    known = {p.name for p in definition.params}
    params: dict[str, Any] = {}
    for k, v in doc.items():  # parameters of the rule query given at the top level of the rule
        if k not in _RULE_KEYS:
            if k not in known:
                raise AlertConfigError(f"{where}: unknown key {k!r} "
                                       f"(rule {kind} parameters: {', '.join(sorted(known))})")
            params[k] = v
    for k, v in dict(doc.get("params") or {}).items():
        if k not in known:
            raise AlertConfigError(f"{where}: {kind} has no parameter {k!r} (it has: {', '.join(sorted(known))})")
        params[k] = v
    if "threshold" in doc:
        tp = THRESHOLD_PARAMS.get(kind)
        if tp not in known:
            raise AlertConfigError(f"{where}: {kind} has no single threshold; set one of params {sorted(known)}")
        params[tp] = doc["threshold"]
    if "window" in doc:
        if "window_s" not in known:
            raise AlertConfigError(f"{where}: {kind} has no window parameter")
        params["window_s"] = int(parse_duration(doc["window"], f"{where}: window"))
    for p in definition.params:  # coerce to the parameter's type so bad values fail at load, not at 3 a.m.
        if p.name in params:
            try:
                params[p.name] = (int(params[p.name]) if p.type.startswith(("UInt", "Int"))
                                  else float(params[p.name]) if p.type.startswith("Float") else params[p.name])
            except (TypeError, ValueError):
                raise AlertConfigError(f"{where}: {p.name} must be a {p.type}, not {params[p.name]!r}")
    for_s = parse_duration(doc.get("for", doc.get("for_s", definition.pending)), f"{where}: for")
    severity = doc.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise AlertConfigError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    channels = doc.get("channels")
    if isinstance(channels, str):
        channels = [channels]
    scope: dict[str, tuple[str, ...]] = {}
    columns = set(label_names(definition))
    for k, v in dict(doc.get("scope") or {}).items():
        col = SCOPE_ALIASES.get(k, k)
        if col not in columns:
            raise AlertConfigError(f"{where}: scope {k!r}: {kind} series have labels {', '.join(sorted(columns))}")
        scope[col] = tuple(str(x) for x in (v if isinstance(v, list) else [v]))
    renotify = doc.get("renotify")
    return RuleConfig(name=name, rule=kind, params=params, for_s=for_s, severity=severity,
                      channels=tuple(channels) if channels is not None else None, scope=scope,
                      renotify_s=parse_duration(renotify, f"{where}: renotify") if renotify is not None else None,
                      enabled=bool(doc.get("enabled", True)))


_CHANNEL_TYPES = ("webhook", "slack", "pagerduty", "email")


def load_alerts(doc: Mapping[str, Any] | None, *, env: Mapping[str, str] | None = None,
                secrets: bool = True) -> AlertsConfig:
    """The evaluator's configuration from the ``[alerts]`` table (a dict; ``None`` or ``{}``: the defaults).
    ``secrets=False`` leaves an unset ``${VAR}`` of a channel as written (nothing will be sent)."""
    doc = dict(doc or {})
    unknown = set(doc) - {"interval_s", "interval", "renotify", "renotify_s", "send_resolved", "channels",
                          "default_channels", "rules", "enabled"}
    channels_doc = doc.get("channels") or {}
    default_channels = None
    if isinstance(channels_doc, list):  # `channels = [...]` at [alerts] level: the default channel list
        default_channels, channels_doc = tuple(channels_doc), {}
    if "default_channels" in doc:
        default_channels = tuple(doc["default_channels"])
    if unknown:
        raise AlertConfigError(f"[alerts]: unknown key(s) {', '.join(sorted(unknown))}")
    channels: dict[str, dict[str, Any]] = {}
    for cname, cdoc in dict(channels_doc).items():
        if not isinstance(cdoc, Mapping):
            raise AlertConfigError(f"[alerts.channels.{cname}] must be a table")
        ctype = cdoc.get("type")
        if ctype not in _CHANNEL_TYPES:
            raise AlertConfigError(f"[alerts.channels.{cname}]: type must be one of {', '.join(_CHANNEL_TYPES)}")
        channels[cname] = expand_env(dict(cdoc), env, f"[alerts.channels.{cname}]", strict=secrets)
        if not secrets and _ENV.search(repr(channels[cname])):
            continue  # a ${VAR} left as written: checked when it is set (by `serve`, `alerts test`)
        try:
            make_channel(cname, channels[cname])  # validate now: a bad channel fails at start
        except ValueError as e:
            raise AlertConfigError(str(e))
    rules_doc = doc.get("rules")
    rules = tuple(parse_rule(r, i) for i, r in enumerate(rules_doc)) if rules_doc else default_rules()
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise AlertConfigError(f"two alert rules are named {r.name!r}")
        seen.add(r.name)
        for c in r.channels or ():
            if c not in channels:
                raise AlertConfigError(f"alert rule {r.name!r}: no channel {c!r} in [alerts.channels]")
    for c in default_channels or ():
        if c not in channels:
            raise AlertConfigError(f"[alerts] channels: no channel {c!r} in [alerts.channels]")
    interval = parse_duration(doc.get("interval_s", doc.get("interval", DEFAULT_INTERVAL_S)), "alerts.interval_s")
    if interval <= 0:
        raise AlertConfigError("alerts.interval_s must be positive")
    renotify = parse_duration(doc.get("renotify_s", doc.get("renotify", DEFAULT_RENOTIFY_S)), "alerts.renotify")
    return AlertsConfig(rules=rules, channels=channels, interval_s=interval, renotify_s=renotify,
                        send_resolved=bool(doc.get("send_resolved", True)), default_channels=default_channels,
                        enabled=bool(doc.get("enabled", True)))


def rules_by_name(rules: Sequence[RuleConfig]) -> dict[str, RuleConfig]:
    return {r.name: r for r in rules}
