"""Rendering of contract 2 (schemas/*.sql): placeholders, cluster rendering, and names kept in step with Python."""

from __future__ import annotations

import re

import pytest

from promptpulse.instrumentation import pricing, semconv
from promptpulse.processor.store import schema


def test_migrations_are_numbered_and_render_without_leftover_placeholders() -> None:
    found = schema.migrations()
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert {m.name for m in found} >= {"otel_traces", "model_prices", "llm_calls", "rollups", "llm_scores",
                                       "alert_events"}
    for cluster in (None, "pp_cluster"):
        text = schema.print_schema(schema.SchemaOptions(cluster=cluster))
        assert "${" not in text
        for stmt in re.split(r";\n", text):
            body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
            if body:  # idempotent: CREATE/ADD … IF NOT EXISTS, a view's MODIFY QUERY (sets the same SELECT) or a
                # table's MODIFY SETTING (sets the same value) or
                # a DELETE (nothing left to delete)
                assert "IF NOT EXISTS" in body or re.match(r"ALTER TABLE \S+_mv\s+(ON CLUSTER `\w+`\s+)?MODIFY QUERY\n",
                                                           body) or re.match(
                    r"ALTER TABLE \S+\s+(ON CLUSTER `\w+`\s+)?MODIFY SETTING \w+ = '\w+'$", body) or re.match(
                    r"ALTER TABLE \S+\s+(ON CLUSTER `\w+`\s+)?DELETE WHERE ", body) or body.startswith(
                    "CREATE OR REPLACE VIEW "), body[:80]  # deletes nothing again


def test_single_node_rendering() -> None:
    text = schema.print_schema(schema.SchemaOptions(database="obs", ttl_raw_days=7))
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "CREATE TABLE IF NOT EXISTS `obs`.otel_traces" in text
    assert "toIntervalDay(7)" in text
    assert "non_replicated_deduplication_window = 1000" in text
    assert "ENGINE = ReplacingMergeTree(version, is_deleted)" in text


def test_cluster_rendering() -> None:
    text = schema.print_schema(schema.SchemaOptions(database="obs", cluster="main"))
    assert "CREATE DATABASE IF NOT EXISTS `obs` ON CLUSTER `main`" in text
    assert ("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
            in text)
    assert "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in text
    assert ("ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}', "
            "version, is_deleted)") in text
    for table in ("otel_traces", "llm_calls", "llm_calls_1m", "llm_calls_1h", "llm_calls_1d", "llm_scores",
                  "llm_scores_1m", "llm_scores_1h", "llm_calls_tags_1m", "llm_calls_tags_1h"):
        assert f"CREATE TABLE IF NOT EXISTS `obs`.{table}_local ON CLUSTER `main`" in text
        assert f"ENGINE = Distributed('main', 'obs', '{table}_local'," in text
    assert "ENGINE = Distributed('main', 'obs', 'otel_traces_local', cityHash64(TraceId))" in text
    # unsharded tables: replicated everywhere, no _local, no Distributed
    assert "`obs`.model_prices ON CLUSTER `main`" in text and "model_prices_local" not in text
    assert "alert_events_local" not in text
    # materialized views read and write the local tables on each shard
    assert "TO `obs`.llm_calls_local AS" in text and "FROM `obs`.otel_traces_local" in text
    assert "TO `obs`.llm_calls_1h_local AS" in text
    assert "TO `obs`.llm_calls_1d_local AS" in text and "FROM `obs`.llm_calls_1h_local AS h" in text
    assert ("ALTER TABLE `obs`.llm_calls_1h_local ON CLUSTER `main` ADD PROJECTION IF NOT EXISTS by_time "
            "(SELECT * ORDER BY bucket)") in text
    assert "* EXCEPT bucket FROM `obs`.llm_calls_1h_local" in text  # the daily table's backfill, shard-local
    assert ("ALTER TABLE `obs`.llm_calls_1m_local ON CLUSTER `main` ADD PROJECTION IF NOT EXISTS per_minute\n"
            "    (SELECT bucket, sum(calls) GROUP BY bucket)") in text
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS `obs`.llm_calls_1m_mv ON CLUSTER `main`" in text
    assert "FROM `obs`.llm_calls_1m_local AS m" in text
    # the Distributed rollup tables take the local tables' columns
    assert "CREATE TABLE IF NOT EXISTS `obs`.llm_calls_1m ON CLUSTER `main` AS `obs`.llm_calls_1m_local" in text
    # scores are attributed on the shard that holds their trace's calls (both sharded by trace_id)
    assert "TO `obs`.llm_scores_1m_local AS" in text and "FROM `obs`.llm_scores_local AS s" in text
    assert "ENGINE = Distributed('main', 'obs', 'llm_scores_local', cityHash64(trace_id))" in text
    assert "CREATE FUNCTION IF NOT EXISTS promptpulse_hist_quantile ON CLUSTER `main`" in text
    assert "replicated_deduplication_window" in text and "non_replicated_deduplication_window" not in text



