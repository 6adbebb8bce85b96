"""Amazon Bedrock instrumentation: one contract-1 span per Bedrock Runtime call made through boto3/botocore.

Wrapped: ``botocore.client.BaseClient._make_api_call`` — every boto3 client call goes through it, and only the
``bedrock-runtime`` service's ``Converse``, ``ConverseStream``, ``InvokeModel`` and ``InvokeModelWithResponseStream``
are instrumented (anything else passes straight through after one dict lookup). Provider ``aws.bedrock``.

Usage. Converse reports ``inputTokens`` without cache reads and writes, so ``gen_ai.usage.input_tokens`` = input +
``cacheReadInputTokens`` + ``cacheWriteInputTokens``. InvokeModel bodies are the model family's own format and are
read per family: Anthropic (``usage.input_tokens`` + cache fields, as on Anthropic's API), Amazon Nova
(``usage.inputTokens`` + ``cacheRead/WriteInputTokenCount``), Amazon Titan (``inputTextTokenCount``, ``tokenCount`` /
``totalOutputTextTokenCount``), Meta Llama (``prompt_token_count``, ``generation_token_count``). Streams end with
``amazon-bedrock-invocationMetrics`` and non-streamed answers carry ``x-amzn-bedrock-*-token-count`` headers: both
are the fallback for families without usage in their body. To read an InvokeModel body, it is read once and handed
back to the app as a fresh ``StreamingBody`` over the same bytes.

Streams (``ConverseStream``'s ``stream``, ``InvokeModelWithResponseStream``'s ``body``) are replaced in the response
dict by a ``streams.SyncStreamProxy``; output tokens and cost are reported only once the stream said how it stopped.

Anthropic bodies (``anthropic.*`` models) are Anthropic's Messages API format, whole or as stream events, and are read
by the Anthropic module's reader (``kit.anthropic_messages``): id, stop reason (``tool_use`` too), usage, and — when
captured — text and ``tool_use`` blocks, a stream's ``content_block_start`` (tool_use id, name) and
``input_json_delta`` pieces parsed at the end as the non-streamed block's ``input``.

Content (when captured): Converse's ``system``/``messages`` (text, ``toolUse``, ``toolResult`` blocks) or the same keys
of an Anthropic body, a family's prompt string, and the answer: a non-streamed call's blocks, or a stream's text
(Converse/Nova deltas, Titan ``outputText``, Llama ``generation``) and Converse/Nova tool calls (``contentBlockStart``
``toolUse`` id and name, ``contentBlockDelta`` ``toolUse.input`` JSON pieces, parsed at the end as the non-streamed
answer's ``toolUse.input``) once it ends; either format's tool input is the JSON text as it arrived if the stream was
cut.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from promptpulse.instrumentation import common, patching, streams, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import anthropic_messages, content, targets
from promptpulse.instrumentation.kit.usage import apply_uncached_usage, int_or_none
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("botocore >= 1.34",)
_SERVICE = "bedrock-runtime"


def family(model: str) -> str:
    """The body format of a model id (also ARNs and cross-region profiles like ``us.anthropic.…``)."""
    name = model.rsplit("/", 1)[-1].lower()
    if "anthropic." in name:
        return "anthropic"
    if "amazon.nova" in name:
        return "nova"
    if "titan-embed" in name or ".embed" in name:
        return "embed"
    if "amazon.titan" in name:
        return "titan"
    if "meta.llama" in name:
        return "llama"
    return "other"


def _operation(api_operation: str, model: str) -> str:
    if api_operation.startswith("Converse"):
        return sc.OPERATION_CHAT
    kind = family(model)
    if kind == "embed":
        return sc.OPERATION_EMBEDDINGS
    return sc.OPERATION_CHAT if kind in ("anthropic", "nova") else sc.OPERATION_TEXT_COMPLETION


# --- requests ----------------------------------------------------------------------------------------------------
def _json_body(body: Any) -> dict[str, Any] | None:
    if isinstance(body, (bytes, bytearray, str)):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None  # a file-like body is not read: it is the app's


# (where, key) → attribute, first found wins; "where" None = the body's top level.
_PARAMS: tuple[tuple[str | None, str, str], ...] = (
    ("inferenceConfig", "maxTokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("inferenceConfig", "max_new_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("textGenerationConfig", "maxTokenCount", sc.GEN_AI_REQUEST_MAX_TOKENS),
    (None, "max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    (None, "max_gen_len", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("inferenceConfig", "temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("textGenerationConfig", "temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    (None, "temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("inferenceConfig", "topP", sc.GEN_AI_REQUEST_TOP_P),
    ("inferenceConfig", "top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("textGenerationConfig", "topP", sc.GEN_AI_REQUEST_TOP_P),
    (None, "top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("inferenceConfig", "topK", sc.GEN_AI_REQUEST_TOP_K),
    ("inferenceConfig", "top_k", sc.GEN_AI_REQUEST_TOP_K),
    (None, "top_k", sc.GEN_AI_REQUEST_TOP_K),
    ("inferenceConfig", "stopSequences", sc.GEN_AI_REQUEST_STOP_SEQUENCES),
    ("textGenerationConfig", "stopSequences", sc.GEN_AI_REQUEST_STOP_SEQUENCES),
    (None, "stop_sequences", sc.GEN_AI_REQUEST_STOP_SEQUENCES),
)
_FLOATS = frozenset((sc.GEN_AI_REQUEST_TEMPERATURE, sc.GEN_AI_REQUEST_TOP_P, sc.GEN_AI_REQUEST_TOP_K))


def _request_attributes(source: Mapping[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    for where, key, attr in _PARAMS:
        if attr in attrs:
            continue
        scope = source.get(where) if where else source
        value = scope.get(key) if isinstance(scope, Mapping) else None
        if value is None or isinstance(value, bool):
            continue
        if attr == sc.GEN_AI_REQUEST_STOP_SEQUENCES:
            if isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value):
                attrs[attr] = tuple(value)
        elif attr in _FLOATS and isinstance(value, (int, float)):
            attrs[attr] = float(value)
        elif isinstance(value, int):
            attrs[attr] = value
    return attrs


_NESTED = ("content",)  # a message's text is in its content blocks


def _fingerprint(source: Mapping[str, Any]) -> str | None:
    instructions = content.text_of(source.get("system"), _NESTED)
    first = None
    if not instructions:
        messages = source.get("messages")
        if isinstance(messages, Sequence) and messages:
            first = content.text_of(messages[0], _NESTED)
        else:
            prompt = source.get("inputText") or source.get("prompt")
            first = prompt if isinstance(prompt, str) else None
    return content.template_fingerprint(instructions, first)


# --- responses ---------------------------------------------------------------------------------------------------
class _Usage:
    """What a Bedrock answer — a Converse result, a Nova/Titan/Llama body, or stream events of either — says about
    usage (Anthropic bodies are read by ``kit.anthropic_messages``: ``_AnthropicStream``, ``_Endpoint.finish``).

    Also a ``streams.StreamHandler``: stream events and chunks go through ``absorb`` one by one."""

    __slots__ = ("cache_read", "cache_write", "fallback", "id", "input", "output", "stop", "texts", "tools")

    def __init__(self, capture: bool = False) -> None:
        # A stream's text by content block index, only when content is captured.
        self.texts: dict[int, str] | None = {} if capture else None
        # A stream's tool calls by content block index (Converse/Nova toolUse): id, name, the input's JSON so far.
        self.tools: dict[int, dict[str, Any]] | None = {} if capture else None
        self.input: int | None = None  # without cache reads and writes
        self.output: int | None = None
        self.cache_read = 0
        self.cache_write = 0
        self.stop: str | None = None
        self.id: str | None = None
        self.fallback: tuple[int | None, int | None, int, int] | None = None

    def _converse(self, usage: Any) -> None:  # Converse and Nova
        if not isinstance(usage, Mapping):
            return
        self.input = int_or_none(usage.get("inputTokens"))
        self.output = int_or_none(usage.get("outputTokens"))
        read = usage.get("cacheReadInputTokens") or usage.get("cacheReadInputTokenCount")  # Converse or Nova
        write = usage.get("cacheWriteInputTokens") or usage.get("cacheWriteInputTokenCount")
        self.cache_read = int_or_none(read) or 0
        self.cache_write = int_or_none(write) or 0

    def _text(self, body: Mapping[str, Any]) -> None:
        """A stream event's text piece: Converse/Nova ``contentBlockDelta``, Titan ``outputText``, Llama
        ``generation``."""
        texts = self.texts
        assert texts is not None
        start = body.get("contentBlockStart")
        if isinstance(start, Mapping):  # Converse/Nova: a tool call's id and name open its block
            self._tool_start(start)
            return
        block = body.get("contentBlockDelta")
        if isinstance(block, Mapping):
            index, delta = block.get("contentBlockIndex", 0), block.get("delta")
        else:
            index, delta = 0, body
        piece = None
        if isinstance(delta, Mapping):
            use = delta.get("toolUse")
            if isinstance(use, Mapping):  # a piece of the tool call's input JSON
                tool = self.tools.get(index) if self.tools is not None and isinstance(index, int) else None
                if tool is not None and isinstance(use.get("input"), str):
                    tool["json"] += use["input"]
                return
            piece = delta.get("text")
            if not isinstance(piece, str) and block is None:
                piece = delta.get("outputText") if "outputText" in delta else delta.get("generation")
        if isinstance(piece, str) and isinstance(index, int):
            texts[index] = texts.get(index, "") + piece

    def _tool_start(self, start: Mapping[str, Any]) -> None:
        use = (start.get("start") or {}).get("toolUse") if isinstance(start.get("start"), Mapping) else None
        index = start.get("contentBlockIndex", 0)
        if isinstance(use, Mapping) and isinstance(index, int) and self.tools is not None:
            self.tools[index] = {"toolUseId": use.get("toolUseId"), "name": use.get("name"), "json": ""}

    def _blocks(self) -> list[dict[str, Any]]:
        """A stream's content blocks in index order, as a non-streamed Converse answer has them: text, and toolUse
        with the input parsed (the JSON text as it arrived when the stream was cut mid-way)."""
        texts, tools = self.texts or {}, self.tools or {}
        blocks = []
        for i in sorted(texts.keys() | tools.keys()):
            tool = tools.get(i)
            if tool is None:
                blocks.append({"text": texts[i]})
                continue
            raw = tool["json"]
            try:
                arguments = json.loads(raw) if raw else {}
            except ValueError:
                arguments = raw
            blocks.append({"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"], "input": arguments}})
        return blocks

    def absorb(self, body: Mapping[str, Any]) -> None:
        if self.texts is not None:
            self._text(body)
        if isinstance(body.get("usage"), Mapping):  # Converse result, Nova body
            self._converse(body["usage"])
        metadata = body.get("metadata")
        if isinstance(metadata, Mapping):  # ConverseStream / Nova stream: the last event
            self._converse(metadata.get("usage"))
        stop = body.get("stopReason") or (body.get("messageStop") or {}).get("stopReason")
        if stop:
            self.stop = stop
        # Titan
        if "inputTextTokenCount" in body:
            self.input = int_or_none(body["inputTextTokenCount"])
        results = body.get("results")
        if isinstance(results, Sequence) and results and isinstance(results[0], Mapping):
            self.output = int_or_none(results[0].get("tokenCount"))
            self.stop = results[0].get("completionReason") or self.stop
        if "totalOutputTextTokenCount" in body:
            self.output = int_or_none(body["totalOutputTextTokenCount"])
        if body.get("completionReason"):
            self.stop = body["completionReason"]
        # Llama
        if int_or_none(body.get("prompt_token_count")) is not None:
            self.input = int_or_none(body["prompt_token_count"])
        if int_or_none(body.get("generation_token_count")) is not None:
            self.output = int_or_none(body["generation_token_count"])
        if body.get("stop_reason"):
            self.stop = body["stop_reason"]
        self.fallback = _metrics(body) or self.fallback

    def headers(self, response: Mapping[str, Any]) -> None:
        self.fallback = _header_counts(response) or self.fallback

    def report(self, call: LLMCall, *, complete: bool) -> None:
        call.set_response(response_id=self.id, finish_reasons=(self.stop,) if self.stop else None)
        uncached, output, cache_read, cache_write = self.input, self.output, self.cache_read, self.cache_write
        if uncached is None and output is None and self.fallback is not None:
            uncached, output, cache_read, cache_write = self.fallback
        if uncached is None and output is None:
            return
        apply_uncached_usage(call, uncached, output, cache_read, cache_write, complete=complete)

    # --- streams.StreamHandler
    def on_chunk(self, call: LLMCall, event: Any) -> None:
        if not isinstance(event, Mapping):
            return
        chunk = event.get("chunk")
        if isinstance(chunk, Mapping):  # InvokeModelWithResponseStream: the family's JSON in bytes
            body = _json_body(chunk.get("bytes"))
            if body is not None:
                self.absorb(body)
        else:  # ConverseStream: {"messageStart": …}, {"messageStop": …}, {"metadata": …}
            self.absorb(event)

    def on_finish(self, call: LLMCall) -> None:
        self.report(call, complete=self.stop is not None)
        if self.texts is not None:
            blocks = self._blocks()
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_from_blocks(blocks, self.stop)])


Counts = tuple[int | None, int | None, int, int]  # uncached input, output, cache read, cache write


def _metrics(body: Mapping[str, Any]) -> Counts | None:
    """A stream's last chunk: ``amazon-bedrock-invocationMetrics``, the fallback for a body without usage."""
    metrics = body.get("amazon-bedrock-invocationMetrics")
    if not isinstance(metrics, Mapping):
        return None
    return (
        int_or_none(metrics.get("inputTokenCount")),
        int_or_none(metrics.get("outputTokenCount")),
        int_or_none(metrics.get("cacheReadInputTokenCount")) or 0,
        int_or_none(metrics.get("cacheWriteInputTokenCount")) or 0,
    )


