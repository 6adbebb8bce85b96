"""Contract 2: load, render and apply the numbered SQL files in ``promptpulse.schemas``.

Placeholders in the SQL files (all written ``${NAME}``; docs/SCHEMA.md lists them):

``${DB}``                   the database, as a quoted identifier
``${ON_CLUSTER}``           empty, or ``ON CLUSTER `name``` when rendering for a cluster
``${LOCAL}``                table-name suffix of sharded tables: empty, or ``_local`` on a cluster, where a
                            Distributed table with the plain name is added after each such CREATE TABLE
``${ENGINE:Name(args)}``    a MergeTree-family engine; ``ReplicatedName('/clickhouse/tables/{shard}/...',
                            '{replica}', args)`` on a cluster (``.../all/...`` for unsharded tables)
``${DEDUP_WINDOW}``         the (non_)replicated_deduplication_window table setting
``${TTL_RAW_DAYS}`` ``${TTL_CALLS_DAYS}`` ``${TTL_1M_DAYS}`` ``${TTL_1H_DAYS}``   retention in days
``${MODEL_PREFIX_PATTERN}`` ``${MODEL_SUFFIX_PATTERN}`` ``${PROVIDER_ALIASES_FROM}`` ``${PROVIDER_ALIASES_TO}``
``${ERROR_CATEGORIES}`` ``${EVALUATION_FEATURE}``   rendered from instrumentation/pricing.py and semconv.py, never
                            copied by hand
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from promptpulse.instrumentation import pricing, semconv

if TYPE_CHECKING:
    from .base import Store

DEFAULT_DATABASE = "promptpulse"
DEDUP_WINDOW = 1000
_PLACEHOLDER = re.compile(r"\$\{([A-Z_0-9]+)(?::([^}]*))?\}")
_ENGINE_ARG = re.compile(r"^(\w+)(?:\((.*)\))?$")
_LOCAL_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS \$\{DB\}\.(\w+)\$\{LOCAL\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# How the Distributed tables shard rows (rand() for tables only ever written locally by materialized views). A
# trace's spans, calls and scores hash alike, so each lives on one shard (llm_scores_1m_mv looks calls up locally).
# llm_calls' trace_id is an ALIAS (schemas/003), which a sharding key cannot read: the key spells out its
# expression over the stored columns (tests/processor/test_schema.py checks the two agree).
SHARDING_KEYS = {"otel_traces": "cityHash64(TraceId)",
                 "llm_calls": "cityHash64(if(empty(trace_id_bin), trace_id_raw, lower(hex(trace_id_bin))))",
                 "llm_scores": "cityHash64(trace_id)"}

MIGRATIONS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS ${DB}.schema_migrations ${ON_CLUSTER}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ${ENGINE:ReplacingMergeTree(applied_at)}
ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class SchemaOptions:
    database: str = DEFAULT_DATABASE
    cluster: str | None = None
    ttl_raw_days: int = 14  # otel_traces: raw spans, the biggest and least used
    ttl_calls_days: int = 90  # llm_calls, llm_scores
    ttl_1m_days: int = 35  # llm_calls_1m
    ttl_1h_days: int = 800  # llm_calls_1h, alert_events

    def __post_init__(self) -> None:
        if not _NAME.match(self.database):
            raise ValueError(f"invalid database name {self.database!r}")
        if self.cluster is not None and not _NAME.match(self.cluster):
            raise ValueError(f"invalid cluster name {self.cluster!r}")
        for name in ("ttl_raw_days", "ttl_calls_days", "ttl_1m_days", "ttl_1h_days"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive number of days")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str  # unrendered

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Rendered:
    statements: list[str] = field(default_factory=list)


def migrations() -> list[Migration]:
    """The numbered files of promptpulse.schemas, in order."""
    found = []
    for entry in resources.files("promptpulse.schemas").iterdir():
        match = re.match(r"^(\d{3})_(\w+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate schema versions: {versions}")
    return found


def sql_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_array(values: Sequence[str]) -> str:
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def _engine(spec: str, opts: SchemaOptions, sharded: bool) -> str:
    match = _ENGINE_ARG.match(spec.strip())
    if not match or not match.group(1).endswith("MergeTree"):
        raise ValueError(f"bad engine placeholder {spec!r}")
    name, args = match.group(1), (match.group(2) or "").strip()
    if opts.cluster is None:
        return f"{name}({args})" if args else name
    path = "/clickhouse/tables/{shard}/{database}/{table}" if sharded else "/clickhouse/tables/all/{database}/{table}"
    rargs = [sql_string(path), sql_string("{replica}")] + ([args] if args else [])
    return f"Replicated{name}({', '.join(rargs)})"


def _values(opts: SchemaOptions) -> dict[str, str]:
    aliases = sorted(pricing.PROVIDER_ALIASES.items())
    return {
        "DB": f"`{opts.database}`",
        "ON_CLUSTER": f"ON CLUSTER `{opts.cluster}`" if opts.cluster else "",
        "LOCAL": "_local" if opts.cluster else "",
        "DEDUP_WINDOW": (f"replicated_deduplication_window = {DEDUP_WINDOW}" if opts.cluster
                         else f"non_replicated_deduplication_window = {DEDUP_WINDOW}"),
        "TTL_RAW_DAYS": str(int(opts.ttl_raw_days)),
        "TTL_CALLS_DAYS": str(int(opts.ttl_calls_days)),
        "TTL_1M_DAYS": str(int(opts.ttl_1m_days)),
        "TTL_1H_DAYS": str(int(opts.ttl_1h_days)),
        "MODEL_PREFIX_PATTERN": sql_string(pricing.MODEL_PREFIX_PATTERN),
        "MODEL_SUFFIX_PATTERN": sql_string(pricing.MODEL_SUFFIX_PATTERN),
        "PROVIDER_ALIASES_FROM": sql_array([k for k, _ in aliases]),
        "PROVIDER_ALIASES_TO": sql_array([v for _, v in aliases]),
        "ERROR_CATEGORIES": sql_array(semconv.ERROR_CATEGORIES),
        "EVALUATION_FEATURE": sql_string(semconv.EVALUATION_FEATURE),
    }


def split_statements(sql: str) -> list[str]:
    """Statements end with ';' at the end of a line (the files keep ';' out of strings and comments)."""
    parts = re.split(r";[ \t]*(?:\n|$)", sql)
    out = []
    for part in parts:
        body = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            out.append(body)
    return out


def render_statement(stmt: str, opts: SchemaOptions) -> list[str]:
    """One unrendered statement -> the statements to run (plus its Distributed table on a cluster)."""
    values = _values(opts)
    local = _LOCAL_TABLE.search(stmt)

    def substitute(match: re.Match[str]) -> str:
        key, arg = match.group(1), match.group(2)
        if key == "ENGINE":
            return _engine(arg or "", opts, sharded=local is not None)
        if arg is not None or key not in values:
            raise ValueError(f"unknown schema placeholder {match.group(0)!r}")
        return values[key]

    out = [_PLACEHOLDER.sub(substitute, stmt)]
    if opts.cluster and local is not None:
        table = local.group(1)
        key = SHARDING_KEYS.get(table, "rand()")
        out.append(
            f"CREATE TABLE IF NOT EXISTS `{opts.database}`.{table} ON CLUSTER `{opts.cluster}` "
            f"AS `{opts.database}`.{table}_local\n"
            f"ENGINE = Distributed({sql_string(opts.cluster)}, {sql_string(opts.database)}, "
            f"{sql_string(table + '_local')}, {key})"
        )
    return out


def render(sql: str, opts: SchemaOptions) -> list[str]:
    return [out for stmt in split_statements(sql) for out in render_statement(stmt, opts)]


def render_all(opts: SchemaOptions | None = None) -> list[tuple[Migration, list[str]]]:
    opts = opts or SchemaOptions()
    return [(m, render(m.sql, opts)) for m in migrations()]


def print_schema(opts: SchemaOptions | None = None) -> str:
    """The SQL `promptpulse schema print [--cluster NAME]` shows."""
    opts = opts or SchemaOptions()
    chunks = [f"-- promptpulse schema for database {opts.database}"
              + (f" on cluster {opts.cluster}" if opts.cluster else "")]
    for migration, statements in render_all(opts):
        chunks.append(f"\n-- {migration.version:03d}_{migration.name}.sql")
        chunks.extend(stmt + ";\n" for stmt in statements)
    chunks.extend(stmt + ";\n" for stmt in render(MIGRATIONS_TABLE_SQL, opts))
    return "\n".join(chunks)


def apply(store: Store, opts: SchemaOptions | None = None, *, load_prices: bool = True) -> list[int]:
    """Apply every migration (all idempotent) and record it in schema_migrations; then load model_prices.

    Returns the versions that were new to this database."""
    opts = opts or SchemaOptions()
    for _migration, statements in render_all(opts)[:1]:
        for stmt in statements:  # 001 creates the database, which schema_migrations lives in
            store.command(stmt)
    for stmt in render(MIGRATIONS_TABLE_SQL, opts):
        store.command(stmt)
    db = f"`{opts.database}`"
    known = {row[0]: row[1] for row in store.query(f"SELECT version, argMax(checksum, applied_at) "
                                                   f"FROM {db}.schema_migrations GROUP BY version").rows}
    new = []
    now = dt.datetime.now(dt.timezone.utc)
    for migration, statements in render_all(opts):
        for stmt in statements:
            store.command(stmt)
        if known.get(migration.version) != migration.checksum:
            new.append(migration.version)
            store.insert_rows(f"{opts.database}.schema_migrations", ("version", "name", "checksum", "applied_at"),
                              [(migration.version, migration.name, migration.checksum, now)])
    if load_prices:
        load_model_prices(store, opts.database)
    return new


# model_prices' columns as pricing.ModelPrice has them; the first five are the sorting key (schemas/017).
PRICE_COLUMNS = ("provider", "model", "effective_date", "service_tier", "above_input_tokens", "input_per_mtok",
                 "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "cache_write_1h_per_mtok",
                 "reasoning_per_mtok", "source", "source_date")
_PRICE_KEY_COLUMNS = 5


def _price_row(p: pricing.ModelPrice) -> tuple[Any, ...]:
    return (p.provider, p.model, p.effective_date, p.service_tier, p.above_input_tokens, p.input_per_mtok,
            p.output_per_mtok, p.cache_read_per_mtok, p.cache_write_per_mtok, p.cache_write_1h_per_mtok,
            p.reasoning_per_mtok, p.source, p.source_date)


def _norm(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(Decimal(v).normalize() if isinstance(v, (Decimal, float)) else v for v in row)


def load_model_prices(store: Store, database: str = DEFAULT_DATABASE,
                      prices: Sequence[pricing.ModelPrice] | None = None) -> int:
    """Make ``model_prices FINAL`` equal the loaded price table (bundled CSV + PROMPTPULSE_PRICES_FILE).

    Writes only what changed: new or changed rows, and is_deleted rows for prices that left the table.
    Returns the number of rows written."""
    source = prices if prices is not None else pricing.load_prices()
    present = {row[0] for row in store.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'model_prices'",
        {"db": database}).rows}
    # Only the columns the table has: one not yet upgraded by 017 (a test building an earlier layout) takes the base
    # rows, without the tier and long-context rows its sorting key could not tell apart from them.
    columns = tuple(c for c in PRICE_COLUMNS if c in present)
    picked = [i for i, c in enumerate(PRICE_COLUMNS) if c in present]
    key_len = sum(1 for i in picked if i < _PRICE_KEY_COLUMNS)
    wanted = {}
    for price in source:
        if "service_tier" not in present and (price.service_tier or price.above_input_tokens):
            continue
        row = _norm(_price_row(price))
        row = tuple(row[i] for i in picked)
        wanted[row[:key_len]] = row
    current = {}
    for row in store.query(f"SELECT {', '.join(columns)} FROM `{database}`.model_prices FINAL").rows:
        current[_norm(row)[:key_len]] = _norm(row)
    version = time.time_ns()
    rows: list[tuple[Any, ...]] = []
    for key, row in wanted.items():
        if current.get(key) != row:
            rows.append((*row, version, 0))
    for key, row in current.items():
        if key not in wanted:
            rows.append((*row, version, 1))
    if rows:
        store.insert_rows(f"{database}.model_prices", (*columns, "version", "is_deleted"), rows)
    return len(rows)
