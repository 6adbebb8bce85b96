"""`promptpulse demo` end to end: a short run in a subprocess, then what it printed is checked against its data dir
(through `promptpulse query --data-dir`, the command the demo advertises): requests and costs per prompt and per
version exactly, success rates, the version winner, and the alerts that fired."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from promptpulse.processor.demo.overview import format_usd

pytestmark = pytest.mark.slow

BIN = str(Path(sys.executable).with_name("promptpulse"))
SERVICE = "demo-support-bot"


def query(data: Path, sql: str) -> list[dict]:
    r = subprocess.run([BIN, "query", sql, "--data-dir", str(data), "--format", "json"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def section(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1:end]


def prompt_table(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in section(out, "Prompts"):
        cells = line.split()
        if len(cells) == 11 and cells[1].isdigit():
            rows[cells[0]] = cells
    return rows


def version_tables(out: str) -> tuple[dict[str, dict[str, list[str]]], dict[str, str]]:
    tables: dict[str, dict[str, list[str]]] = defaultdict(dict)
    winners: dict[str, str] = {}
    current = None
    for line in section(out, "Prompt versions"):
        if re.match(r"^  \S", line):
            current = line.strip()
        elif m := re.match(r"^    winner (\S+) (\S+) ", line):
            assert m.group(1) == current
            winners[current] = m.group(2)
        elif re.match(r"^    \d+\.\d+\.\d+ ", line):
            cells = line.split()
            tables[current][cells[0]] = cells
    return tables, winners


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, Path]:
    data = tmp_path_factory.mktemp("demo") / "data"
    r = subprocess.run([BIN, "demo", "--duration", "8", "--rate", "25", "--data-dir", str(data), "--seed", "11"],
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING: the app made" not in r.stdout, r.stdout
    return r.stdout, data


def test_prompt_kpis_agree_with_the_store(demo) -> None:
    out, data = demo
    rows = query(data, "SELECT prompt_name, count() AS n, countIf(status = 'error') AS errors, "
                       "toString(sum(cost_usd)) AS cost, sum(input_tokens) AS inp, sum(output_tokens) AS outp "
                       f"FROM llm_calls WHERE service = '{SERVICE}' GROUP BY prompt_name")
    store = {r["prompt_name"]: r for r in rows}
    printed = prompt_table(out)
    assert set(printed) == {*store, "TOTAL"}
    assert set(store) == {"support_reply", "summarize_ticket", "classify_intent", "draft_email", "kb_search"}
    for name, r in store.items():
        cells = printed[name]
        assert int(cells[1]) == r["n"], name
        assert cells[2] == f"{100 * (r['n'] - r['errors']) / r['n']:.2f}%", name
        assert int(cells[7].replace(",", "")) == r["inp"] and int(cells[8].replace(",", "")) == r["outp"], name
        assert cells[9] == format_usd(Decimal(r["cost"])), name
    total = printed["TOTAL"]
    n = sum(r["n"] for r in rows)
    assert int(total[1]) == n
    assert total[9] == format_usd(sum(Decimal(r["cost"]) for r in rows))
    assert Decimal(total[9]) > 0
    # Every call the app made reached the store, once.
    m = re.search(r"^Done: (\d+) LLM calls .*; (\d+) calls in the store\.$", out, re.M)
    assert m and int(m.group(1)) == int(m.group(2)) == n
    assert query(data, "SELECT uniqExact(span_id) AS u FROM llm_calls")[0]["u"] == n


def test_version_comparison_and_winner_agree_with_the_store(demo) -> None:
    out, data = demo
    rows = query(data, "SELECT prompt_name, prompt_version, count() AS n, toString(sum(cost_usd)) AS cost, "
                       "quantileExact(0.95)(latency_ms) AS p95, avg(output_tokens) AS out_tok "
                       f"FROM llm_calls WHERE service = '{SERVICE}' GROUP BY prompt_name, prompt_version")
    store: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        store[r["prompt_name"]][r["prompt_version"]] = r
    tables, winners = version_tables(out)
    assert set(tables) == {p for p, vs in store.items() if len(vs) > 1}
    for prompt, versions in tables.items():
        assert set(versions) == set(store[prompt])
        for version, cells in versions.items():
            assert int(cells[1]) == store[prompt][version]["n"]
            assert cells[7] == format_usd(Decimal(store[prompt][version]["cost"]))
    # The planted story: 2.0.0 writes longer summaries, so it is slower and costlier; 1.0.0 wins.
    v1, v2 = store["summarize_ticket"]["1.0.0"], store["summarize_ticket"]["2.0.0"]
    assert v2["out_tok"] > 2 * v1["out_tok"]
    assert v2["p95"] > v1["p95"]
    assert Decimal(v2["cost"]) / v2["n"] > Decimal(v1["cost"]) / v1["n"]
    assert winners["summarize_ticket"] == "1.0.0"


def test_the_error_burst_fired_alerts(demo) -> None:
    out, data = demo
    printed = [line.split() for line in section(out, "Alerts that fired")]
    assert any(c[:2] == ["CRITICAL", "http_5xx"] and "model=gpt-4o-mini" in c for c in printed), out
    events = query(data, "SELECT rule, labels, value, threshold FROM alert_events WHERE state = 'firing'")
    fired = {(e["rule"], e["labels"].get("model", "")) for e in events}
    assert ("http_5xx", "gpt-4o-mini") in fired
    burst = query(data, "SELECT count() AS n FROM llm_calls WHERE http_status = 503 AND request_model = 'gpt-4o-mini'")
    assert burst[0]["n"] >= 3
    # Every alert line printed is a series the evaluator recorded as firing in alert_events. (Values are not
    # compared: the service's own scheduler may have recorded the transition earlier, on fewer minutes of data.)
    for cells in printed:
        labels = dict(c.split("=", 1) for c in cells if "=" in c)
        assert any(e["rule"] == cells[1] and {k: v for k, v in e["labels"].items() if v} == labels
                   for e in events), cells
