"""The generated Grafana files as Grafana and the ClickHouse plugin read them (no chDB needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from promptpulse.dashboards import alerts, build, definitions, grafana, grafana_files

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
        assert requires == {"grafana": "11.0.0", grafana.PLUGIN_ID: "4.13.0"}


def test_every_query_carries_the_plugin_version() -> None:
    """Without pluginVersion (>= 4.0.0) the plugin's migrateCHQuery takes a target for v3 and rewrites it."""
    for doc in _docs():
        targets = _targets(doc) + [v for v in doc["templating"]["list"] if v["type"] == "query"]
        for t in _targets(doc):
            assert t["pluginVersion"] == "4.13.0" and t["editorType"] == "sql" and t["queryType"] != "sql"
        assert targets
    for rule in yaml.safe_load(alerts.grafana_rules_yaml())["groups"][0]["rules"]:
        assert rule["data"][0]["model"]["pluginVersion"] == "4.13.0"


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


# --- checked as Grafana checks it -------------------------------------------------------------------------------
def _panels_by_dashboard() -> dict[str, set[int]]:
    return {doc["uid"]: {p["id"] for p in doc["panels"]} | {q["id"] for p in doc["panels"] for q in p.get("panels", [])}
            for doc in _docs()}


def test_alert_rules_match_grafanas_rule_types() -> None:
    from grafana_alerting_types import check_rules

    doc = yaml.safe_load(alerts.grafana_rules_yaml())
    assert check_rules(doc, datasource_uids={grafana.DATASOURCE_UID}, panels=_panels_by_dashboard()) == []
    # and the check can fail: each mistake below is reported
    rule = doc["groups"][0]["rules"][0]
    rule["keepFiringfor"] = "5m"
    rule["for"] = "5 minutes"
    rule["noDataState"] = "Ok"
    rule["condition"] = "C"
    rule["data"][0]["datasourceUid"] = "clickhouse"
    doc["groups"][0]["interval"] = "15s"
    errors = check_rules(doc, datasource_uids={grafana.DATASOURCE_UID}, panels=_panels_by_dashboard())
    assert len(errors) == 6, errors


SCHEMA_CHECK = build.PACKAGE_DIR / "schema-check"


def _run_schema_check(directory) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(SCHEMA_CHECK / "check.mjs"), str(directory)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(shutil.which("node") is None or not (SCHEMA_CHECK / "node_modules").is_dir(),
                    reason="needs node and `npm ci` in dashboards/schema-check (.ci/run does both)")
def test_dashboards_type_check_against_grafana_schema(tmp_path) -> None:
    """Every dashboard against @grafana/schema 11.6 and 12.4 (dashboards/schema-check/check.mjs); a broken copy
    fails."""
    ok = _run_schema_check(build.PACKAGE_DIR)
    assert ok.returncode == 0, ok.stderr
    assert "6 dashboards type-check" in ok.stdout
    doc = json.loads((build.PACKAGE_DIR / "promptpulse-overview.json").read_text())
    stat = next(p for p in doc["panels"] if p["type"] == "stat")
    stat["options"]["colorMode"] = "bogus"
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    bad = _run_schema_check(tmp_path)
    assert bad.returncode == 1 and "'\"bogus\"' is not assignable" in bad.stderr.replace("Type ", ""), bad.stderr


def test_rules_link_panels_runbooks_and_keep_environment() -> None:
    rules = {r["labels"]["rule"]: r for r in yaml.safe_load(alerts.grafana_rules_yaml())["groups"][0]["rules"]}
    docs = (build.PACKAGE_DIR.parent / "docs" / "ALERTS.md").read_text()
    by_uid = {d.uid: d for d in definitions.DASHBOARDS}
    for rule in alerts.RULES:
        doc = rules[rule.name]
        dash_uid, key = alerts.RULE_PANELS[rule.name]
        assert (doc["dashboardUid"], doc["panelId"]) == (dash_uid, grafana.panel_ids(by_uid[dash_uid])[key])
        url = doc["annotations"]["runbook_url"]
        assert url == f"docs/ALERTS.md#runbook-{rule.name.replace('_', '-')}"
        assert f'<a id="{url.split("#")[1]}"></a>' in docs, rule.name
        assert doc["keepFiringFor"] in ("0s", "5m", "15m", "1h")
        assert "environment" in alerts.label_names(rule), rule.name
    assert rules["error_rate"]["panelId"] == next(
        p["id"] for p in json.loads((build.PACKAGE_DIR / "promptpulse-overview.json").read_text())["panels"]
        if p["title"] == "Error rate over time")


