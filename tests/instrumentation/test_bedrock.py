"""BedrockInstrumentor with the real boto3/botocore against the fake provider's Bedrock Runtime wire (JSON and AWS
event-stream framing), dummy credentials, SigV4 signing and all."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.trace import SpanKind, StatusCode

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.bedrock import BedrockInstrumentor
from promptpulse.testing import FakeProvider, Scenario

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # cross-region profile → anthropic.claude-3-5-haiku
NOVA = "amazon.nova-lite-v1:0"
# prices/prices.csv: aws.bedrock,anthropic.claude-3-5-haiku,0.80,4.00,0.08,1.00
#                    aws.bedrock,amazon.nova-lite,0.06,0.24,0.015 (no cache-write price: writes bill as input)
CLAUDE_PRICES = (Decimal("0.80"), Decimal("4.00"), Decimal("0.08"), Decimal("1.00"))
NOVA_PRICES = (Decimal("0.06"), Decimal("0.24"), Decimal("0.015"), None)
# Contract-1 usage: 40 input tokens of which 10 cache reads and 6 cache writes; 12 output tokens.
INPUT, CACHE_READ, CACHE_WRITE, OUTPUT = 40, 10, 6, 12
SCENARIO = Scenario(
    input_tokens=INPUT, cached_tokens=CACHE_READ, cache_creation_tokens=CACHE_WRITE, output_tokens=OUTPUT
)
MESSAGES = [{"role": "user", "content": [{"text": "Say hello to order 123"}]}]
SYSTEM = [{"text": "You are a support agent for ACME."}]


def cost(prices: tuple[Decimal, Decimal, Decimal, Decimal | None]) -> float:
    p_in, p_out, p_read, p_write = prices
    uncached = INPUT - CACHE_READ - (CACHE_WRITE if p_write is not None else 0)
    total = uncached * p_in + OUTPUT * p_out + CACHE_READ * p_read + (CACHE_WRITE * p_write if p_write else 0)
    return float(total / Decimal(1_000_000))


@pytest.fixture
def instrumented(otel: Any) -> Any:
    yield from otel.instrument(BedrockInstrumentor())


def _bedrock(fake: FakeProvider, service: str = "bedrock-runtime", config: Config | None = None) -> Any:
    return boto3.client(service, region_name="us-east-1", endpoint_url=fake.bedrock_endpoint_url,
                        aws_access_key_id="AKIAFAKE", aws_secret_access_key="fake-secret", config=config)


@pytest.fixture
def client(fake: FakeProvider) -> Any:
    return _bedrock(fake, config=Config(retries={"total_max_attempts": 1}, read_timeout=2, connect_timeout=2))


def _usage(prices: Any) -> dict[str, Any]:
    """For ``otel.assert_usage``: input = uncached 24 + cache read 10 + cache write 6."""
    return {
        "input_tokens": INPUT,
        "output_tokens": OUTPUT,
        "cache_read": CACHE_READ,
        "cache_write": CACHE_WRITE,
        "cost": cost(prices),
    }


def test_converse_exact_attributes(instrumented: Any, client: Any, fake: FakeProvider, otel: Any) -> None:
    response = client.converse(
        modelId=CLAUDE,
        system=SYSTEM,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 64, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
    )
    span = otel.only_span()
    assert span.name == f"chat {CLAUDE}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        sc.GEN_AI_REQUEST_MODEL: CLAUDE,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(SYSTEM[0]["text"]),
        sc.GEN_AI_RESPONSE_ID: response["ResponseMetadata"]["RequestId"],
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("end_turn",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: CACHE_READ,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: CACHE_WRITE,
        sc.PROMPTPULSE_COST_USD: pytest.approx(cost(CLAUDE_PRICES), rel=1e-12),
    }
    assert response["usage"]["inputTokens"] == INPUT - CACHE_READ - CACHE_WRITE  # Bedrock's wire shape


def test_converse_stream_exhausted_and_break(instrumented: Any, client: Any, otel: Any) -> None:
    response = client.converse_stream(modelId=NOVA, messages=MESSAGES)
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in response["stream"] if "contentBlockDelta" in e)
    assert text == SCENARIO.text
    for _event in client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]:
        break
    done, cut = otel.spans()
    assert done.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert done.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert done.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert done.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    otel.assert_usage(done.attributes, **_usage(NOVA_PRICES))
    assert cut.attributes[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in cut.attributes
    assert cut.attributes[sc.PROMPTPULSE_USAGE_MISSING] is True


def test_invoke_model_anthropic_body(instrumented: Any, client: Any, otel: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "system": SYSTEM[0]["text"],
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    response = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    answer = json.loads(response["body"].read())  # the app still reads the whole body
    assert answer["content"][0]["text"] == SCENARIO.text
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint(SYSTEM[0]["text"])
    assert attrs[sc.GEN_AI_RESPONSE_ID] == answer["id"]
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    # The body names the model as anthropic does; it bills at the same list price on Bedrock.
    otel.assert_usage(attrs, **_usage(CLAUDE_PRICES))


def test_invoke_model_nova_titan_llama_bodies(instrumented: Any, client: Any, fake: FakeProvider, otel: Any) -> None:
    fake.set_scenario(Scenario(input_tokens=30, output_tokens=9))
    nova = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"maxTokens": 50}}
    client.invoke_model(modelId=NOVA, body=json.dumps(nova))
    client.invoke_model(modelId="amazon.titan-text-express-v1", body=json.dumps({"inputText": "Hi"}))
    client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=json.dumps({"prompt": "Hi", "max_gen_len": 50}))
    client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "Hi"}))
    nova_span, titan, llama, embed = otel.spans()
    for span in (nova_span, titan, llama):
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 30
        assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert nova_span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert nova_span.attributes[sc.PROMPTPULSE_COST_USD] == pytest.approx((30 * 0.06 + 9 * 0.24) / 1e6, rel=1e-12)
    assert titan.attributes[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert titan.attributes[sc.PROMPTPULSE_COST_USD] == pytest.approx((30 * 0.20 + 9 * 0.60) / 1e6, rel=1e-12)
    assert llama.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert llama.attributes[sc.PROMPTPULSE_COST_USD] == pytest.approx((30 * 0.22 + 9 * 0.22) / 1e6, rel=1e-12)
    assert embed.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert embed.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 30
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in embed.attributes  # the spec defines only input for embeddings
    assert embed.attributes[sc.PROMPTPULSE_COST_USD] == pytest.approx(30 * 0.02 / 1e6, rel=1e-12)


@pytest.mark.parametrize("model", [CLAUDE, NOVA])
def test_invoke_model_with_response_stream(instrumented: Any, client: Any, otel: Any, model: str) -> None:
    if model == CLAUDE:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": MESSAGES}
        prices = CLAUDE_PRICES
    else:
        body = {"messages": MESSAGES}
        prices = NOVA_PRICES
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    # the app still receives every event, the last one carrying Bedrock's invocation metrics
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == OUTPUT
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    otel.assert_usage(attrs, **_usage(prices))


def test_throttling_error(instrumented: Any, client: Any, fake: FakeProvider, otel: Any) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=NOVA, messages=MESSAGES)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    span = otel.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "botocore.errorfactory.ThrottlingException"
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_timeout(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    from promptpulse.testing import Fault

    client = _bedrock(fake, config=Config(retries={"total_max_attempts": 1}, read_timeout=0.3))
    fake.inject(Fault.timeout(2))
    with pytest.raises(Exception, match="timeout"):
        client.converse(modelId=NOVA, messages=MESSAGES)
    assert otel.only_span().attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "timeout"


def test_other_services_pass_through(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    # the control-plane service: not instrumented
    client = _bedrock(fake, "bedrock", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError):
        client.list_foundation_models()
    assert otel.spans() == []


def test_uninstrument(client: Any, otel: Any) -> None:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    instrumentor.uninstrument()
    client.converse(modelId=NOVA, messages=MESSAGES)
    assert otel.spans() == []


def test_content_follows_the_genai_schemas(fake: FakeProvider, otel: Any) -> None:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:
        client = _bedrock(fake)
        tool_turn = [
            *MESSAGES,
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "find", "input": {"n": 123}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "shipped"}]}}]},
        ]
        response = client.converse(modelId=NOVA, system=SYSTEM, messages=tool_turn)
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MESSAGES}
        invoked = json.loads(client.invoke_model(modelId=CLAUDE, body=json.dumps(body))["body"].read())
    finally:
        instrumentor.uninstrument()
    converse, invoke = otel.spans()
    attrs = converse.attributes
    assert json.loads(attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "You are a support agent for ACME."}
    ]
    assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello to order 123"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "find", "arguments": {"n": 123}}]},
        {
            "role": "user",
            "parts": [{"type": "tool_call_response", "id": "t1", "response": [{"type": "text", "content": "shipped"}]}],
        },
    ]
    text = response["output"]["message"]["content"][0]["text"]
    assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": response["stopReason"]}
    ]
    (answer,) = json.loads(invoke.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["parts"] == [{"type": "text", "content": invoked["content"][0]["text"]}]
    assert json.loads(invoke.attributes[sc.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == "Say hello to order 123"


@pytest.mark.parametrize("model", [CLAUDE, NOVA, "amazon.titan-text-express-v1", "meta.llama3-1-8b-instruct-v1:0"])
def test_stream_text_is_captured(fake: FakeProvider, otel: Any, model: str) -> None:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:
        client = _bedrock(fake)
        streamed = client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]
        text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in streamed if "contentBlockDelta" in e)
        body: dict[str, Any] = {"messages": MESSAGES}
        if model == CLAUDE:
            body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": MESSAGES}
        elif "titan" in model:
            body = {"inputText": "Hi"}
        elif "llama" in model:
            body = {"prompt": "Hi"}
        for _ in client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]:
            pass
    finally:
        instrumentor.uninstrument()
    assert text == SCENARIO.text
    converse, invoke = otel.spans()
    assert json.loads(converse.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": SCENARIO.text}], "finish_reason": "end_turn"}
    ]
    (answer,) = json.loads(invoke.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["parts"] == [{"type": "text", "content": SCENARIO.text}]
    assert answer["finish_reason"] == invoke.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS][0]


TOOLS = {
    "tools": [
        {"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "find_order", "inputSchema": {"json": {"type": "object"}}}},
    ]
}


@pytest.mark.parametrize(
    ("choice", "expected_parts"),
    [
        # toolChoice names the tool: the answer is that toolUse block alone
        (
            {"tool": {"name": "find_order"}},
            [{"type": "tool_call", "name": "find_order", "arguments": {"query": "Say hello to order 123"}}],
        ),
        # auto: the fake says its text (block 0), then uses the first tool (block 1)
        (
            {"auto": {}},
            [
                {"type": "text", "content": SCENARIO.text},
                {"type": "tool_call", "name": "weather", "arguments": {"query": "Say hello to order 123"}},
            ],
        ),
    ],
)
def test_converse_stream_tool_use_is_captured_as_converse_does(
    fake: FakeProvider, otel: Any, choice: dict[str, Any], expected_parts: list[dict[str, Any]]
) -> None:
    """contentBlockStart(toolUse) + contentBlockDelta(toolUse.input JSON pieces) become the same tool_call part —
    id, name, parsed arguments — as the non-streamed Converse answer's toolUse block, with finish reason tool_use."""
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:
        client = _bedrock(fake)
        config = {**TOOLS, "toolChoice": choice}
        plain = client.converse(modelId=NOVA, messages=MESSAGES, toolConfig=config)
        events = list(client.converse_stream(modelId=NOVA, messages=MESSAGES, toolConfig=config)["stream"])
    finally:
        instrumentor.uninstrument()
    # the wire as the app sees it: the tool's id and name in contentBlockStart, its input as JSON pieces
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    pieces = [d["toolUse"]["input"] for d in deltas if "toolUse" in d]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"query": "Say hello to order 123"}
    plain_use = plain["output"]["message"]["content"][-1]["toolUse"]
    assert start["start"]["toolUse"]["toolUseId"] != plain_use["toolUseId"]  # two answers, two ids
    converse, streamed = otel.spans()
    assert plain["stopReason"] == "tool_use"
    for span, tool_id in ((converse, plain_use["toolUseId"]), (streamed, start["start"]["toolUse"]["toolUseId"])):
        parts = [dict(p, id=tool_id) if p["type"] == "tool_call" else p for p in expected_parts]
        assert json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
            {"role": "assistant", "parts": parts, "finish_reason": "tool_use"}
        ]
        assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    otel.assert_usage(streamed.attributes, **_usage(NOVA_PRICES))