def _header_counts(response: Mapping[str, Any]) -> Counts | None:
    """A non-streamed InvokeModel answer: the ``x-amzn-bedrock-*-token-count`` headers, the same fallback."""
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    inp = headers.get("x-amzn-bedrock-input-token-count")
    out = headers.get("x-amzn-bedrock-output-token-count")
    if inp is None and out is None:
        return None
    return (
        int(inp) if inp and inp.isdigit() else None,
        int(out) if out and out.isdigit() else None,
        int(headers.get("x-amzn-bedrock-cache-read-input-token-count") or 0),
        int(headers.get("x-amzn-bedrock-cache-write-input-token-count") or 0),
    )


class _AnthropicStream:
    """InvokeModelWithResponseStream on an ``anthropic.*`` model: each chunk's JSON is a Messages API stream event,
    read by the Anthropic module's reader (``kit.anthropic_messages.StreamState``: text and ``tool_use`` blocks with
    their ``input_json_delta`` pieces, stop reason, usage); the last chunk's invocation metrics count only if no
    event carried usage. A ``streams.StreamHandler``."""

    __slots__ = ("fallback", "state")

    def __init__(self, capture: bool) -> None:
        self.state = anthropic_messages.StreamState(capture)
        self.fallback: Counts | None = None

    def on_chunk(self, call: LLMCall, event: Any) -> None:
        chunk = event.get("chunk") if isinstance(event, Mapping) else None
        body = _json_body(chunk.get("bytes")) if isinstance(chunk, Mapping) else None
        if body is None:
            return
        self.state.on_chunk(call, anthropic_messages.json_view(body))
        self.fallback = _metrics(body) or self.fallback

    def on_finish(self, call: LLMCall) -> None:
        state = self.state
        state.on_finish(call)
        if not state.has_usage and self.fallback is not None:
            apply_uncached_usage(call, *self.fallback, complete=state.stop_reason is not None)


