"""macros.py against the reference implementations' own test cases: Grafana's variable formats (grafana/scenes
formatRegistry.test.ts), the plugin's $__conditionalAll (src/data/CHDatasource.test.ts) and its backend macros
(pkg/macros/macros_test.go), ported case by case."""

from __future__ import annotations

import datetime as dt

import pytest

from promptpulse.dashboards import macros

UTC = dt.timezone.utc
# macros_test.go: 2014-11-12T11:45:26.123Z .. 2015-11-12T11:45:26.456Z, interval 60 s unless said
FROM = dt.datetime(2014, 11, 12, 11, 45, 26, 123000, UTC)
TO = dt.datetime(2015, 11, 12, 11, 45, 26, 456000, UTC)


# --- Grafana: ${var:singlequote} and the other formats we use ------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("test", "'test'"),
    (["test", "test'2"], "'test','test\\'2'"),
    # Grafana escapes only the quote: a backslash passes through unchanged (the old code doubled it)
    ("a\\b", "'a\\b'"),
    (["x\\'y"], "'x\\\\'y'"),
])
def test_singlequote_is_grafanas(value, expected) -> None:
    assert macros.singlequote(value) == expected
    assert macros.interpolate("${v:singlequote}", {"v": value}) == expected


def test_csv_raw_and_the_plugins_default_format() -> None:
    assert macros.interpolate("${v:csv}", {"v": ["test", "test2"]}) == "test,test2"
    assert macros.interpolate("${v:csv}", {"v": "test"}) == "test"
    assert macros.interpolate("${v:raw}", {"v": ["12", "13"]}) == "12,13"
    # CHDatasource.format: arrays are quoted and joined without escaping; a single value is inserted as is
    assert macros.interpolate("x IN ($v)", {"v": ["a", "b"]}) == "x IN ('a','b')"
    assert macros.interpolate("'${v}'", {"v": "version"}) == "'version'"
    # All takes every option's value
    assert macros.interpolate("${v:singlequote}", {"v": macros.ALL}, {"v": ["a", "b"]}) == "'a','b'"
    # Grafana globals and unknown variables are left alone
    assert macros.interpolate("$__interval_s $other", {"v": "a"}) == "$__interval_s $other"


# --- plugin: $__conditionalAll ----------------------------------------------------------------------------------
def test_conditional_all_as_the_plugin_tests() -> None:
    sql = "select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);"
    assert macros.apply_conditional_all(sql, {"fieldVal": "$__all"}) == "select stuff from table where 1=1;"
    assert (macros.apply_conditional_all(sql, {"fieldVal": "'val1', 'val2'"})
            == "select stuff from table where fieldVal in ($fieldVal);")
    two = ("select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal) and "
           "$__conditionalAll(fieldVal in ($fieldVal2), $fieldVal2);")
    assert (macros.apply_conditional_all(two, {"fieldVal": "'val1', 'val2'", "fieldVal2": "$__all"})
            == "select stuff from table where fieldVal in ($fieldVal) and 1=1;")
    assert macros.apply_conditional_all("$__conditionalAll(foo, $fieldVal)", {"fieldVal": "$__all"}) == "1=1"
    assert macros.apply_conditional_all("$__conditionalAll(foo, $fieldVal)", {"fieldVal": "x"}) == "foo"


