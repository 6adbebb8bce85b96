"""Building the span of one LLM call: start attributes, usage, cost, errors, metrics, end — exactly once.

Provider modules say *what* a call is (operation, model, usage); this module says *how* it becomes telemetry, so
every provider emits the same contract-1 span. The hot path is kept lean: attributes go in as one dict at span start
and one ``set_attributes`` at the end, cost is a memoised lookup, and nothing here serialises SDK objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

from opentelemetry import context, trace
from opentelemetry._logs import get_logger
from opentelemetry.metrics import MeterProvider, NoOpHistogram, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from promptpulse.instrumentation import errors, metrics_buffer, tagging
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import capture, content
from promptpulse.instrumentation.pricing import PriceTable, default_table

_log = logging.getLogger(__name__)

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_MAX_CHARS_ENV = "PROMPTPULSE_CONTENT_MAX_CHARS"
DEFAULT_CONTENT_MAX_CHARS = 4096

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float] | Sequence[bool]


# Where a call's span belongs when something knows better than the current context: callables returning
# ``(parent context or None, extra attributes or None)``, or None when they have nothing to say. The LangChain
# handler registers one to put a provider's span under the chain run that made the call. Empty unless such an
# integration is instrumented: the hot path pays one truth test.
ContextSource = Callable[[], "tuple[context.Context | None, Mapping[str, AttributeValue] | None] | None"]
context_sources: list[ContextSource] = []

# The in-app evaluator (promptpulse.evaluation.inapp) while enabled: called with each ended call (span + content).
# With it, content is collected for the evaluator even when it is not captured on the span.
EndHook = Callable[["LLMCall"], None]
end_hook: EndHook | None = None


METRIC_FLUSH_HOOK = "promptpulse.metrics_buffer.flush"

try:  # the global meter's stand-in instruments until the app sets a MeterProvider
    from opentelemetry.metrics._internal.instrument import _ProxyHistogram
except ImportError:  # another API version: every histogram counts as live
    _ProxyHistogram = None  # type: ignore[assignment,misc]


def records_metrics(histogram: Any) -> bool:
    """False when a record on ``histogram`` goes nowhere: the API's no-op instrument, or the global meter's stand-in
    before the app sets a MeterProvider (or after it set a no-op one). Read per call, two type checks: a provider
    set later is seen by the next call."""
    if type(histogram) is _ProxyHistogram:
        histogram = histogram._real_instrument
        if histogram is None:
            return False
    return type(histogram) is not NoOpHistogram


def _flush_before_collection(options: Any) -> tuple[()]:
    metrics_buffer.flush()
    return ()


class Telemetry:
    """One instrumentor's OpenTelemetry handles: tracer, semconv histograms, price table, content settings."""

    def __init__(
        self,
        instrumenting_module: str,
        version: str,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        prices: PriceTable | None = None,
        capture_content: bool | str | None = None,
        content_max_chars: int | None = None,
        logger_provider: Any = None,
    ) -> None:
        self.instrumenting_module, self.version = instrumenting_module, version
        self.tracer = trace.get_tracer(instrumenting_module, version, tracer_provider, schema_url=sc.SCHEMA_URL)
        meter = get_meter(instrumenting_module, version, meter_provider, schema_url=sc.SCHEMA_URL)
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        # Histogram records wait in metrics_buffer for the flusher thread. The SDK runs observable callbacks at the
        # start of every collection (periodic export, force_flush, shutdown, an in-memory reader's read), so this one
        # records whatever is pending first: a collection never misses a call that already ended. It observes nothing.
        meter.create_observable_gauge(
            METRIC_FLUSH_HOOK,
            callbacks=[_flush_before_collection],
            description="Never reports a value; records PromptPulse's pending histograms before a collection",
        )
        self.prices = prices
        mode = os.environ.get(CAPTURE_CONTENT_ENV) if capture_content is None else capture_content
        self.capture_on_span, self.capture_in_event = capture.parse_mode(mode)
        self._logger_provider = logger_provider
        self._logger: Any = None
        if content_max_chars is None:
            content_max_chars = int(os.environ.get(CONTENT_MAX_CHARS_ENV) or DEFAULT_CONTENT_MAX_CHARS)
        self.content_max_chars = content_max_chars

    @property
    def capture_content(self) -> bool:
        """Whether providers read message content: captured on the span, or wanted by the in-app evaluator."""
        return self.capture_on_span or self.capture_in_event or end_hook is not None

    @capture_content.setter
    def capture_content(self, value: bool | str) -> None:
        self.capture_on_span, self.capture_in_event = capture.parse_mode(value)

    @property
    def logger(self) -> Any:
        """The logger of the content events (the app's LoggerProvider, or the one given), made on first use."""
        if self._logger is None:
            self._logger = get_logger(
                self.instrumenting_module, self.version, self._logger_provider, schema_url=sc.SCHEMA_URL
            )
        return self._logger

    def price_table(self) -> PriceTable:
        if self.prices is None:
            self.prices = default_table()
        return self.prices

    def start(
        self,
        operation: str,
        provider: str,
        request_model: str,
        *,
        stream: bool = False,
        server_address: str | None = None,
        server_port: int | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        fingerprint: str | None = None,
    ) -> LLMCall:
        return LLMCall(
            self,
            operation,
            provider,
            request_model,
            stream=stream,
            server_address=server_address,
            server_port=server_port,
            attributes=attributes,
            fingerprint=fingerprint,
        )

    def truncate(self, value: Any) -> str:
        """JSON of at most ``content_max_chars``, cut inside the structure so it stays JSON."""
        return content.to_json(value, self.content_max_chars)