class _Endpoint:
    """One Bedrock Runtime operation; ``start`` gets ``(operation_name, api_params)`` as botocore passes them."""

    __slots__ = ("operation", "stream", "telemetry")

    def __init__(self, operation: str, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.operation = operation
        self.stream = operation in ("ConverseStream", "InvokeModelWithResponseStream")

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        params = args[1] if len(args) > 1 else kwargs.get("api_params") or {}
        model = params.get("modelId")
        model = model if isinstance(model, str) else ""
        source = params if self.operation.startswith("Converse") else (_json_body(params.get("body")) or {})
        host, port = targets.host_port(getattr(instance.meta, "endpoint_url", None))
        call = telemetry.start(
            _operation(self.operation, model),
            sc.PROVIDER_AWS_BEDROCK,
            model,
            stream=self.stream,
            server_address=host,
            server_port=port,
            attributes=_request_attributes(source),
            fingerprint=_fingerprint(source),
        )
        if telemetry.capture_content:
            _capture_input(call, source)
        return call

    def finish(self, call: LLMCall, result: Any) -> Any:
        capture = self.telemetry.capture_content
        if not isinstance(result, dict):
            call.end()
            return result
        request_id = (result.get("ResponseMetadata") or {}).get("RequestId")
        # InvokeModel on a Claude model: the body is Anthropic's Messages API format, read as the Anthropic SDK's is.
        anthropic = not self.operation.startswith("Converse") and family(call.request_model) == "anthropic"
        key = "stream" if self.operation == "ConverseStream" else "body"
        if self.stream:
            if result.get(key) is None:
                call.end()
                return result
            if anthropic:
                call.set_response(response_id=request_id)  # until message_start names the message
                handler: streams.StreamHandler = _AnthropicStream(capture)
            else:
                handler = usage = _Usage(capture)
                usage.id = request_id
            result[key] = streams.SyncStreamProxy(result[key], call, handler)
            return result
        usage = _Usage()
        usage.id = request_id
        if self.operation == "Converse":
            usage.absorb(result)
            answer: Any = result
        else:
            answer = None
            usage.headers(result)
            body = result.get("body")
            if body is not None and hasattr(body, "read"):
                data = body.read()
                result["body"] = _streaming_body(data)
                parsed = answer = _json_body(data)
                if anthropic and parsed is not None:
                    call.set_response(response_id=request_id)
                    if not anthropic_messages.read_message(call, anthropic_messages.json_view(parsed), capture):
                        usage.id = None  # the message's own id stays
                        usage.report(call, complete=True)  # the headers' counts
                    call.end()
                    return result
                if parsed is not None:
                    usage.absorb(parsed)
        if call.operation != sc.OPERATION_EMBEDDINGS and isinstance(answer, Mapping) and capture:
            _capture_output(call, answer, usage.stop)
        if call.operation == sc.OPERATION_EMBEDDINGS and usage.output is None and usage.input is not None:
            usage.output = 0
        usage.report(call, complete=True)
        call.end()
        return result


def _capture_input(call: LLMCall, source: Mapping[str, Any]) -> None:
    """Converse's ``system``/``messages`` (text and toolUse/toolResult blocks), the same keys of an Anthropic body, or a
    family's prompt string."""
    system = source.get("system")
    if system:
        call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, content.system_instructions(system))
    messages = source.get("messages")
    if messages is None:
        messages = source.get("inputText") or source.get("prompt")
    call.capture(sc.GEN_AI_INPUT_MESSAGES, content.messages(messages))


