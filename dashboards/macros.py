"""Expand Grafana template variables and grafana-clickhouse-datasource macros the way Grafana and the plugin do.

Used by the tests (every panel and variable query runs on chDB) and reusable by anything that wants to run a
dashboard query outside Grafana. Order, as in Grafana + plugin v4:

1. frontend (plugin): ``$__conditionalAll(condition, $var)`` becomes ``condition``, or ``1=1`` when ``$var`` is
   All (``$__all``) or empty;
2. frontend (Grafana): template variables ``${var:singlequote}`` (``'a','b'``, ``'`` escaped as ``\\'``),
   ``${var:csv}``, ``${var:raw}``, and ``${var}`` / ``$var`` in the plugin's default format;
3. backend (pkg/macros/macros.go): ``$__timeFilter(col)`` -> ``col >= toDateTime(from) AND col <= toDateTime(to)``
   (epoch seconds), ``$__timeFilter_ms(col)`` (``fromUnixTimestamp64Milli``), ``$__fromTime`` / ``$__toTime``
   (``toDateTime(epoch s)``), ``$__fromTime_ms`` / ``$__toTime_ms``, ``$__dateFilter(col)``,
   ``$__dateTimeFilter(date, time)`` / ``$__dt``, ``$__timeInterval(col)`` ->
   ``toStartOfInterval(toDateTime(col), INTERVAL n second)``, ``$__timeInterval_ms(col)``, ``$__interval_s``
   (the panel interval in seconds, at least 1).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence

ALL = "$__all"
VariableValue = str | Sequence[str]

_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_MACRO = re.compile(r"\$__(\w+)")


def _epoch(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Top-level comma-separated arguments of the parenthesis at ``open_paren``; returns (args, index after ')')."""
    depth, quote, start, args = 0, "", open_paren + 1, []
    i = open_paren
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return [a.strip() for a in args], i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
        i += 1
    raise ValueError(f"unbalanced parentheses after position {open_paren}")


def _macro_args(sql: str, open_paren: int) -> list[str] | None:
    """The plugin's getMacroArgs: split at top-level commas by counting parentheses only (quotes are not
    special); arguments are not trimmed. None when the parenthesis is not closed."""
    args, depth, last = [], 0, open_paren + 1
    for match in re.finditer(r"[(),]", sql[open_paren:]):
        ch, pos = match.group(0), open_paren + match.start()
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 1:
            args.append(sql[last:pos])
            last = pos + 1
        if depth == 0:
            args.append(sql[last:pos])
            return args
    return None


def _current_text(value: VariableValue | None) -> str | None:
    """``current.value.toString()`` in the plugin: an array joins with commas."""
    if value is None:
        return None
    return value if isinstance(value, str) else ",".join(value)


def apply_conditional_all(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """The plugin's applyConditionalAll (src/data/CHDatasource.ts), innermost-last: ``$__conditionalAll(cond, $v)``
    becomes ``1=1`` when ``$v``'s current value is ``$__all`` or empty, else ``cond``. A variable the dashboard does
    not have keeps ``cond``; a call without exactly two arguments stops the expansion (the SQL is left as is)."""
    macro = "$__conditionalAll("
    while (pos := sql.rfind(macro)) != -1:
        args = _macro_args(sql, pos + len(macro) - 1)
        if args is None or len(args) != 2:
            return sql
        match = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if match and _current_text(variables.get(match.group(0))) in ("", ALL):
            phrase = "1=1"
        sql = sql.replace(f"{macro}{args[0]},{args[1]})", phrase, 1)
    return sql


def singlequote(value: VariableValue) -> str:
    """Grafana's ``:singlequote`` format (scenes formatRegistry): each value in single quotes, ``'`` escaped as
    ``\\'`` and nothing else (a backslash is passed through as is), joined with commas."""
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)


def plugin_format(value: VariableValue) -> str:
    """The plugin's default format for ``$var`` / ``${var}`` without a format: an array becomes ``'a','b'`` (no
    escaping), a single value is inserted as is."""
    return value if isinstance(value, str) else "'" + "','".join(value) + "'"


def _is_all(value: VariableValue) -> bool:
    return value == ALL if isinstance(value, str) else ALL in value


def interpolate(sql: str, variables: Mapping[str, VariableValue],
                all_values: Mapping[str, Sequence[str]] | None = None) -> str:
    """Grafana's template variable replacement with the plugin's default format. A variable set to All takes the
    values of all its options (``all_values``), as Grafana does for a variable without a custom all value."""
    def value(name: str) -> VariableValue:
        val = variables[name]
        if _is_all(val):
            if all_values is None or name not in all_values:
                raise KeyError(f"variable {name!r} is All and its options were not given")
            return list(all_values[name])
        return val

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name.startswith("__") or name not in variables:
            return match.group(0)  # Grafana globals and plugin macros are left for the next step
        val = value(name)
        if fmt == "singlequote":
            return singlequote(val)
        if fmt in ("csv", "raw"):
            return val if isinstance(val, str) else ",".join(val)
        if fmt is None:
            return plugin_format(val)
        raise ValueError(f"unsupported variable format {fmt!r}")

    return _VAR.sub(sub, sql)


