"""Contract 1: the attribute and metric names of an LLM-call span.

This is the one Python copy of ../shared/DESIGN.md's span contract. The processor's SQL reads the same names;
tests/test_contract.py keeps the two in step. Names follow the OpenTelemetry GenAI semantic conventions.
"""

from __future__ import annotations

from typing import Final

# --- request / operation ---------------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_REQUEST_REASONING_LEVEL: Final = "gen_ai.request.reasoning.level"  # low / medium / high… as requested
# OpenAI's own (the GenAI conventions' OpenAI page)
OPENAI_API_TYPE: Final = "openai.api.type"  # chat_completions / responses
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"

# --- response ---------------------------------------------------------------------------------------------------
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"

# --- usage (input_tokens includes cached input) -----------------------------------------------------------------
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
# Renamed from gen_ai.usage.cache_creation.input_tokens (semantic-conventions-genai #440); ingest reads both.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# --- prompt and cohorts -----------------------------------------------------------------------------------------
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"
GEN_AI_PROMPT_VERSION: Final = "gen_ai.prompt.version"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

# --- content (opt-in only) --------------------------------------------------------------------------------------
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"

# --- evaluation (scores / feedback) -----------------------------------------------------------------------------
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"

# --- transport --------------------------------------------------------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"

# --- PromptPulse's own ------------------------------------------------------------------------------------------
PROMPTPULSE_COST_USD: Final = "promptpulse.cost.usd"
PROMPTPULSE_ERROR_CATEGORY: Final = "promptpulse.error.category"
PROMPTPULSE_FEATURE: Final = "promptpulse.feature"
EVALUATION_FEATURE: Final = "promptpulse.evaluation"  # the feature of a judge's own LLM calls (evaluation cost)
PROMPTPULSE_TAGS: Final = "promptpulse.tags"
PROMPTPULSE_PROMPT_FINGERPRINT: Final = "promptpulse.prompt.fingerprint"
PROMPTPULSE_RETRY_COUNT: Final = "promptpulse.retry.count"
PROMPTPULSE_STREAM_STATE: Final = "promptpulse.stream.state"
PROMPTPULSE_USAGE_MISSING: Final = "promptpulse.usage.missing"
# A stream cut before its final usage: the input it had reported. Not gen_ai.usage.input_tokens, which would make the
# call's usage look known (with 0 output tokens) to every reader, the processor's usage_known included.
PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN: Final = "promptpulse.usage.input_tokens_seen"
# Frameworks: the LangChain runs (chains, agents) an LLM call was made in — on the provider's span and on run spans.
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
PROMPTPULSE_CHAIN_NAME: Final = "promptpulse.chain.name"  # the innermost chain run
PROMPTPULSE_CHAIN_PATH: Final = "promptpulse.chain.path"  # string[]: run names, outermost first
PROMPTPULSE_RUN_TYPE: Final = "promptpulse.run.type"  # on run spans: "chain", "agent", "tool", "retriever"

# --- legacy and foreign names the processor also accepts (normalised in SQL, never emitted by us) --------------
LEGACY_GEN_AI_SYSTEM: Final = "gen_ai.system"
LEGACY_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
OPENLIT_USAGE_COST: Final = "gen_ai.usage.cost"
TRACELOOP_PROMPT_KEY: Final = "traceloop.prompt.key"
TRACELOOP_PROMPT_VERSION: Final = "traceloop.prompt.version"

# The semantic conventions version these names follow (the tracer's and meter's schema_url).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"

# --- values -----------------------------------------------------------------------------------------------------
OPERATION_CHAT: Final = "chat"
OPERATION_TEXT_COMPLETION: Final = "text_completion"
OPERATION_EMBEDDINGS: Final = "embeddings"
OPERATION_GENERATE_CONTENT: Final = "generate_content"

PROVIDER_OPENAI: Final = "openai"
PROVIDER_AZURE_OPENAI: Final = "azure.ai.openai"
PROVIDER_AZURE_AI_INFERENCE: Final = "azure.ai.inference"
PROVIDER_ANTHROPIC: Final = "anthropic"
PROVIDER_GCP_GEMINI: Final = "gcp.gemini"
PROVIDER_GCP_VERTEX_AI: Final = "gcp.vertex_ai"
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
PROVIDER_MISTRAL_AI: Final = "mistral_ai"
PROVIDER_COHERE: Final = "cohere"
PROVIDER_GROQ: Final = "groq"
PROVIDER_OLLAMA: Final = "ollama"
PROVIDER_DEEPSEEK: Final = "deepseek"
PROVIDER_X_AI: Final = "x_ai"

ERROR_CATEGORIES: Final = ("timeout", "rate_limit", "model_error", "validation", "auth", "system")

# --- metrics ----------------------------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

# Bucket boundaries advised by the semantic conventions.
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
