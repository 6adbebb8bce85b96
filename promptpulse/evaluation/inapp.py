"""The in-app evaluator: rules run inside the application on the content the instrumentation saw, so a team that
keeps content capture off can still evaluate; only the results leave the process, as OTLP score spans (the same
spans ``promptpulse.score()`` sends, plus ``promptpulse.evaluation.*`` attributes), which the processor turns into
llm_scores / llm_eval_errors rows.

Instrumentation rules hold: the hook on a call's end does a sampling check and a non-blocking put on a bounded
queue (a full queue drops the call and counts it); one daemon worker thread evaluates, calls judges and exports;
nothing raised here reaches the app.

    import promptpulse.evaluation.inapp as evaluation
    evaluation.enable(config="promptpulse.toml")        # the [[evaluation.rules]] with runs = "app"
    evaluation.enable(rules=[{"name": "reply-pii", "metric": "pii", "guardrail": True}])
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import spans

from .metrics import evaluate
from .record import Call
from .results import Outcome
from .rules import EVALUATION_FEATURE, Rule, load_evaluation, parse_rule

_log = logging.getLogger(__name__)
TRACER_NAME = "promptpulse.evaluation"
MAX_TURNS = 50  # per buffered conversation: the most recent are kept


class _Conversation:
    __slots__ = ("done", "last_seen", "turns")

    def __init__(self) -> None:
        self.turns: list[Call] = []
        self.last_seen = 0.0
        self.done: set[str] = set()


class InAppEvaluator:
    def __init__(self, rules: Iterable[Rule], *, tracer_provider: trace.TracerProvider | None = None,
                 queue_size: int = 1000, max_conversations: int = 1000,
                 clock: Callable[[], float] = time.monotonic, start: bool = True) -> None:
        self.rules = tuple(r for r in rules if r.enabled)
        self.call_rules = tuple(r for r in self.rules if r.target == "call")
        self.conversation_rules = tuple(r for r in self.rules if r.target == "conversation")
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._queue: queue.Queue[tuple[Any, dict[str, Any]] | None] = queue.Queue(maxsize=queue_size)
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self.max_conversations = max_conversations
        self.clock = clock
        self._counts = {"queued": 0, "dropped": 0}  # counted by the app's threads, under _count_lock
        self._count_lock = threading.Lock()
        self._worker_stats = {"scored": 0, "errors": 0, "conversations_dropped": 0}  # the worker's alone
        self._lock = threading.Lock()  # the conversations, between the worker and check_idle() callers
        self._thread = threading.Thread(target=self._loop, name="promptpulse-evaluation", daemon=True)
        if start:
            self._thread.start()

    # --- the app's side: called at the end of every LLM call -------------------------------------------------
    def hook(self, call: Any) -> None:
        try:
            span = call.span
            attrs = getattr(span, "attributes", None)
            if attrs is None or attrs.get(sc.PROMPTPULSE_FEATURE) == EVALUATION_FEATURE:
                return  # not a recording SDK span, or the judge's own call
            if not self.conversation_rules or not attrs.get(sc.GEN_AI_CONVERSATION_ID):
                trace_id = f"{span.get_span_context().trace_id:032x}"
                if not any(r.sampled(trace_id) for r in self.call_rules):
                    return
            self._queue.put_nowait((span, call.content))
            counted = "queued"
        except queue.Full:
            counted = "dropped"
        except Exception:  # never the app's problem
            _log.debug("promptpulse evaluation: hook failed", exc_info=True)
            return
        with self._count_lock:
            self._counts[counted] += 1

    # --- the worker ------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                self._queue.task_done()
                return
            try:
                if item:
                    self._handle(*item)
                self.check_idle()
            except Exception:
                _log.debug("promptpulse evaluation: a call could not be evaluated", exc_info=True)
            finally:
                if item:
                    self._queue.task_done()

    def _handle(self, span: Any, content: Mapping[str, Any]) -> None:
        call = _call_of(span, content)
        for rule in self.call_rules:
            if rule.matches(call) and rule.sampled(call.trace_id):
                self._run(rule, call, call)
        conversation_id = call.dimension("conversation_id")
        if conversation_id and any(r.matches(call) for r in self.conversation_rules):
            with self._lock:
                conv = self._conversations.pop(conversation_id, None) or _Conversation()
                self._conversations[conversation_id] = conv  # most recently seen last
                conv.turns = [*conv.turns[-(MAX_TURNS - 1):], call]
                conv.last_seen = self.clock()
                conv.done.clear()  # a new turn: a new episode to score when it goes idle
                while len(self._conversations) > self.max_conversations:
                    self._conversations.popitem(last=False)
                    self._worker_stats["conversations_dropped"] += 1

    def check_idle(self, now: float | None = None) -> int:
        """Score the buffered conversations idle long enough for a rule; returns how many results were sent."""
        now = self.clock() if now is None else now
        due: list[tuple[Rule, Call]] = []
        with self._lock:
            for cid, conv in list(self._conversations.items()):
                last = conv.turns[-1]
                for rule in self.conversation_rules:
                    if rule.name in conv.done or now - conv.last_seen < rule.idle_s or not rule.matches(last):
                        continue
                    conv.done.add(rule.name)
                    if rule.sampled(cid):
                        due.append((rule, Call(trace_id=last.trace_id, span_id=last.span_id,
                                               attributes=last.attributes, service=last.service,
                                               environment=last.environment, turns=tuple(conv.turns))))
                if len(conv.done) == len(self.conversation_rules):
                    del self._conversations[cid]
        for rule, subject in due:
            self._run(rule, subject, subject)
        return len(due)

    def _run(self, rule: Rule, subject: Call, target: Call) -> None:
        result = evaluate(rule, rule.inputs(subject))
        outcome = Outcome(rule, target.trace_id, target.span_id, result, dt.datetime.now(dt.timezone.utc))
        self._export(outcome)
        self._worker_stats["scored" if result.ok else "errors"] += 1

    def _export(self, o: Outcome) -> None:
        parent = trace.NonRecordingSpan(trace.SpanContext(int(o.trace_id, 16), int(o.span_id, 16), is_remote=True,
                                                          trace_flags=trace.TraceFlags(0x01)))
        attrs = o.span_attributes()
        span = self._tracer.start_span(f"gen_ai.evaluation {o.rule.name}", context=trace.set_span_in_context(parent),
                                       kind=trace.SpanKind.INTERNAL, attributes=attrs)
        if o.result.ok:
            span.add_event(sc.GEN_AI_EVALUATION_RESULT_EVENT, attributes=attrs)
        span.end()

    # --- control ---------------------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """queued / dropped (a full queue) calls, scored / errors results, conversations dropped (too many)."""
        with self._count_lock:
            return {**self._counts, **self._worker_stats}

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued call is evaluated (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        q = self._queue
        with q.all_tasks_done:  # Queue.join() with a timeout
            while q.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                q.all_tasks_done.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self.flush(timeout)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)


def _call_of(span: Any, content: Mapping[str, Any]) -> Call:
    ctx = span.get_span_context()
    attrs = dict(span.attributes or {})
    res = dict(getattr(getattr(span, "resource", None), "attributes", None) or {})
    env = res.get("deployment.environment.name") or res.get("deployment.environment") or \
        attrs.get("deployment.environment.name") or attrs.get("deployment.environment") or ""
    return Call(trace_id=f"{ctx.trace_id:032x}", span_id=f"{ctx.span_id:016x}", attributes=attrs,
                service=str(res.get("service.name", "")), environment=str(env),
                input_messages=content.get(sc.GEN_AI_INPUT_MESSAGES),
                output_messages=content.get(sc.GEN_AI_OUTPUT_MESSAGES),
                system=content.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS),
                failed=getattr(getattr(span, "status", None), "status_code", None) == StatusCode.ERROR)


_current: InAppEvaluator | None = None


def enable(rules: Iterable[Rule | Mapping[str, Any]] | None = None, *, config: str | Path | None = None,
           tracer_provider: trace.TracerProvider | None = None, queue_size: int = 1000) -> InAppEvaluator:
    """Evaluate the app's LLM calls with ``rules`` (tables as in [[evaluation.rules]], or Rule objects) and/or the
    ``runs = "app"`` rules of a config file. Replaces an evaluator enabled before. Bad rules raise here, at start."""
    chosen: list[Rule] = [r if isinstance(r, Rule) else parse_rule(r) for r in (rules or ())]
    if config is not None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        with open(config, "rb") as fh:
            doc = tomllib.load(fh)
        chosen += load_evaluation(doc.get("evaluation") or {}).for_place("app")
    disable()
    global _current
    _current = InAppEvaluator(chosen, tracer_provider=tracer_provider, queue_size=queue_size)
    spans.end_hook = _current.hook
    return _current


def disable() -> None:
    """Stop evaluating (queued calls are finished first)."""
    global _current
    ev, _current = _current, None
    spans.end_hook = None
    if ev is not None:
        ev.close()


def current() -> InAppEvaluator | None:
    return _current