def test_cluster_rendering_of_018_and_020() -> None:
    """018 changes the shard-local minute view and deletes the judges' old rows on every shard's local rollups; 020's
    view is made on every node and reads the Distributed tables (a view is read wherever the query runs)."""
    opts = schema.SchemaOptions(database="obs", cluster="main")
    by_version = {m.version: sts for m, sts in schema.render_all(opts)}
    mv, *deletes = by_version[18]
    assert mv.startswith("ALTER TABLE `obs`.llm_calls_1m_mv ON CLUSTER `main` MODIFY QUERY")
    assert "FROM `obs`.llm_calls_local\nWHERE feature != 'promptpulse.evaluation'" in mv
    assert deletes == [f"ALTER TABLE `obs`.llm_calls_{r}_local ON CLUSTER `main` DELETE WHERE feature = "
                       "'promptpulse.evaluation' SETTINGS mutations_sync = 2" for r in ("1m", "1h", "1d")]
    (view,) = by_version[20]
    assert view.startswith("CREATE OR REPLACE VIEW `obs`.guardrail_failures ON CLUSTER `main` AS")
    assert "FROM `obs`.llm_scores AS s" in view and "FROM `obs`.llm_calls\n" in view and "_local" not in view


def test_bad_names_and_placeholders_are_refused() -> None:
    with pytest.raises(ValueError):
        schema.SchemaOptions(database="x; DROP")
    with pytest.raises(ValueError):
        schema.SchemaOptions(cluster="a`b")
    with pytest.raises(ValueError):
        schema.SchemaOptions(ttl_raw_days=0)
    with pytest.raises(ValueError):
        schema.render("SELECT ${NOPE}", schema.SchemaOptions())


def test_python_constants_are_rendered_not_copied() -> None:
    text = schema.print_schema()
    assert schema.sql_string(pricing.MODEL_PREFIX_PATTERN) in text
    assert schema.sql_string(pricing.MODEL_SUFFIX_PATTERN) in text
    assert schema.sql_array(semconv.ERROR_CATEGORIES) in text
    for provider in pricing.PROVIDER_ALIASES:
        assert schema.sql_string(provider) in text


def test_rollup_error_columns_cover_every_category() -> None:
    rollups = next(m for m in schema.migrations() if m.name == "rollups").sql
    for category in semconv.ERROR_CATEGORIES:
        assert f"errors_{category} SimpleAggregateFunction(sum, UInt64)" in rollups
        assert f"countIf(error_category = '{category}') AS errors_{category}" in rollups
        assert f"sum(errors_{category}) AS errors_{category}" in rollups