AdHocFilter = tuple[str, str, str]  # key, operator (=, !=, <, >, =~, !~), value
_ADHOC = re.compile(r"\$__adHocFilters\s*\(([^)]+)\)")


def adhoc_filter_string(filters: Sequence[AdHocFilter]) -> str:
    """The plugin's AdHocFilter.buildFilterString for plain column keys: `` key op \\'value\\' AND ...``."""
    ops = {"=~": "REGEXP", "!~": "NOT REGEXP"}
    parts = []
    for i, (key, op, value) in enumerate(filters):
        condition = "AND" if i != len(filters) - 1 else ""
        parts.append(f" {key} {ops.get(op, op)} \\'{value}\\' {condition}")
    return "".join(parts)


def apply_adhoc_filters_macro(sql: str, filters: Sequence[AdHocFilter] = ()) -> str:
    """The plugin's ``$__adHocFilters('table', ...)`` (4.13+; several tables 4.17+): the ad-hoc filters as the
    ``additional_table_filters`` setting for each named table (``{}`` when there are none)."""
    def sub(match: re.Match[str]) -> str:
        tables = re.findall(r"['\"]([^'\"]+)['\"]", match.group(1))
        if not tables:
            return match.group(0)
        text = adhoc_filter_string(filters)
        if not text:
            return "additional_table_filters={}"
        return "additional_table_filters={" + ", ".join(f"'{t}': '{text}'" for t in tables) + "}"

    return _ADHOC.sub(sub, sql)


def expand_macros(sql: str, time_from: dt.datetime, time_to: dt.datetime, interval_s: float = 60) -> str:
    # a frontend macro not expanded before (callers without ad-hoc filters): no filters, as the plugin does
    sql = apply_adhoc_filters_macro(sql)
    frm, to = _epoch(time_from), _epoch(time_to)
    fs, ts = int(frm.timestamp()), int(to.timestamp())
    fms, tms = int(frm.timestamp() * 1000), int(to.timestamp() * 1000)
    seconds = max(int(interval_s), 1)
    simple = {
        "fromTime": f"toDateTime({fs})", "toTime": f"toDateTime({ts})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({fms})", "toTime_ms": f"fromUnixTimestamp64Milli({tms})",
        "interval_s": str(seconds),
    }
    with_args = {
        "timeFilter": lambda c: f"{c} >= toDateTime({fs}) AND {c} <= toDateTime({ts})",
        "timeFilter_ms": lambda c: f"{c} >= fromUnixTimestamp64Milli({fms}) AND {c} <= fromUnixTimestamp64Milli({tms})",
        "dateFilter": lambda c: f"{c} >= toDate('{frm:%Y-%m-%d}') AND {c} <= toDate('{to:%Y-%m-%d}')",
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)",
        "timeInterval_ms": lambda c: (f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL "
                                      f"{max(math.floor(interval_s * 1000), 1)} millisecond)"),
    }
    out, pos = [], 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        out.append(sql[pos:match.start()])
        if name in ("dateTimeFilter", "dt"):
            args, end = _args(sql, match.end())
            d, t = (expand_macros(a, time_from, time_to, interval_s) for a in args)  # nested macros (plugin 4.20)
            out.append(f"({d} >= toDate('{frm:%Y-%m-%d}') AND {d} <= toDate('{to:%Y-%m-%d}')) AND "
                       f"({t} >= toDateTime({fs}) AND {t} <= toDateTime({ts}))")
            pos = end
        elif name in with_args:
            args, end = _args(sql, match.end())
            if len(args) != 1:
                raise ValueError(f"$__{name} takes 1 argument")
            out.append(with_args[name](expand_macros(args[0], time_from, time_to, interval_s)))
            pos = end
        elif name in simple:
            out.append(simple[name])
            pos = match.end()
        else:
            raise ValueError(f"unknown macro $__{name}")
    out.append(sql[pos:])
    return "".join(out)


def expand(sql: str, *, time_from: dt.datetime, time_to: dt.datetime, interval_s: float = 60,
           variables: Mapping[str, VariableValue] | None = None,
           all_values: Mapping[str, Sequence[str]] | None = None, adhoc: Sequence[AdHocFilter] = ()) -> str:
    """A panel's rawSql as ClickHouse receives it from Grafana for this time range, interval, variables and ad-hoc
    filters (the plugin's order: $__conditionalAll, variables, $__adHocFilters, then the backend macros)."""
    variables = variables or {}
    sql = apply_conditional_all(sql, variables)
    sql = interpolate(sql, variables, all_values)
    sql = apply_adhoc_filters_macro(sql, adhoc)
    return expand_macros(sql, time_from, time_to, interval_s)
