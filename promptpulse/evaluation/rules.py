"""Evaluation rules: the ``[evaluation]`` table of the config file (docs/EVALUATION.md). One format for both places
a rule can run — the processor (calls whose content was captured) and the app (``runs = "app"``: content never
leaves the process).

.. code-block:: toml

    [evaluation]
    interval_s = 60                  # the processor's evaluation pass, inside `promptpulse serve`

    [[evaluation.rules]]
    name = "reply-pii"               # unique; the score name in llm_scores
    metric = "pii"                   # a heuristic or a judge metric
    sampling = 1.0                   # share of traces, decided from the trace id
    runs = "processor"               # or "app"
    target = "call"                  # or "conversation" (scored once idle for `idle`)
    idle = "15m"
    guardrail = true                 # or a type: "pii", "format", "topic", ...
    filters = { prompt_name = ["support"], environment = "production", tags = ["beta"] }
    map = { output = "output" }      # metric parameter <- field path
    params = { types = ["email", "card"] }
    judge = { provider = "openai", model = "gpt-4o-mini", base_url = "...", api_key_env = "OPENAI_API_KEY" }
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptpulse.instrumentation import semconv as sc

from .heuristics import GUARDRAIL_TYPES, HEURISTICS
from .record import DIMENSIONS, ROOTS, Call

# The feature attribute of the judge's own LLM calls: they are evaluation cost, never app traffic.
EVALUATION_FEATURE = sc.EVALUATION_FEATURE
TARGETS = ("call", "conversation")
PLACES = ("processor", "app")
DEFAULT_IDLE_S = 900.0
FILTER_KEYS = (*DIMENSIONS, "tags")
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


class RuleError(ValueError):
    """An [evaluation] rule is invalid."""


def parse_duration(value: Any, what: str = "duration", *, error: type[ValueError] = RuleError) -> float:
    """Seconds from 300, 2.5 (a bare number is seconds), "250ms", "90s", "15m", "4h", "1d", "2w". The one duration
    parser of the configuration: the [evaluation] table here, the [alerts] table through
    processor/alerts/rules.py, which passes its AlertConfigError as ``error`` (raised naming ``what``)."""
    if isinstance(value, bool):
        raise error(f"{what}: not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise error(f"{what}: not a duration: {value!r} (e.g. 90, \"90s\", \"15m\", \"4h\")")
    return float(m.group(1)) * _UNITS[m.group(2)]


def sample_fraction(key: str) -> float:
    """Where a trace (or conversation) id falls in [0, 1): the first 8 bytes of SHA-256 of the lower-case id, as a
    big-endian integer / 2**64. The same id gives the same number in every process, replay and rule, so a rule at
    10 % evaluates a subset of the calls a rule at 20 % does."""
    return int.from_bytes(hashlib.sha256(key.strip().lower().encode()).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class JudgeConfig:
    provider: str = "openai"  # openai | anthropic (their SDKs, instrumented by PromptPulse)
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str | None = None  # default: the SDK's own (OPENAI_API_KEY, ANTHROPIC_API_KEY)
    timeout_s: float = 30.0
    max_tokens: int = 300
    record_calls: bool = True  # False: the judge's calls are made with instrumentation suppressed (no spans)


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    sampling: float = 1.0
    runs: str = "processor"
    target: str = "call"
    idle_s: float = DEFAULT_IDLE_S
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mapping: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    guardrail: str = ""  # the guardrail type, "" when the rule is not a guardrail
    judge: JudgeConfig | None = None
    enabled: bool = True

    @property
    def is_judge(self) -> bool:
        return self.judge is not None

    def matches(self, call: Call) -> bool:
        """The rule's filters hold for the call (every key; any of a key's values). Judge calls and failed calls
        (no answer) never match."""
        if call.failed or call.dimension("feature") == EVALUATION_FEATURE:
            return False
        for key, values in self.filters.items():
            if key == "tags":
                if not set(values) & set(call.tags):
                    return False
            elif call.dimension(key) not in values:
                return False
        return True

    def sampled(self, key: str) -> bool:
        return self.sampling >= 1.0 or (self.sampling > 0.0 and sample_fraction(key) < self.sampling)

    def inputs(self, call: Call) -> dict[str, Any]:
        """The metric's parameters: ``params`` plus each mapped field's value from the call."""
        from .metrics import default_mapping

        out = dict(self.params)
        for param, path in {**default_mapping(self.metric, self.target), **self.mapping}.items():
            out[param] = call.resolve(path)
        return out

    @property
    def needs_content(self) -> bool:
        """Some mapped field is message content (not only span attributes)."""
        from .metrics import default_mapping

        paths = {**default_mapping(self.metric, self.target), **self.mapping}.values()
        return any(p.partition(".")[0] not in ("attributes", "metadata") for p in paths)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "metric": self.metric, "sampling": self.sampling, "runs": self.runs,
                             "target": self.target, "filters": {k: list(v) for k, v in self.filters.items()},
                             "map": dict(self.mapping), "params": dict(self.params), "guardrail": self.guardrail,
                             "enabled": self.enabled}
        if self.target == "conversation":
            d["idle_s"] = self.idle_s
        if self.judge:
            d["judge"] = {"provider": self.judge.provider, "model": self.judge.model}
        return d


@dataclass(frozen=True)
class EvaluationConfig:
    rules: tuple[Rule, ...] = ()
    interval_s: float = 60.0
    lookback_s: float = 3600.0  # how far back the first pass after a start looks
    max_calls_per_pass: int = 10_000
    settle_s: float = 10.0  # a pass reads calls at least this old (they reach llm_calls a batch late)
    enabled: bool = True

    def for_place(self, place: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled and r.runs == place)


def _strings(v: Any, what: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, Sequence) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise RuleError(f"{what}: a string or a list of strings")


def parse_rule(d: Mapping[str, Any]) -> Rule:
    from .metrics import JUDGE_METRICS, METRICS

    name = d.get("name")
    where = f"rule {name!r}" if name else "a rule"
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(f"{where}: name is required (1-100 of letters, digits, _.:/-)")
    known = {"name", "metric", "sampling", "runs", "target", "idle", "filters", "map", "params", "guardrail",
             "judge", "enabled"}
    extra = set(d) - known
    if extra:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    metric = d.get("metric")
    if metric not in METRICS:
        raise RuleError(f"{where}: metric must be one of {', '.join(sorted(METRICS))} (got {metric!r})")
    sampling = d.get("sampling", 1.0)
    if isinstance(sampling, bool) or not isinstance(sampling, (int, float)) or not 0.0 <= sampling <= 1.0:
        raise RuleError(f"{where}: sampling is a number from 0.0 to 1.0")
    runs = d.get("runs", "processor")
    if runs not in PLACES:
        raise RuleError(f"{where}: runs is \"processor\" or \"app\"")
    target = d.get("target", "call")
    if target not in TARGETS:
        raise RuleError(f"{where}: target is \"call\" or \"conversation\"")
    filters_in = d.get("filters", {})
    if not isinstance(filters_in, Mapping):
        raise RuleError(f"{where}: filters is a table")
    filters: dict[str, tuple[str, ...]] = {}
    for k, v in filters_in.items():
        key = {"prompt": "prompt_name", "version": "prompt_version", "env": "environment", "tag": "tags"}.get(k, k)
        if key not in FILTER_KEYS:
            raise RuleError(f"{where}: unknown filter {k!r} (one of {', '.join(FILTER_KEYS)})")
        filters[key] = _strings(v, f"{where}: filters.{k}")
    mapping = d.get("map", {})
    if not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values()):
        raise RuleError(f"{where}: map is a table of parameter = \"field path\"")
    for param, path in mapping.items():
        if path.partition(".")[0] not in ROOTS:
            raise RuleError(f"{where}: map.{param}: a field path starts with one of {', '.join(ROOTS)}")
    params = d.get("params", {})
    if not isinstance(params, Mapping):
        raise RuleError(f"{where}: params is a table")
    guardrail = d.get("guardrail", False)
    if guardrail is True:
        if metric not in GUARDRAIL_TYPES:
            raise RuleError(f"{where}: only a heuristic metric can be a guardrail (or name its type)")
        guardrail = GUARDRAIL_TYPES[metric]
    elif guardrail is False:
        guardrail = ""
    elif not isinstance(guardrail, str) or not _NAME.match(guardrail):
        raise RuleError(f"{where}: guardrail is true, false or a type name")
    if guardrail and metric not in HEURISTICS:
        raise RuleError(f"{where}: a guardrail is a heuristic rule (judge metrics are not guardrails)")
    judge = None
    if metric in JUDGE_METRICS:
        jd = d.get("judge", {})
        if not isinstance(jd, Mapping):
            raise RuleError(f"{where}: judge is a table")
        bad = set(jd) - {"provider", "model", "base_url", "api_key_env", "timeout_s", "max_tokens", "record_calls"}
        if bad:
            raise RuleError(f"{where}: unknown judge key(s) {', '.join(sorted(bad))}")
        judge = JudgeConfig(**jd)
        if judge.provider not in ("openai", "anthropic"):
            raise RuleError(f"{where}: judge.provider is openai or anthropic")
    elif "judge" in d:
        raise RuleError(f"{where}: {metric} is a heuristic; it takes no judge")
    rule = Rule(name=name, metric=metric, sampling=float(sampling), runs=runs, target=target,
                idle_s=parse_duration(d.get("idle", DEFAULT_IDLE_S), f"{where}: idle"), filters=filters,
                mapping=dict(mapping), params=dict(params), guardrail=guardrail, judge=judge,
                enabled=bool(d.get("enabled", True)))
    METRICS[metric].check(rule)
    return rule


def load_evaluation(table: Mapping[str, Any] | None) -> EvaluationConfig:
    """The [evaluation] table as read from TOML (empty: no rules)."""
    table = table or {}
    known = {"rules", "interval_s", "lookback", "max_calls_per_pass", "settle", "enabled"}
    extra = set(table) - known
    if extra:
        raise RuleError(f"[evaluation]: unknown key(s) {', '.join(sorted(extra))}")
    rules_in = table.get("rules", [])
    if not isinstance(rules_in, list):
        raise RuleError("[evaluation]: rules is an array of tables ([[evaluation.rules]])")
    rules = tuple(parse_rule(r) for r in rules_in)
    names = [r.name for r in rules]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RuleError(f"[evaluation]: duplicate rule name(s) {', '.join(dup)}")
    return EvaluationConfig(rules=rules, interval_s=parse_duration(table.get("interval_s", 60), "interval_s"),
                            lookback_s=parse_duration(table.get("lookback", 3600), "lookback"),
                            max_calls_per_pass=int(table.get("max_calls_per_pass", 10_000)),
                            settle_s=parse_duration(table.get("settle", 10), "settle"),
                            enabled=bool(table.get("enabled", True)))
