-- One typed row per LLM call, filled from otel_traces by llm_calls_mv. Attribute names are normalised here, in
-- SQL, so spans count whichever way they arrive (our SDK, OpenLLMetry, OpenLIT, official OTel instrumentations,
-- or Collectors writing otel_traces directly). Contract-1 names: instrumentation/semconv.py.
-- Storage (measured per column, bench/bench_queries.py, docs/BENCHMARKS.md "Storage"): random trace/span ids are
-- most of a call's bytes, so canonical ids (lowercase hex, 32 / 16 digits, not all zero: every OTLP id) are kept as
-- their 16 / 8 bytes; any other id string is kept as sent in *_raw. trace_id / span_id are ALIAS columns giving the
-- id back as text, exactly as it arrived: every reader, filter, join and the bloom-filter index use those names
-- (the cluster's Distributed table shards by the same expression over the stored columns, schema.SHARDING_KEYS).
-- Timestamps in ms; latency and TTFT rounded to 12 mantissa bits by promptpulse_f32_round (relative error <=
-- 1.2e-4, 0.12 ms at 1 s; percentiles read 2% buckets); the 11 low mantissa bits are then zero, so the stored
-- columns keep the Float32's other 21 bits as an integer (T64 packs them) and latency_ms / ttft_ms (ALIAS) give
-- back the very same Float32 values. cost_usd: exact products of prices, so GCD divides each block's grain out.
-- Calls are ordered by series, day, conversation: a conversation's calls sit together, so conversation/session/user
-- ids repeat instead of interleaving (and a conversation is found by the key). Tables created before this layout
-- keep theirs (CREATE ... IF NOT EXISTS) and their own llm_calls_mv; readers use only names both layouts have.
-- Writers (llm_calls_mv, an INSERT) give the EPHEMERAL *_in columns; the stored columns are MATERIALIZED from them,
-- so SELECT * leaves them out, and shows trace_id, span_id, latency_ms, ttft_ms with asterisk_include_alias_columns
-- = 1 (PromptPulse's own sessions set it; docs/SCHEMA.md).
CREATE FUNCTION IF NOT EXISTS promptpulse_f32_round ${ON_CLUSTER} AS (x) ->
    if(isFinite(x), reinterpretAsFloat32(bitAnd(reinterpretAsUInt32(x) + 1024, 4294965248)), x);

CREATE TABLE IF NOT EXISTS ${DB}.llm_calls${LOCAL} ${ON_CLUSTER}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(3)),
    -- What is written (by llm_calls_mv, or an INSERT): ids as sent, latency/TTFT rounded by promptpulse_f32_round.
    -- EPHEMERAL: never stored; the MATERIALIZED columns below are, and SELECT * leaves those out.
    trace_id_in String EPHEMERAL,
    span_id_in String EPHEMERAL,
    latency_in Float32 EPHEMERAL,
    ttft_in Nullable(Float32) EPHEMERAL,
    trace_id_bin FixedString(16) MATERIALIZED  -- a canonical trace id as 16 bytes, else zeros
        if(match(trace_id_in, '^[0-9a-f]{32}$') AND trace_id_in != repeat('0', 32), unhex(trace_id_in), '') CODEC(NONE),
    trace_id_raw String MATERIALIZED  -- a non-canonical trace id as sent, else ''
        if(match(trace_id_in, '^[0-9a-f]{32}$') AND trace_id_in != repeat('0', 32), '', trace_id_in) CODEC(ZSTD(1)),
    span_id_bin FixedString(8) MATERIALIZED
        if(match(span_id_in, '^[0-9a-f]{16}$') AND span_id_in != repeat('0', 16), unhex(span_id_in), '') CODEC(NONE),
    span_id_raw String MATERIALIZED
        if(match(span_id_in, '^[0-9a-f]{16}$') AND span_id_in != repeat('0', 16), '', span_id_in) CODEC(ZSTD(1)),
    service LowCardinality(String),
    environment LowCardinality(String),
    operation LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    prompt_name LowCardinality(String),
    prompt_version LowCardinality(String),
    prompt_fingerprint LowCardinality(String),
    input_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_creation_tokens UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens UInt64 CODEC(T64, ZSTD(1)),
    cost_usd Decimal(18, 12) CODEC(GCD, T64('bit'), ZSTD(1)),  -- exact products of prices: GCD divides the grain out
    cost_source LowCardinality(String),
    -- latency_ms's bits >> 11, rounded as promptpulse_f32_round does (a no-op on values llm_calls_mv rounded)
    latency_bits UInt32 MATERIALIZED
        toUInt32(bitShiftRight(reinterpretAsUInt32(latency_in) + if(isFinite(latency_in), 1024, 0), 11))
        CODEC(T64, ZSTD(1)),
    ttft_bits UInt32 MATERIALIZED  -- 0: no TTFT, else 1 + the same bits of ttft_ms (no null map)
        if(ttft_in IS NULL, 0, toUInt32(bitShiftRight(reinterpretAsUInt32(assumeNotNull(ttft_in))
                                                      + if(isFinite(assumeNotNull(ttft_in)), 1024, 0), 11) + 1))
        CODEC(T64, ZSTD(1)),
    is_stream Bool CODEC(T64, ZSTD(1)),  -- T64: one bit per call
    status LowCardinality(String) CODEC(ZSTD(1)),
    error_type LowCardinality(String) CODEC(ZSTD(1)),
    error_category LowCardinality(String) CODEC(ZSTD(1)),
    http_status UInt16 CODEC(ZSTD(1)),
    finish_reasons Array(LowCardinality(String)),
    user_id String CODEC(ZSTD(3)),
    session_id String CODEC(ZSTD(3)),
    conversation_id String CODEC(ZSTD(3)),
    feature LowCardinality(String),
    tags Array(LowCardinality(String)),
    retry_count UInt16 CODEC(ZSTD(1)),
    server_address LowCardinality(String),
    trace_id String ALIAS if(empty(trace_id_bin), trace_id_raw, lower(hex(trace_id_bin))),
    span_id String ALIAS if(empty(span_id_bin), span_id_raw, lower(hex(span_id_bin))),
    latency_ms Float32 ALIAS reinterpretAsFloat32(bitShiftLeft(latency_bits, 11)),
    ttft_ms Nullable(Float32) ALIAS
        if(ttft_bits = 0, NULL, reinterpretAsFloat32(bitShiftLeft(toUInt32(ttft_bits - 1), 11))),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ${ENGINE:MergeTree}
PARTITION BY toDate(timestamp)
ORDER BY (service, prompt_name, prompt_version, request_model, toDate(timestamp), conversation_id, timestamp)
TTL toDateTime(timestamp) + toIntervalDay(${TTL_CALLS_DAYS})
SETTINGS ttl_only_drop_parts = 1, ${DEDUP_WINDOW};

-- cost_usd: the span's own cost (promptpulse.cost.usd, OpenLIT gen_ai.usage.cost) when present, else computed from
-- the model_prices row in effect on the call's date: first by (provider, model), then by model alone. Model names are
-- normalised with pricing.MODEL_PREFIX_PATTERN / MODEL_SUFFIX_PATTERN, rendered into this file by schema.py.
-- An llm_calls from before this layout keeps its own llm_calls_mv, but ClickHouse checks the SELECT below against
-- the table even when the view exists: EPHEMERAL columns (nothing stored, never read) give it the names.
ALTER TABLE ${DB}.llm_calls${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS trace_id_in String EPHEMERAL,
    ADD COLUMN IF NOT EXISTS span_id_in String EPHEMERAL,
    ADD COLUMN IF NOT EXISTS latency_in Float32 EPHEMERAL,
    ADD COLUMN IF NOT EXISTS ttft_in Nullable(Float32) EPHEMERAL;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_mv ${ON_CLUSTER} TO ${DB}.llm_calls${LOCAL} AS
SELECT
    timestamp, trace_id_in, span_id_in, service, environment, operation,
    provider, request_model, response_model, prompt_name, prompt_version, prompt_fingerprint,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_usd,
    cost_source, latency_in, ttft_in, is_stream, status, error_type,
    error_category, http_status, finish_reasons, user_id, session_id, conversation_id,
    feature, tags, retry_count, server_address
FROM
(
SELECT
    c.timestamp AS timestamp, c.trace_id_in AS trace_id_in, c.span_id_in AS span_id_in, c.service AS service,
    c.environment AS environment, c.operation AS operation, c.provider AS provider,
    c.request_model AS request_model, c.response_model AS response_model,
    c.prompt_name AS prompt_name, c.prompt_version AS prompt_version, c.prompt_fingerprint AS prompt_fingerprint,
    c.input_tokens AS input_tokens, c.output_tokens AS output_tokens, c.cache_read_tokens AS cache_read_tokens,
    c.cache_creation_tokens AS cache_creation_tokens, c.reasoning_tokens AS reasoning_tokens,
    multiIf(p1.matched = 1, p1.input_per_mtok, p2.input_per_mtok) AS p_in,
    multiIf(p1.matched = 1, p1.output_per_mtok, p2.output_per_mtok) AS p_out,
    multiIf(p1.matched = 1, p1.cache_read_per_mtok, p2.cache_read_per_mtok) AS p_cr,
    multiIf(p1.matched = 1, p1.cache_write_per_mtok, p2.cache_write_per_mtok) AS p_cw,
    multiIf(p1.matched = 1, p1.reasoning_per_mtok, p2.reasoning_per_mtok) AS p_re,
    least(c.input_tokens, 1000000000) AS t_in,
    least(c.output_tokens, 1000000000) AS t_out,
    if(p_cr IS NULL, 0, least(c.cache_read_tokens, 1000000000)) AS t_cr,
    if(p_cw IS NULL, 0, least(c.cache_creation_tokens, 1000000000)) AS t_cw,
    if(p_re IS NULL, 0, least(c.reasoning_tokens, 1000000000)) AS t_re,
    multiIf(
        c.span_cost IS NOT NULL, assumeNotNull(c.span_cost),
        p1.matched = 1 OR p2.matched = 1,
            toDecimal64(toDecimal128(
                toDecimal128(p_in, 9) * if(t_in > t_cr + t_cw, t_in - t_cr - t_cw, 0)
                + toDecimal128(p_out, 9) * if(t_out > t_re, t_out - t_re, 0)
                + toDecimal128(ifNull(p_cr, 0), 9) * t_cr
                + toDecimal128(ifNull(p_cw, 0), 9) * t_cw
                + toDecimal128(ifNull(p_re, 0), 9) * t_re, 18) / 1000000, 12),
        toDecimal64(0, 12)) AS cost_usd,
    multiIf(c.span_cost IS NOT NULL, 'span', p1.matched = 1 OR p2.matched = 1, 'model_prices', '') AS cost_source,
    c.latency_in AS latency_in, c.ttft_in AS ttft_in, c.is_stream AS is_stream, c.status AS status,
    c.error_type AS error_type, c.error_category AS error_category, c.http_status AS http_status,
    c.finish_reasons AS finish_reasons, c.user_id AS user_id, c.session_id AS session_id,
    c.conversation_id AS conversation_id, c.feature AS feature, c.tags AS tags, c.retry_count AS retry_count,
    c.server_address AS server_address
FROM
(
    SELECT
        Timestamp AS timestamp,
        TraceId AS trace_id_in,
        SpanId AS span_id_in,
        ServiceName AS service,
        SpanAttributes AS sa,
        ResourceAttributes AS ra,
        coalesce(nullIf(ra['deployment.environment.name'], ''), nullIf(ra['deployment.environment'], ''),
                 nullIf(sa['deployment.environment.name'], ''), nullIf(sa['deployment.environment'], ''), '')
            AS environment,
        coalesce(nullIf(sa['gen_ai.operation.name'], ''),
                 nullIf(transform(sa['llm.request.type'], ['completion', 'embedding'], ['text_completion', 'embeddings'],
                                  sa['llm.request.type']), ''), '') AS operation,
        lower(coalesce(nullIf(sa['gen_ai.provider.name'], ''), nullIf(sa['gen_ai.system'], ''), '')) AS provider,
        coalesce(nullIf(sa['gen_ai.request.model'], ''), nullIf(sa['llm.request.model'], ''), '') AS request_model,
        coalesce(nullIf(sa['gen_ai.response.model'], ''), nullIf(sa['llm.response.model'], ''), '') AS response_model,
        coalesce(nullIf(sa['gen_ai.prompt.name'], ''), nullIf(sa['traceloop.prompt.key'], ''), '') AS prompt_name,
        coalesce(nullIf(sa['gen_ai.prompt.version'], ''), nullIf(sa['traceloop.prompt.version'], ''), '')
            AS prompt_version,
        sa['promptpulse.prompt.fingerprint'] AS prompt_fingerprint,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.prompt_tokens'], ''),
                                nullIf(sa['llm.usage.prompt_tokens'], ''), '')) AS input_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.output_tokens'], ''),
                                nullIf(sa['gen_ai.usage.completion_tokens'], ''),
                                nullIf(sa['llm.usage.completion_tokens'], ''), '')) AS output_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.cache_read.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_read_input_tokens'], ''), '')) AS cache_read_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.cache_creation.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_write.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_creation_input_tokens'], ''), ''))
            AS cache_creation_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.reasoning.output_tokens'], ''),
                                nullIf(sa['gen_ai.usage.reasoning_tokens'], ''), '')) AS reasoning_tokens,
        toDecimal64OrNull(coalesce(nullIf(sa['promptpulse.cost.usd'], ''), nullIf(sa['gen_ai.usage.cost'], ''), ''), 12)
            AS span_cost,
        transform(provider, ${PROVIDER_ALIASES_FROM}, ${PROVIDER_ALIASES_TO}, provider) AS price_provider,
        replaceRegexpOne(replaceRegexpOne(lower(trimBoth(if(response_model != '', response_model, request_model))),
                                          ${MODEL_PREFIX_PATTERN}, ''), ${MODEL_SUFFIX_PATTERN}, '') AS price_model,
        toDate(Timestamp) AS call_date,
        promptpulse_f32_round(toFloat32(Duration / 1000000.)) AS latency_in,
        promptpulse_f32_round(toFloat32(toFloat64OrNull(coalesce(nullIf(sa['gen_ai.response.time_to_first_chunk'], ''),
                                        nullIf(sa['gen_ai.server.time_to_first_token'], ''), '')) * 1000))
            AS ttft_ms,
        ttft_ms AS ttft_in,
        sa['gen_ai.request.stream'] IN ('true', 'True', '1') OR sa['llm.is_streaming'] IN ('true', 'True', '1')
            OR ttft_ms IS NOT NULL AS is_stream,
        coalesce(nullIf(sa['error.type'], ''),
                 nullIf(Events.Attributes[indexOf(Events.Name, 'exception')]['exception.type'], ''), '') AS error_type,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR', 'ERROR') OR error_type != '' AS failed,
        if(failed, 'error', 'ok') AS status,
        toUInt16OrZero(coalesce(nullIf(sa['http.response.status_code'], ''), nullIf(sa['http.status_code'], ''),
                                if(match(error_type, '^[1-5][0-9][0-9]$'), error_type, ''))) AS http_status,
        multiIf(
            NOT failed, '',
            has(${ERROR_CATEGORIES}, sa['promptpulse.error.category']), sa['promptpulse.error.category'],
            http_status IN (408, 504) OR match(error_type, '(?i)timeout|timed.?out|deadline'), 'timeout',
            http_status = 429 OR match(error_type, '(?i)rate.?limit|too.?many.?requests|quota|resource.?exhausted'),
                'rate_limit',
            http_status IN (401, 403) OR match(error_type, '(?i)auth|permission|forbidden|api.?key'), 'auth',
            http_status BETWEEN 400 AND 499
                OR match(error_type, '(?i)bad.?request|invalid|validation|not.?found|unprocessable|conflict|content.?filter'),
                'validation',
            http_status >= 500
                OR match(error_type, '(?i)internal.?server|overloaded|service.?unavailable|server.?error|^api.?error$'),
                'model_error',
            'system') AS error_category,
        if(isValidJSON(sa['gen_ai.response.finish_reasons']),
           JSONExtract(sa['gen_ai.response.finish_reasons'], 'Array(String)'),
           if(sa['gen_ai.response.finish_reasons'] = '', [], [sa['gen_ai.response.finish_reasons']])) AS finish_reasons,
        coalesce(nullIf(sa['user.id'], ''), nullIf(sa['enduser.id'], ''), '') AS user_id,
        sa['session.id'] AS session_id,
        sa['gen_ai.conversation.id'] AS conversation_id,
        sa['promptpulse.feature'] AS feature,
        if(isValidJSON(sa['promptpulse.tags']), JSONExtract(sa['promptpulse.tags'], 'Array(String)'),
           if(sa['promptpulse.tags'] = '', [], [sa['promptpulse.tags']])) AS tags,
        toUInt16OrZero(sa['promptpulse.retry.count']) AS retry_count,
        sa['server.address'] AS server_address
    FROM ${DB}.otel_traces${LOCAL}
    WHERE (mapContains(SpanAttributes, 'gen_ai.operation.name') OR mapContains(SpanAttributes, 'gen_ai.provider.name')
           OR mapContains(SpanAttributes, 'gen_ai.system') OR mapContains(SpanAttributes, 'llm.request.type'))
      AND SpanAttributes['gen_ai.operation.name'] NOT IN ('execute_tool', 'invoke_agent', 'create_agent')
) AS c
ASOF LEFT JOIN
(
    SELECT provider, model, effective_date, input_per_mtok, output_per_mtok, cache_read_per_mtok,
           cache_write_per_mtok, reasoning_per_mtok, toUInt8(1) AS matched
    FROM ${DB}.model_prices FINAL
) AS p1 ON c.price_provider = p1.provider AND c.price_model = p1.model AND c.call_date >= p1.effective_date
ASOF LEFT JOIN
(
    SELECT model, effective_date, input_per_mtok, output_per_mtok, cache_read_per_mtok,
           cache_write_per_mtok, reasoning_per_mtok, toUInt8(1) AS matched
    FROM ${DB}.model_prices FINAL
) AS p2 ON c.price_model = p2.model AND c.call_date >= p2.effective_date
);