def test_converse_stream_tool_use_cut_keeps_the_arguments_that_arrived(fake: FakeProvider, otel: Any) -> None:
    """Broken out of mid-way through the tool's input: the tool call is still captured, its arguments the JSON text
    that arrived (not parseable yet), and no finish reason from the stream."""
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:
        client = _bedrock(fake)
        config = {**TOOLS, "toolChoice": {"tool": {"name": "find_order"}}}
        seen = ""
        for e in client.converse_stream(modelId=NOVA, messages=MESSAGES, toolConfig=config)["stream"]:
            if "contentBlockStart" in e:
                tool_id = e["contentBlockStart"]["start"]["toolUse"]["toolUseId"]
            if "contentBlockDelta" in e:
                seen += e["contentBlockDelta"]["delta"]["toolUse"]["input"]
                break
    finally:
        instrumentor.uninstrument()
    span = otel.only_span()
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert seen and seen != '{"query": "Say hello to order 123"}'
    assert json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": tool_id, "name": "find_order", "arguments": seen}],
            "finish_reason": "",
        }
    ]


# --- InvokeModel on Claude: Anthropic's Messages API bodies with tools ---------------------------------------------
CONTENT_ATTRIBUTES = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS)
ANTHROPIC_TOOLS = [
    {"name": "weather", "input_schema": {"type": "object"}},
    {"name": "find_order", "input_schema": {"type": "object"}},
]
ANTHROPIC_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Say hello to order 123"}]}]


