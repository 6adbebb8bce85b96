"""Grafana provisioning files generated from one place: the data source, the dashboard provider, the alert rules,
and the notification side (message templates always; contact points and a notification policy for the channels
configured in the environment). ``layout`` arranges them as Grafana's provisioning directory expects, which is
what ``promptpulse dashboards export DIR`` writes under DIR/grafana/ and deploy/docker-compose.yaml mounts.

Secrets never reach the files: a contact point holds ``${VAR}`` and Grafana reads VAR from its own environment
when it loads the file (Grafana expands environment variables in provisioning values)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import alerts
from .grafana import DATASOURCE_NAME, DATASOURCE_UID, PLUGIN_ID, PLUGIN_MIN_VERSION

DEFAULT_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/promptpulse"
TEMPLATE_NAME = "promptpulse"
CONTACT_POINT = "PromptPulse"
PAGER_CONTACT_POINT = "PromptPulse pager"


@dataclass(frozen=True)
class Channel:
    kind: str  # Grafana integration type
    env: str  # the environment variable holding its URL / key / addresses
    key: str  # the settings key that variable fills
    settings: Mapping[str, str]
    pager: bool = False  # critical alerts only (its own contact point)


TITLE = '{{ template "promptpulse.title" . }}'
MESSAGE = '{{ template "promptpulse.message" . }}'
CHANNELS: tuple[Channel, ...] = (
    Channel("webhook", "PROMPTPULSE_ALERT_WEBHOOK_URL", "url", {"httpMethod": "POST", "title": TITLE,
                                                                 "message": MESSAGE}),
    Channel("slack", "PROMPTPULSE_ALERT_SLACK_URL", "url", {"title": TITLE, "text": MESSAGE}),
    Channel("email", "PROMPTPULSE_ALERT_EMAIL_TO", "addresses", {"subject": TITLE, "message": MESSAGE}),
    Channel("pagerduty", "PROMPTPULSE_ALERT_PAGERDUTY_KEY", "integrationKey",
            {"severity": "critical", "summary": TITLE, "class": "{{ .CommonLabels.rule }}",
             "component": "{{ .CommonLabels.prompt_name }}", "group": "{{ .CommonLabels.service }}"}, pager=True),
)
# Go templates (Grafana's notification template language): the title and a body naming the labels, value,
# runbook and panel of each alert
TEMPLATES = (
    '{{ define "promptpulse.title" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
    '{{ end }}] {{ .CommonLabels.alertname }}{{ if .CommonLabels.severity }} ({{ .CommonLabels.severity }}){{ end }}'
    '{{ end }}\n\n'
    '{{ define "promptpulse.message" }}{{ range .Alerts }}{{ .Status | toUpper }}: {{ .Annotations.summary }}\n'
    '{{ if .Annotations.description }}{{ .Annotations.description }}\n{{ end }}'
    '{{ if .Annotations.runbook_url }}Runbook: {{ .Annotations.runbook_url }}\n{{ end }}'
    '{{ if .PanelURL }}Panel: {{ .PanelURL }}\n{{ else if .DashboardURL }}Dashboard: {{ .DashboardURL }}\n{{ end }}'
    '\n{{ end }}{{ end }}'
)


def channels_from_env(environ: Mapping[str, str] | None = None) -> tuple[Channel, ...]:
    """The channels whose environment variable is set (and not empty)."""
    env = os.environ if environ is None else environ
    return tuple(c for c in CHANNELS if env.get(c.env, "").strip())


def _receiver(channel: Channel) -> dict[str, Any]:
    return {"uid": f"promptpulse-{channel.kind}", "type": channel.kind,
            "settings": {channel.key: "${" + channel.env + "}", **channel.settings}, "disableResolveMessage": False}


def notifications(channels: tuple[Channel, ...] = ()) -> dict[str, Any]:
    """The alerting file with the message templates, and for ``channels`` the contact points and the policy:
    every alert to PromptPulse's channels, critical ones also to the pager, grouped by rule, service and
    environment (not severity: an escalation lands in the same group)."""
    doc: dict[str, Any] = {"apiVersion": 1, "templates": [{"orgId": 1, "name": TEMPLATE_NAME, "template": TEMPLATES}]}
    main = [c for c in channels if not c.pager]
    pager = [c for c in channels if c.pager]
    points = [(CONTACT_POINT, main), (PAGER_CONTACT_POINT, pager)]
    doc_points = [{"orgId": 1, "name": name, "receivers": [_receiver(c) for c in chans]}
                  for name, chans in points if chans]
    if not doc_points:
        return doc
    doc["contactPoints"] = doc_points
    policy: dict[str, Any] = {"orgId": 1, "receiver": doc_points[0]["name"],
                              "group_by": ["grafana_folder", "alertname", "service", "environment"],
                              "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
    if main and pager:
        policy["routes"] = [{"receiver": PAGER_CONTACT_POINT, "object_matchers": [["severity", "=", "critical"]],
                             "continue": True}]
    doc["policies"] = [policy]
    return doc


def notifications_yaml(channels: tuple[Channel, ...] = ()) -> str:
    included = ", ".join(f"{c.kind} (${{{c.env}}})" for c in channels) or "none (set " + ", ".join(
        c.env for c in CHANNELS) + " and export again)"
    return ("# Generated by `promptpulse dashboards export`: Grafana notification templates, contact points, policy.\n"
            f"# Channels: {included}.\n"
            "# The policy replaces the organization's notification policy tree: leave this file out if you keep\n"
            "# your own policies (the templates are still useful to them).\n"
            + alerts.yaml_text(notifications(channels)) + "\n")


def datasource_yaml() -> str:
    return f"""# Grafana data source provisioning for PromptPulse ({PLUGIN_ID} >= {PLUGIN_MIN_VERSION}, Grafana 11/12).
