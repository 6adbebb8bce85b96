"""One rule's result on one call, as an llm_scores / llm_eval_errors row (processor) or as span attributes (app)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from promptpulse.instrumentation import semconv as sc

from .heuristics import Result
from .rules import Rule

SCORE_COLUMNS = ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source", "rule", "metric",
                 "guardrail", "judge_model", "judge_cost_usd")
ERROR_COLUMNS = ("timestamp", "trace_id", "span_id", "rule", "metric", "error", "judge_model", "judge_cost_usd",
                 "source")

# Attributes of an evaluation span (beside gen_ai.evaluation.*); schemas/014_evaluation.sql reads them.
RULE_ATTR = "promptpulse.evaluation.rule"
METRIC_ATTR = "promptpulse.evaluation.metric"
GUARDRAIL_ATTR = "promptpulse.evaluation.guardrail"
JUDGE_MODEL_ATTR = "promptpulse.evaluation.judge.model"
JUDGE_COST_ATTR = "promptpulse.evaluation.judge.cost_usd"
ERROR_ATTR = "promptpulse.evaluation.error"


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    trace_id: str
    span_id: str
    result: Result
    timestamp: dt.datetime

    def score_row(self) -> list[Any]:
        r = self.result
        return [self.timestamp, self.trace_id, self.span_id, self.rule.name, r.value, r.label, r.reason,
                "evaluation", self.rule.name, self.rule.metric, self.rule.guardrail, r.judge_model, r.judge_cost_usd]

    def error_row(self) -> list[Any]:
        r = self.result
        return [self.timestamp, self.trace_id, self.span_id, self.rule.name, self.rule.metric, r.error,
                r.judge_model, r.judge_cost_usd, "evaluation"]

    def span_attributes(self) -> dict[str, Any]:
        r = self.result
        attrs: dict[str, Any] = {sc.GEN_AI_EVALUATION_NAME: self.rule.name, RULE_ATTR: self.rule.name,
                                 METRIC_ATTR: self.rule.metric}
        if r.ok:
            attrs[sc.GEN_AI_EVALUATION_SCORE_VALUE] = float(r.value)  # type: ignore[arg-type]
            if r.label:
                attrs[sc.GEN_AI_EVALUATION_SCORE_LABEL] = r.label
            if r.reason:
                attrs[sc.GEN_AI_EVALUATION_EXPLANATION] = r.reason
        else:
            attrs[ERROR_ATTR] = r.error or "no score"
        if self.rule.guardrail:
            attrs[GUARDRAIL_ATTR] = self.rule.guardrail
        if r.judge_model:
            attrs[JUDGE_MODEL_ATTR] = r.judge_model
        if r.judge_cost_usd is not None:
            attrs[JUDGE_COST_ATTR] = float(r.judge_cost_usd)
        return attrs
