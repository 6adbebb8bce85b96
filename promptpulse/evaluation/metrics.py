"""The metric registry: which parameters each metric takes, where they come from by default, and how it runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import heuristics
from .heuristics import MetricError, Result

if TYPE_CHECKING:
    from .rules import Rule


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "heuristic" | "judge"
    fields: Mapping[str, str]  # parameter -> default field path
    required_params: tuple[str, ...] = ()
    run: Callable[[Mapping[str, Any]], Result] | None = None  # heuristics only

    def check(self, rule: Rule) -> None:
        from .rules import RuleError

        for p in self.required_params:
            if p not in rule.params:
                raise RuleError(f"rule {rule.name!r}: metric {self.name} needs params.{p}")
        if self.name == "rubric":
            lo, hi = rule.params.get("min", 0), rule.params.get("max", 1)
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi)) or lo >= hi:
                raise RuleError(f"rule {rule.name!r}: rubric needs numbers params.min < params.max")
        if self.name == "coherence" and rule.target != "conversation":
            raise RuleError(f"rule {rule.name!r}: coherence scores a conversation (target = \"conversation\")")


_OUT = {"output": "output"}
METRICS: dict[str, Metric] = {
    "valid_json": Metric("valid_json", "heuristic", _OUT, run=heuristics.valid_json),
    "json_schema": Metric("json_schema", "heuristic", _OUT, ("schema",), heuristics.json_schema),
    "regex": Metric("regex", "heuristic", _OUT, ("pattern",), heuristics.regex),
    "contains": Metric("contains", "heuristic", _OUT, ("value",), heuristics.contains),
    "not_contains": Metric("not_contains", "heuristic", _OUT, ("value",), heuristics.not_contains),
    "length": Metric("length", "heuristic", _OUT, run=heuristics.length),
    "refusal": Metric("refusal", "heuristic", _OUT, run=heuristics.refusal),
    "pii": Metric("pii", "heuristic", _OUT, run=heuristics.pii),
    "language": Metric("language", "heuristic", _OUT, ("expected",), heuristics.language),
    "hallucination": Metric("hallucination", "judge", {"input": "input", "output": "output"}),
    "answer_relevance": Metric("answer_relevance", "judge", {"input": "input", "output": "output"}),
    "moderation": Metric("moderation", "judge", _OUT),
    "coherence": Metric("coherence", "judge", {"transcript": "transcript"}),
    "rubric": Metric("rubric", "judge", {"input": "input", "output": "output"}, ("template",)),
}
JUDGE_METRICS = frozenset(m for m, spec in METRICS.items() if spec.kind == "judge")
# Parameters a judge metric cannot do without (hallucination's context has no default field: map it).
JUDGE_NEEDS = {"hallucination": ("input", "output", "context"), "answer_relevance": ("input", "output"),
               "moderation": ("output",), "coherence": ("transcript",), "rubric": ()}


def default_mapping(metric: str, target: str) -> Mapping[str, str]:
    if target == "conversation" and METRICS[metric].kind == "heuristic":
        return {"output": "transcript"}
    return METRICS[metric].fields


def evaluate(rule: Rule, inputs: Mapping[str, Any]) -> Result:
    """One rule on one call's inputs. Never raises: a metric that cannot run gives ``Result(error=...)``."""
    spec = METRICS[rule.metric]
    try:
        if spec.kind == "heuristic":
            assert spec.run is not None
            return spec.run(inputs)
        from .judge import judge

        missing = [p for p in JUDGE_NEEDS[rule.metric] if inputs.get(p) in (None, "")]
        if missing:
            raise MetricError(f"no {', '.join(missing)} (content not captured, or map names an empty field)")
        assert rule.judge is not None
        return judge(rule, inputs)
    except MetricError as e:
        return Result(error=str(e)[:500])
    except Exception as e:  # a metric's own bug or a library error: an evaluation error, never the caller's
        return Result(error=f"{type(e).__name__}: {str(e)[:400]}")