def _claude_body(**extra: Any) -> str:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": ANTHROPIC_MESSAGES, **extra}
    return json.dumps(body)


def _instrumented_bedrock(otel: Any, fake: FakeProvider, capture: bool) -> tuple[BedrockInstrumentor, Any]:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=capture)
    return instrumentor, _bedrock(fake, config=Config(retries={"total_max_attempts": 1}))


@pytest.mark.parametrize("capture", [True, False], ids=["content", "no-content"])
@pytest.mark.parametrize(
    ("choice", "expected_parts"),
    [
        # tool_choice names the tool: the answer is that tool_use block alone (as Converse's toolChoice.tool)
        (
            {"type": "tool", "name": "find_order"},
            [{"type": "tool_call", "name": "find_order", "arguments": {"query": "Say hello to order 123"}}],
        ),
        # auto: the fake says its text (block 0), then uses the first tool (block 1)
        (
            {"type": "auto"},
            [
                {"type": "text", "content": SCENARIO.text},
                {"type": "tool_call", "name": "weather", "arguments": {"query": "Say hello to order 123"}},
            ],
        ),
    ],
)
def test_invoke_model_anthropic_tool_use_streamed_as_not_streamed(
    fake: FakeProvider, otel: Any, choice: dict[str, Any], expected_parts: list[dict[str, Any]], capture: bool
) -> None:
    """A Claude body offering tools: the non-streamed tool_use block, and the stream's content_block_start(tool_use)
    + input_json_delta pieces, become the same tool_call part (id, name, parsed arguments) — the parts Converse's
    toolUse gives — with finish reason tool_use and the body's usage; without content capture, no content at all."""
    instrumentor, client = _instrumented_bedrock(otel, fake, capture)
    try:
        body = _claude_body(tools=ANTHROPIC_TOOLS, tool_choice=choice)
        plain = json.loads(client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
        stream = client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"]
        events = [json.loads(e["chunk"]["bytes"]) for e in stream]
    finally:
        instrumentor.uninstrument()
    # the wire as the app sees it: the tool's id and name in content_block_start, its input as JSON pieces
    (start,) = [e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"]
    pieces = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"
              and e["delta"]["type"] == "input_json_delta"]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"query": "Say hello to order 123"}
    assert plain["stop_reason"] == "tool_use" and plain["content"][-1]["type"] == "tool_use"
    streamed_id = start["content_block"]["id"]
    assert streamed_id != plain["content"][-1]["id"]  # two answers, two ids
    invoked, streamed = otel.spans()
    for span, message_id, tool_id in (
        (invoked, plain["id"], plain["content"][-1]["id"]),
        (streamed, events[0]["message"]["id"], streamed_id),
    ):
        attrs = span.attributes
        assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
        assert attrs[sc.GEN_AI_RESPONSE_ID] == message_id
        otel.assert_usage(attrs, **_usage(CLAUDE_PRICES))
        if capture:
            parts = [dict(p, id=tool_id) if p["type"] == "tool_call" else p for p in expected_parts]
            assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == [
                {"role": "assistant", "parts": parts, "finish_reason": "tool_use"}
            ]
            assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
                {"role": "user", "parts": [{"type": "text", "content": "Say hello to order 123"}]}
            ]
        else:
            assert [k for k in CONTENT_ATTRIBUTES if k in attrs] == []
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"


