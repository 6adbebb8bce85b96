"""One duration parser for the configuration (promptpulse.evaluation.rules.parse_duration): the [evaluation] table
uses it, processor/alerts/rules.py's parse_duration is the same parser raising AlertConfigError."""

from __future__ import annotations

import pytest

from promptpulse.evaluation.rules import RuleError, parse_duration

CASES = [(300, 300.0), (2.5, 2.5), ("250ms", 0.25), ("90", 90.0), ("90s", 90.0), (" 5m ", 300.0), ("1.5h", 5400.0),
         ("4h", 14400.0), ("1d", 86400.0), ("2w", 1_209_600.0)]
BAD = [True, "soon", "5 minutes", "-5m", "", "1y"]


@pytest.mark.parametrize(("value", "seconds"), CASES)
def test_seconds(value, seconds: float) -> None:
    from promptpulse.processor.alerts.rules import parse_duration as alert_duration

    assert parse_duration(value, "lookback") == seconds
    assert alert_duration(value) == seconds


@pytest.mark.parametrize("value", BAD)
def test_errors_name_the_setting_and_the_table(value) -> None:
    from promptpulse.processor.alerts.rules import AlertConfigError
    from promptpulse.processor.alerts.rules import parse_duration as alert_duration

    with pytest.raises(RuleError, match=r"^lookback: not a duration"):
        parse_duration(value, "lookback")
    with pytest.raises(AlertConfigError, match=r"^alerts\.interval_s: not a duration"):
        alert_duration(value, "alerts.interval_s")
    assert not issubclass(AlertConfigError, RuleError) and not issubclass(RuleError, AlertConfigError)


def test_the_alerts_module_keeps_no_parser_of_its_own() -> None:
    from promptpulse.processor.alerts import rules

    assert not hasattr(rules, "_DURATION") and rules._parse_duration is parse_duration