def test_rollup_view_queries_cover_every_rollup_column() -> None:
    """Both rollup views write every column of the rollup tables (an unwritten column would silently stay 0)."""
    rollups = next(m for m in schema.migrations() if m.name == "rollups").sql
    table = re.search(r"llm_calls_1m\$\{LOCAL\} \$\{ON_CLUSTER\}\n\((.*?)\n\)", rollups, re.S).group(1)
    columns = [line.split()[0] for line in table.strip().splitlines()]
    assert len(set(columns)) == len(columns) > 30
    views = re.findall(r"CREATE MATERIALIZED VIEW .*? AS\n(SELECT.*?);", rollups, re.S)
    assert len(views) == 2
    for view in views:
        for column in columns:
            assert re.search(rf"\b(AS {column}|{column})[,\n]", view), column


def test_llm_calls_sql_reads_contract_names() -> None:
    sql = next(m for m in schema.migrations() if m.name == "llm_calls").sql
    names = [v for k, v in vars(semconv).items()
             if isinstance(v, str) and (k.startswith(("GEN_AI_USAGE", "LEGACY_", "TRACELOOP_", "OPENLIT_"))
                                        or k in ("GEN_AI_OPERATION_NAME", "GEN_AI_PROVIDER_NAME",
                                                 "GEN_AI_REQUEST_MODEL", "GEN_AI_RESPONSE_MODEL",
                                                 "GEN_AI_REQUEST_STREAM", "GEN_AI_RESPONSE_FINISH_REASONS",
                                                 "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK", "GEN_AI_PROMPT_NAME",
                                                 "GEN_AI_PROMPT_VERSION", "GEN_AI_CONVERSATION_ID", "USER_ID",
                                                 "SESSION_ID", "SERVER_ADDRESS", "HTTP_RESPONSE_STATUS_CODE",
                                                 "ERROR_TYPE", "PROMPTPULSE_COST_USD",
                                                 "PROMPTPULSE_ERROR_CATEGORY", "PROMPTPULSE_FEATURE",
                                                 "PROMPTPULSE_TAGS", "PROMPTPULSE_PROMPT_FINGERPRINT",
                                                 "PROMPTPULSE_RETRY_COUNT"))]
    assert len(names) > 25
    for name in names:
        assert f"'{name}'" in sql, name


def test_llm_calls_sharding_key_is_the_trace_id_alias_over_stored_columns() -> None:
    """The Distributed llm_calls cannot shard by the trace_id ALIAS; its key is the alias's expression verbatim, so a
    trace's calls hash exactly like its spans (cityHash64(TraceId)) and scores (cityHash64(trace_id))."""
    sql = next(m for m in schema.migrations() if m.name == "llm_calls").sql
    alias = re.search(r"^\s+trace_id String ALIAS (.*),$", sql, re.M).group(1)
    assert schema.SHARDING_KEYS["llm_calls"] == f"cityHash64({alias})"
    assert schema.SHARDING_KEYS["llm_scores"] == "cityHash64(trace_id)"
    assert schema.SHARDING_KEYS["otel_traces"] == "cityHash64(TraceId)"


_DISTRIBUTED_SCRIPT = """
import re
import sys
from chdb import session
from promptpulse.processor.store import schema
config, data, key = sys.argv[1:4]
s = session.Session(f"file:{data}?config-file={config}")
local = schema.SchemaOptions(database="obs")
for m in schema.migrations()[:3]:  # single-node tables, llm_calls named as the cluster's local table
    for stmt in schema.render(m.sql, local):
        s.query(re.sub(r"`obs`\\.llm_calls\\b", "`obs`.llm_calls_local", stmt))
cluster = [st for _m, sts in schema.render_all(schema.SchemaOptions(database="obs", cluster="main")) for st in sts]
dist = next(st for st in cluster if "Distributed('main', 'obs', 'llm_calls_local'" in st)
dist = dist.replace(" ON CLUSTER `main`", "").replace(schema.SHARDING_KEYS["llm_calls"], key)
try:
    s.query(dist)
    print("CREATED", s.query("SELECT engine_full FROM system.tables WHERE database = 'obs' AND name = 'llm_calls'",
                             "TSVRaw"))
except Exception as e:
    print("ERROR", e)
"""


