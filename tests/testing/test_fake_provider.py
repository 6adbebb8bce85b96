"""The fake provider, driven by the real openai and anthropic SDKs."""

from __future__ import annotations

import base64
import random
import struct
import subprocess
import sys
import time

import anthropic
import httpx2
import openai
import pytest

from promptpulse.testing import DEFAULT_TEXT, FakeProvider, Fault, Latency, Scenario, Usage, fake_tokens

MSG = [{"role": "user", "content": "What is PromptPulse?"}]
PROMPT_TOKENS = fake_tokens("What is PromptPulse?")  # 5
CACHED = Scenario(input_tokens=100, output_tokens=30, cached_tokens=40, cache_creation_tokens=10, reasoning_tokens=12)


def oa(fake: FakeProvider, **kw: object) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", **kw)  # type: ignore[arg-type]


def an(fake: FakeProvider, **kw: object) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-fake", **kw)  # type: ignore[arg-type]


# --- OpenAI -----------------------------------------------------------------------------------------------


def test_chat_non_stream_usage_and_headers(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(CACHED.with_(response_models={"gpt-4o": "gpt-4o-2024-08-06"}))
    raw = oa(fake_provider).chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    r = raw.parse()
    assert raw.headers["x-request-id"] == fake_provider.requests[-1].request_id
    assert r.model == "gpt-4o-2024-08-06"
    assert r.choices[0].message.content == DEFAULT_TEXT
    assert r.choices[0].finish_reason == "stop"
    u = r.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (100, 30, 130)
    assert u.prompt_tokens_details.cached_tokens == 40  # type: ignore[union-attr]
    assert u.completion_tokens_details.reasoning_tokens == 12  # type: ignore[union-attr]
    rec = fake_provider.requests[-1]
    assert (rec.path, rec.operation, rec.model, rec.status, rec.attempt) == (
        "/v1/chat/completions",
        "chat",
        "gpt-4o",
        200,
        0,
    )
    assert rec.body["messages"] == MSG and rec.headers["authorization"] == "Bearer sk-fake"
    assert rec.usage == Usage(100, 30, cached_tokens=40, cache_creation_tokens=10, reasoning_tokens=12)


def test_chat_default_usage_is_derived_and_capped(fake_provider: FakeProvider) -> None:
    c = oa(fake_provider)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (PROMPT_TOKENS, 20)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_completion_tokens=7)
    assert r.usage is not None and r.usage.completion_tokens == 7
    assert r.choices[0].finish_reason == "length"


def test_chat_stream_without_usage(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(stream_chunks=5))
    chunks = list(oa(fake_provider).chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    # role chunk, 5 content chunks, finish chunk
    assert len(chunks) == 7
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_include_usage(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(CACHED)
    stream = oa(fake_provider).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (100, 30)
    assert last.usage.prompt_tokens_details.cached_tokens == 40  # type: ignore[union-attr]
    assert last.usage.completion_tokens_details.reasoning_tokens == 12  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_honours_n(fake_provider: FakeProvider) -> None:
    """n=2: one choice per chunk, interleaved round by round, each choice's finish_reason last, then the usage."""
    fake_provider.set_scenario(CACHED.with_(stream_chunks=3))
    stream = oa(fake_provider).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, n=2, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 2 + 2 * 3 + 2 + 1
    picked = [(c.choices[0].index, c.choices[0].finish_reason) for c in chunks[:-1]]
    assert [i for i, _ in picked] == [0, 1] * 5
    assert [r for _, r in picked] == [None] * 8 + ["stop", "stop"]
    for i in (0, 1):
        assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1] if c.choices[0].index == i) == (
            DEFAULT_TEXT
        )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30  # type: ignore[union-attr]


def test_chat_completion_honours_n(fake_provider: FakeProvider) -> None:
    """n=2: two choices, indexes 0 and 1, each with the text and the finish reason; n absent: one."""
    client = oa(fake_provider)
    two = client.chat.completions.create(model="gpt-4o", messages=MSG, n=2)
    assert [(c.index, c.message.content, c.finish_reason) for c in two.choices] == [
        (0, DEFAULT_TEXT, "stop"),
        (1, DEFAULT_TEXT, "stop"),
    ]
    assert [c.index for c in client.chat.completions.create(model="gpt-4o", messages=MSG).choices] == [0]


