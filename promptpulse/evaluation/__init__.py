"""Online evaluation: rules scoring production LLM calls by heuristics and LLM judges (docs/EVALUATION.md).

The rules (:mod:`.rules`) are one format for both places they run: the processor
(``promptpulse.processor.evaluation``, calls whose content was captured) and the app (:mod:`.inapp`, content never
leaves the process).
"""

from .heuristics import Result
from .record import Call
from .rules import EVALUATION_FEATURE, EvaluationConfig, JudgeConfig, Rule, RuleError, load_evaluation, parse_rule

__all__ = ["EVALUATION_FEATURE", "Call", "EvaluationConfig", "JudgeConfig", "Result", "Rule", "RuleError",
           "load_evaluation", "parse_rule"]
