"""AnthropicInstrumentor with the real anthropic SDK over loopback HTTP against the fake provider.

Every client here is built with the SDK's own OpenTelemetry tracing switched on and pointed at the same in-memory
exporter as PromptPulse (``open_telemetry={"tracer_provider": ...}``), so "exactly one span" assertions would see a
second span from the SDK if PromptPulse let one through. One subprocess test does the same with a *global* provider.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from anthropic.resources.messages.messages import AsyncMessages, Messages
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import promptpulse
from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.testing import FAULT_HEADER, FakeProvider, Fault, Scenario

MODEL = "claude-haiku-4-5"
# prices/prices.csv: anthropic,claude-haiku-4-5,1.00,5.00,0.10,1.25 (input, output, cache read, cache write per MTok)
PRICE_INPUT, PRICE_OUTPUT, PRICE_CACHE_READ, PRICE_CACHE_WRITE = (
    Decimal("1.00"),
    Decimal("5.00"),
    Decimal("0.10"),
    Decimal("1.25"),
)
# Contract-1 usage the fake answers with: 40 input tokens of which 10 cache reads and 6 cache writes.
INPUT, CACHE_READ, CACHE_WRITE, OUTPUT = 40, 10, 6, 12
SCENARIO = Scenario(
    input_tokens=INPUT, cached_tokens=CACHE_READ, cache_creation_tokens=CACHE_WRITE, output_tokens=OUTPUT
)
MESSAGES = [{"role": "user", "content": "Say hello to order 123"}]
SYSTEM = [{"type": "text", "text": "You are a support agent for ACME."}]
TOOL_TURN = [
    *MESSAGES,
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking it up."},
            {"type": "tool_use", "id": "toolu_1", "name": "find_order", "input": {"order": 123}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "shipped"}]}
        ],
    },
]


def expected_cost() -> float:
    uncached = INPUT - CACHE_READ - CACHE_WRITE
    total = (
        uncached * PRICE_INPUT + OUTPUT * PRICE_OUTPUT + CACHE_READ * PRICE_CACHE_READ + CACHE_WRITE * PRICE_CACHE_WRITE
    )
    return float(total / Decimal(1_000_000))


@pytest.fixture
def instrumented(otel: Any) -> Any:
    yield from otel.instrument(AnthropicInstrumentor())


def _client_kwargs(fake: FakeProvider, otel: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("max_retries", 0)
    return {
        "base_url": fake.anthropic_base_url,
        "api_key": "sk-ant-fake",
        # The SDK's own tracing, on the same exporter: a second span per call would show up.
        "open_telemetry": {"tracer_provider": otel.tracer_provider},
        **kwargs,
    }


@pytest.fixture
def client(fake: FakeProvider, otel: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(**_client_kwargs(fake, otel))


@pytest.fixture
def aclient(fake: FakeProvider, otel: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(**_client_kwargs(fake, otel))


def _only_span(otel: Any) -> ReadableSpan:
    spans = otel.spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    span = spans[0]
    assert span.instrumentation_scope.name == "promptpulse.instrumentation.anthropic"
    return span


def _assert_full_usage(otel: Any, span: ReadableSpan) -> None:
    # input = uncached 24 + cache read 10 + cache write 6; output = the cumulative message_delta count, not 1 + 12
    otel.assert_usage(
        span.attributes,
        input_tokens=INPUT,
        output_tokens=OUTPUT,
        cache_read=CACHE_READ,
        cache_write=CACHE_WRITE,
        cost=expected_cost(),
    )


def _assert_streamed_ok(otel: Any, span: ReadableSpan, state: str = "complete") -> None:
    assert span.status.status_code != StatusCode.ERROR
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == state
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    _assert_full_usage(otel, span)


def _assert_cut_short(span: ReadableSpan, state: str) -> None:
    """Ended before message_delta: the input seen (from message_start) is kept apart from gen_ai.usage.*, so the
    call's usage reads as unknown — not as known with 0 output tokens; no invented cost."""
    attrs = span.attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == state
    assert attrs[sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN] == INPUT
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert sc.PROMPTPULSE_COST_USD not in attrs
    assert attrs[sc.PROMPTPULSE_USAGE_MISSING] is True
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)  # no message_delta: how it ended is unknown