def test_legacy_completions(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(output_tokens=9, text="abcdefgh", stream_chunks=4))
    c = oa(fake_provider)
    r = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert r.choices[0].text == "abcdefgh"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (fake_tokens("Say hi"), 9)
    chunks = list(
        c.completions.create(
            model="gpt-3.5-turbo-instruct", prompt=[1, 2, 3], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "abcdefgh"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3  # token-id prompt: exact count
    assert fake_provider.requests[-1].operation == "text_completion"


def test_embeddings_float_and_base64(fake_provider: FakeProvider) -> None:
    c = oa(fake_provider)
    inputs = ["first text", "second, longer text"]
    default = c.embeddings.create(model="text-embedding-3-small", input=inputs)  # SDK asks for base64
    assert fake_provider.requests[-1].body["encoding_format"] == "base64"
    floats = c.embeddings.create(model="text-embedding-3-small", input=inputs, encoding_format="float")
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 16
    expected = fake_tokens(inputs[0]) + fake_tokens(inputs[1])
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (expected, expected)
    raw = c.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="base64", dimensions=4)
    vec = struct.unpack("<4f", base64.b64decode(raw.data[0].embedding))  # type: ignore[arg-type]
    assert abs(sum(v * v for v in vec) - 1) < 1e-5


def test_responses_non_stream_and_stream(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(CACHED)
    c = oa(fake_provider)
    r = c.responses.create(model="gpt-5", input="Hi", instructions="Be brief")
    assert r.output_text == DEFAULT_TEXT and r.status == "completed"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (100, 30, 130)
    assert r.usage.input_tokens_details.cached_tokens == 40
    assert r.usage.output_tokens_details.reasoning_tokens == 12

    events = list(c.responses.create(model="gpt-5", input=[{"role": "user", "content": "Hi"}], stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_TEXT
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1].response  # type: ignore[union-attr]
    assert done.usage is not None and (done.usage.input_tokens, done.usage.output_tokens) == (100, 30)

    with c.responses.stream(model="gpt-5", input="Hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == DEFAULT_TEXT and final.usage is not None and final.usage.output_tokens == 30


def test_azure_openai_client(fake_provider: FakeProvider) -> None:
    az = openai.AzureOpenAI(
        azure_endpoint=fake_provider.azure_endpoint, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    r = az.chat.completions.create(model="my-gpt4o-deployment", messages=MSG)
    assert r.usage is not None and r.usage.prompt_tokens == PROMPT_TOKENS
    rec = fake_provider.requests[-1]
    assert rec.path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert rec.query == {"api-version": "2024-10-21"} and rec.headers["api-key"] == "azure-key"
    stream = az.chat.completions.create(
        model="my-gpt4o-deployment", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    assert list(stream)[-1].usage is not None


async def test_async_openai(fake_provider: FakeProvider) -> None:
    c = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="sk-fake", max_retries=0)
    r = await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.usage is not None and r.usage.completion_tokens == 20
    stream = await c.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [ch async for ch in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == PROMPT_TOKENS + 20
    await c.close()


# --- Anthropic --------------------------------------------------------------------------------------------


def test_anthropic_create(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(CACHED.with_(response_models={"claude-haiku-4-5": "claude-haiku-4-5-20251001"}))
    raw = an(fake_provider).messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=100, messages=MSG)
    m = raw.parse()
    assert raw.headers["request-id"] == fake_provider.requests[-1].request_id
    assert m.model == "claude-haiku-4-5-20251001" and m.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn"
    # Anthropic's input_tokens excludes cache reads and writes: 100 - 40 - 10
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (50, 40, 10)
    assert m.usage.output_tokens == 30
    headers = fake_provider.requests[-1].headers
    assert "sk-ant-fake" in headers.get("x-api-key", headers.get("authorization", ""))
    assert "anthropic-version" in headers


def test_anthropic_raw_stream_events(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(CACHED.with_(stream_chunks=3))
    stream = an(fake_provider).messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSG, stream=True)
    events = list(stream)
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # ping is sent and skipped by the SDK
    start, delta = events[0], events[-2]
    assert start.message.usage.output_tokens == 1  # type: ignore[union-attr]
    assert start.message.usage.input_tokens == 50  # type: ignore[union-attr]
    assert start.message.usage.cache_read_input_tokens == 40  # type: ignore[union-attr]
    assert delta.usage.output_tokens == 30 and delta.delta.stop_reason == "end_turn"  # type: ignore[union-attr]


def test_anthropic_stream_helper_and_max_tokens(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(anthropic_full_delta_usage=False))
    with an(fake_provider).messages.stream(model="claude-sonnet-4-6", max_tokens=8, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT_TOKENS, 8)
    assert final.stop_reason == "max_tokens"


async def test_async_anthropic(fake_provider: FakeProvider) -> None:
    c = anthropic.AsyncAnthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    m = await c.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSG)
    assert m.usage.output_tokens == 20
    async with c.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=MSG) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == DEFAULT_TEXT and final.usage.output_tokens == 20
    await c.close()


# --- configuration ----------------------------------------------------------------------------------------


def test_per_model_and_callable_scenario(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(
        Scenario(
            output_tokens=lambda req: len(req.prompt_text),
            text=lambda req: f"echo {req.model}",
            models={"claude-*": Scenario(output_tokens=3, input_tokens=11)},
        )
    )
    r = oa(fake_provider).chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.choices[0].message.content == "echo gpt-4o"
    assert r.usage is not None and r.usage.completion_tokens == len("What is PromptPulse?")
    m = an(fake_provider).messages.create(model="claude-opus-4-1", max_tokens=100, messages=MSG)
    assert (m.usage.input_tokens, m.usage.output_tokens) == (11, 3)


def test_latency_fixed_and_lognormal_is_seeded(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(latency=Latency.fixed(0.15), inter_chunk=Latency.fixed(0.02)))
    c = oa(fake_provider)
    t0 = time.perf_counter()
    c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert time.perf_counter() - t0 >= 0.15
    t0 = time.perf_counter()
    list(c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))  # 7 events: ttft + 6 gaps
    assert time.perf_counter() - t0 >= 0.15 + 6 * 0.02
    ln = Latency.lognormal(0.2, sigma=0.8, max=1.0)
    a = [ln.sample(random.Random(7)) for _ in range(3)]
    assert a == [ln.sample(random.Random(7)) for _ in range(3)] and all(0 < x <= 1.0 for x in a)


def test_bad_scenario_surfaces_as_500(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=5, cached_tokens=9))
    with pytest.raises(openai.InternalServerError, match="cached"):
        oa(fake_provider, max_retries=2).chat.completions.create(model="gpt-4o", messages=MSG)
    assert len(fake_provider.requests) == 1  # x-should-retry: false


# --- faults -----------------------------------------------------------------------------------------------


def test_fault_parsing() -> None:
    assert Fault.parse_sequence("429, 500:0.5,timeout:2,cut:3,ok") == [
        Fault.http(429),
        Fault.http(500, 0.5),
        Fault.timeout(2),
        Fault.cut(3),
        Fault.ok(),
    ]
    assert Fault.http(429).retry_after == 0.05
    with pytest.raises(ValueError):
        Fault.parse("explode")


def test_openai_429_then_success_via_header(fake_provider: FakeProvider) -> None:
    c = oa(fake_provider, max_retries=3)
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MSG, extra_headers={"x-fake-fault": "429,429:0.01,ok"}
    )
    assert raw.parse().usage is not None and raw.retries_taken == 2
    recs = fake_provider.requests
    assert [(r.attempt, r.status, r.fault) for r in recs] == [
        (0, 429, "429:0.05"),
        (1, 429, "429:0.01"),
        (2, 200, None),
    ]


def test_anthropic_fail_next_then_success(fake_provider: FakeProvider) -> None:
    fake_provider.fail_next(2, status=529, retry_after=0.01)
    m = an(fake_provider, max_retries=2).messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
    assert m.usage.output_tokens == 10
    assert [r.status for r in fake_provider.requests] == [529, 529, 200]
    assert fake_provider.pending_faults == 0


def test_retries_exhausted_rate_limit(fake_provider: FakeProvider) -> None:
    with pytest.raises(openai.RateLimitError) as exc:
        oa(fake_provider, max_retries=1).chat.completions.create(
            model="gpt-4o", messages=MSG, extra_headers={"x-fake-fault": "429:0.01"}
        )
    assert exc.value.response.headers["retry-after-ms"] == "10"
    assert exc.value.response.headers["retry-after"] == "1"
    assert exc.value.code == "rate_limit_exceeded"
    assert len(fake_provider.requests) == 2


@pytest.mark.parametrize(
    ("status", "oa_exc", "an_exc", "an_type"),
    [
        (500, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
        (503, openai.InternalServerError, anthropic.ServiceUnavailableError, "api_error"),
        (529, openai.InternalServerError, anthropic.OverloadedError, "overloaded_error"),
        (400, openai.BadRequestError, anthropic.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, anthropic.AuthenticationError, "authentication_error"),
        (404, openai.NotFoundError, anthropic.NotFoundError, "not_found_error"),
    ],
)
def test_error_statuses(
    fake_provider: FakeProvider, status: int, oa_exc: type[Exception], an_exc: type[Exception], an_type: str
) -> None:
    fake_provider.fail_next(2, status)
    with pytest.raises(oa_exc) as e1:
        oa(fake_provider).chat.completions.create(model="gpt-4o", messages=MSG)
    assert e1.value.status_code == status and "error" not in e1.value.body  # type: ignore[attr-defined]
    with pytest.raises(an_exc) as e2:
        an(fake_provider).messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
    assert e2.value.body["error"]["type"] == an_type  # type: ignore[attr-defined]
    assert e2.value.request_id == fake_provider.requests[-1].request_id  # type: ignore[attr-defined]


def test_timeout(fake_provider: FakeProvider) -> None:
    t0 = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        oa(fake_provider, timeout=0.2).chat.completions.create(
            model="gpt-4o", messages=MSG, extra_headers={"x-fake-fault": "timeout:5"}
        )
    fake_provider.inject(Fault.timeout(5))
    with pytest.raises(anthropic.APITimeoutError):
        an(fake_provider, timeout=0.2).messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSG)
    assert time.perf_counter() - t0 < 2
    assert [r.status for r in fake_provider.requests] == [None, None]


def test_cut_stream_raises(fake_provider: FakeProvider) -> None:
    stream = oa(fake_provider).chat.completions.create(
        model="gpt-4o",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-fault": "cut:3"},
    )
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            got.append(chunk)
    assert len(got) == 3 and all(c.usage is None for c in got)

    # The anthropic SDK lets the transport error of a broken stream through unwrapped before 2.17, and wraps it in
    # its connection error from then on (its iter_response_bytes): the installed version says which one.
    wraps = tuple(int(part) for part in anthropic.__version__.split(".")[:2]) >= (2, 17)
    expected = anthropic.APIConnectionError if wraps else httpx2.RemoteProtocolError
    fake_provider.inject(Fault.cut(2))
    client = an(fake_provider)
    with (
        pytest.raises(expected, match="incomplete chunked read"),
        client.messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=MSG) as s,
    ):
        "".join(s.text_stream)
    assert not fake_provider.requests[-1].completed

    # A non-stream answer cut half-way is a connection error too (and retried, like the real thing).
    fake_provider.inject(Fault.cut())
    r = oa(fake_provider, max_retries=1).chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.usage is not None and [x.completed for x in fake_provider.requests[-2:]] == [False, True]


def test_random_faults(fake_provider: FakeProvider) -> None:
    fake_provider.set_scenario(Scenario(fault_rate=1.0, random_faults=(Fault.http(503),)))
    with pytest.raises(openai.InternalServerError):
        oa(fake_provider).chat.completions.create(model="gpt-4o", messages=MSG)
    fake_provider.set_scenario(Scenario(fault_rate=0.0))
    assert oa(fake_provider).chat.completions.create(model="gpt-4o", messages=MSG).usage is not None


def test_standalone_cli() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptpulse.testing.fake_provider", "--port", "0", "--output-tokens", "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.split("OpenAI base_url ")[1].split()[0]
        c = openai.OpenAI(base_url=base_url, api_key="sk-fake", max_retries=0)
        r = c.chat.completions.create(model="gpt-4o", messages=MSG)
        assert r.usage is not None and r.usage.completion_tokens == 4
    finally:
        proc.terminate()
        proc.wait(timeout=5)
