"""The generated Grafana files as Grafana and the ClickHouse plugin read them (no chDB needed)."""

from __future__ import annotations

import json
import re

import yaml

from promptpulse.dashboards import alerts, build, definitions, grafana

DATASOURCE_YAML = build.PACKAGE_DIR / "provisioning" / "datasources" / "clickhouse.yaml"


def _docs() -> list[dict]:
    return [json.loads((build.PACKAGE_DIR / d.filename).read_text()) for d in definitions.DASHBOARDS]


def _targets(doc: dict) -> list[dict]:
    return [t for p in doc["panels"] for t in p.get("targets", [])]


def test_datasource_timeouts_are_strings() -> None:
    """Plugin 4.0-4.13 does jsonData["dialTimeout"].(string): a YAML number panics its backend."""
    ds = yaml.safe_load(DATASOURCE_YAML.read_text())["datasources"][0]
    assert ds["uid"] == grafana.DATASOURCE_UID and ds["name"] == grafana.DATASOURCE_NAME
    assert ds["type"] == grafana.PLUGIN_ID
    assert isinstance(ds["jsonData"]["dialTimeout"], str) and isinstance(ds["jsonData"]["queryTimeout"], str)


def test_minimum_versions_are_declared() -> None:
    for doc in _docs():
        requires = {r["id"]: r["version"] for r in doc["__requires"]}
        assert requires == {"grafana": "11.0.0", grafana.PLUGIN_ID: "4.0.3"}


def test_every_query_carries_the_plugin_version() -> None:
    """Without pluginVersion (>= 4.0.0) the plugin's migrateCHQuery takes a target for v3 and rewrites it."""
    for doc in _docs():
        targets = _targets(doc) + [v for v in doc["templating"]["list"] if v["type"] == "query"]
        for t in _targets(doc):
            assert t["pluginVersion"] == "4.0.3" and t["editorType"] == "sql" and t["queryType"] != "sql"
        assert targets
    for rule in yaml.safe_load(alerts.grafana_rules_yaml())["groups"][0]["rules"]:
        assert rule["data"][0]["model"]["pluginVersion"] == "4.0.3"


def test_dashboards_default_to_the_provisioned_data_source() -> None:
    for doc in _docs():
        ds = doc["templating"]["list"][0]
        assert ds["type"] == "datasource"
        assert ds["current"]["value"] == grafana.DATASOURCE_UID == alerts.DATASOURCE_UID
    rules = yaml.safe_load(alerts.grafana_rules_yaml())["groups"][0]["rules"]
    assert {r["data"][0]["datasourceUid"] for r in rules} == {grafana.DATASOURCE_UID}


def test_alert_summaries_name_their_labels() -> None:
    rules = {r["labels"]["rule"]: r for r in yaml.safe_load(alerts.grafana_rules_yaml())["groups"][0]["rules"]}
    for rule in alerts.RULES:
        summary = rules[rule.name]["annotations"]["summary"]
        assert "{{ $labels }}" not in summary
        named = re.findall(r"\{\{ \$labels\.(\w+) \}\}", summary)
        assert named == [lab for lab in alerts.label_names(rule) if lab != "severity"], rule.name
    assert rules["error_rate"]["annotations"]["summary"] == (
        "Error rate above 5% for 5 minutes: service={{ $labels.service }}, environment={{ $labels.environment }}, "
        "prompt_name={{ $labels.prompt_name }}, model={{ $labels.model }}, provider={{ $labels.provider }}: "
        "value {{ printf \"%.4g\" $values.A.Value }}")
