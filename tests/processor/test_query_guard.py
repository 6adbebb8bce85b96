"""The read-only guard of /api/query (processor/sql_guard.py): every refused form, the allowed forms with their
exact rows, the limits — on the embedded store and the server store (loopback ClickHouse-HTTP over chDB), and
the refusals once more over real HTTP through the API server."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptpulse.processor import sql_guard
from promptpulse.processor.api import run_read_only
from promptpulse.processor.sql_guard import QueryRefused

pytest.importorskip("chdb")

TOKEN = "guard-token"
OUTFILE = "/tmp/promptpulse-guard-outfile"
EVENTS = [  # alert_events rows: (timestamp, rule, severity, state, labels, value, threshold, message)
    (dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc), "r_cost", "warning", "firing", {"m": "a"}, 2.5, 2.0, "x"),
    (dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.timezone.utc), "r_cost", "warning", "resolved", {"m": "a"}, 1.0, 2.0, "y"),
    (dt.datetime(2026, 1, 1, 0, 9, tzinfo=dt.timezone.utc), "r_err", "critical", "firing", {}, 0.5, 0.1, "z"),
]
COLUMNS = ("timestamp", "rule", "severity", "state", "labels", "value", "threshold", "message")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions
    from promptpulse.processor.store.server import ServerStore
    from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer

    data_dir = str(tmp_path_factory.mktemp("chdb-guard"))  # one engine path per process: both stores share it
    embedded = EmbeddedStore(data_dir, schema_options=SchemaOptions(database="pp_guard"))
    server = ClickHouseHTTPServer(data_dir).start()
    remote = ServerStore(f"{server.url}/pp_guard_srv?compress=false")
    try:
        embedded.command("CREATE FUNCTION IF NOT EXISTS guard_udf AS (x) -> x")  # SQL functions are global
        for store in (embedded, remote):
            store.apply_schema()
            store.insert_rows("alert_events", COLUMNS, EVENTS)
        yield {"embedded": embedded, "server": remote}
    finally:
        remote.close()
        server.stop()
        embedded.close()


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, stores: dict[str, Any]) -> Any:
    return stores[request.param]


# (SQL, what the refusal names)
REFUSED = [
    # table functions, each family
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file() is not allowed"),
    ("SELECT * FROM fileCluster('c', '/etc/passwd', 'LineAsString')", "table function fileCluster()"),
    ("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "table function url() is not allowed"),
    ("SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')", "table function s3()"),
    ("SELECT * FROM s3Cluster('c', 'http://127.0.0.1:9/b/k', 'CSV')", "table function s3Cluster()"),
    ("SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'CSV')", "table function hdfs()"),
    ("SELECT * FROM azureBlobStorage('http://127.0.0.1:9', 'c', 'b')", "table function azureBlobStorage()"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "table function remote()"),
    ("SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)", "table function remoteSecure()"),
    ("SELECT * FROM cluster('default', system.one)", "table function cluster()"),
    ("SELECT * FROM clusterAllReplicas('default', system.one)", "table function clusterAllReplicas()"),
    ("SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')", "table function mysql()"),
    ("SELECT * FROM postgresql('127.0.0.1:5432', 'd', 't', 'u', 'p')", "table function postgresql()"),
    ("SELECT * FROM sqlite('/tmp/x.db', 't')", "table function sqlite()"),
    ("SELECT * FROM mongodb('127.0.0.1:27017', 'd', 'c', 'u', 'p', 'x String')", "table function mongodb()"),
    ("SELECT * FROM redis('127.0.0.1:6379', 'k', 'k String')", "table function redis()"),
    ("SELECT * FROM jdbc('jdbc:x', 't')", "table function jdbc()"),
    ("SELECT * FROM odbc('DSN=x', 't')", "table function odbc()"),
    ("SELECT * FROM executable('id', 'TSV', 'x String')", "table function executable()"),
    ("SELECT * FROM input('x String')", "table function input()"),
    ("SELECT * FROM merge('system', '.*')", "table function merge()"),
    ("SELECT * FROM dictionary('d')", "table function dictionary()"),
    ("SELECT * FROM iceberg('http://127.0.0.1:9/t')", "table function iceberg()"),
    ("SELECT * FROM deltaLake('http://127.0.0.1:9/t')", "table function deltaLake()"),
    ("SELECT * FROM hudi('http://127.0.0.1:9/t')", "table function hudi()"),
    ("SELECT * FROM python('x')", "table function python()"),  # chDB: reads the process's Python objects
    ("SELECT * FROM view(SELECT * FROM system.users)", "table function view()"),
    ("SELECT * FROM (EXPLAIN SELECT 1)", "table function viewExplain()"),
    ("SELECT * FROM loop(numbers(1))", "table function loop()"),
    # deep: CTE, IN subquery, scalar subquery, JOIN, UNION branch
    ("WITH x AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM x", "table function file()"),
    ("SELECT * FROM alert_events WHERE rule IN (SELECT * FROM url('http://127.0.0.1:9/', 'TSV', 'x String'))",
     "table function url()"),
    ("SELECT (SELECT count() FROM file('/etc/passwd', 'LineAsString'))", "table function file()"),
    ("SELECT 1 FROM alert_events AS a JOIN file('/etc/passwd', 'LineAsString') AS f ON 1", "table function file()"),
    ("SELECT 1 UNION ALL SELECT count() FROM s3('http://x/y', 'CSV')", "table function s3()"),
    # scalar functions that reach files, dictionaries, other tables, AI services, or stall
    ("SELECT file('/etc/passwd')", "function file() is not allowed"),
    ("SELECT FILE('/etc/passwd')", "function FILE() is not allowed"),
    ("SELECT rule FROM alert_events WHERE message = file('/etc/passwd')", "function file()"),
    ("SELECT * APPLY(file) FROM numbers(1)", "function file()"),
    ("SELECT dictGet('d', 'a', toUInt64(1))", "function dictGet()"),
    ("SELECT dictHas('d', toUInt64(1))", "function dictHas()"),
    ("SELECT regionToName(toUInt32(1))", "function regionToName()"),
    ("SELECT joinGet('system.users', 'name', 1)", "function joinGet()"),
    ("SELECT hasColumnInTable('system', 'users', 'name')", "function hasColumnInTable()"),
    ("SELECT aiGenerate('hello')", "function aiGenerate()"),
    ("SELECT getServerSetting('path')", "function getServerSetting()"),
    ("SELECT sleep(3)", "function sleep()"),
    ("SELECT addressToSymbol(toUInt64(1))", "function addressToSymbol()"),
    ("SELECT __getScalar('x')", "function __getScalar()"),
    ("SELECT tid()", "introspection functions are not"),  # by its category in system.functions
    ("SELECT guard_udf(1)", "user-defined functions other than promptpulse_* are not"),
    # tables: system tables not on the list, another database, project tables not on the list
    ("SELECT * FROM system.users", "table system.users is not allowed"),
    ("SELECT * FROM system.tables", "table system.tables is not allowed"),
    ("SELECT name FROM system.columns", "table system.columns is not allowed"),
    ("SELECT * FROM system.settings", "table system.settings is not allowed"),
    ("SELECT * FROM system.processes", "table system.processes"),
    ("SELECT * FROM default.x", "database default is not allowed"),
    ("SELECT * FROM pp_other.alert_events", "database pp_other is not allowed"),
    ("SELECT * FROM `system.users`", "table system.users is not allowed"),
    ("SELECT * FROM schema_migrations", "table schema_migrations is not allowed"),
    ("SELECT * FROM llm_calls_mv", "table llm_calls_mv is not allowed"),
    ("SELECT 1 WHERE 1 IN system.users", "table system.users is not allowed"),
    ("SELECT 1 WHERE 1 GLOBAL NOT IN default.t", "database default is not allowed"),
    ("SELECT (SELECT count() FROM system.users)", "table system.users"),
    ("SELECT * FROM alert_events WHERE rule IN (SELECT name FROM system.users)", "table system.users"),
    ("SELECT * FROM (SELECT 1) AS a, system.users", "table system.users"),
    ("SELECT arrayJoin((SELECT groupArray(name) FROM system.users))", "table system.users"),
    ("SELECT 1 UNION ALL SELECT count() FROM system.users", "table system.users"),
    # a CTE name is a table name only where the WITH is in scope
    ("SELECT * FROM (WITH schema_migrations AS (SELECT 1) SELECT 1) AS a, schema_migrations",
     "table schema_migrations is not allowed"),
    # output clauses, settings, multiple statements, comment tricks
    (f"SELECT 1 INTO OUTFILE '{OUTFILE}'", "INTO OUTFILE is not allowed"),
    (f"SELECT 1 INTO OUTFILE '{OUTFILE}' TRUNCATE FORMAT CSV", "INTO OUTFILE is not allowed"),
    ("SELECT 1 FORMAT CSV", "FORMAT clause is not allowed"),
    ("SELECT 1 FORMAT Native", "FORMAT clause is not allowed"),
    ("SELECT 1 SETTINGS max_memory_usage = 100000000000", "SETTINGS clause is not allowed"),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS clause is not allowed"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)", "SETTINGS clause is not allowed"),
    ("SELECT 1 -- '\n; DROP TABLE otel_traces", "one statement at a time"),
    ("SELECT 1 -- '\n; SELECT * FROM file('/etc/passwd', 'LineAsString')", "one statement at a time"),
    ("SELECT 1 /* ; */ ; SELECT 2", "one statement at a time"),
    ("SELECT '/*' ; DROP TABLE otel_traces; --*/", "one statement at a time"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("SELECT 1; DROP TABLE otel_traces", "one statement at a time"),
    ("SELECT {p:String}", "query parameters"),
    # statement kinds
    ("INSERT INTO otel_traces (TraceId) VALUES ('x')", "INSERT statements are not allowed"),
    ("INSERT INTO alert_events SELECT * FROM alert_events", "INSERT statements are not allowed"),
    ("ALTER TABLE otel_traces DELETE WHERE 1", "ALTER statements are not allowed"),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE statements are not allowed"),
    ("DROP TABLE otel_traces", "DROP statements are not allowed"),
    ("TRUNCATE TABLE otel_traces", "statements are not allowed"),
    ("SYSTEM FLUSH LOGS", "SYSTEM statements are not allowed"),
    ("KILL QUERY WHERE 1", "KILL statements are not allowed"),
    ("OPTIMIZE TABLE otel_traces FINAL", "OPTIMIZE statements are not allowed"),
    ("SET readonly = 0", "SET statements are not allowed"),
    ("USE system", "USE statements are not allowed"),
    ("SHOW CREATE TABLE system.users", "SHOW CREATE statements are not allowed"),
    ("SHOW DATABASES", "only SHOW TABLES of the project database"),
    ("SHOW TABLES FROM system", "only SHOW TABLES of the project database"),
    ("SHOW SETTINGS LIKE 'max%'", "only SHOW TABLES of the project database"),
    ("SHOW COLUMNS FROM users FROM system", "table system.users is not allowed"),
    ("SHOW PROCESSLIST", "SHOW PROCESSLIST statements are not allowed"),
    ("DESCRIBE TABLE system.users", "table system.users is not allowed"),
    ("DESCRIBE file('/etc/passwd', 'LineAsString')", "only DESCRIBE TABLE <table> of a project table"),
    ("DESCRIBE (SELECT * FROM file('/etc/passwd'))", "only DESCRIBE TABLE <table> of a project table"),
    # EXPLAIN of a refused query, and EXPLAIN's own options
    ("EXPLAIN SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("EXPLAIN SYNTAX SELECT (SELECT count() FROM system.users)", "table system.users"),
    ("EXPLAIN PIPELINE SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE is not allowed"),
    ("EXPLAIN ESTIMATE SELECT * FROM url('http://127.0.0.1:9/', 'TSV', 'x String')", "table function url()"),
    ("EXPLAIN max_memory_usage = 1 SELECT 1", "EXPLAIN option max_memory_usage is not allowed"),
    ("EXPLAIN AST DROP TABLE otel_traces", "EXPLAIN is allowed only of a SELECT"),
    # not SQL at all
    ("", "no SQL statement"),
    ("SELEC 1", "not a valid statement"),
]


@pytest.mark.parametrize(("sql", "named"), REFUSED, ids=[s[:60] for s, _ in REFUSED])
def test_refused(store: Any, sql: str, named: str) -> None:
    with pytest.raises(QueryRefused) as e:
        run_read_only(store, sql)
    assert named in str(e.value)


def test_refusals_left_everything_as_it_was(stores: dict[str, Any]) -> None:
    harmful = ("DROP", "INSERT", "ALTER", "TRUNCATE", "OUTFILE", "OPTIMIZE", "SET ", "KILL", "SYSTEM")
    for store in stores.values():
        for sql, _ in [r for r in REFUSED if any(h in r[0] for h in harmful)]:
            with pytest.raises(QueryRefused):
                sql_guard.run(store, sql)
        assert store.query("SELECT count() FROM otel_traces").scalar() == 0  # still there
        assert store.query("SELECT count() FROM alert_events").scalar() == len(EVENTS)
    assert not Path(OUTFILE).exists()


ALLOWED = [
    ("SELECT 1", [(1,)]),
    ("SELECT 1;", [(1,)]),
    ("-- a comment with a quote: '\nSELECT 2 /* ; */ -- and ;", [(2,)]),
    ("SELECT '\\'; DROP TABLE otel_traces; --'", [("'; DROP TABLE otel_traces; --",)]),
    ("SELECT number FROM numbers(10)", [(i,) for i in range(10)]),
    ("SELECT sum(number) FROM numbers_mt(1000)", [(499500,)]),
    ("SELECT * FROM generateSeries(1, 3)", [(1,), (2,), (3,)]),
    ("SELECT * FROM values('x UInt8, y String', (1, 'a'), (2, 'b'))", [(1, "a"), (2, "b")]),
    ("SELECT dummy FROM system.one", [(0,)]),
    ("SELECT number FROM system.numbers LIMIT 2", [(0,), (1,)]),
    ("SELECT rule, state, value FROM alert_events ORDER BY timestamp",
     [("r_cost", "firing", 2.5), ("r_cost", "resolved", 1.0), ("r_err", "firing", 0.5)]),
    ("SELECT count() FROM {db}.alert_events", [(3,)]),
    # CTEs (several, chained, recursive), joins, subqueries at every depth, UNION ALL
    ("WITH f AS (SELECT rule, value FROM alert_events WHERE state = 'firing') SELECT rule FROM f ORDER BY value",
     [("r_err",), ("r_cost",)]),
    ("WITH a AS (SELECT number AS n FROM numbers(4)), b AS (SELECT n * 10 AS m FROM a WHERE n % 2 = 1) "
     "SELECT m FROM b ORDER BY m", [(10,), (30,)]),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) FROM r", [(10,)]),
    ("SELECT * FROM (WITH a AS (SELECT 7 AS x) SELECT x FROM a UNION ALL SELECT x + 1 FROM a) ORDER BY x",
     [(7,), (8,)]),  # the first branch's WITH serves every branch
    ("SELECT e.rule, p.n FROM alert_events AS e JOIN (SELECT 'r_err' AS rule, 42 AS n) AS p USING rule",
     [("r_err", 42)]),
    ("SELECT a.number, b.number FROM numbers(3) AS a LEFT JOIN numbers(2) AS b ON a.number = b.number "
     "ORDER BY a.number", [(0, 0), (1, 1), (2, 0)]),
    ("SELECT rule FROM alert_events WHERE value IN (SELECT max(value) FROM alert_events)", [("r_cost",)]),
    ("SELECT (SELECT count() FROM alert_events WHERE state = 'firing') AS firing", [(2,)]),
    ("SELECT x FROM (SELECT x FROM (SELECT arrayJoin([3, 1, 2]) AS x) ORDER BY x) LIMIT 2", [(1,), (2,)]),
    ("SELECT * FROM (SELECT number FROM numbers(3) UNION ALL SELECT 10) ORDER BY number", [(0,), (1,), (2,), (10,)]),
    ("SELECT count() FROM alert_events WHERE rule IN ('r_cost') AND EXISTS (SELECT 1)", [(2,)]),
    ("SELECT promptpulse_hist_value(toUInt16(0))", [(0.0,)]),
    ("DESCRIBE TABLE alert_events", "rows"),
    ("SHOW TABLES LIKE 'alert%'", [("alert_events",)]),
]


@pytest.mark.parametrize(("sql", "want"), ALLOWED, ids=[s[:50] for s, _ in ALLOWED])
def test_allowed_exact_rows(store: Any, sql: str, want: Any) -> None:
    cols, rows = run_read_only(store, sql.replace("{db}", store.database))
    if want == "rows":
        assert [r[0] for r in rows] == list(COLUMNS)
    else:
        assert [tuple(r) for r in rows] == want, cols


def test_explain_and_show_columns(store: Any) -> None:
    _, rows = run_read_only(store, "EXPLAIN indexes = 1 SELECT count() FROM alert_events WHERE rule = 'r_err'")
    assert rows
    _, rows = run_read_only(store, "EXPLAIN AST WITH a AS (SELECT 1) SELECT * FROM a")
    assert any("WithElement" in r[0] for r in rows)
    _, rows = run_read_only(store, "SHOW COLUMNS FROM alert_events")
    assert sorted(r[0] for r in rows) == sorted(COLUMNS)


def test_the_engine_sees_readonly_and_the_limits(store: Any) -> None:
    _, rows = run_read_only(store, "SELECT getSetting('readonly'), getSetting('max_result_rows'), "
                                   "getSetting('result_overflow_mode'), getSetting('max_memory_usage'), "
                                   "toUInt64(getSetting('max_execution_time'))")
    lim = sql_guard.LIMITS
    assert tuple(rows[0]) == (1, lim["max_result_rows"], "throw", lim["max_memory_usage"], lim["max_execution_time"])


def test_limits_hold(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sql_guard.LIMITS, "max_result_rows", 5)
    assert len(run_read_only(store, "SELECT number FROM numbers(5)")[1]) == 5
    with pytest.raises(QueryRefused, match="more than 5 rows"):  # refused, never silently cut
        run_read_only(store, "SELECT number FROM numbers(6)")
    monkeypatch.setitem(sql_guard.LIMITS, "max_execution_time", 1)
    t0 = time.monotonic()
    with pytest.raises(QueryRefused, match="longer than 1 s"):
        run_read_only(store, "SELECT count() FROM numbers_mt(1000000000000)")
    assert time.monotonic() - t0 < 10
    monkeypatch.setitem(sql_guard.LIMITS, "max_memory_usage", 50 << 20)
    with pytest.raises(QueryRefused, match="more than 50 MiB"):
        run_read_only(store, "SELECT groupArray(number) FROM numbers(100000000)")


def test_check_read_only_is_only_a_quick_pre_check() -> None:
    from promptpulse.processor.api import check_read_only

    assert check_read_only("  -- c\n/* d */ (SELECT 1)") == "-- c\n/* d */ (SELECT 1)"
    for sql in ("DROP TABLE x", "INSERT INTO x VALUES (1)", "SYSTEM FLUSH LOGS", "-- SELECT\nDROP TABLE x"):
        with pytest.raises(ValueError, match="only SELECT"):
            check_read_only(sql)


def test_project_tables_come_from_the_schema() -> None:
    assert {"otel_traces", "llm_calls", "llm_calls_1m", "llm_calls_1h", "llm_calls_1d", "llm_scores",
            "llm_scores_1m", "llm_scores_1h", "model_prices", "alert_events"} <= sql_guard.project_tables()
    assert not {"schema_migrations", "llm_calls_mv"} & sql_guard.project_tables()


def test_refusals_over_http(stores: dict[str, Any]) -> None:
    """The API server answers 400 with the refusal, 200 with the rows; the guard is the one on every path."""
    from promptpulse.processor import api_server

    store = stores["embedded"]
    svc = SimpleNamespace(get_store=lambda: store,
                          ingest=SimpleNamespace(authorized=lambda h: h == f"Bearer {TOKEN}"))
    srv = api_server.make_server("127.0.0.1", 0, svc)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/api/query"

    def post(sql: str) -> tuple[int, dict[str, Any]]:
        r = urllib.request.Request(url, json.dumps({"sql": sql}).encode(), method="POST",
                                   headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    try:
        for sql, named in REFUSED:
            code, doc = post(sql)
            assert (code, named in doc.get("error", "")) == (400, True), (sql, doc)
        code, doc = post("SELECT rule, count() AS n FROM alert_events GROUP BY rule ORDER BY rule")
        assert code == 200 and doc["columns"] == ["rule", "n"] and doc["rows"] == [["r_cost", 2], ["r_err", 1]]
    finally:
        srv.shutdown()
        srv.server_close()
    assert not Path(OUTFILE).exists()