ALL_CHANNELS = {c.env: f"secret-{c.kind}" for c in grafana_files.CHANNELS}


def test_notifications_from_the_environment() -> None:
    from grafana_alerting_types import check_notifications

    assert grafana_files.channels_from_env({}) == ()
    none = grafana_files.notifications()
    assert set(none) == {"apiVersion", "templates"} and check_notifications(none) == []
    channels = grafana_files.channels_from_env(ALL_CHANNELS | {"PROMPTPULSE_ALERT_SLACK_URL": " "})
    assert [c.kind for c in channels] == ["webhook", "email", "pagerduty"]
    doc = grafana_files.notifications(channels)
    assert check_notifications(doc) == []
    points = {p["name"]: [(r["type"], r["settings"]) for r in p["receivers"]] for p in doc["contactPoints"]}
    assert [t for t, _ in points["PromptPulse"]] == ["webhook", "email"]
    assert points["PromptPulse"][0][1]["url"] == "${PROMPTPULSE_ALERT_WEBHOOK_URL}"  # Grafana reads the secret
    assert points["PromptPulse pager"][0][1]["integrationKey"] == "${PROMPTPULSE_ALERT_PAGERDUTY_KEY}"
    policy = doc["policies"][0]
    assert policy["receiver"] == "PromptPulse" and "severity" not in policy["group_by"]
    assert policy["routes"] == [{"receiver": "PromptPulse pager", "object_matchers": [["severity", "=", "critical"]],
                                 "continue": True}]
    text = grafana_files.notifications_yaml(channels)
    assert yaml.safe_load(text) == doc and not any(v in text for v in ALL_CHANNELS.values())
    # only a pager: it is the root receiver
    pager_only = grafana_files.notifications(grafana_files.channels_from_env(
        {"PROMPTPULSE_ALERT_PAGERDUTY_KEY": "k"}))
    assert pager_only["policies"][0]["receiver"] == "PromptPulse pager" and check_notifications(pager_only) == []
    templates = doc["templates"][0]["template"]
    receivers = [r for p in doc["contactPoints"] for r in p["receivers"]]
    assert templates.count("{{ define ") == 2 and all("promptpulse.title" in str(r["settings"]) for r in receivers)
    assert templates.count("{{ end }}") == templates.count("{{ if ") + templates.count("{{ range ") + 2


def test_export_writes_a_grafana_provisioning_tree(tmp_path) -> None:
    from grafana_alerting_types import check_notifications, check_rules

    build.export(tmp_path, dashboards_path="/etc/promptpulse/grafana/dashboards",
                 channels=grafana_files.channels_from_env(ALL_CHANNELS), runbook_url="https://docs.example/ALERTS.md")
    root = tmp_path / "grafana"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert names == sorted([*(f"dashboards/{d.filename}" for d in definitions.DASHBOARDS),
                            "provisioning/alerting/promptpulse-notifications.yaml",
                            "provisioning/alerting/promptpulse-rules.yaml",
                            "provisioning/dashboards/promptpulse.yaml", "provisioning/datasources/promptpulse.yaml"])
    provider = yaml.safe_load((root / "provisioning/dashboards/promptpulse.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/promptpulse/grafana/dashboards"
    rules = yaml.safe_load((root / "provisioning/alerting/promptpulse-rules.yaml").read_text())
    assert check_rules(rules, datasource_uids={grafana.DATASOURCE_UID}, panels=_panels_by_dashboard()) == []
    runbook = rules["groups"][0]["rules"][0]["annotations"]["runbook_url"]
    assert runbook == "https://docs.example/ALERTS.md#runbook-error-rate"
    notes = yaml.safe_load((root / "provisioning/alerting/promptpulse-notifications.yaml").read_text())
    assert check_notifications(notes) == [] and len(notes["contactPoints"]) == 2
    ds = yaml.safe_load((root / "provisioning/datasources/promptpulse.yaml").read_text())
    assert ds == yaml.safe_load(DATASOURCE_YAML.read_text())
    assert (root / "dashboards/promptpulse-overview.json").read_text() == \
        (build.PACKAGE_DIR / "promptpulse-overview.json").read_text()
