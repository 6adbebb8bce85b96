"""The built-in alert evaluator: runs the rule queries of :mod:`promptpulse.dashboards.alerts` on the store, keeps a
state per (rule, label set) — pending → firing → resolved, with a for-duration — writes every state change to
``alert_events`` and sends one notification per firing/resolved transition (plus a re-notification every
``renotify_s`` while an alert keeps firing).

State survives a restart: before the first evaluation, the latest ``alert_events`` row of every series of the
configured rules is read back (a series last seen pending or firing continues from there; its last notification is
taken to be its last firing row).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..periodic import Periodic
from .channels import Channel, Notification, _jsonable
from .rules import DEFAULT_RENOTIFY_S, RuleConfig, label_names

log = logging.getLogger("promptpulse.alerts")

UTC = dt.timezone.utc
EVENT_COLUMNS = ("timestamp", "rule", "severity", "state", "labels", "value", "threshold", "message")
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_KEEP_RESOLVED = dt.timedelta(days=1)  # resolved series stay visible in `status()` this long

LabelKey = tuple[tuple[str, str], ...]


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass
class SeriesState:
    rule: str
    labels: dict[str, str]
    state: str  # pending | firing | resolved
    active_at: dt.datetime  # when the condition was first seen in this episode
    severity: str
    value: float
    threshold: float
    fired_at: dt.datetime | None = None
    last_notified: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "labels": self.labels, "state": self.state, "severity": self.severity,
                "value": _jsonable(self.value), "threshold": _jsonable(self.threshold),
                "active_at": self.active_at.isoformat(),
                "fired_at": self.fired_at.isoformat() if self.fired_at else None,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None}


@dataclass(frozen=True)
class Transition:
    rule: str
    labels: dict[str, str]
    state: str  # pending | firing | resolved
    previous: str | None  # None, pending, firing
    severity: str
    value: float
    threshold: float
    timestamp: dt.datetime
    message: str = ""
    repeat: bool = False  # a re-notification of a firing alert (no state change, no alert_events row)
    notify: bool = False  # sent (or, in a dry run, would be sent) to the rule's channels


class AlertEvaluator:
    """``evaluate_once(now)`` runs every enabled rule and returns the transitions it caused.

    ``store`` is a Store or a zero-argument callable returning one (the service passes its lazy ``get_store``);
    ``notifiers`` maps channel names to :class:`~promptpulse.processor.alerts.channels.Channel` objects (a sequence
    is keyed by their ``name``); ``channels_for(rule)`` picks a rule's channels (default: ``rule.channels`` or all).
    """

    def __init__(self, store: Any, rules: Sequence[RuleConfig], notifiers: Mapping[str, Channel] | Sequence[Channel]
                 = (), *, clock: Callable[[], dt.datetime] = utcnow, renotify_s: float = DEFAULT_RENOTIFY_S,
                 send_resolved: bool = True, channels_for: Callable[[RuleConfig], Sequence[str]] | None = None,
                 restore: bool = True) -> None:
        self._store = store
        self.rules = [r for r in rules if r.enabled]
        self.notifiers: dict[str, Channel] = (dict(notifiers) if isinstance(notifiers, Mapping)
                                              else {n.name: n for n in notifiers})
        self.clock = clock
        self.renotify_s = float(renotify_s)
        self.send_resolved = send_resolved
        self._channels_for = channels_for
        self.states: dict[str, dict[LabelKey, SeriesState]] = {r.name: {} for r in self.rules}
        self.errors: dict[str, str] = {}  # rule -> error of its last evaluation
        self.dry_run_errors: dict[str, str] = {}
        self.last_evaluated: dt.datetime | None = None
        self._restored = not restore
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, store: Any, config: Any, **kw: Any) -> AlertEvaluator:
        """From an :class:`~promptpulse.processor.alerts.rules.AlertsConfig` (channels built from its tables)."""
        from .channels import make_channels

        return cls(store, config.rules, make_channels(config.channels), renotify_s=config.renotify_s,
                   send_resolved=config.send_resolved, channels_for=config.channels_for, **kw)

    # ----------------------------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self._store() if callable(self._store) and not hasattr(self._store, "query") else self._store

    def channels_for(self, rule: RuleConfig) -> list[str]:
        names = self._channels_for(rule) if self._channels_for else (
            rule.channels if rule.channels is not None else list(self.notifiers))
        return [n for n in names if n in self.notifiers]

    def restore(self, store: Any = None) -> int:
        """Rebuild pending/firing states from alert_events; returns how many series were restored."""
        names = [r.name for r in self.rules]
        if not names:
            self._restored = True
            return 0
        sql = ("SELECT rule, labels, argMax(state, timestamp) AS last_state, max(timestamp) AS last_ts,\n"
               "    argMax(severity, timestamp) AS sev, argMax(value, timestamp) AS v,\n"
               "    argMax(threshold, timestamp) AS th, maxIf(timestamp, state = 'firing') AS last_firing,\n"
               "    maxIf(timestamp, state = 'pending') AS last_pending, countIf(state = 'firing') AS n_firing\n"
               "FROM alert_events WHERE rule IN {rules:Array(String)}\nGROUP BY rule, labels")
        rows = (store or self.store).query(sql, {"rules": names}).dicts()
        n = 0
        with self._lock:
            for r in rows:
                if r["last_state"] == "resolved":
                    continue
                labels = {str(k): str(v) for k, v in dict(r["labels"]).items()}
                last_ts = _utc(r["last_ts"])
                st = SeriesState(rule=r["rule"], labels=labels, state=str(r["last_state"]), active_at=last_ts,
                                 severity=str(r["sev"]), value=float(r["v"]), threshold=float(r["th"]))
                if st.state == "firing":
                    fired = _utc(r["last_firing"])
                    pending = _utc(r["last_pending"]) if r["last_pending"] and r["n_firing"] else None
                    st.fired_at = fired
                    st.active_at = pending if pending is not None and pending.year > 1970 and pending <= fired \
                        else fired
                    st.last_notified = fired
                self.states.setdefault(st.rule, {})[_key(labels)] = st
                n += 1
            self._restored = True
        if n:
            log.info("alerts: restored %d pending/firing series from alert_events", n)
        return n

    # ----------------------------------------------------------------------------------------------------------
    def evaluate_once(self, now: dt.datetime | None = None, *, dry_run: bool = False) -> list[Transition]:
        """Run every rule at ``now`` (default: the clock); write state changes, send notifications. With
        ``dry_run`` nothing is written, sent or remembered: the transitions say what would happen."""
        now = _utc(now or self.clock())
        with self._lock:
            try:
                store = self.store  # once per evaluation: a store that is down costs one connection attempt
            except Exception as e:
                msg = (str(e).splitlines() or [type(e).__name__])[0][:500]
                if not dry_run:
                    if not self.errors:
                        log.warning("alerts: store not available: %s", msg)
                    self.errors = {r.name: f"store not available: {msg}" for r in self.rules}
                else:
                    self.dry_run_errors = {r.name: f"store not available: {msg}" for r in self.rules}
                return []
            if not self._restored:
                try:
                    self.restore(store)
                except Exception as e:
                    log.warning("alerts: cannot read alert_events to restore state (%s); will retry", e)
                    if not dry_run:
                        return []
            states = copy.deepcopy(self.states) if dry_run else self.states
            transitions: list[Transition] = []
            errors: dict[str, str] = {}
            for rule in self.rules:
                try:
                    rows = self._run(store, rule, now)
                except Exception as e:
                    msg = str(e).splitlines()[0][:500] if str(e) else type(e).__name__
                    if not dry_run and self.errors.get(rule.name) != msg:
                        log.warning("alerts: rule %s failed: %s", rule.name, msg)
                    errors[rule.name] = msg
                    continue
                transitions += self._step(rule, rows, states.setdefault(rule.name, {}), now)
            if dry_run:
                self.dry_run_errors = errors
                return transitions
            self.errors = errors
            self.last_evaluated = now
            self._write(store, transitions, now)
        for t in transitions:
            if t.notify:
                self._notify(t, now)
        return transitions

    def _run(self, store: Any, rule: RuleConfig, now: dt.datetime) -> list[tuple[dict[str, str], dict[str, Any]]]:
        d = rule.definition
        result = store.query(d.sql, rule.query_parameters(now))
        names = [n for n in label_names(d) if n != "severity"]
        out = []
        seen: set[LabelKey] = set()
        for row in result.dicts():
            labels = {n: "" if row.get(n) is None else str(row.get(n)) for n in names}
            if not rule.in_scope(labels) or _key(labels) in seen:
                continue
            seen.add(_key(labels))
            out.append((labels, row))
        return out

    def _step(self, rule: RuleConfig, rows: list[tuple[dict[str, str], dict[str, Any]]],
              states: dict[LabelKey, SeriesState], now: dt.datetime) -> list[Transition]:
        d = rule.definition
        out: list[Transition] = []
        present: set[LabelKey] = set()
        renotify = self.renotify_s if rule.renotify_s is None else rule.renotify_s
        for labels, row in rows:
            key = _key(labels)
            present.add(key)
            severity = rule.severity or (str(row.get("severity") or "warning") if d.severity == "per-row"
                                         else d.severity)
            value, threshold = _float(row.get("value")), _float(row.get("threshold"))
            extra = {k: v for k, v in row.items() if k not in labels and k not in ("value", "threshold", "severity")}
            st = states.get(key)
            if st is None or st.state == "resolved":
                st = states[key] = SeriesState(rule=rule.name, labels=labels, state="pending", active_at=now,
                                               severity=severity, value=value, threshold=threshold, extra=extra)
                if rule.for_s > 0:
                    out.append(self._transition(rule, st, "pending", None, now))
                    continue
                previous: str | None = None
            else:
                previous = st.state
            old_severity = st.severity
            st.value, st.threshold, st.severity, st.extra = value, threshold, severity, extra
            if st.state == "pending":
                if (now - st.active_at).total_seconds() + 1e-6 >= rule.for_s:
                    st.state, st.fired_at, st.last_notified = "firing", now, now
                    out.append(self._transition(rule, st, "firing", previous, now, notify=True))
            elif st.state == "firing":
                if _SEVERITY_RANK.get(severity, 1) > _SEVERITY_RANK.get(old_severity, 1):
                    st.last_notified = now  # escalation: a new firing row and notification
                    out.append(self._transition(rule, st, "firing", "firing", now, notify=True,
                                                message=f"escalated from {old_severity}"))
                elif renotify > 0 and st.last_notified is not None and \
                        (now - st.last_notified).total_seconds() + 1e-6 >= renotify:
                    st.last_notified = now
                    out.append(self._transition(rule, st, "firing", "firing", now, notify=True, repeat=True))
        for key, st in list(states.items()):
            if key in present:
                continue
            if st.state in ("pending", "firing"):
                previous = st.state
                st.state, st.resolved_at = "resolved", now
                out.append(self._transition(
                    rule, st, "resolved", previous, now, notify=previous == "firing" and self.send_resolved,
                    message="condition cleared before the for-duration" if previous == "pending" else ""))
            elif st.resolved_at is not None and now - st.resolved_at > _KEEP_RESOLVED:
                del states[key]
        return out

    def _transition(self, rule: RuleConfig, st: SeriesState, state: str, previous: str | None, now: dt.datetime,
                    *, notify: bool = False, repeat: bool = False, message: str = "") -> Transition:
        title = rule.title
        text = message or (f"{title}: {rule.metric} = {_fmt(st.value)}, threshold {_fmt(st.threshold)}"
                           if state != "resolved" else f"{title}: resolved (last {rule.metric} = {_fmt(st.value)})")
        if message:
            text = f"{title}: {rule.metric} = {_fmt(st.value)}, threshold {_fmt(st.threshold)} ({message})"
        return Transition(rule=rule.name, labels=dict(st.labels), state=state, previous=previous,
                          severity=st.severity, value=st.value, threshold=st.threshold, timestamp=now,
                          message=text, repeat=repeat, notify=notify)

    def _write(self, store: Any, transitions: list[Transition], now: dt.datetime) -> None:
        rows = [[t.timestamp, t.rule, t.severity, t.state, t.labels, _finite(t.value), _finite(t.threshold),
                 t.message] for t in transitions if not t.repeat]
        if not rows:
            return
        token = hashlib.sha256(repr((now.isoformat(), [(r[1], sorted(r[4].items()), r[3]) for r in rows]))
                               .encode()).hexdigest()
        try:
            store.insert_rows("alert_events", EVENT_COLUMNS, rows, dedup_token="alerts-" + token)
        except Exception as e:
            log.warning("alerts: writing %d alert_events row(s) failed: %s", len(rows), str(e)[:300])

    def _notify(self, t: Transition, now: dt.datetime) -> None:
        rule = next(r for r in self.rules if r.name == t.rule)
        st = self.states.get(rule.name, {}).get(_key(t.labels))
        n = Notification(rule=rule.name, rule_type=rule.rule, title=rule.title, status=t.state,
                         severity=t.severity, metric=rule.metric, labels=dict(t.labels), value=t.value,
                         threshold=t.threshold, timestamp=now, started_at=st.active_at if st else None,
                         summary=t.message, repeat=t.repeat, extra=dict(st.extra) if st else {})
        for name in self.channels_for(rule):
            try:
                self.notifiers[name].send(n)
            except Exception:  # send() never raises; belt and braces
                log.exception("alerts: channel %r crashed", name)

    # ----------------------------------------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Rules with their current series states (for `promptpulse alerts list` and GET /api/alerts)."""
        with self._lock:
            out = []
            for r in self.rules:
                series = sorted(self.states.get(r.name, {}).values(), key=lambda s: (s.state != "firing",
                                                                                     s.state != "pending"))
                firing = [s for s in series if s.state == "firing"]
                pending = [s for s in series if s.state == "pending"]
                out.append({**r.describe(), "channels": self.channels_for(r),
                            "state": "firing" if firing else "pending" if pending else
                            ("error" if r.name in self.errors else "ok"),
                            "error": self.errors.get(r.name), "series": [s.as_dict() for s in series],
                            "last_evaluated": self.last_evaluated.isoformat() if self.last_evaluated else None})
            return out


def _key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.4g}"


class AlertScheduler(Periodic):
    """Runs ``evaluator.evaluate_once()`` every ``interval_s`` on a daemon thread."""

    def __init__(self, evaluator: AlertEvaluator, interval_s: float) -> None:
        self.evaluator = evaluator
        super().__init__("promptpulse-alerts", evaluator.evaluate_once, interval_s, self._failed)

    @staticmethod
    def _failed(e: Exception) -> None:
        log.error("alerts: evaluation failed", exc_info=e)
