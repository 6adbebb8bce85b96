"""Grafana's alerting file-provisioning types (pkg/services/provisioning/alerting: AlertingFileV1, AlertRuleGroupV1,
AlertRuleV1, QueryV1, NotificationSettingsV1, ContactPointV1 / ReceiverV1, NotificiationPolicyV1 (an Alertmanager
route), TemplateV1) and the checks their mapToModel and the rule store apply, transcribed for the tests.

Stricter than Grafana in one way on purpose: an unknown key is an error here, where Grafana's YAML decoder drops it
silently (a misspelt ``keepFiringfor`` would simply not apply)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FILE_KEYS = {"apiVersion", "groups", "deleteRules", "contactPoints", "deleteContactPoints", "policies",
             "resetPolicies", "muteTimes", "deleteMuteTimes", "templates", "deleteTemplates"}
GROUP_KEYS = {"orgId", "name", "folder", "interval", "rules"}
RULE_KEYS = {"uid", "title", "condition", "data", "dasboardUid", "dashboardUid", "panelId", "noDataState",
             "execErrState", "for", "keepFiringFor", "missing_series_evals_to_resolve", "annotations", "labels",
             "isPaused", "notification_settings", "record"}
QUERY_KEYS = {"refId", "queryType", "relativeTimeRange", "datasourceUid", "model"}
NOTIFICATION_SETTINGS_KEYS = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval",
                              "mute_time_intervals", "active_time_intervals"}
NO_DATA_STATES = {"Alerting", "NoData", "OK", "KeepLast"}  # models.NoDataStateFromString
EXEC_ERR_STATES = {"Alerting", "Error", "OK", "KeepLast"}  # models.ErrStateFromString
EXPRESSION_TYPES = {"math", "reduce", "resample", "classic_conditions", "threshold", "sql"}
CONTACT_POINT_KEYS = {"orgId", "name", "receivers"}
RECEIVER_KEYS = {"uid", "type", "settings", "disableResolveMessage"}
# integration settings (pkg/alerting receivers): the keys each type reads, and those it needs
RECEIVER_SETTINGS = {
    "webhook": ({"url", "httpMethod", "username", "password", "authorization_scheme", "authorization_credentials",
                 "maxAlerts", "title", "message", "tlsConfig", "hmacConfig", "payload"}, {"url"}),
    "slack": ({"url", "token", "recipient", "username", "icon_emoji", "icon_url", "mentionChannel", "mentionUsers",
               "mentionGroups", "color", "title", "text", "endpointUrl"}, {"url"}),
    "pagerduty": ({"integrationKey", "severity", "class", "component", "group", "summary", "source", "client",
                   "client_url", "details", "url"}, {"integrationKey"}),
    "email": ({"addresses", "singleEmail", "message", "subject"}, {"addresses"}),
}
ROUTE_KEYS = {"receiver", "group_by", "continue", "object_matchers", "matchers", "group_wait", "group_interval",
              "repeat_interval", "routes", "mute_time_intervals", "active_time_intervals"}
POLICY_KEYS = ROUTE_KEYS | {"orgId"}
TEMPLATE_KEYS = {"orgId", "name", "template"}
MATCHER_OPS = {"=", "!=", "=~", "!~"}
# prometheus/common model.ParseDuration
_DURATION = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_UID = re.compile(r"^[a-zA-Z0-9\-_]{1,40}$")  # util.IsValidShortUID, and the 40-character limit of the rule store
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
BASE_INTERVAL_S = 10  # [unified_alerting] base interval: a group interval is a multiple of it


def _unknown(where: str, obj: Mapping[str, Any], allowed: set[str]) -> list[str]:
    return [f"{where}: unknown key {k!r}" for k in sorted(set(obj) - allowed)]


def duration_s(text: str) -> float | None:
    """Seconds of a Prometheus duration (``0`` and ``""`` are zero), or None when Grafana cannot parse it."""
    if text in ("", "0"):
        return 0.0
    m = _DURATION.match(text)
    if not m or not text:
        return None
    units = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
    return sum(int(g) * u for g, u in zip(m.groups()[1::2], units, strict=True) if g)


def check_rules(doc: Mapping[str, Any], *, datasource_uids: set[str],
                panels: Mapping[str, set[int]] | None = None) -> list[str]:
    """Problems Grafana (or this stricter reading) finds in an alerting file's rule groups; empty when fine.
    ``panels``: dashboard uid -> panel ids, to check the rules' dashboardUid / panelId links."""
    errors = _unknown("file", doc, FILE_KEYS)
    if doc.get("apiVersion") != 1:
        errors.append("file: apiVersion must be 1")
    uids: set[str] = set()
    for g, group in enumerate(doc.get("groups", [])):
        where = f"groups[{g}]"
        errors += _unknown(where, group, GROUP_KEYS)
        if not str(group.get("name", "")).strip() or not str(group.get("folder", "")).strip():
            errors.append(f"{where}: rule group has no name / folder set")
        interval = duration_s(str(group.get("interval", "")))
        if not interval or interval % BASE_INTERVAL_S:
            errors.append(f"{where}: interval {group.get('interval')!r} is not a multiple of {BASE_INTERVAL_S}s")
        for r, rule in enumerate(group.get("rules", [])):
            errors += _check_rule(f"{where}.rules[{r}]", rule, datasource_uids, panels, uids)
    return errors


