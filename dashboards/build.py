"""Render the dashboards, alert SQL and Grafana alert-rule provisioning from their definitions in code.

    python -m promptpulse.dashboards.build            # rewrite the checked-in files (dashboards/)
    python -m promptpulse.dashboards.build --check    # exit 1 when a checked-in file is stale
    python -m promptpulse.dashboards.build --out DIR  # write them elsewhere

``export(directory)`` is what ``promptpulse dashboards export DIR`` calls; it also writes DIR/grafana/, a Grafana
provisioning tree (deploy/docker-compose.yaml runs it and mounts the result).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from . import alerts, grafana_files
from .definitions import DASHBOARDS, TRACE_URL
from .grafana import Dashboard, render_dashboard

PACKAGE_DIR = Path(__file__).resolve().parent


def with_trace_url(dash: Dashboard, trace_url: str) -> Dashboard:
    """The dashboard with its trace backend links pointing at ``trace_url`` (the trace id is appended)."""
    variables = tuple(replace(v, query=trace_url) if v.name == TRACE_URL.name else v for v in dash.variables)
    return replace(dash, variables=variables)


def generated_files(trace_url: str | None = None, runbook_url: str | None = None) -> dict[str, str]:
    """Relative path -> content of every generated file checked in under dashboards/: the dashboard JSON, the
    alert SQL and rule provisioning, the data source and dashboard provider, the notification templates."""
    dashboards = [with_trace_url(d, trace_url) if trace_url else d for d in DASHBOARDS]
    files = {d.filename: json.dumps(render_dashboard(d), indent=2, ensure_ascii=False) + "\n" for d in dashboards}
    for rule in alerts.RULES:
        files[f"alerts/{rule.name}.sql"] = rule.file_text()
    files["alerts/grafana-alert-rules.yaml"] = alerts.grafana_rules_yaml(runbook_url or alerts.DEFAULT_RUNBOOK_URL)
    files["provisioning/datasources/clickhouse.yaml"] = grafana_files.datasource_yaml()
    files["provisioning/dashboards/promptpulse.yaml"] = grafana_files.dashboard_provider_yaml()
    files["provisioning/alerting/promptpulse-notifications.yaml"] = grafana_files.notifications_yaml()
    return files


def export_files(*, trace_url: str | None = None, runbook_url: str | None = None,
                 dashboards_path: str = grafana_files.DEFAULT_DASHBOARDS_PATH,
                 channels: tuple[grafana_files.Channel, ...] = ()) -> dict[str, str]:
    """What ``export`` writes: the generated files, and under grafana/ a complete Grafana provisioning tree
    (provisioning/ for Grafana's provisioning path, dashboards/ for ``dashboards_path``) with contact points and
    a policy for ``channels``."""
    files = generated_files(trace_url, runbook_url)
    dashboards = {d.filename: files[d.filename] for d in DASHBOARDS}
    tree = grafana_files.layout(dashboards, files["alerts/grafana-alert-rules.yaml"], dashboards_path=dashboards_path,
                                channels=channels)
    return files | {f"grafana/{rel}": text for rel, text in tree.items()}


def write(directory: str | Path, files: dict[str, str] | None = None) -> list[Path]:
    root = Path(directory)
    written = []
    for rel, content in (files or generated_files()).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def export(directory: str | Path, *, trace_url: str | None = None, runbook_url: str | None = None,
           dashboards_path: str = grafana_files.DEFAULT_DASHBOARDS_PATH,
           channels: tuple[grafana_files.Channel, ...] | None = None) -> list[Path]:
    """Write the dashboard JSON files (for Grafana import), the alert SQL files, the alert-rule provisioning and
    a Grafana provisioning tree under ``directory``/grafana; returns the paths written. ``trace_url``: where trace
    ids link (the id is appended); ``runbook_url``: where docs/ALERTS.md is published; ``channels``: default, those
    configured in the environment (grafana_files.CHANNELS)."""
    if channels is None:
        channels = grafana_files.channels_from_env()
    return write(directory, export_files(trace_url=trace_url, runbook_url=runbook_url,
                                         dashboards_path=dashboards_path, channels=channels))


def stale(directory: str | Path = PACKAGE_DIR) -> list[str]:
    """Generated files that are missing or differ in ``directory``."""
    root = Path(directory)
    out = []
    for rel, content in generated_files().items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            out.append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promptpulse.dashboards.build", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the checked-in files are stale")
    parser.add_argument("--out", default=str(PACKAGE_DIR), help="output directory (default: the package)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.out)
        for rel in bad:
            print(f"stale: {rel} (run python -m promptpulse.dashboards.build)", file=sys.stderr)
        return 1 if bad else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