def _finish_reasons(per_choice: Sequence[str | None] | None, given: Sequence[str] | None,
                    cut: bool) -> tuple[str, ...]:
    """One rule for a call's finish reasons: the stream handler's, per choice (None: that choice's final event never
    came), else those the response gave. A stream cut before its end (error, break, close, abandoned) reports
    "error" for every choice without one, and at least one "error" for every provider; a complete one leaves the
    unknown ones out."""
    if per_choice is not None:
        reasons = tuple([r if r is not None else "error" for r in per_choice] if cut
                        else [r for r in per_choice if r is not None])
    else:
        reasons = tuple(given or ())
    return reasons or (("error",) if cut else ())


class LLMCall:
    """The span of one LLM call and what is learnt about the call until it ends."""

    __slots__ = (
        "_choice_reasons",
        "_content",
        "_context",
        "_context_token",
        "_ended",
        "_first_chunk_at",
        "_pending",
        "_started_at",
        "_telemetry",
        "cache_creation_tokens",
        "cache_read_tokens",
        "cache_write_1h_tokens",
        "choice_count",
        "error_type",
        "input_tokens",
        "operation",
        "output_tokens",
        "provider",
        "reasoning_tokens",
        "request_model",
        "response_model",
        "server_address",
        "server_port",
        "service_tier",
        "span",
        "stream",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        provider: str,
        request_model: str,
        *,
        stream: bool,
        server_address: str | None,
        server_port: int | None,
        attributes: Mapping[str, AttributeValue] | None,
        fingerprint: str | None,
    ) -> None:
        self._telemetry = telemetry
        self.operation = operation
        self.provider = provider
        self.request_model = request_model
        self.response_model: str | None = None
        self.server_address = server_address
        self.server_port = server_port
        self.stream = stream
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self.cache_write_1h_tokens = 0  # the part of cache_creation_tokens written for one hour (Anthropic)
        self.reasoning_tokens = 0
        # The tier the provider says served the call (OpenAI "flex"/"priority", Anthropic "batch"...): its price row.
        self.service_tier: str | None = None
        self.error_type: str | None = None
        # Choices the request asked for (OpenAI's n): a stream cut short reports a finish reason for each.
        self.choice_count = 1
        self._choice_reasons: tuple[str | None, ...] | None = None
        self._first_chunk_at: float | None = None
        self._ended = False
        self._context_token: object | None = None
        # Attributes learnt after the start go onto the span in one set_attributes() at the end.
        self._pending: dict[str, AttributeValue] = {}
        self._content: dict[str, Any] | None = None  # content for the in-app evaluator (not on the span)

        attrs: dict[str, AttributeValue] = {
            sc.GEN_AI_OPERATION_NAME: operation,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: request_model,
        }
        if stream:
            attrs[sc.GEN_AI_REQUEST_STREAM] = True
        if server_address:
            attrs[sc.SERVER_ADDRESS] = server_address
        if server_port:
            attrs[sc.SERVER_PORT] = server_port
        if fingerprint:
            attrs[sc.PROMPTPULSE_PROMPT_FINGERPRINT] = fingerprint
        if attributes:
            attrs.update(attributes)
        # The current context, read once: the span's parent (unless a context source knows better) and the base of
        # the context activate() makes current.
        current = self._context = context.get_current()
        parent = current
        if context_sources:
            found = _from_context_sources(attrs)
            if found is not None:
                parent = found
        tags = tagging.current_attributes()
        if tags:
            attrs.update(tags)
        span = self.span = telemetry.tracer.start_span(
            f"{operation} {request_model}" if request_model else operation,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )
        self._started_at = perf_counter()
        tagging.remember_call(span.get_span_context())

    # --- context: make the call's span current while the SDK runs, so nested spans (HTTP, the SDK's own) nest.
    def activate(self) -> None:
        self._context_token = context.attach(trace.set_span_in_context(self.span, self._context))

    def deactivate(self) -> None:
        token = self._context_token
        if token is not None:
            self._context_token = None
            context.detach(token)  # type: ignore[arg-type]

    # --- what the response says
    def set_attribute(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._pending[key] = value

    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
    ) -> None:
        pending = self._pending
        if model:
            self.response_model = model
            pending[sc.GEN_AI_RESPONSE_MODEL] = model
        if response_id:
            pending[sc.GEN_AI_RESPONSE_ID] = response_id
        if finish_reasons:
            pending[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(finish_reasons)

    def set_choice_finish_reasons(self, reasons: Sequence[str | None]) -> None:
        """A stream's finish reason per choice in index order, None for a choice whose final event never came. At the
        end, a stream that did not complete reports "error" for those; a complete one (or a call ended without a
        stream state) leaves them out. Replaces ``set_response(finish_reasons=...)``."""
        self._choice_reasons = tuple(reasons)

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cache_write_1h_tokens: int | None = None,
    ) -> None:
        """Record usage; ``input_tokens`` must already include cached input (contract 1). Later calls replace."""
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens
        if cache_read_tokens is not None:
            self.cache_read_tokens = cache_read_tokens
        if cache_creation_tokens is not None:
            self.cache_creation_tokens = cache_creation_tokens
        if reasoning_tokens is not None:
            self.reasoning_tokens = reasoning_tokens
        if cache_write_1h_tokens is not None:
            self.cache_write_1h_tokens = cache_write_1h_tokens

    def first_chunk(self) -> None:
        if self._first_chunk_at is None:
            self._first_chunk_at = perf_counter()

    @property
    def has_first_chunk(self) -> bool:
        return self._first_chunk_at is not None

    def capture(self, key: str, value: Any) -> None:
        """Message content, only when the user opted in; truncated. The in-app evaluator gets it as it is."""
        if value is None:
            return
        if self._telemetry.capture_on_span:
            self._pending[key] = self._telemetry.truncate(value)
        if end_hook is not None or self._telemetry.capture_in_event:
            if self._content is None:
                self._content = {}
            self._content[key] = value

    @property
    def content(self) -> dict[str, Any]:
        """What capture() saw while the in-app evaluator or content events were on (empty otherwise)."""
        return self._content or {}

    def record_error(self, exc: BaseException, *, status_code: int | None = None) -> None:
        if status_code is None:
            status_code = errors.status_code_of(exc)
        self.error_type = errors.error_type(exc)
        attrs: dict[str, AttributeValue] = {
            sc.ERROR_TYPE: self.error_type,
            sc.PROMPTPULSE_ERROR_CATEGORY: errors.classify(exc, status_code),
        }
        if status_code is not None:
            attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status_code
        self.span.set_attributes(attrs)
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, str(exc)[:1024]))

    # --- the end
    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, *, stream_state: str | None = None) -> None:
        """End the span once: usage and cost attributes, metrics. Safe to call again (no-op)."""
        if self._ended:
            return
        self._ended = True
        now = perf_counter()
        if self._context_token is not None:
            self.deactivate()
        attrs = self._pending
        if stream_state is not None:
            attrs[sc.PROMPTPULSE_STREAM_STATE] = stream_state
        cut = stream_state is not None and stream_state != "complete"
        if cut or self._choice_reasons is not None:
            reasons = _finish_reasons(self._choice_reasons, attrs.get(sc.GEN_AI_RESPONSE_FINISH_REASONS), cut)
            if reasons:
                attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
            else:
                attrs.pop(sc.GEN_AI_RESPONSE_FINISH_REASONS, None)
        ttfc = None
        if self._first_chunk_at is not None:
            ttfc = attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk_at - self._started_at
        has_usage = self.input_tokens is not None or self.output_tokens is not None
        if has_usage:
            input_tokens = self.input_tokens or 0
            output_tokens = self.output_tokens or 0
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            if self.operation != sc.OPERATION_EMBEDDINGS:  # the spec defines only input tokens for embeddings
                attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            if self.cache_read_tokens:
                attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
            if self.cache_creation_tokens:
                attrs[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = self.cache_creation_tokens
            if self.reasoning_tokens:
                attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
            prices = self._telemetry.prices or self._telemetry.price_table()
            price = prices.lookup(self.provider, self.response_model or self.request_model, self.service_tier)
            if price is not None:
                attrs[sc.PROMPTPULSE_COST_USD] = price.cost(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=self.cache_read_tokens,
                    cache_write_tokens=self.cache_creation_tokens,
                    reasoning_tokens=self.reasoning_tokens,
                    cache_write_1h_tokens=self.cache_write_1h_tokens,
                )
        elif self.error_type is None:
            # An abandoned or cut stream, or a response without usage: say so rather than invent numbers.
            attrs[sc.PROMPTPULSE_USAGE_MISSING] = True
        if attrs:
            self.span.set_attributes(attrs)
            response_id = attrs.get(sc.GEN_AI_RESPONSE_ID)
            if response_id:  # so score(call=...) finds this call from any object carrying the response id
                tagging.remember_response_id(response_id, self.span.get_span_context())  # type: ignore[arg-type]
        if self._content and self._telemetry.capture_in_event:
            capture.emit_event(self._telemetry.logger, self, self._content, self._telemetry.truncate)
        self.span.end()
        hook = end_hook
        if hook is not None:
            try:
                hook(self)
            except Exception:  # the evaluator never breaks a call
                _log.debug("promptpulse: the evaluation hook failed", exc_info=True)
        # The metrics flusher builds the metric attributes and records the histograms from these values — plain
        # values, not this object: the span (and all it holds) is not kept alive until the next flush. Without a
        # MeterProvider there is nothing to record, and the flusher's work (holding the GIL) is skipped.
        if not records_metrics(self._telemetry.duration):
            return
        tokens = has_usage and self.error_type is None
        metrics_buffer.defer(
            _record_metrics,
            self._telemetry,
            self.span.get_span_context(),
            now - self._started_at,
            ttfc,
            self.input_tokens if tokens else None,
            self.output_tokens if tokens and self.operation != sc.OPERATION_EMBEDDINGS else None,
            self.operation,
            self.provider,
            self.request_model,
            self.response_model,
            self.server_address,
            self.server_port,
            self.error_type,
        )


def measurement_context(span_context: trace.SpanContext) -> context.Context | None:
    """The context the call's histograms are recorded in: its span's, so the SDK's exemplar filter and reservoirs
    link each point to the span — although the records run later, in the metrics flusher. A stand-in span that
    carries only the ids: the call's span itself is not kept alive until the flush."""
    if not span_context.is_valid:  # a no-op tracer: nothing to link to
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def _record_metrics(
    telemetry: Telemetry,
    span_context: trace.SpanContext,
    duration: float,
    time_to_first_chunk: float | None,
    input_tokens: int | None,
    output_tokens: int | None,
    operation: str,
    provider: str,
    request_model: str,
    response_model: str | None,
    server_address: str | None,
    server_port: int | None,
    error_type: str | None,
) -> None:
    """The semconv histograms of one call (runs in the metrics flusher). Token counts are None when not recorded."""
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: request_model,
    }
    if response_model:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
    if server_address:
        attrs[sc.SERVER_ADDRESS] = server_address
    if server_port:
        attrs[sc.SERVER_PORT] = server_port
    if error_type:
        attrs[sc.ERROR_TYPE] = error_type
    ctx = measurement_context(span_context)
    telemetry.duration.record(duration, attrs, ctx)
    if time_to_first_chunk is not None:
        telemetry.time_to_first_chunk.record(time_to_first_chunk, attrs, ctx)
    if input_tokens is not None:
        telemetry.token_usage.record(input_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "input"}, ctx)
    if output_tokens is not None:
        telemetry.token_usage.record(output_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "output"}, ctx)


def _from_context_sources(attrs: dict[str, AttributeValue]) -> context.Context | None:
    """The first registered source's answer: its attributes go into ``attrs``, its parent is returned."""
    for source in context_sources:
        try:
            found = source()
        except Exception:
            _log.debug("promptpulse: a context source failed", exc_info=True)
            continue
        if found is not None:
            parent, extra = found
            if extra:
                attrs.update(extra)
            return parent
    return None
