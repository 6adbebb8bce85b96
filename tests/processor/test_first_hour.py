"""The first hour with PromptPulse (issue 12 §5): a bad config file or an unset ${VAR} is one readable line naming
the file, the key and the fix, for `serve` as for `alerts`; `alerts test --dry-run` needs no secrets; `query
--data-dir` on a directory a running `serve` holds says so and shows the command that works; the demo's planted
stream cut is an expected failure; docs/SCHEMA.md states the latency precision the store keeps."""

from __future__ import annotations

import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BIN = str(Path(sys.executable).with_name("promptpulse"))
ROOT = Path(__file__).resolve().parents[2]

# (file text, what the one line must say)
BAD = {
    "duplicate": ('[alerts]\nchannels = ["ops"]\n[alerts.channels.ops]\ntype = "webhook"\nurl = "https://x.example"\n',
                  ("not valid TOML", "Cannot declare ('alerts', 'channels', 'ops') twice", "line 3",
                   "`key = [...]` and a `[table.key]` are the same name")),
    "unset": ('[alerts.channels.ops]\ntype = "webhook"\nurl = "https://x.example/?token=${PP_TEST_UNSET_TOKEN}"\n',
              ("[alerts.channels.ops] url", "environment variable PP_TEST_UNSET_TOKEN is not set",
               "export PP_TEST_UNSET_TOKEN=")),
    "type": ('api_port = "abc"\n', ("api_port", "'abc' is not a whole number", "api_port = 8321")),
    "typo": ('[processor]\ndata_dri = "x"\n', ("unknown setting 'data_dri'", "did you mean 'data_dir'?")),
    "rule": ('[[alerts.rules]]\nrule = "error_rate"\nthreshhold = 3\n',
             ("alert rule 'error_rate'", "unknown key 'threshhold'", "max_error_pct")),
    "reports": ('[reports]\nschedule = "hourly"\n', ("[reports] schedule must be daily, weekly, monthly or off",)),
}


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTPULSE_")}
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env={**e, **(env or {})})


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["serve", "alerts"])
def test_a_bad_config_is_one_line_with_file_key_and_fix(tmp_path: Path, case: str, command: str) -> None:
    text, says = BAD[case]
    f = tmp_path / f"{case}.toml"
    f.write_text(text)
    if command == "serve":
        r = run("serve", "--config", str(f), "--data-dir", str(tmp_path / "data"), "--api-port", "0",
                "--otlp-http-port", "0", "--otlp-grpc-port", "0")
    else:
        r = run("alerts", "test", "--config", str(f), "--data-dir", str(tmp_path / "data"))
    if command == "alerts" and case == "reports":  # alerts does not read [reports]
        return
    assert r.returncode == 1 and r.stdout == "", r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"promptpulse {command}: {f}: "), lines[0]
    for s in says:
        assert s in lines[0], (s, lines[0])
    assert not (tmp_path / "data").exists()  # nothing started


def test_a_missing_config_file_and_a_bad_environment_value() -> None:
    r = run("alerts", "list", "--config", "/nonexistent/pp.toml")
    assert r.returncode == 1 and r.stderr.strip() == (
        "promptpulse alerts: /nonexistent/pp.toml: no such config file (check --config or PROMPTPULSE_CONFIG)")
    r = run("report", "--data-dir", "/nonexistent/data", env={"PROMPTPULSE_API_PORT": "x"})
    assert r.returncode == 1 and r.stderr.strip() == (
        "promptpulse report: environment PROMPTPULSE_API_PORT: 'x' is not a whole number")


def test_alerts_dry_run_needs_no_secrets(tmp_path: Path) -> None:
    f = tmp_path / "pp.toml"
    f.write_text(BAD["unset"][0] + '[[alerts.rules]]\nrule = "error_rate"\nchannels = ["ops"]\n')
    data = tmp_path / "data"
    assert run("schema", "apply", "--data-dir", str(data)).returncode == 0
    r = run("alerts", "test", "--dry-run", "--config", str(f), "--data-dir", str(data))
    assert r.returncode == 0 and "(0 transition(s) would happen; nothing sent)" in r.stderr, r
    r = run("alerts", "list", "--config", str(f), "--data-dir", str(data))
    assert r.returncode == 0 and "error_rate" in r.stdout, r
    r = run("alerts", "test", "--config", str(f), "--data-dir", str(data))  # sending needs them
    assert r.returncode == 1 and "PP_TEST_UNSET_TOKEN is not set" in r.stderr


