"""Render the dashboards, alert SQL and Grafana alert-rule provisioning from their definitions in code.

    python -m promptpulse.dashboards.build            # rewrite the checked-in files (dashboards/)
    python -m promptpulse.dashboards.build --check    # exit 1 when a checked-in file is stale
    python -m promptpulse.dashboards.build --out DIR  # write them elsewhere

``export(directory)`` is what ``promptpulse dashboards export DIR`` calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from . import alerts
from .definitions import DASHBOARDS, TRACE_URL
from .grafana import Dashboard, render_dashboard

PACKAGE_DIR = Path(__file__).resolve().parent


def with_trace_url(dash: Dashboard, trace_url: str) -> Dashboard:
    """The dashboard with its trace backend links pointing at ``trace_url`` (the trace id is appended)."""
    variables = tuple(replace(v, query=trace_url) if v.name == TRACE_URL.name else v for v in dash.variables)
    return replace(dash, variables=variables)


def generated_files(trace_url: str | None = None) -> dict[str, str]:
    """Relative path -> content of every generated file."""
    dashboards = [with_trace_url(d, trace_url) if trace_url else d for d in DASHBOARDS]
    files = {d.filename: json.dumps(render_dashboard(d), indent=2, ensure_ascii=False) + "\n" for d in dashboards}
    for rule in alerts.RULES:
        files[f"alerts/{rule.name}.sql"] = rule.file_text()
    files["alerts/grafana-alert-rules.yaml"] = alerts.grafana_rules_yaml()
    return files


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


def export(directory: str | Path, *, trace_url: str | None = None) -> list[Path]:
    """Write the dashboard JSON files (for Grafana import), the alert SQL files and the alert-rule provisioning
    into ``directory``; returns the paths written. ``trace_url``: where trace ids link (the id is appended)."""
    return write(directory, generated_files(trace_url))


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
