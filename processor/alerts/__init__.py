"""Built-in alert evaluator (for users without Grafana): rules from the ``[alerts]`` table of the config file run
the rule queries of :mod:`promptpulse.dashboards.alerts`; states pending → firing → resolved are written to
``alert_events``; notifications go to webhook, Slack, PagerDuty and email channels. docs/ALERTS.md."""

from __future__ import annotations

from .channels import (
    Channel,
    EmailChannel,
    Notification,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    make_channel,
    make_channels,
    pagerduty_payload,
    slack_payload,
    webhook_payload,
)
from .evaluator import AlertEvaluator, AlertScheduler, SeriesState, Transition
from .rules import AlertConfigError, AlertsConfig, RuleConfig, default_rules, load_alerts, parse_rule

__all__ = [
    "AlertConfigError",
    "AlertEvaluator",
    "AlertScheduler",
    "AlertsConfig",
    "Channel",
    "EmailChannel",
    "Notification",
    "PagerDutyChannel",
    "RuleConfig",
    "SeriesState",
    "SlackChannel",
    "Transition",
    "WebhookChannel",
    "default_rules",
    "load_alerts",
    "make_channel",
    "make_channels",
    "pagerduty_payload",
    "parse_rule",
    "slack_payload",
    "start_scheduler",
    "webhook_payload",
]


def start_scheduler(service: object) -> AlertScheduler | None:
    """The hook `promptpulse serve` calls: an evaluator over the service's store, run every alerts.interval_s.
    None when ``[alerts] enabled = false``. Configuration errors raise (fail at start, not at 3 a.m.)."""
    settings = service.settings  # type: ignore[attr-defined]
    config = load_alerts(getattr(settings, "alerts", None) or {})
    if not config.enabled:
        return None
    evaluator = AlertEvaluator.from_config(service.get_store, config)  # type: ignore[attr-defined]
    return AlertScheduler(evaluator, config.interval_s).start()
