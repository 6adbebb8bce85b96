from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptpulse.processor.cli import main


def test_dashboards_export_writes_the_checked_in_dashboards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboards", "export", str(tmp_path)]) == 0
    shipped = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "dashboards").glob("*.json"))
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == shipped and len(shipped) == 6
    overview = json.loads((tmp_path / "promptpulse-overview.json").read_text(encoding="utf-8"))
    assert overview["panels"]
    assert sorted((tmp_path / "alerts").glob("*.sql"))
    assert str(tmp_path / "promptpulse-overview.json") in capsys.readouterr().out


def test_schema_print_renders_cluster_engines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "print", "--cluster", "prod"]) == 0
    out = capsys.readouterr().out
    assert "ON CLUSTER `prod`" in out and "ReplicatedMergeTree(" in out and "Distributed('prod'" in out