def test_invoke_model_anthropic_stream_without_tools_is_unchanged(fake: FakeProvider, otel: Any) -> None:
    """No tools asked: text only, end_turn, the same usage; the wire has no tool_use block."""
    instrumentor, client = _instrumented_bedrock(otel, fake, True)
    try:
        stream = client.invoke_model_with_response_stream(modelId=CLAUDE, body=_claude_body())["body"]
        events = [json.loads(e["chunk"]["bytes"]) for e in stream]
    finally:
        instrumentor.uninstrument()
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] == ["text"]
    attrs = otel.only_span().attributes
    assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": SCENARIO.text}], "finish_reason": "end_turn"}
    ]
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    otel.assert_usage(attrs, **_usage(CLAUDE_PRICES))


def test_invoke_model_anthropic_stream_cut_mid_tool_input(fake: FakeProvider, otel: Any) -> None:
    """Broken out of after the tool's first input piece: the tool call is captured with the JSON text that arrived,
    the finish reason is error, and the output is unknown (the input seen in message_start stays)."""
    instrumentor, client = _instrumented_bedrock(otel, fake, True)
    try:
        body = _claude_body(tools=ANTHROPIC_TOOLS, tool_choice={"type": "tool", "name": "find_order"})
        seen = ""
        for e in client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"]:
            event = json.loads(e["chunk"]["bytes"])
            if event["type"] == "content_block_start":
                tool_id = event["content_block"]["id"]
            if event["type"] == "content_block_delta":
                seen += event["delta"]["partial_json"]
                break
    finally:
        instrumentor.uninstrument()
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert seen and seen != '{"query": "Say hello to order 123"}'
    assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": tool_id, "name": "find_order", "arguments": seen}],
            "finish_reason": "",
        }
    ]
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert attrs[sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN] == INPUT
    assert attrs[sc.PROMPTPULSE_USAGE_MISSING] is True
