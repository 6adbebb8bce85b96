"""Evaluating the alert rules over the demo's data.

With the processor's alert evaluator (``promptpulse.processor.alerts.AlertEvaluator``) when it is available — it
records state changes in ``alert_events`` — else by running the rule queries of ``promptpulse.dashboards.alerts``
directly and recording the firing series in ``alert_events`` the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from .overview import Fired

log = logging.getLogger(__name__)


def _fired(rule: Any, row: dict[str, Any]) -> Fired:
    names = [lab.split(" AS ")[-1] for lab in rule.labels if lab.split(" AS ")[-1] != "severity"]
    severity = str(row.get("severity") or rule.severity)
    value, threshold = float(row["value"]), float(row["threshold"])
    return Fired(rule.name, severity, {n: str(row.get(n, "")) for n in names}, value, threshold, rule.title,
                 below=value < threshold)


def evaluate_direct(store: Any, now: dt.datetime) -> list[Fired]:
    from promptpulse.dashboards.alerts import RULES

    fired: list[Fired] = []
    for rule in RULES:
        try:
            rows = store.query(rule.sql, rule.parameters(now=now.replace(tzinfo=None))).dicts()
        except Exception as e:
            log.warning("alert rule %s failed: %s", rule.name, e)
            continue
        fired.extend(_fired(rule, row) for row in rows)
    fired.sort(key=lambda f: (f.severity != "critical", f.rule, -f.value))
    if fired:
        try:
            store.insert_rows(
                "alert_events", ("timestamp", "rule", "severity", "state", "labels", "value", "threshold", "message"),
                [(now.replace(tzinfo=None), f.rule, f.severity, "firing", f.labels, f.value, f.threshold,
                  f"{f.title}: value {f.value:.4g}, threshold {f.threshold:.4g}") for f in fired])
        except Exception as e:
            log.warning("could not record alert events: %s", e)
    return fired


def evaluate_with_evaluator(store: Any, now: dt.datetime, evaluator: Any = None) -> list[Fired]:
    """Run the processor's evaluator once (the service's own when it runs one, else one over every built-in rule
    without notification channels); it writes the state changes to alert_events. Returns the series firing after
    that evaluation."""
    if evaluator is None:
        from promptpulse.processor.alerts import AlertEvaluator, default_rules

        evaluator = AlertEvaluator(store, default_rules(), [])
    evaluator.evaluate_once(now)
    titles = {r.name: r.title for r in evaluator.rules}
    out = []
    for rule_name, states in evaluator.states.items():
        for st in states.values():
            if st.state == "firing":
                out.append(Fired(rule_name, st.severity, dict(st.labels), float(st.value), float(st.threshold),
                                 titles.get(rule_name, ""), below=float(st.value) < float(st.threshold)))
    return sorted(out, key=lambda f: (f.severity != "critical", f.rule, -f.value))


def evaluate(store: Any, now: dt.datetime, service: Any = None) -> tuple[list[Fired], str]:
    """(firing series, how they were evaluated)."""
    scheduler = getattr(service, "alerts", None)
    if getattr(scheduler, "evaluator", None) is not None:
        try:
            return (evaluate_with_evaluator(store, now, scheduler.evaluator),
                    "the service's alert evaluator; state changes in alert_events")
        except Exception as e:
            log.warning("the service's alert evaluator failed (%s)", e)
    try:
        import promptpulse.processor.alerts as alerts_pkg

        has_evaluator = hasattr(alerts_pkg, "AlertEvaluator")
    except ImportError:
        has_evaluator = False
    if has_evaluator:
        try:
            return evaluate_with_evaluator(store, now), "the processor's alert evaluator; state changes in alert_events"
        except Exception as e:
            log.warning("alert evaluator failed (%s); evaluating the rule queries directly", e)
    return evaluate_direct(store, now), "rule queries run directly, recorded in alert_events"