@pytest.mark.parametrize("key", ["cityHash64(trace_id)", None])
def test_distributed_llm_calls_is_created_with_its_sharding_key(tmp_path, key: str | None) -> None:
    """On chDB with a configured one-shard cluster (a separate process: one engine path per process), the rendered
    Distributed llm_calls is created over llm_calls_local; the old key over the ALIAS is refused."""
    pytest.importorskip("chdb")
    import subprocess
    import sys

    config = tmp_path / "cluster.xml"
    config.write_text("<clickhouse><remote_servers><main><shard><replica><host>localhost</host><port>9000</port>"
                      "</replica></shard></main></remote_servers></clickhouse>")
    key = key or schema.SHARDING_KEYS["llm_calls"]
    out = subprocess.run([sys.executable, "-c", _DISTRIBUTED_SCRIPT, str(config), str(tmp_path / "data"), key],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    if key == "cityHash64(trace_id)":
        assert "ERROR" in out and "Missing columns: 'trace_id'" in out, out
    else:
        assert out.startswith("CREATED") and f"Distributed('main', 'obs', 'llm_calls_local', {key})" in out, out


def test_metrics_and_logs_tables_are_the_collector_exporters_and_shard_on_a_cluster() -> None:
    tables = ("otel_metrics_sum", "otel_metrics_gauge", "otel_metrics_histogram",
              "otel_metrics_exponential_histogram", "otel_metrics_summary", "otel_logs")
    single = schema.print_schema(schema.SchemaOptions(database="obs", ttl_raw_days=3))
    for table in tables:
        assert f"CREATE TABLE IF NOT EXISTS `obs`.{table} \n" in single
    assert single.count("toIntervalDay(3)") == 1 + len(tables)  # retention of the raw spans
    text = schema.print_schema(schema.SchemaOptions(database="obs", cluster="main"))
    for table in tables:
        assert f"CREATE TABLE IF NOT EXISTS `obs`.{table}_local ON CLUSTER `main`" in text
        assert f"ENGINE = Distributed('main', 'obs', '{table}_local', rand())" in text


def test_usage_known_views_cover_every_rollup_column() -> None:
    """013 replaces the rollup views: each still writes every column of 004's table, plus the three it adds."""
    rollups = next(m for m in schema.migrations() if m.name == "rollups").sql
    table = re.search(r"llm_calls_1m\$\{LOCAL\} \$\{ON_CLUSTER\}\n\((.*?)\n\)", rollups, re.S).group(1)
    columns = [line.split()[0] for line in table.strip().splitlines()]
    added = ["calls_without_usage", "calls_unpriced", "calls_without_cost"]
    sql = next(m for m in schema.migrations() if m.name == "usage_known").sql
    for table_name in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
        for local in ("${LOCAL}", ""):
            alter = re.search(rf"ALTER TABLE \$\{{DB\}}\.{table_name}{re.escape(local)} \$\{{ON_CLUSTER\}}\n(.*?);",
                              sql, re.S).group(1)
            assert re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)", alter) == added
    views = re.findall(r"ALTER TABLE \$\{DB\}\.(llm_calls\w*_mv) \$\{ON_CLUSTER\} MODIFY QUERY\n(SELECT.*?);\n", sql,
                       re.S)
    assert [v for v, _ in views] == ["llm_calls_1d_mv", "llm_calls_1h_mv", "llm_calls_1m_mv", "llm_calls_mv"]
    for name, view in views[:3]:
        for column in columns + added:
            assert re.search(rf"\b(AS {column}|{column})[,\n]", view), (name, column)
    assert "usage_known, cost_usd" in views[3][1] and "'unpriced') AS cost_source" in views[3][1]
