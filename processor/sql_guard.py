"""The read-only guard of ``POST /api/query`` and ``promptpulse query``: which SQL a client may run, and how.

The statement is parsed by the store's own engine, never by regexes here: ``parseQueryToJSON`` (ClickHouse's parser,
the text passed as a query *parameter*, so it cannot start a second statement) gives the syntax tree as JSON, and
that tree is checked against whitelists:

- statements: SELECT / WITH ... SELECT / UNION (and EXCEPT, INTERSECT), ``EXPLAIN`` of such a query,
  ``SHOW TABLES`` and ``SHOW COLUMNS FROM t`` of the project database, ``DESCRIBE TABLE t`` of a project table;
- tables: the project's tables (schemas/*.sql) in the store's database, the names a WITH in scope defines, and a
  few constant system tables (``SYSTEM_TABLES``); no other database;
- table functions: only generators (``TABLE_FUNCTIONS``), so nothing that reaches files, URLs, other servers or
  databases; scalar functions that do (``file()``, dictionaries, AI calls, ``joinGet``, introspection, ...) are
  refused, by name and by their category in ``system.functions``, and so are user-defined functions other than
  the schema's ``promptpulse_*``;
- no ``INTO OUTFILE``, ``FORMAT``, ``SETTINGS`` or query parameters; any node or field the guard does not know is
  refused (fail closed).

What runs is the engine's own single-line formatting of the statement, and only when it round-trips (its JSON
formats back to the same text, and the text parses to the same JSON), so the text that runs is the tree that was
checked: comments, ``;`` and quoting tricks are gone before anything executes. It runs with ``readonly = 1`` (no
writes, no setting changes by the query) and the ``LIMITS`` below; on a ClickHouse server a read-only profile
with constraints for the API's user adds the server's own enforcement (docs/API.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class QueryRefused(ValueError):
    """The statement is not one the API runs; the message names what was refused (HTTP 400)."""


# Server-side limits of every guarded query. result_overflow_mode = 'throw': a larger result is an error, never a
# silently cut one (break would stop at a block boundary, above the limit).
LIMITS: dict[str, Any] = {
    "max_result_rows": 100_000,
    "result_overflow_mode": "throw",
    "max_execution_time": 30,
    "timeout_overflow_mode": "throw",
    "max_memory_usage": 1 << 30,
}

SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt"})
# Generators only (lower case): no table function that reads anything.
TABLE_FUNCTIONS = ("numbers", "numbers_mt", "zeros", "zeros_mt", "generateSeries", "generate_series", "values",
                   "generateRandom", "primes")
_TABLE_FUNCTIONS = frozenset(f.lower() for f in TABLE_FUNCTIONS)
# Scalar functions that reach outside the query's tables or the process, or only stall it (lower case).
DENIED_FUNCTIONS = frozenset({
    "file", "url", "s3", "hdfs", "azureblobstorage", "remote", "remotesecure", "cluster", "mysql", "postgresql",
    "joinget", "joingetornull", "hascolumnintable", "getserversetting", "getmergetreesetting", "getmacro",
    "getclienthttpheader", "showcertificate", "filesystemavailable", "filesystemcapacity", "filesystemunreserved",
    "zookeepersessionuptime", "generateserialid", "sleep", "sleepeachrow", "catboostevaluate", "modelevaluate",
    "addresstoline", "addresstolinewithinlines", "addresstosymbol", "demangle", "logtrace",
})
DENIED_PREFIXES = ("dictget", "dicthas", "dictisin", "region", "ai", "__")
DENIED_CATEGORIES = ("ai", "dictionary", "embedded dictionary", "introspection", "internal")
EXPLAIN_KINDS = frozenset({"EXPLAIN", "EXPLAIN PLAN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE",
                           "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE"})
EXPLAIN_OPTIONS = frozenset({"header", "description", "indexes", "actions", "json", "projections", "sorting",
                             "distributed", "keep_logical_steps", "graph", "compact", "oneline", "run_passes",
                             "dump_passes", "passes", "dump_tree", "dump_ast", "run_query_tree_passes",
                             "query_tree_passes", "optimize", "pretty"})
_IN_FUNCTIONS = frozenset(f"{g}{n}in{s}" for g in ("", "global") for n in ("", "not", "null", "notnull")
                          for s in ("", "ignoreset"))
_STATEMENTS = {"InsertQuery": "INSERT", "AlterQuery": "ALTER", "CreateQuery": "CREATE", "DropQuery": "DROP",
               "SystemQuery": "SYSTEM", "KillQueryQuery": "KILL", "OptimizeQuery": "OPTIMIZE", "SetQuery": "SET",
               "UseQuery": "USE", "RenameQuery": "RENAME", "DeleteQuery": "DELETE", "UpdateQuery": "UPDATE",
               "ShowCreateTableQuery": "SHOW CREATE", "ShowProcesslistQuery": "SHOW PROCESSLIST",
               "CheckQuery": "CHECK", "UndropQuery": "UNDROP", "TransactionControl": "BEGIN/COMMIT/ROLLBACK"}
_DESCRIBE = re.compile(r"^DESCRIBE TABLE (?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)$")
_NODE_TYPE = re.compile(r"AST node of type '([A-Za-z]+)")
_OUTPUT_FLAGS = ("is_outfile_append", "is_outfile_truncate", "is_into_outfile_with_stdout")

# Expression nodes: the fields each may have (walked when they hold nodes). Anything else is refused.
_EXPRESSION_FIELDS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "ExpressionList": ("children",),
    "Identifier": ("name", "name_parts"),
    "Asterisk": ("transformers",),
    "QualifiedAsterisk": ("qualifier", "transformers"),
    "ColumnsRegexpMatcher": ("pattern", "transformers"),
    "QualifiedColumnsRegexpMatcher": ("pattern", "qualifier", "transformers"),
    "ColumnsListMatcher": ("column_list", "transformers"),
    "QualifiedColumnsListMatcher": ("qualifier", "column_list", "transformers"),
    "ColumnsTransformerList": ("children",),
    "ColumnsExceptTransformer": ("children", "is_strict", "pattern"),
    "ColumnsReplaceTransformer": ("children", "is_strict"),
    "ColumnsReplaceTransformerReplacement": ("children", "name"),
    "OrderByElement": ("expression", "direction", "nulls_direction", "nulls_direction_was_explicitly_specified",
                       "collation", "with_fill", "fill_from", "fill_to", "fill_step", "fill_staleness"),
    "InterpolateElement": ("column", "expr"),
    "WindowListElement": ("name", "definition"),
    "WindowDefinition": ("parent_window_name", "partition_by", "order_by", "frame_is_default", "frame_type",
                         "frame_begin_type", "frame_begin_offset", "frame_begin_preceding", "frame_end_type",
                         "frame_end_offset", "frame_end_preceding"),
    "SampleRatio": ("numerator", "denominator"),
    "TableJoin": ("kind", "strictness", "locality", "on_expression", "using_expression_list"),
    "ArrayJoin": ("kind", "expression_list"),
}.items()}
_FUNCTION_FIELDS = frozenset({"name", "arguments", "parameters", "is_operator", "is_lambda_function",
                              "is_window_function", "kind", "no_empty_args", "nulls_action", "window_definition",
                              "window_name", "is_compound_name"})
_SELECT_FIELDS = frozenset({"with", "recursive_with", "distinct", "select", "tables", "prewhere", "where",
                            "group_by", "group_by_all", "group_by_with_totals", "group_by_with_rollup",
                            "group_by_with_cube", "group_by_with_grouping_sets", "having", "window", "qualify",
                            "order_by", "order_by_all", "interpolate", "limit_by_offset", "limit_by_length",
                            "limit_by", "limit_by_all", "limit_offset", "limit_length", "limit_with_ties"})
_SHOW_TABLES_FIELDS = frozenset({"like", "not_like", "case_insensitive_like", "limit_length"})
_SHOW_COLUMNS_FIELDS = frozenset({"table", "database", "like", "not_like", "case_insensitive_like", "extended",
                                  "full", "limit_length"})


@lru_cache(maxsize=1)
def project_tables() -> frozenset[str]:
    """The tables and plain views schemas/*.sql create (and their ``_local`` shards on a cluster)."""
    from .store import schema

    names: set[str] = set()
    pattern = re.compile(r"CREATE\s+(?:TABLE|VIEW)\s+IF\s+NOT\s+EXISTS\s+\$\{DB\}\.(\w+)(\$\{LOCAL\})?", re.I)
    for m in schema.migrations():
        for name, local in pattern.findall(m.sql):
            names.add(name)
            if local:
                names.add(name + "_local")
    return frozenset(names)


def execution_settings() -> dict[str, Any]:
    """What a guarded query runs with, after the store's own query settings (``Store.query`` puts those first);
    readonly last: a server applies URL settings in order, and readonly = 1 refuses any change after it."""
    return {**LIMITS, "readonly": 1}


@dataclass(slots=True)
class Checked:
    sql: str  # the engine's formatting of the statement: what runs
    kind: str  # SELECT, EXPLAIN, SHOW TABLES, SHOW COLUMNS, DESCRIBE
    functions: set[str] = field(default_factory=set)


def check(store: Any, sql: str) -> Checked:
    """Parse ``sql`` with the store's engine and check it; raises QueryRefused naming what is refused."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("no SQL statement given")
    text = _engine_format(store, sql)
    described = _DESCRIBE.match(text)
    if text.startswith("DESCRIBE"):
        if not described:
            raise QueryRefused("only DESCRIBE TABLE <table> of a project table is allowed")
        _Walker(store.database).table_name([p for p in described.groups() if p], "DESCRIBE")
        return Checked(text, "DESCRIBE")
    tree = _engine_tree(store, sql, text)
    walker = _Walker(store.database)
    kind = walker.statement(tree)
    _check_functions(store, walker.functions)
    return Checked(text, kind, walker.functions)


def run(store: Any, sql: str) -> tuple[list[str], list[tuple]]:
    """Check ``sql``, then run the checked text read-only with LIMITS: (column names, rows)."""
    checked = check(store, sql)
    try:
        r = store.query(checked.sql, settings=execution_settings())
        return list(r.column_names), list(r.rows)
    except Exception as exc:
        raise _limit_error(exc) from exc


# --- the engine's parser ------------------------------------------------------------------------------------------
def _scalar(store: Any, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(store.query(sql, dict(params)).rows[0])


def _engine_message(exc: Exception) -> str:
    msg = str(exc)
    msg = re.sub(r"^.*?DB::Exception:\s*", "", msg, flags=re.S)
    return msg.split(": In scope")[0].split("\n")[0].strip()[:300]


def _engine_format(store: Any, sql: str) -> str:
    try:
        (text,) = _scalar(store, "SELECT formatQuerySingleLine({q:String})", {"q": sql})
    except Exception as exc:
        msg = _engine_message(exc)
        if "Multi-statements are not allowed" in msg:
            raise QueryRefused("one statement at a time (multi-statements are not allowed)") from exc
        if "UNKNOWN_FUNCTION" in str(exc) or "Unknown function" in str(exc):
            raise QueryRefused("this ClickHouse cannot parse queries for the guard (formatQuerySingleLine, "
                               "parseQueryToJSON: ClickHouse 26.9 has them); /api/query is unavailable") from exc
        raise QueryRefused(f"not a valid statement: {msg}") from exc
    return str(text).strip()


def _engine_tree(store: Any, sql: str, text: str) -> dict[str, Any]:
    import json

    try:
        j, back, j0 = _scalar(store, "SELECT parseQueryToJSON({f:String}) AS j, formatQueryFromJSON(j), "
                                     "parseQueryToJSON({q:String})", {"f": text, "q": sql})
    except Exception as exc:
        msg = _engine_message(exc)
        node = _NODE_TYPE.search(msg)
        if node:
            raise QueryRefused(f"{_statement_name(node.group(1))} statements are not allowed") from exc
        if "INSERT" in msg:
            raise QueryRefused("INSERT statements are not allowed") from exc
        if "Unknown function" in str(exc) or "UNKNOWN_FUNCTION" in str(exc):
            raise QueryRefused("this ClickHouse has no parseQueryToJSON (ClickHouse 26.9 has it); the guard "
                               "cannot check queries, so /api/query is unavailable") from exc
        raise QueryRefused(f"not a statement the guard can check: {msg}") from exc
    # the text that runs must be exactly the tree that is checked, both ways
    if str(back).strip() != text or j != j0:
        raise QueryRefused("the statement uses syntax the guard cannot check (it does not round-trip)")
    try:
        tree = json.loads(j)
    except ValueError as exc:
        raise QueryRefused("the engine's syntax tree could not be read") from exc
    if not isinstance(tree, dict):
        raise QueryRefused("the engine's syntax tree could not be read")
    return tree


def _statement_name(node_type: str) -> str:
    base = node_type.split("__")[0]
    return _STATEMENTS.get(base, base.removesuffix("Query").upper() or "this")


def _check_functions(store: Any, names: set[str]) -> None:
    """Refuse functions by their engine metadata: category, alias target, user-defined origin."""
    if not names:
        return
    rows = store.query("SELECT * FROM system.functions WHERE lower(name) IN {names:Array(String)}",
                       {"names": sorted(names)}).dicts()
    for row in rows:
        name = str(row.get("name", ""))
        alias = str(row.get("alias_to") or "").lower()
        categories = str(row.get("categories") or "").lower()
        origin = str(row.get("origin") or "System")
        if alias and _denied_name(alias):
            raise QueryRefused(f"function {name}() is not allowed")
        if any(c.strip() in DENIED_CATEGORIES for c in re.split(r"[,;]", categories)):
            raise QueryRefused(f"function {name}() is not allowed ({categories} functions are not)")
        if origin != "System" and not name.startswith("promptpulse_"):
            raise QueryRefused(f"function {name}() is not allowed (user-defined functions other than "
                               "promptpulse_* are not)")


def _denied_name(lower: str) -> bool:
    return lower in DENIED_FUNCTIONS or lower.startswith(DENIED_PREFIXES)


def _limit_error(exc: Exception) -> Exception:
    msg = str(exc)
    if "TOO_MANY_ROWS_OR_BYTES" in msg or "Limit for result exceeded" in msg:
        return QueryRefused(f"the result has more than {LIMITS['max_result_rows']} rows (the /api/query limit): "
                            "add a LIMIT or aggregate")
    if "TIMEOUT_EXCEEDED" in msg or "Timeout exceeded" in msg:
        return QueryRefused(f"the query ran longer than {LIMITS['max_execution_time']} s (the /api/query limit)")
    if "MEMORY_LIMIT_EXCEEDED" in msg:
        return QueryRefused(f"the query needs more than {LIMITS['max_memory_usage'] >> 20} MiB (the /api/query "
                            "limit)")
    return exc


# --- the whitelist walk -------------------------------------------------------------------------------------------
class _Walker:
    def __init__(self, database: str) -> None:
        self.database = database
        self.tables = project_tables()
        self.scopes: list[frozenset[str]] = []  # CTE names visible at this point, innermost last
        self.functions: set[str] = set()

    # statements
    def statement(self, node: dict[str, Any]) -> str:
        t = node.get("type")
        self._output_flags(node)
        if t == "SelectWithUnionQuery":
            self.query(node)
            return "SELECT"
        if t == "ExplainQuery":
            self._fields(node, {"kind", "settings", "query"})
            kind = node.get("kind")
            if kind not in EXPLAIN_KINDS:
                raise QueryRefused(f"{kind} is not allowed")
            if "settings" in node:
                self._explain_settings(node["settings"])
            inner = node.get("query")
            if not isinstance(inner, dict) or inner.get("type") != "SelectWithUnionQuery":
                raise QueryRefused("EXPLAIN is allowed only of a SELECT")
            self.query(inner)
            return "EXPLAIN"
        if t == "ShowTablesQuery":
            extra = set(node) - _SHOW_TABLES_FIELDS - {"type", *_OUTPUT_FLAGS}
            if extra:
                raise QueryRefused("only SHOW TABLES of the project database is allowed "
                                   f"(not SHOW {' '.join(sorted(extra)).upper()})")
            self._walk_values(node, ("limit_length",))
            return "SHOW TABLES"
        if t == "ShowColumnsQuery":
            self._fields(node, _SHOW_COLUMNS_FIELDS)
            parts = [p for p in (node.get("database"), node.get("table")) if p]
            if not all(isinstance(p, str) for p in parts):
                raise QueryRefused("SHOW COLUMNS: unreadable table name")
            self.table_name(parts, "SHOW COLUMNS")
            self._walk_values(node, ("limit_length",))
            return "SHOW COLUMNS"
        raise QueryRefused(f"{_statement_name(str(t))} statements are not allowed; only SELECT/WITH, EXPLAIN, "
                           "SHOW TABLES, SHOW COLUMNS and DESCRIBE TABLE")

    def _explain_settings(self, node: Any) -> None:
        if not isinstance(node, dict) or node.get("type") != "SetQuery":
            raise QueryRefused("EXPLAIN: unreadable options")
        self._fields(node, {"changes", "is_standalone"})
        for change in node.get("changes") or []:
            name, value = change.get("name"), (change.get("value") or {}).get("value")
            if name not in EXPLAIN_OPTIONS or not isinstance(value, (int, bool)) or set(change) - {"name", "value"}:
                raise QueryRefused(f"EXPLAIN option {name} is not allowed (only {', '.join(sorted(EXPLAIN_OPTIONS))})")

    # queries
    def query(self, node: dict[str, Any]) -> None:
        """SelectWithUnionQuery: its branches, with the first branch's WITH visible to all (global WITH)."""
        self._output_flags(node)
        self._fields(node, {"union_mode", "list_of_modes", "list_of_selects"})
        selects = self._children(node.get("list_of_selects"))
        first = selects[0] if selects else None
        shared = self._with_names(first) if isinstance(first, dict) and first.get("type") == "SelectQuery" else ()
        self.scopes.append(frozenset(shared))
        try:
            for s in selects:
                if not isinstance(s, dict):
                    raise QueryRefused("unreadable query")
                if s.get("type") == "SelectQuery":
                    self.select(s)
                elif s.get("type") == "SelectWithUnionQuery":
                    self.query(s)
                else:
                    raise QueryRefused(f"unsupported syntax: {s.get('type')}")
        finally:
            self.scopes.pop()

    def select(self, node: dict[str, Any]) -> None:
        if "settings" in node:
            raise QueryRefused("a SETTINGS clause is not allowed (the API sets the limits)")
        self._fields(node, _SELECT_FIELDS)
        elements = self._children(node.get("with")) if node.get("with") is not None else []
        defined: list[str] = []
        # a WITH element sees the ones before it and itself (WITH RECURSIVE); the query body sees them all
        for el in elements:
            if isinstance(el, dict) and el.get("type") == "WithElement":
                self._fields(el, {"name", "subquery", "is_materialized"})
                name = el.get("name")
                if not isinstance(name, str):
                    raise QueryRefused("unreadable WITH element")
                defined.append(name)
                self.scopes.append(frozenset(defined))
                try:
                    self.expression(el.get("subquery"))
                finally:
                    self.scopes.pop()
            else:
                self.scopes.append(frozenset(defined))
                try:
                    self.expression(el)
                finally:
                    self.scopes.pop()
        self.scopes.append(frozenset(defined))
        try:
            for key in sorted(set(node) - {"type", "with"}):
                value = node[key]
                if key == "tables":
                    self.tables_in_select(value)
                elif isinstance(value, (dict, list)):
                    self.expression(value)
        finally:
            self.scopes.pop()

    def _with_names(self, select: dict[str, Any]) -> list[str]:
        w = select.get("with")
        return [el["name"] for el in self._children(w) if isinstance(el, dict) and el.get("type") == "WithElement"
                and isinstance(el.get("name"), str)] if w is not None else []

    def tables_in_select(self, node: Any) -> None:
        if not isinstance(node, dict) or node.get("type") != "TablesInSelectQuery":
            raise QueryRefused("unreadable FROM clause")
        for el in self._children(node, "TablesInSelectQuery"):
            if not isinstance(el, dict) or el.get("type") != "TablesInSelectQueryElement":
                raise QueryRefused("unreadable FROM clause")
            self._fields(el, {"table_expression", "table_join", "array_join"})
            if "table_expression" in el:
                self.table_expression(el["table_expression"])
            for k in ("table_join", "array_join"):
                if k in el:
                    self.expression(el[k])

    def table_expression(self, node: Any) -> None:
        if not isinstance(node, dict) or node.get("type") != "TableExpression":
            raise QueryRefused("unreadable table expression")
        self._fields(node, {"database_and_table_name", "table_function", "subquery", "final", "sample_size",
                            "sample_offset"})
        if "database_and_table_name" in node:
            self.table_identifier(node["database_and_table_name"])
        if "table_function" in node:
            f = node["table_function"]
            if not isinstance(f, dict) or f.get("type") != "Function" or not isinstance(f.get("name"), str):
                raise QueryRefused("unreadable table function")
            if f["name"].lower() not in _TABLE_FUNCTIONS:
                raise QueryRefused(f"table function {f['name']}() is not allowed (only "
                                   f"{', '.join(f + '()' for f in TABLE_FUNCTIONS)})")
            self._fields(f, {"name", "arguments", "is_operator", "no_empty_args"})
            if "arguments" in f:
                self.expression(f["arguments"])
        for k in ("subquery", "sample_size", "sample_offset"):
            if k in node:
                self.expression(node[k])

    def table_identifier(self, node: Any) -> None:
        if not isinstance(node, dict) or node.get("type") != "TableIdentifier":
            raise QueryRefused("unreadable table name")
        self._fields(node, {"name", "name_parts"})
        self.table_name(self._name_parts(node), "table")

    def table_name(self, parts: list[str], what: str) -> None:
        if len(parts) == 1:
            name = parts[0]
            if any(name in s for s in self.scopes) or name in self.tables:
                return
            listed = ", ".join(sorted(t for t in self.tables if not t.endswith("_local")))
            raise QueryRefused(f"table {name} is not allowed (only the project's tables: {listed})")
        if len(parts) == 2:
            db, name = parts
            if db == self.database and name in self.tables:
                return
            if db == "system" and name in SYSTEM_TABLES:
                return
            if db == "system":
                allowed = ", ".join(f"system.{t}" for t in sorted(SYSTEM_TABLES))
                raise QueryRefused(f"table system.{name} is not allowed (only {allowed})")
            if db != self.database:
                raise QueryRefused(f"database {db} is not allowed (only {self.database})")
            raise QueryRefused(f"table {db}.{name} is not allowed")
        raise QueryRefused(f"{what} {'.'.join(parts)} is not allowed")

    @staticmethod
    def _name_parts(node: dict[str, Any]) -> list[str]:
        parts = node.get("name_parts")
        if parts is None:
            parts = [node.get("name")]
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise QueryRefused("unreadable name")
        return parts

    # expressions
    def expression(self, node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                self.expression(n)
            return
        if not isinstance(node, dict):
            raise QueryRefused("unreadable expression")
        t = node.get("type")
        if t == "Literal":
            self._fields(node, {"value"})  # data, not walked
        elif t == "Function":
            self.function(node)
        elif t == "Subquery":
            for q in self._children(node, "Subquery"):
                if not isinstance(q, dict) or q.get("type") != "SelectWithUnionQuery":
                    raise QueryRefused("unreadable subquery")
                self.query(q)
        elif t == "SelectWithUnionQuery":
            self.query(node)
        elif t == "ColumnsApplyTransformer":
            self._fields(node, {"func_name", "parameters", "lambda", "lambda_arg", "column_name_prefix"})
            if isinstance(node.get("func_name"), str):
                self._function_name(node["func_name"])
            self._walk_values(node, ("parameters", "lambda"))
        elif t == "QueryParameter":
            raise QueryRefused("query parameters ({name:Type}) are not supported: write the values")
        elif t == "SetQuery":
            raise QueryRefused("a SETTINGS clause is not allowed (the API sets the limits)")
        elif t in _EXPRESSION_FIELDS:
            self._fields(node, _EXPRESSION_FIELDS[t])
            for key in sorted(_EXPRESSION_FIELDS[t] & set(node)):
                if isinstance(node[key], (dict, list)) and key != "name_parts":
                    self.expression(node[key])
        else:
            raise QueryRefused(f"unsupported syntax: {t}")

    def function(self, node: dict[str, Any]) -> None:
        self._fields(node, _FUNCTION_FIELDS)
        name = node.get("name")
        if not isinstance(name, str):
            raise QueryRefused("unreadable function")
        if name != "lambda":
            self._function_name(name)
        args = self._children(node.get("arguments")) if node.get("arguments") is not None else []
        # x IN t reads table t: the same rule as FROM t
        if name.lower() in _IN_FUNCTIONS and len(args) == 2 and isinstance(args[1], dict) \
                and args[1].get("type") == "Identifier":
            self.table_name(self._name_parts(args[1]), "table")
        self._walk_values(node, ("arguments", "parameters", "window_definition"))

    def _function_name(self, name: str) -> None:
        lower = name.lower()
        if _denied_name(lower):
            raise QueryRefused(f"function {name}() is not allowed")
        self.functions.add(lower)

    # helpers
    def _walk_values(self, node: dict[str, Any], keys: Iterable[str]) -> None:
        for k in keys:
            if node.get(k) is not None:
                self.expression(node[k])

    @staticmethod
    def _children(node: Any, kind: str = "ExpressionList") -> list[Any]:
        if node is None:
            return []
        if not isinstance(node, dict) or node.get("type") != kind:
            raise QueryRefused("unreadable list")
        _Walker._fields(node, {"children"})
        children = node.get("children", [])
        if not isinstance(children, list):
            raise QueryRefused("unreadable list")
        return children

    @staticmethod
    def _output_flags(node: dict[str, Any]) -> None:
        """Clauses any statement node may carry (ASTQueryWithOutput)."""
        if node.get("out_file") is not None or any(node.get(f) for f in _OUTPUT_FLAGS):
            raise QueryRefused("INTO OUTFILE is not allowed")
        if "format_ast" in node:
            raise QueryRefused("a FORMAT clause is not allowed (the API answers JSON)")
        if "settings_ast" in node:
            raise QueryRefused("a SETTINGS clause is not allowed (the API sets the limits)")

    @staticmethod
    def _fields(node: dict[str, Any], allowed: Iterable[str]) -> None:
        extra = set(node) - set(allowed) - {"type", "alias", *_OUTPUT_FLAGS}
        if extra:
            raise QueryRefused(f"unsupported syntax: {node.get('type')} with {', '.join(sorted(extra))}")

