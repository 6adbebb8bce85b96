"""schemas/014_evaluation.sql over a data dir from before it (its own chDB session: one per process at a time)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from old_schema import apply_before

pytest.importorskip("chdb")

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _counts(store, sql: str) -> list:
    return [tuple(r) for r in store.query(sql).rows]


def test_schema_upgrade_to_014(tmp_path: Path) -> None:
    """A data dir from before 014 keeps its scores; score spans then fill the new columns through 008's view."""
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path / "data"))
    try:
        apply_before(s, 14, prices=False)
        s.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source"),
                      [[NOW, "a" * 32, "b" * 16, "helpful", 1.0, "good", "thanks", "api"]])
        s.apply_schema()
        s.apply_schema()
        attrs = {"gen_ai.evaluation.name": "reply-pii", "gen_ai.evaluation.score.value": "0",
                 "gen_ai.evaluation.score.label": "fail", "gen_ai.evaluation.explanation": "found 1 card",
                 "promptpulse.evaluation.rule": "reply-pii", "promptpulse.evaluation.metric": "pii",
                 "promptpulse.evaluation.guardrail": "pii"}
        err = {"gen_ai.evaluation.name": "judge", "promptpulse.evaluation.rule": "judge",
               "promptpulse.evaluation.metric": "hallucination", "promptpulse.evaluation.error": "judge answered badly",
               "promptpulse.evaluation.judge.model": "gpt-4o-mini", "promptpulse.evaluation.judge.cost_usd": "0.00015"}
        ns = int(NOW.timestamp() * 1e9)
        s.insert_otel_traces([[ns, "c" * 32, "1" * 16, "d" * 16, "", "gen_ai.evaluation reply-pii", "Internal", "app",
                               {}, "promptpulse.evaluation", "1", a, 1000, "Unset", "", [], [], [], [], [], [], []]
                              for a in (attrs, err)], dedup_token=uuid.uuid4().hex)
        assert _counts(s, "SELECT name, value, source, rule, metric, guardrail, reason, judge_cost_usd FROM llm_scores "
                          "ORDER BY name") == [("helpful", 1.0, "api", "", "", "", "thanks", None),
                                               ("reply-pii", 0.0, "evaluation", "reply-pii", "pii", "pii",
                                                "found 1 card", None)]
        assert _counts(s, "SELECT trace_id, span_id, rule, metric, error, judge_model, judge_cost_usd "
                          "FROM llm_eval_errors") == [("c" * 32, "d" * 16, "judge", "hallucination",
                                                       "judge answered badly", "gpt-4o-mini", 0.00015)]
    finally:
        s.close()