def _capture_output(call: LLMCall, answer: Mapping[str, Any], stop: str | None) -> None:
    """The answer's content blocks: Converse's output message, or a family's text."""
    message = (answer.get("output") or {}).get("message") if isinstance(answer.get("output"), Mapping) else None
    blocks: Any = (message or {}).get("content") if isinstance(message, Mapping) else answer.get("content")
    if blocks is None:
        results = answer.get("results")
        first = results[0] if isinstance(results, list) and results and isinstance(results[0], Mapping) else {}
        blocks = answer.get("generation") or first.get("outputText")
    if blocks is not None:
        call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_from_blocks(blocks, stop)])


def _streaming_body(data: bytes) -> Any:
    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))


_OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")


def _service_name(client: Any) -> str | None:
    try:
        return client.meta.service_model.service_name
    except AttributeError:
        return None


def _api_call_wrapper(telemetry: Telemetry) -> wrappers.WrapperFn:
    by_operation = {op: wrappers.sync_wrapper(telemetry, _Endpoint(op, telemetry)) for op in _OPERATIONS}

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        operation = args[0] if args else kwargs.get("operation_name")
        instrumented = by_operation.get(operation) if isinstance(operation, str) else None
        if instrumented is None or _service_name(instance) != _SERVICE:
            return wrapped(*args, **kwargs)
        return instrumented(wrapped, instance, args, kwargs)

    return wrapper


class BedrockInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_bedrock`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "botocore.client"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return [patching.Patch("botocore.client", "BaseClient._make_api_call", _api_call_wrapper(telemetry))]
