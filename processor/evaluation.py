"""Online evaluation in the processor: the ``[evaluation]`` rules with ``runs = "processor"`` over stored calls whose
content was captured (docs/EVALUATION.md). A pass reads the calls of a time window from llm_calls (their
dimensions) joined to their spans in otel_traces (their content), applies each rule's filters and trace-id
sampling, skips what a rule already scored (or failed on), and writes llm_scores / llm_eval_errors rows.
Conversation rules score a conversation once its last call is ``idle`` old, attached to that last call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptpulse.evaluation.metrics import evaluate
from promptpulse.evaluation.record import Call, from_span_row
from promptpulse.evaluation.results import ERROR_COLUMNS, SCORE_COLUMNS, Outcome
from promptpulse.evaluation.rules import EVALUATION_FEATURE, EvaluationConfig, Rule, load_evaluation
from promptpulse.instrumentation import semconv as sc
from promptpulse.processor.periodic import Periodic

log = logging.getLogger("promptpulse.evaluation")
UTC = dt.timezone.utc

_CALL_COLUMNS = ("c.trace_id AS trace_id, c.span_id AS span_id, c.timestamp AS timestamp, c.service AS service, "
                 "c.environment AS environment, c.operation AS operation, c.provider AS provider, "
                 "c.request_model AS request_model, c.response_model AS response_model, c.prompt_name AS prompt_name, "
                 "c.prompt_version AS prompt_version, c.feature AS feature, c.tags AS tags, "
                 "c.conversation_id AS conversation_id, c.status AS status, t.sa AS sa")
# Spans of the window, by id; a margin on both sides because a span's Timestamp and its call's timestamp are the
# same instant at different precisions.
_SPANS = ("SELECT TraceId, SpanId, SpanAttributes AS sa FROM otel_traces "
          "WHERE Timestamp >= {lo:DateTime64(6, 'UTC')} - INTERVAL 1 MINUTE "
          "AND Timestamp < {hi:DateTime64(6, 'UTC')} + INTERVAL 1 MINUTE")


def _ts(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class RuleReport:
    matched: int = 0  # calls (or conversations) the filters kept
    sampled: int = 0
    no_content: int = 0  # sampled, the rule reads content, none was captured: left to an in-app rule
    already: int = 0  # scored (or failed) by an earlier pass
    scored: int = 0
    errors: int = 0
    judge_cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PassReport:
    start: dt.datetime
    end: dt.datetime
    calls: int = 0
    truncated_at: Any = None  # the pass read max_calls_per_pass calls: the next one starts here
    rules: dict[str, RuleReport] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "calls": self.calls,
                "rules": {k: v.as_dict() for k, v in self.rules.items()}}


def _call_from_row(r: dict[str, Any]) -> Call:
    attrs: dict[str, Any] = dict(r.get("sa") or {})
    # llm_calls' normalised dimensions win over raw attributes (OpenLLMetry, legacy names, ...).
    for key, col in ((sc.GEN_AI_PROMPT_NAME, "prompt_name"), (sc.GEN_AI_PROMPT_VERSION, "prompt_version"),
                     (sc.GEN_AI_PROVIDER_NAME, "provider"), (sc.GEN_AI_OPERATION_NAME, "operation"),
                     (sc.GEN_AI_REQUEST_MODEL, "request_model"), (sc.GEN_AI_RESPONSE_MODEL, "response_model"),
                     (sc.PROMPTPULSE_FEATURE, "feature"), (sc.GEN_AI_CONVERSATION_ID, "conversation_id")):
        attrs[key] = r.get(col) or ""
    attrs[sc.PROMPTPULSE_TAGS] = tuple(r.get("tags") or ())
    call = from_span_row(r["trace_id"], r["span_id"], attrs, service=r.get("service") or "",
                         environment=r.get("environment") or "", timestamp=r.get("timestamp"))
    call.failed = r.get("status") == "error"
    return call


class ProcessorEvaluator:
    def __init__(self, store: Any, config: EvaluationConfig, *, clock: Callable[[], dt.datetime] | None = None,
                 rules: Sequence[Rule] | None = None) -> None:
        self._store = store  # a store, or a callable giving one
        self.config = config
        self.rules = tuple(rules) if rules is not None else config.for_place("processor")
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.watermark: dt.datetime | None = None
        self.last: PassReport | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        return self._store() if callable(self._store) and not hasattr(self._store, "query") else self._store

    # ---------------------------------------------------------------------------------------------------------
    def run_pass(self, start: dt.datetime, end: dt.datetime, *, dry_run: bool = False,
                 now: dt.datetime | None = None) -> PassReport:
        """Evaluate the calls of [start, end) (and the conversations that went idle in it); write unless dry_run."""
        now = now or self.clock()
        report = PassReport(start, end)
        store = self.store
        with self._lock:
            call_rules = [r for r in self.rules if r.target == "call"]
            conv_rules = [r for r in self.rules if r.target == "conversation"]
            if call_rules:
                calls = self._calls(store, "c.timestamp >= {lo:DateTime64(6, 'UTC')} AND c.timestamp < "
                                           "{hi:DateTime64(6, 'UTC')}", {"lo": _ts(start), "hi": _ts(end)},
                                    start, end)
                report.calls = len(calls)
                if len(calls) >= self.config.max_calls_per_pass:
                    report.truncated_at = calls[-1].timestamp
                self._apply(store, call_rules, [(c, c, c.trace_id) for c in calls], report, now)
            for rule in conv_rules:
                items = self._conversations(store, rule, start, end)
                self._apply(store, [rule], items, report, now)
            if not dry_run:
                self._write(store, report.outcomes)
        return report

    def _calls(self, store: Any, where: str, params: dict[str, Any], lo: dt.datetime,
               hi: dt.datetime) -> list[Call]:
        sql = (f"SELECT {_CALL_COLUMNS} FROM llm_calls AS c LEFT JOIN ("
               f"{_SPANS}) AS t ON t.TraceId = c.trace_id AND t.SpanId = c.span_id "
               f"WHERE {where} AND c.feature != {{evalfeature:String}} ORDER BY c.timestamp, c.trace_id, c.span_id "
               f"LIMIT {int(self.config.max_calls_per_pass)}")
        rows = store.query(sql, {**params, "lo": _ts(lo), "hi": _ts(hi), "evalfeature": EVALUATION_FEATURE}).dicts()
        return [_call_from_row(r) for r in rows]

    def _conversations(self, store: Any, rule: Rule, start: dt.datetime,
                       end: dt.datetime) -> list[tuple[Call, Call, str]]:
        """(last call with its turns, last call, conversation id) of the conversations whose last call became
        ``idle_s`` old within [start, end)."""
        idle = dt.timedelta(seconds=rule.idle_s)
        lo, hi = start - idle, end - idle
        sql = ("SELECT conversation_id, max(timestamp) AS last FROM llm_calls "
               "WHERE conversation_id != '' AND feature != {evalfeature:String} "
               "AND timestamp >= {scan:DateTime64(6, 'UTC')} GROUP BY conversation_id "
               "HAVING last >= {lo:DateTime64(6, 'UTC')} AND last < {hi:DateTime64(6, 'UTC')} ORDER BY last")
        scan = lo - dt.timedelta(seconds=max(self.config.lookback_s, rule.idle_s))
        ids = [r[0] for r in store.query(sql, {"evalfeature": EVALUATION_FEATURE, "scan": _ts(scan), "lo": _ts(lo),
                                               "hi": _ts(hi)}).rows]
        if not ids:
            return []
        calls = self._calls(store, "c.conversation_id IN {ids:Array(String)} AND c.timestamp >= "
                                   "{scan:DateTime64(6, 'UTC')}", {"ids": ids, "scan": _ts(scan)}, scan, hi)
        by_conv: dict[str, list[Call]] = {}
        for c in calls:
            by_conv.setdefault(c.dimension("conversation_id"), []).append(c)
        out = []
        for cid in ids:
            turns = by_conv.get(cid)
            if not turns:
                continue
            last = turns[-1]
            conv = Call(trace_id=last.trace_id, span_id=last.span_id, attributes=last.attributes,
                        service=last.service, environment=last.environment, input_messages=last.input_messages,
                        output_messages=last.output_messages, system=last.system, timestamp=last.timestamp,
                        turns=tuple(turns))
            out.append((conv, last, cid))
        return out

    def _apply(self, store: Any, rules: Sequence[Rule], items: Sequence[tuple[Call, Call, str]],
               report: PassReport, now: dt.datetime) -> None:
        todo: list[tuple[Rule, Call, Call]] = []
        for rule in rules:
            rep = report.rules.setdefault(rule.name, RuleReport())
            for subject, last, key in items:
                if not rule.matches(last):
                    continue
                rep.matched += 1
                if not rule.sampled(key):
                    continue
                rep.sampled += 1
                if rule.needs_content and not subject.has_content:
                    rep.no_content += 1
                    continue
                todo.append((rule, subject, last))
        done = self._done(store, todo)
        for rule, subject, last in todo:
            rep = report.rules[rule.name]
            if (rule.name, last.trace_id, last.span_id) in done:
                rep.already += 1
                continue
            result = evaluate(rule, rule.inputs(subject))
            if result.ok:
                rep.scored += 1
            else:
                rep.errors += 1
            if result.judge_cost_usd is not None:
                rep.judge_cost_usd += result.judge_cost_usd
            report.outcomes.append(Outcome(rule, last.trace_id, last.span_id, result, now))

    def _done(self, store: Any, todo: Iterable[tuple[Rule, Call, Call]]) -> set[tuple[str, str, str]]:
        todo = list(todo)
        if not todo:
            return set()
        params = {"rules": sorted({r.name for r, _, _ in todo}), "traces": sorted({c.trace_id for _, _, c in todo})}
        sql = ("SELECT rule, trace_id, span_id FROM llm_scores WHERE rule IN {rules:Array(String)} "
               "AND trace_id IN {traces:Array(String)} UNION ALL SELECT rule, trace_id, span_id FROM llm_eval_errors "
               "WHERE rule IN {rules:Array(String)} AND trace_id IN {traces:Array(String)}")
        return {tuple(r) for r in store.query(sql, params).rows}  # type: ignore[misc]

    def _write(self, store: Any, outcomes: Sequence[Outcome]) -> None:
        scores = [o.score_row() for o in outcomes if o.result.ok]
        errors = [o.error_row() for o in outcomes if not o.result.ok]
        for table, cols, rows in (("llm_scores", SCORE_COLUMNS, scores), ("llm_eval_errors", ERROR_COLUMNS, errors)):
            if rows:
                token = hashlib.sha256(repr([(r[1], r[2], r[3] if table == "llm_eval_errors" else r[8])
                                             for r in rows]).encode()).hexdigest()
                store.insert_rows(table, cols, rows, dedup_token=f"eval-{table}-{token}")

    # ---------------------------------------------------------------------------------------------------------
    def tick(self) -> PassReport | None:
        """The scheduler's step: the window from the watermark (first: now - lookback) to now - settle."""
        if not self.rules:
            return None
        now = self.clock()
        settle = dt.timedelta(seconds=self.config.settle_s)
        end = now - settle
        start = self.watermark or now - dt.timedelta(seconds=self.config.lookback_s)
        if end <= start:
            return None
        # Calls reach llm_calls a batch after they happened: re-read a little of the last window (done calls are
        # skipped by _done), so a late call is not missed.
        report = self.run_pass(start - settle, end, now=now)
        t = report.truncated_at
        self.watermark = end if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))
        self.last = report
        return report


class EvaluationScheduler(Periodic):
    """Runs one evaluation pass every ``interval_s`` on a daemon thread; the last failure is kept for /readyz."""

    def __init__(self, evaluator: ProcessorEvaluator, interval_s: float) -> None:
        self.evaluator = evaluator
        super().__init__("promptpulse-evaluation", self._pass, interval_s, self._failed)

    def _pass(self) -> None:
        self.evaluator.tick()
        self.evaluator.last_error = None

    def _failed(self, e: Exception) -> None:
        self.evaluator.last_error = str(e)[:500]
        log.warning("evaluation pass failed: %s", str(e).splitlines()[0][:300] if str(e) else e)


def start_scheduler(service: Any) -> EvaluationScheduler | None:
    """The hook `promptpulse serve` calls: None without processor rules. A bad [evaluation] table raises."""
    config = load_evaluation(getattr(service.settings, "evaluation", None) or {})
    evaluator = ProcessorEvaluator(service.get_store, config)
    if not config.enabled or not evaluator.rules:
        return None
    return EvaluationScheduler(evaluator, config.interval_s).start()