# Copy to <grafana>/provisioning/datasources/ and set the environment variables below.
# The dashboards pick the data source through their ${{datasource}} variable (default: this uid); the alert rules
# (alerts/grafana-alert-rules.yaml) use this uid. Give the user read-only rights (readonly = 1 or 2).
apiVersion: 1
datasources:
  - name: {DATASOURCE_NAME}
    uid: {DATASOURCE_UID}
    type: {PLUGIN_ID}
    isDefault: false
    editable: true
    jsonData:
      host: ${{PROMPTPULSE_CLICKHOUSE_HOST}}
      port: 9000
      protocol: native
      secure: false
      username: ${{PROMPTPULSE_CLICKHOUSE_USER}}
      defaultDatabase: promptpulse
      # Strings: plugin 4.0-4.13 reads both with a string type assertion (a number panics the backend on
      # dialTimeout and is ignored on queryTimeout); 4.14+ accepts either.
      dialTimeout: "10"
      queryTimeout: "60"
    secureJsonData:
      password: ${{PROMPTPULSE_CLICKHOUSE_PASSWORD}}
"""


def dashboard_provider_yaml(path: str = DEFAULT_DASHBOARDS_PATH) -> str:
    return f"""# Grafana dashboard provisioning for PromptPulse. Copy to <grafana>/provisioning/dashboards/ and put
# the JSON files where `path` points (`promptpulse dashboards export DIR` writes them to DIR/grafana/dashboards/).
apiVersion: 1
providers:
  - name: promptpulse
    orgId: 1
    folder: PromptPulse
    type: file
    disableDeletion: false
    allowUiUpdates: true
    updateIntervalSeconds: 60
    options:
      path: {path}
      foldersFromFilesStructure: false
"""


def layout(dashboards: Mapping[str, str], rules_yaml: str, *, dashboards_path: str = DEFAULT_DASHBOARDS_PATH,
           channels: tuple[Channel, ...] = ()) -> dict[str, str]:
    """Relative path -> content of a Grafana provisioning tree: provisioning/{datasources,dashboards,alerting}/
    and dashboards/*.json (mount provisioning/ as Grafana's provisioning path and dashboards/ at
    ``dashboards_path``)."""
    files = {"provisioning/datasources/promptpulse.yaml": datasource_yaml(),
             "provisioning/dashboards/promptpulse.yaml": dashboard_provider_yaml(dashboards_path),
             "provisioning/alerting/promptpulse-rules.yaml": rules_yaml,
             "provisioning/alerting/promptpulse-notifications.yaml": notifications_yaml(channels)}
    files |= {f"dashboards/{name}": text for name, text in dashboards.items()}
    return files