def _check_rule(where: str, rule: Mapping[str, Any], datasource_uids: set[str],
                panels: Mapping[str, set[int]] | None, uids: set[str]) -> list[str]:
    errors = _unknown(where, rule, RULE_KEYS)
    title, uid = str(rule.get("title", "")), str(rule.get("uid", ""))
    if not title or len(title) > 190:
        errors.append(f"{where}: title missing or longer than 190 characters")
    if not _UID.match(uid):
        errors.append(f"{where}: uid {uid!r} is not a valid short uid (1-40 of [A-Za-z0-9-_])")
    if uid in uids:
        errors.append(f"{where}: uid {uid!r} used twice")
    uids.add(uid)
    for key in ("for", "keepFiringFor"):
        if key in rule and duration_s(str(rule[key])) is None:
            errors.append(f"{where}: cannot parse {key} {rule[key]!r}")
    if rule.get("noDataState", "NoData") not in NO_DATA_STATES:
        errors.append(f"{where}: noDataState {rule.get('noDataState')!r}")
    if rule.get("execErrState", "Alerting") not in EXEC_ERR_STATES:
        errors.append(f"{where}: execErrState {rule.get('execErrState')!r}")
    for key in ("labels", "annotations"):
        values = rule.get(key, {})
        if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
            errors.append(f"{where}: {key} must map names to strings")
        elif key == "labels":
            errors += [f"{where}: label name {k!r}" for k in values if not _LABEL.match(k) or k.startswith("__")]
    data = rule.get("data", [])
    refs = {q.get("refId") for q in data}
    if not data or rule.get("condition") not in refs:
        errors.append(f"{where}: condition {rule.get('condition')!r} is not one of the queries {sorted(refs)}")
    for q, query in enumerate(data):
        errors += _check_query(f"{where}.data[{q}]", query, datasource_uids)
    if ("dashboardUid" in rule) != ("panelId" in rule):
        errors.append(f"{where}: dashboardUid and panelId go together")
    if panels is not None and "dashboardUid" in rule \
            and rule.get("panelId") not in panels.get(rule["dashboardUid"], set()):
        errors.append(f"{where}: no panel {rule.get('panelId')} on dashboard {rule['dashboardUid']!r}")
    if "notification_settings" in rule:
        errors += _unknown(f"{where}.notification_settings", rule["notification_settings"],
                           NOTIFICATION_SETTINGS_KEYS)
    return errors