def test_query_on_a_data_dir_that_serve_holds_shows_the_command_that_works(tmp_path: Path) -> None:
    from test_service_e2e import Serve

    s = Serve(tmp_path)
    try:
        data = tmp_path / "data"
        assert (data / "promptpulse-serve.json").exists()
        r = run("query", "--data-dir", str(data), "SELECT count() AS n FROM llm_calls")
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        first, cmd = r.stderr.strip().splitlines()
        assert first == (f"promptpulse query: the data dir {data} is in use by `promptpulse serve` "
                         f"(pid {s.proc.pid}); ask it instead:")
        assert cmd == f"  promptpulse query --api http://127.0.0.1:{s.api} 'SELECT count() AS n FROM llm_calls'"
        argv = shlex.split(cmd.strip())
        ok = run(*argv[1:], "--format", "json")
        assert ok.returncode == 0 and ok.stdout.strip() == '{"n": 0}', ok
        r = run("report", "--data-dir", str(data))  # every command that opens the directory says so
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert f"in use by `promptpulse serve` (pid {s.proc.pid}, API http://127.0.0.1:{s.api})" in r.stderr
    finally:
        s.stop()
    assert not (data / "promptpulse-serve.json").exists()  # released at shutdown
    r = run("query", "--data-dir", str(data), "SELECT count() AS n FROM llm_calls", "--format", "json")
    assert r.returncode == 0 and r.stdout.strip() == '{"n": 0}', r


def test_the_demo_stream_cut_is_an_expected_failure() -> None:
    anthropic = pytest.importorskip("anthropic")
    openai = pytest.importorskip("openai")
    from promptpulse.processor.demo import story
    from promptpulse.processor.demo.traffic import expected_errors
    from promptpulse.testing import FAULT_HEADER, FakeProvider

    assert "cut:3" in Path(story.__file__).read_text()  # the fault the demo plants in streams
    fake = FakeProvider().start()
    try:
        headers = {FAULT_HEADER: "cut:3"}
        raised: list[BaseException] = []
        a = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
        o = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        try:
            with a.messages.stream(model="claude-haiku-4-5", max_tokens=50, extra_headers=headers,
                                   messages=[{"role": "user", "content": "hello there"}]) as s:
                for _ in s.text_stream:
                    pass
        except Exception as e:
            raised.append(e)
        try:
            for _ in o.chat.completions.create(model="gpt-4o-mini", stream=True, extra_headers=headers,
                                               messages=[{"role": "user", "content": "hello there"}]):
                pass
        except Exception as e:
            raised.append(e)
    finally:
        fake.stop()
    assert len(raised) == 2
    assert all(isinstance(e, expected_errors()) for e in raised), [type(e) for e in raised]


def _f32_round(x: float) -> float:  # promptpulse_f32_round: 12 mantissa bits kept, to nearest
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    b = (b + (1 << 10)) & ~((1 << 11) - 1)
    return struct.unpack("<f", struct.pack("<I", b))[0]


def test_schema_doc_states_the_latency_precision(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "SCHEMA.md").read_text()
    sec = text.split("## Precision of stored values", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"`llm_calls.latency_ms`.*relative error ≤ 2⁻¹³.*\((\d+\.\d+) ms is stored as (\d+\.\d+)\)", sec)
    assert m, sec
    sent, stored = float(m.group(1)), float(m.group(2))
    assert _f32_round(sent) == stored
    for v in (0.37, 1.0, 999.9, 1000.0, 1234.567891, 2047.99, 60_000.0, 123_456.7):
        assert abs(_f32_round(v) - v) <= v * 2 ** -13
    assert abs(_f32_round(1000.0 + 0.0625) - 1000.0625) <= 0.0625


def test_store_latency_is_within_the_stated_precision(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("chdb")
    import datetime as dt

    from analytics_seed import call, insert

    from promptpulse.processor.store.embedded import EmbeddedStore

    now = dt.datetime.now(dt.timezone.utc)
    sent = [0.37, 999.9, 1234.567891, 2047.99, 60_000.0]
    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb-precision")))
    try:
        s.apply_schema()
        insert(s, [{**call(now, "p", "1"), "latency_ms": v} for v in sent])
        got: list[Any] = sorted(r[0] for r in s.query("SELECT latency_ms FROM llm_calls").rows)
    finally:
        s.close()
    assert len(got) == len(sent)
    for v, g in zip(sorted(sent), got, strict=True):
        assert g == _f32_round(v) and abs(g - v) <= v * 2 ** -13, (v, g)


def test_serve_without_the_processor_extra_says_which_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['clickhouse_connect'] = None\n"  # as if the extra were not installed
            "from promptpulse.processor.cli import main\n"
            f"main(['query', '--data-dir', {str(tmp_path / 'data')!r}, 'SELECT 1'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == ("promptpulse query: no module 'clickhouse_connect': the [processor] extra is not "
                                "installed (pip install -e '.[processor]' in a checkout)")


def test_a_stale_owner_file_does_not_hold_the_data_dir(tmp_path: Path) -> None:
    import json

    from promptpulse.processor.store import owner

    data = tmp_path / "data"
    data.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # alive, not promptpulse
    try:
        for pid in (sleeper.pid, 2 ** 22 + 12345):  # a reused pid; a pid no process has
            (data / owner.FILE).write_text(json.dumps({"pid": pid, "api": "http://127.0.0.1:9"}))
            assert owner.holder(data) is None, pid
    finally:
        sleeper.kill()
        sleeper.wait()
    (data / owner.FILE).write_text(json.dumps({"pid": os.getpid(), "api": "http://127.0.0.1:9"}))
    assert owner.holder(data) is None  # this very process
