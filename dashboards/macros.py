"""Expand Grafana template variables and grafana-clickhouse-datasource macros the way Grafana and the plugin do.

Used by the tests (every panel and variable query runs on chDB) and reusable by anything that wants to run a
dashboard query outside Grafana. Order, as in Grafana + plugin v4:

1. frontend: ``$__conditionalAll(condition, $var)`` becomes ``condition``, or ``1=1`` when ``$var`` is All
   (``$__all``) or empty;
2. frontend: template variables ``${var:singlequote}`` (``'a','b'``), ``${var:csv}``, ``${var}``, ``$var``;
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


def _is_all(value: VariableValue | None) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value in ("", ALL)
    return len(value) == 0 or ALL in value


def apply_conditional_all(sql: str, variables: Mapping[str, VariableValue]) -> str:
    macro = "$__conditionalAll("
    while (pos := sql.rfind(macro)) != -1:
        args, end = _args(sql, pos + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {args}")
        match = re.search(r"\$\{?(\w+)", args[1])
        if match is None:
            raise ValueError(f"$__conditionalAll: no variable in {args[1]!r}")
        phrase = "1=1" if _is_all(variables.get(match.group(1))) else args[0]
        sql = sql[:pos] + phrase + sql[end:]
    return sql


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def interpolate(sql: str, variables: Mapping[str, VariableValue],
                all_values: Mapping[str, Sequence[str]] | None = None) -> str:
    def values(name: str) -> list[str]:
        value = variables[name]
        if _is_all(value) and not (isinstance(value, str) and value == ""):
            if all_values is None or name not in all_values:
                raise KeyError(f"variable {name!r} is All and its options were not given")
            return list(all_values[name])
        return [value] if isinstance(value, str) else list(value)

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name.startswith("__") or name not in variables:
            return match.group(0)  # Grafana globals and plugin macros are left for the next step
        vals = values(name)
        if fmt == "singlequote":
            return ",".join(_quote(v) for v in vals)
        if fmt in ("csv", None, "raw"):
            return ",".join(vals)
        raise ValueError(f"unsupported variable format {fmt!r}")

    return _VAR.sub(sub, sql)


def expand_macros(sql: str, time_from: dt.datetime, time_to: dt.datetime, interval_s: float = 60) -> str:
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
            d, t = args
            out.append(f"({d} >= toDate('{frm:%Y-%m-%d}') AND {d} <= toDate('{to:%Y-%m-%d}')) AND "
                       f"({t} >= toDateTime({fs}) AND {t} <= toDateTime({ts}))")
            pos = end
        elif name in with_args:
            args, end = _args(sql, match.end())
            if len(args) != 1:
                raise ValueError(f"$__{name} takes 1 argument")
            out.append(with_args[name](args[0]))
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
           all_values: Mapping[str, Sequence[str]] | None = None) -> str:
    """A panel's rawSql as ClickHouse receives it from Grafana for this time range, interval and variables."""
    variables = variables or {}
    sql = apply_conditional_all(sql, variables)
    sql = interpolate(sql, variables, all_values)
    return expand_macros(sql, time_from, time_to, interval_s)