def _check_query(where: str, query: Mapping[str, Any], datasource_uids: set[str]) -> list[str]:
    errors = _unknown(where, query, QUERY_KEYS)
    rng = query.get("relativeTimeRange", {})
    if set(rng) - {"from", "to"} or not all(isinstance(rng.get(k, 0), int) for k in ("from", "to")) \
            or rng.get("from", 0) < rng.get("to", 0):
        errors.append(f"{where}: relativeTimeRange {rng!r} (seconds before now, from >= to)")
    model, ds = query.get("model", {}), query.get("datasourceUid")
    if model.get("refId") != query.get("refId"):
        errors.append(f"{where}: model.refId differs from refId")
    if ds == "__expr__":
        kind = model.get("type")
        if kind not in EXPRESSION_TYPES:
            errors.append(f"{where}: expression type {kind!r}")
        elif kind in ("math", "reduce", "resample") and not model.get("expression"):
            errors.append(f"{where}: {kind} expression without 'expression'")
    elif ds not in datasource_uids:
        errors.append(f"{where}: data source uid {ds!r} is not provisioned")
    elif not (model.get("rawSql") and model.get("editorType") == "sql" and model.get("pluginVersion")):
        errors.append(f"{where}: a ClickHouse query needs rawSql, editorType sql and pluginVersion")
    return errors


def check_notifications(doc: Mapping[str, Any]) -> list[str]:
    """Problems in an alerting file's contact points, policies and templates."""
    errors = _unknown("file", doc, FILE_KEYS)
    receivers = set()
    for c, cp in enumerate(doc.get("contactPoints", [])):
        where = f"contactPoints[{c}]"
        errors += _unknown(where, cp, CONTACT_POINT_KEYS)
        if not str(cp.get("name", "")).strip():
            errors.append(f"{where}: no name is set")
        receivers.add(cp.get("name"))
        for r, rec in enumerate(cp.get("receivers", [])):
            w = f"{where}.receivers[{r}]"
            errors += _unknown(w, rec, RECEIVER_KEYS)
            if not _UID.match(str(rec.get("uid", ""))):
                errors.append(f"{w}: no valid uid")
            kind, settings = rec.get("type"), rec.get("settings") or {}
            if kind not in RECEIVER_SETTINGS:
                errors.append(f"{w}: type {kind!r}")
                continue
            allowed, required = RECEIVER_SETTINGS[kind]
            errors += _unknown(f"{w}.settings", settings, allowed)
            errors += [f"{w}.settings: {k} is required" for k in sorted(required - set(settings))]
    for p, policy in enumerate(doc.get("policies", [])):
        errors += _check_route(f"policies[{p}]", policy, receivers, POLICY_KEYS, root=True)
    for t, template in enumerate(doc.get("templates", [])):
        where = f"templates[{t}]"
        errors += _unknown(where, template, TEMPLATE_KEYS)
        if not template.get("name") or not template.get("template"):
            errors.append(f"{where}: name and template are required")
    return errors


def _check_route(where: str, route: Mapping[str, Any], receivers: set[str], keys: set[str], *,
                 root: bool = False) -> list[str]:
    errors = _unknown(where, route, keys)
    if root and not route.get("receiver"):
        errors.append(f"{where}: the root policy needs a receiver")
    if "receiver" in route and route["receiver"] not in receivers:
        errors.append(f"{where}: receiver {route['receiver']!r} is not a provisioned contact point")
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route and duration_s(str(route[key])) is None:
            errors.append(f"{where}: cannot parse {key} {route[key]!r}")
    for m, matcher in enumerate(route.get("object_matchers", [])):
        if len(matcher) != 3 or matcher[1] not in MATCHER_OPS:
            errors.append(f"{where}.object_matchers[{m}]: {matcher!r} is not [label, op, value]")
    for s, sub in enumerate(route.get("routes", [])):
        errors += _check_route(f"{where}.routes[{s}]", sub, receivers, ROUTE_KEYS)
    return errors