# --- plain calls -------------------------------------------------------------------------------------------------
def test_create_exact_attributes_tokens_and_cost(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system=SYSTEM,
        messages=MESSAGES,
        stop_sequences=["END"],
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
    )
    span = _only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: MODEL,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_TOP_K: 40,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: client.base_url.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(SYSTEM[0]["text"]),
        sc.GEN_AI_RESPONSE_MODEL: message.model,
        sc.GEN_AI_RESPONSE_ID: message.id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("end_turn",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: CACHE_READ,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: CACHE_WRITE,
        sc.PROMPTPULSE_COST_USD: pytest.approx(expected_cost(), rel=1e-12),
    }
    # The fake sent Anthropic's wire shape (input_tokens without the cache parts), as the SDK shows.
    assert message.usage.input_tokens == INPUT - CACHE_READ - CACHE_WRITE
    # Content is never captured without the opt-in.
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system")) for k in span.attributes)


def test_metrics(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p for p in otel.histogram(sc.METRIC_TOKEN_USAGE)}
    assert tokens["input"].sum == INPUT and tokens["output"].sum == OUTPUT
    assert tokens["input"].attributes[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    (duration,) = otel.histogram(sc.METRIC_OPERATION_DURATION)
    assert duration.count == 1 and tuple(duration.explicit_bounds) == sc.DURATION_BUCKETS


def test_fingerprint_from_first_message_and_tags(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    with promptpulse.prompt("support_reply", version="2.1.0", user_id="u1", feature="help", tags=["a"]):
        client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    attrs = _only_span(otel).attributes
    assert attrs[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint(MESSAGES[0]["content"])
    assert attrs[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint("Say hello to order 987")
    assert attrs[sc.GEN_AI_PROMPT_NAME] == "support_reply"
    assert attrs[sc.GEN_AI_PROMPT_VERSION] == "2.1.0"
    assert attrs[sc.USER_ID] == "u1"
    assert attrs[sc.PROMPTPULSE_FEATURE] == "help"
    assert tuple(attrs[sc.PROMPTPULSE_TAGS]) == ("a",)


def test_content_capture_opt_in(fake: FakeProvider, otel: Any) -> None:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, capture_content=True
    )
    try:
        client = anthropic.Anthropic(**_client_kwargs(fake, otel))
        client.messages.create(model=MODEL, max_tokens=8, system="Be brief.", messages=TOOL_TURN)
        with client.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as stream:
            text = stream.get_final_text()
    finally:
        instrumentor.uninstrument()
    plain, streamed = otel.spans()
    # The GenAI JSON schemas: system instructions as parts; messages with parts; tool_use / tool_result blocks kept.
    assert json.loads(plain.attributes[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(plain.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello to order 123"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Looking it up."},
                {"type": "tool_call", "id": "toolu_1", "name": "find_order", "arguments": {"order": 123}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": "toolu_1",
                    "response": [{"type": "text", "content": "shipped"}],
                }
            ],
        },
    ]
    for span in (plain, streamed):
        (answer,) = json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
        reason = span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS][0]
        assert answer == {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reason}


TOOLS = [
    {"name": "weather", "input_schema": {"type": "object"}},
    {"name": "find_order", "input_schema": {"type": "object"}},
]


@pytest.mark.parametrize(
    ("choice", "says_text", "tool"),
    [({"type": "auto"}, True, "weather"), ({"type": "tool", "name": "find_order"}, False, "find_order")],
)
def test_tool_use_answer_is_captured_plain_streamed_and_by_the_helper(
    fake: FakeProvider, otel: Any, choice: dict[str, Any], says_text: bool, tool: str
) -> None:
    """The real SDK offered tools: the fake answers with a tool_use block (after its text under ``auto``), non-streamed
    and streamed as the API streams it (content_block_start with id and name, the input in input_json_delta pieces).
    Each of the three ways to call gives the same output message — the tool call with the id the app received, its
    parsed arguments — with finish reason tool_use and the full usage and cost."""
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, capture_content=True
    )
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "tools": TOOLS}
    request["tool_choice"] = choice
    try:
        client = anthropic.Anthropic(**_client_kwargs(fake, otel))
        plain = client.messages.create(**request)
        events = list(client.messages.create(**request, stream=True))
        with client.messages.stream(**request) as stream:
            final = stream.get_final_message()
    finally:
        instrumentor.uninstrument()
    # what the app received: the tool_use block, three answers with three ids
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    (streamed_use,) = [b for b in starts if b.type == "tool_use"]
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    pieces = [d.partial_json for d in deltas if d.type == "input_json_delta"]
    assert len(pieces) == 3 and json.loads("".join(pieces)) == {"query": "Say hello to order 123"}
    ids = [plain.content[-1].id, streamed_use.id, final.content[-1].id]
    assert len(set(ids)) == 3 and plain.stop_reason == final.stop_reason == "tool_use"
    text = plain.content[0].text if says_text else None
    assert [b.type for b in plain.content] == (["text", "tool_use"] if says_text else ["tool_use"])
    spans = otel.spans()
    assert [s.instrumentation_scope.name for s in spans] == ["promptpulse.instrumentation.anthropic"] * 3
    for span, tool_id in zip(spans, ids, strict=True):
        (answer,) = json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
        parts = [{"type": "text", "content": text}] if says_text else []
        arguments = {"query": "Say hello to order 123"}
        parts.append({"type": "tool_call", "id": tool_id, "name": tool, "arguments": arguments})
        assert answer == {"role": "assistant", "parts": parts, "finish_reason": "tool_use"}
        assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
        _assert_full_usage(otel, span)


