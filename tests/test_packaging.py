"""The wheel ships every package and the data files (price table, schemas, dashboards); README and CI agree."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _package_folders() -> dict[str, Path]:
    """Import name -> folder, following the package-dir mapping."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = {}
    for top, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            name = ".".join((top, *rel.parts)) if rel.parts else top
            found[name] = init.parent
    return found


def test_every_package_folder_is_listed() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert set(_package_folders()) == listed


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    test_cmd = next(c for c in commands if "pytest" in c)
    assert "pip install -e '.[dev]'" in test_cmd and ".venv/bin/pytest -q" in test_cmd
    assert ".venv/bin/pip install -q -e '.[dev]'" in ci and ".venv/bin/pytest -q" in ci


@pytest.mark.slow
def test_wheel_contains_packages_and_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("promptpulse-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "promptpulse/instrumentation/prices/prices.csv" in names
    assert "promptpulse/instrumentation/spans.py" in names
    for static in (ROOT / "processor" / "console" / "static").rglob("*.*"):  # the console page and uPlot + licence
        assert f"promptpulse/processor/console/{static.relative_to(ROOT / 'processor' / 'console')}" in names
    for sql in (ROOT / "schemas").glob("*.sql"):
        assert f"promptpulse/schemas/{sql.name}" in names
    for dashboard in (ROOT / "dashboards").glob("*.json"):
        assert f"promptpulse/dashboards/{dashboard.name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "promptpulse_openai = promptpulse.instrumentation.openai:OpenAIInstrumentor" in text
    assert "promptpulse_anthropic = promptpulse.instrumentation.anthropic:AnthropicInstrumentor" in text