def test_conditional_all_edges_follow_the_plugin() -> None:
    assert macros.apply_conditional_all("$__conditionalAll(c, $v)", {"v": ""}) == "1=1"  # empty works as All
    assert macros.apply_conditional_all("$__conditionalAll(c, $v)", {"v": []}) == "1=1"  # [].toString() == ''
    assert macros.apply_conditional_all("$__conditionalAll(c, $v)", {"v": ["$__all"]}) == "1=1"
    assert macros.apply_conditional_all("$__conditionalAll(c, ${v})", {"v": "$__all"}) == "1=1"
    assert macros.apply_conditional_all("$__conditionalAll(c, $v)", {}) == "c"  # not a dashboard variable
    # the argument split counts parentheses only: quotes are not special, arguments are not trimmed
    assert macros.apply_conditional_all("$__conditionalAll(x = 'a,b', $v)", {"v": "q"}) == \
        "$__conditionalAll(x = 'a,b', $v)"  # three arguments: left as is
    assert macros.apply_conditional_all("$__conditionalAll(x IN ('a,b'), $v)", {"v": "q"}) == "x IN ('a,b')"
    assert macros.apply_conditional_all("$__conditionalAll( c , $v)", {"v": "q"}) == " c "


# --- plugin backend: pkg/macros ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "expected"), [
    ("select * from foo where $__timeFilter(cast(sth as timestamp))",
     "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= "
     "toDateTime(1447328726)"),
    ("select * from foo where $__timeFilter(cast(sth as timestamp) )",
     "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= "
     "toDateTime(1447328726)"),
    ("select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
     "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND "
     "cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"),
    ("select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
     "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100"),
    ("select * from foo where ( date >= $__fromTime_ms ) and ( date <= $__toTime_ms ) limit 100",
     "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) ) and "
     "( date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100"),
    ("SELECT $__timeInterval($__fromTime) AS from_time",
     "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) AS from_time"),
    ("SELECT $__timeInterval_ms($__fromTime_ms)",
     "SELECT toStartOfInterval(toDateTime64(fromUnixTimestamp64Milli(1415792726123), 3), INTERVAL 60000 "
     "millisecond)"),
    ("select * from foo where $__timeFilter(coalesce(closed_at, $__toTime))",
     "select * from foo where coalesce(closed_at, toDateTime(1447328726)) >= toDateTime(1415792726) AND "
     "coalesce(closed_at, toDateTime(1447328726)) <= toDateTime(1447328726)"),
    ("select * from foo where msg = 'it''s' and $__fromTime",
     "select * from foo where msg = 'it''s' and toDateTime(1415792726)"),
    ("$__dateFilter(d)", "d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')"),
    ("$__dateTimeFilter(d, t)", "(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND "
                                "(t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))"),
])
def test_backend_macros_as_the_plugin_tests(sql, expected) -> None:
    assert macros.expand_macros(sql, FROM, TO, 60) == expected


def test_interval_macros() -> None:
    assert macros.expand_macros("$__timeInterval(col)", FROM, TO, 20) == \
        "toStartOfInterval(toDateTime(col), INTERVAL 20 second)"
    assert macros.expand_macros("$__timeInterval_ms(col)", FROM, TO, 20) == \
        "toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond)"
    assert macros.expand_macros("$__interval_s", FROM, TO, 0.2) == "1"  # at least one second


def test_the_tag_guards_of_rollup() -> None:
    """dashboards/queries.py guards the untagged and the tagged branches with $__conditionalAll(0, $tag): 1=1 when
    the (single-valued) tag is All or empty, so All reads the untagged tables only and a tag the tagged ones only."""
    from promptpulse.dashboards import queries

    for all_value in (macros.ALL, ""):
        assert macros.apply_conditional_all(queries.NO_TAG, {"tag": all_value}) == "1=1"
        assert macros.apply_conditional_all(queries.BY_TAG, {"tag": all_value}) == "NOT (1=1) AND 1=1"
        assert macros.apply_conditional_all(queries.RAW_TAG, {"tag": all_value}) == "1=1"
    assert macros.apply_conditional_all(queries.NO_TAG, {"tag": "web"}) == "0"
    assert macros.expand(queries.BY_TAG, time_from=FROM, time_to=TO, variables={"tag": "web"}) == (
        "NOT (0) AND tag IN ('web')")
    assert macros.expand(queries.RAW_TAG, time_from=FROM, time_to=TO, variables={"tag": "it's"}) == (
        "has(tags, 'it\\'s')")