def test_beta_messages(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    client.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        stream.get_final_message()
    plain, streamed = otel.spans()
    for span in (plain, streamed):
        assert span.instrumentation_scope.name == "promptpulse.instrumentation.anthropic"
        _assert_full_usage(otel, span)
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"


# --- the SDK's own span ------------------------------------------------------------------------------------------
def test_sdk_span_without_promptpulse(client: anthropic.Anthropic, otel: Any) -> None:
    """The setting the other tests run in really makes the SDK emit its own span."""
    client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.instrumentation_scope.name == "com.anthropic.sdk.python"


def test_one_span_replaces_the_sdk_span_and_propagates_ours(
    instrumented: Any, client: anthropic.Anthropic, fake: FakeProvider, otel: Any
) -> None:
    client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    span = _only_span(otel)
    traceparent = fake.requests[-1].headers["traceparent"]
    # The SDK's propagation still works, and now names the PromptPulse span.
    assert traceparent.split("-")[1:3] == [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]
    # Calls PromptPulse does not instrument keep the SDK's span.
    otel.clear()
    client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    (other,) = otel.spans()
    assert other.instrumentation_scope.name == "com.anthropic.sdk.python"


def test_one_span_with_a_global_tracer_provider(fake: FakeProvider) -> None:
    """A global provider (what opentelemetry-instrument sets up): the SDK's tracer finds it on its own."""
    script = textwrap.dedent(
        f"""
        import anthropic
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from promptpulse.instrumentation.anthropic import AnthropicInstrumentor

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        client = anthropic.Anthropic(base_url={fake.anthropic_base_url!r}, api_key="k", max_retries=0)
        messages = [{{"role": "user", "content": "hi"}}]
        client.messages.create(model={MODEL!r}, max_tokens=8, messages=messages)
        bare = [s.instrumentation_scope.name for s in exporter.get_finished_spans()]
        exporter.clear()
        AnthropicInstrumentor().instrument()
        client.messages.create(model={MODEL!r}, max_tokens=8, messages=messages)
        with client.messages.stream(model={MODEL!r}, max_tokens=8, messages=messages) as stream:
            stream.get_final_message()
        print(repr((bare, [s.instrumentation_scope.name for s in exporter.get_finished_spans()])))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    ours = "promptpulse.instrumentation.anthropic"
    assert out.stdout.strip() == str((["com.anthropic.sdk.python"], [ours, ours])), out.stderr


def test_one_span_with_sdk_telemetry_off(fake: FakeProvider, otel: Any, instrumented: Any) -> None:
    client = anthropic.Anthropic(**_client_kwargs(fake, otel, open_telemetry=False))
    client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    _assert_full_usage(otel, _only_span(otel))


# --- streams: messages.create(stream=True) -----------------------------------------------------------------------
@pytest.mark.parametrize("full_delta_usage", [True, False])
def test_create_stream_iterated(
    instrumented: Any, client: anthropic.Anthropic, fake: FakeProvider, otel: Any, full_delta_usage: bool
) -> None:
    fake.set_scenario(SCENARIO.with_(anthropic_full_delta_usage=full_delta_usage))
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = [event.type for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    _assert_streamed_ok(otel, _only_span(otel))


def test_create_stream_break_then_close(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    with stream:
        for event in stream:
            assert event.type == "message_start"
            break
        # A break ends the span at once (the iterator we hand to `for` is closed with the loop).
        assert len(otel.spans()) == 1
    _assert_cut_short(_only_span(otel), "interrupted")


# --- raw responses: with_raw_response / with_streaming_response ------------------------------------------------
def test_raw_response_stream_parse(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    """ChatAnthropic.stream's path: the span follows the events, not the headers."""
    response = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    assert otel.spans() == []  # the body is still on the wire
    stream = response.parse()
    assert isinstance(stream, anthropic.Stream)
    assert [e.type for e in stream][-1] == "message_stop"
    span = _only_span(otel)
    _assert_streamed_ok(otel, span)
    assert span.attributes[sc.GEN_AI_RESPONSE_ID].startswith("msg_")
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200


def test_raw_response_plain(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    response = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    span = _only_span(otel)  # the body was read with the headers
    message = response.parse()
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == message.id
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    _assert_full_usage(otel, span)


@pytest.mark.parametrize("how", ["iterate", "break", "no_parse"])
def test_streaming_response_stream(instrumented: Any, client: anthropic.Anthropic, otel: Any, how: str) -> None:
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
    ) as response:
        assert otel.spans() == []
        if how == "iterate":
            assert [e.type for e in response.parse()][-1] == "message_stop"
        elif how == "break":
            for _event in response.parse():
                break
    span = _only_span(otel)
    if how == "iterate":
        _assert_streamed_ok(otel, span)
    elif how == "break":
        _assert_cut_short(span, "interrupted")
        assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    else:
        assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "closed"
        assert span.attributes[sc.PROMPTPULSE_USAGE_MISSING] is True


def test_streaming_response_plain(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=64, messages=MESSAGES) as response:
        assert otel.spans() == []
        message = response.parse()
    span = _only_span(otel)
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == message.id
    _assert_full_usage(otel, span)


async def test_async_raw_response_stream(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    response = await aclient.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
    )
    stream = await response.parse()
    assert isinstance(stream, anthropic.AsyncStream)
    assert [e.type async for e in stream][-1] == "message_stop"
    _assert_streamed_ok(otel, _only_span(otel))


async def test_async_streaming_response(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    async with aclient.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
    ) as response:
        assert [e.type async for e in await response.parse()][-1] == "message_stop"
    _assert_streamed_ok(otel, _only_span(otel))
    otel.clear()
    async with aclient.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES
    ) as response:
        message = await response.parse()
    span = _only_span(otel)
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == message.id
    _assert_full_usage(otel, span)


# --- streams: messages.stream() ----------------------------------------------------------------------------------
def _consume_text(stream: Any) -> str:
    return "".join(stream.text_stream)


def _consume_events(stream: Any) -> str:
    return "".join(e.delta.text for e in stream if e.type == "content_block_delta")


def _consume_final_message(stream: Any) -> str:
    return stream.get_final_message().content[0].text


def _consume_final_text(stream: Any) -> str:
    return stream.get_final_text()


def _consume_until_done(stream: Any) -> str:
    stream.until_done()
    return stream.current_message_snapshot.content[0].text


@pytest.mark.parametrize(
    "consume", [_consume_text, _consume_events, _consume_final_message, _consume_final_text, _consume_until_done]
)
def test_stream_helper_consumption_styles(
    instrumented: Any, client: anthropic.Anthropic, otel: Any, consume: Any
) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        text = consume(stream)
        # Ended by exhaustion, before leaving the block.
        assert len(otel.spans()) == 1
        assert stream.get_final_message().content[0].text == text
    assert text == SCENARIO.text
    span = _only_span(otel)
    _assert_streamed_ok(otel, span)
    assert span.attributes[sc.GEN_AI_RESPONSE_ID].startswith("msg_")


def test_stream_helper_break_then_exit(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        for _text in stream.text_stream:
            break
        assert otel.spans() == []  # text_stream is still open: the app may go on reading
    _assert_cut_short(_only_span(otel), "closed")


def test_stream_helper_close(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    stream = client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES).__enter__()
    next(iter(stream))
    stream.close()
    _assert_cut_short(_only_span(otel), "closed")


def test_stream_helper_abandoned_is_ended_by_gc(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    manager = client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES)
    stream = manager.__enter__()
    next(iter(stream))
    del manager, stream
    gc.collect()
    _assert_cut_short(_only_span(otel), "abandoned")


def test_stream_manager_never_entered_makes_no_span(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES)
    gc.collect()
    assert otel.spans() == []


def test_stream_helper_error_in_app_code(instrumented: Any, client: anthropic.Anthropic, otel: Any) -> None:
    with pytest.raises(KeyError), client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        next(iter(stream.text_stream))
        raise KeyError("app bug")
    span = _only_span(otel)
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "closed"


def test_stream_cut_by_the_server(
    instrumented: Any, client: anthropic.Anthropic, fake: FakeProvider, otel: Any
) -> None:
    fake.inject(Fault.cut(after_chunks=4))
    with (
        pytest.raises(Exception, match="incomplete chunked read") as raised,
        client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream,
    ):
        for _text in stream.text_stream:
            pass
    span = _only_span(otel)
    attrs = span.attributes
    assert span.status.status_code == StatusCode.ERROR
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert attrs[sc.ERROR_TYPE] == f"{type(raised.value).__module__}.{type(raised.value).__qualname__}"
    # message_start arrived, message_delta did not: the input seen is kept, the output and the cost are not invented.
    assert attrs[sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN] == INPUT
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    # Cut before the event saying how the message ended: its finish reason is "error", not omitted.
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert sc.PROMPTPULSE_COST_USD not in attrs


# --- async ---------------------------------------------------------------------------------------------------------
async def test_async_create(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    message = await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    span = _only_span(otel)
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == message.id
    _assert_full_usage(otel, span)


async def test_async_create_stream(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    stream = await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream:
        events = [event.type async for event in stream]
    assert events[-1] == "message_stop"
    _assert_streamed_ok(otel, _only_span(otel))


async def test_async_stream_helper_text_and_final(
    instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any
) -> None:
    async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text == SCENARIO.text
    _assert_streamed_ok(otel, _only_span(otel))


async def test_async_stream_helper_final_without_iteration(
    instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any
) -> None:
    async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert await stream.get_final_text() == SCENARIO.text
    _assert_streamed_ok(otel, _only_span(otel))


async def test_async_stream_helper_break(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        async for _event in stream:
            break
    _assert_cut_short(_only_span(otel), "closed")


async def test_async_concurrent_calls_keep_their_tags(
    instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any
) -> None:
    import asyncio

    async def one(version: str) -> None:
        with promptpulse.prompt("p", version=version):
            async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
                await stream.get_final_message()

    await asyncio.gather(*(one(str(i)) for i in range(4)))
    spans = otel.spans()
    assert sorted(s.attributes[sc.GEN_AI_PROMPT_VERSION] for s in spans) == ["0", "1", "2", "3"]
    assert all(s.parent is None for s in spans)


# --- errors ----------------------------------------------------------------------------------------------------------
def _fault(spec: str) -> dict[str, Any]:
    return {"extra_headers": {FAULT_HEADER: spec}}


def test_rate_limited_then_ok_counts_the_retry(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    client = anthropic.Anthropic(**_client_kwargs(fake, otel, max_retries=2))
    client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, **_fault("429:0.01,ok"))
    span = _only_span(otel)
    assert span.attributes[sc.PROMPTPULSE_RETRY_COUNT] == 1
    assert span.status.status_code != StatusCode.ERROR
    _assert_full_usage(otel, span)
    assert [r.attempt for r in fake.requests] == [0, 1]


@pytest.mark.parametrize(
    ("spec", "exc_type", "status", "category", "retries"),
    [
        ("529", anthropic.OverloadedError, 529, "model_error", 0),
        ("500:0.01", anthropic.InternalServerError, 500, "model_error", 1),
        ("401", anthropic.AuthenticationError, 401, "auth", 0),
        ("400", anthropic.BadRequestError, 400, "validation", 0),
        ("429:0.01", anthropic.RateLimitError, 429, "rate_limit", 1),
    ],
)
def test_http_errors(
    fake: FakeProvider, otel: Any, spec: str, exc_type: type, status: int, category: str, retries: int
) -> None:
    client = anthropic.Anthropic(**_client_kwargs(fake, otel, max_retries=retries))
    kwargs = {"model": MODEL, "max_tokens": 8, "messages": MESSAGES, **_fault(spec)}
    with pytest.raises(exc_type) as bare:
        client.messages.create(**kwargs)
    otel.clear()
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        with pytest.raises(exc_type) as seen:
            client.messages.create(**kwargs)
    finally:
        instrumentor.uninstrument()
    # The app sees exactly the exception it sees without PromptPulse.
    assert type(seen.value) is type(bare.value)
    assert seen.value.status_code == bare.value.status_code == status
    assert seen.value.body["error"] == bare.value.body["error"]  # the request ids differ, nothing else
    span = _only_span(otel)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == f"anthropic.{exc_type.__name__}"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == status
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == category
    assert span.attributes.get(sc.PROMPTPULSE_RETRY_COUNT, 0) == retries
    assert sc.PROMPTPULSE_USAGE_MISSING not in span.attributes


def test_timeout(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    client = anthropic.Anthropic(**_client_kwargs(fake, otel, timeout=0.3))
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, **_fault("timeout:3"))
    span = _only_span(otel)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "timeout"
    assert span.attributes[sc.ERROR_TYPE] == "anthropic.APITimeoutError"


async def test_async_overloaded_stream(instrumented: Any, aclient: anthropic.AsyncAnthropic, otel: Any) -> None:
    with pytest.raises(anthropic.OverloadedError):
        async with aclient.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES, **_fault("529")):
            pass
    span = _only_span(otel)
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 529


# --- nothing else changes ------------------------------------------------------------------------------------------
def _results(client: anthropic.Anthropic) -> list[Any]:
    def scrub(data: Any) -> Any:  # the fake numbers its message ids per request
        return {k: v for k, v in data.items() if k != "id"} if isinstance(data, dict) else data

    out: list[Any] = [scrub(client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES).model_dump())]
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    out.append([e.type for e in stream])
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
        out.append("".join(helper.text_stream))
        out.append(scrub(helper.get_final_message().model_dump()))
    out.append(type(helper).__name__)
    return out


def test_results_identical_with_and_without(fake: FakeProvider, otel: Any) -> None:
    client = anthropic.Anthropic(**_client_kwargs(fake, otel))
    bare = _results(client)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        assert _results(client) == bare
    finally:
        instrumentor.uninstrument()


def test_instrument_twice_and_uninstrument_restores(fake: FakeProvider, otel: Any) -> None:
    originals = (Messages.create, Messages.stream, AsyncMessages.create, anthropic._base_client.start_api_call_span)
    first, second = AnthropicInstrumentor(), AnthropicInstrumentor()
    first.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    second.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    client = anthropic.Anthropic(**_client_kwargs(fake, otel))
    try:
        client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
        _only_span(otel)
    finally:
        first.uninstrument()
    assert (
        Messages.create,
        Messages.stream,
        AsyncMessages.create,
        anthropic._base_client.start_api_call_span,
    ) == originals
    otel.clear()
    client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.instrumentation_scope.name == "com.anthropic.sdk.python"


# --- the provider follows the client -------------------------------------------------------------------------------
def test_provider_follows_the_cloud_client(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    bedrock = anthropic.AnthropicBedrock(
        base_url=fake.url, aws_access_key="a", aws_secret_key="b", aws_region="us-east-1", max_retries=0
    )
    message = bedrock.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    span = _only_span(otel)
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == message.id
    otel.clear()
    vertex = anthropic.AnthropicVertex(
        base_url=fake.url, region="us-east5", project_id="p", access_token="t", max_retries=0
    )
    with pytest.raises(anthropic.NotFoundError):  # the fake serves no Vertex routes; the span is the point
        vertex.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert _only_span(otel).attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    otel.clear()
    anthropic.Anthropic(**_client_kwargs(fake, otel)).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert _only_span(otel).attributes[sc.GEN_AI_PROVIDER_NAME] == "anthropic"


def test_streamed_tool_use_is_captured_as_a_tool_call(otel: Any) -> None:
    """A tool_use block streamed as input_json_delta pieces (the SDK's own event types) becomes one tool_call part."""
    from anthropic.types import (
        InputJSONDelta,
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawMessageDeltaEvent,
        TextBlock,
        TextDelta,
        ToolUseBlock,
    )

    from promptpulse.instrumentation.kit.anthropic_messages import StreamState
    from promptpulse.instrumentation.spans import Telemetry

    telemetry = Telemetry("t", "0", tracer_provider=otel.tracer_provider, capture_content=True)
    call = telemetry.start("chat", "anthropic", MODEL, stream=True)
    state = StreamState(capture=True)
    events = [
        RawContentBlockStartEvent(type="content_block_start", index=0, content_block=TextBlock(type="text", text="")),
        RawContentBlockDeltaEvent(type="content_block_delta", index=0, delta=TextDelta(type="text_delta", text="Hm.")),
        RawContentBlockStartEvent(
            type="content_block_start",
            index=1,
            content_block=ToolUseBlock(type="tool_use", id="toolu_9", name="find_order", input={}),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=1, delta=InputJSONDelta(type="input_json_delta", partial_json='{"ord')
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=1, delta=InputJSONDelta(type="input_json_delta", partial_json='er": 7}')
        ),
        RawMessageDeltaEvent.model_validate(
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}
        ),
    ]
    for event in events:
        state.on_chunk(call, event)
    state.on_finish(call)
    call.end()
    (answer,) = json.loads(otel.only_span().attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer == {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "Hm."},
            {"type": "tool_call", "id": "toolu_9", "name": "find_order", "arguments": {"order": 7}},
        ],
        "finish_reason": "tool_use",
    }
