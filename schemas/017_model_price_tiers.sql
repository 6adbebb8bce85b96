-- Prices by snapshot, tier and context length (issue 11 §1). model_prices rows now name a model as written
-- (gpt-4o-2024-05-13 keeps its date; pricing.snapshot_name), and may price a service tier (batch, flex, priority)
-- or the calls above a number of input tokens (long-context rates); each names its source and the date it was taken
-- from it. The sorting key grows by the two new dimensions (columns added in the same ALTER, as ClickHouse requires;
-- a no-op when they exist). The Python price table loads the same rows (instrumentation/prices/prices.csv).
ALTER TABLE ${DB}.model_prices ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) AFTER effective_date,
    ADD COLUMN IF NOT EXISTS above_input_tokens UInt64 AFTER service_tier,
    MODIFY ORDER BY (provider, model, effective_date, service_tier, above_input_tokens);

ALTER TABLE ${DB}.model_prices ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS cache_write_1h_per_mtok Nullable(Decimal(18, 9)) AFTER cache_write_per_mtok,
    ADD COLUMN IF NOT EXISTS source String AFTER reasoning_per_mtok,
    ADD COLUMN IF NOT EXISTS source_date Nullable(Date) AFTER source;

-- llm_calls_mv as in 013, with the rows a span without its own cost is priced by: the standard tier's base rate
-- (tiers, long-context rates and 1-hour cache writes need what only the instrumentation knows, and its spans carry
-- their cost), of the snapshot's own row (p0; p2 for any provider), else of its family (p1; p3): the family's own
-- row, or for a family without one its newest snapshot row in force, as pricing.PriceTable does.
ALTER TABLE ${DB}.llm_calls_mv ${ON_CLUSTER} MODIFY QUERY
SELECT
    timestamp, trace_id_in, span_id_in, trace_id_in AS trace_id, span_id_in AS span_id, service, environment,
    operation, provider, request_model, response_model, prompt_name, prompt_version, prompt_fingerprint,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, usage_known, cost_usd,
    cost_source, latency_in, ttft_in, latency_in AS latency_ms, ttft_in AS ttft_ms, is_stream, status, error_type,
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
    c.usage_known AS usage_known,
    multiIf(p0.matched = 1, p0.input_per_mtok, p1.matched = 1, p1.input_per_mtok,
            p2.matched = 1, p2.input_per_mtok, p3.input_per_mtok) AS p_in,
    multiIf(p0.matched = 1, p0.output_per_mtok, p1.matched = 1, p1.output_per_mtok,
            p2.matched = 1, p2.output_per_mtok, p3.output_per_mtok) AS p_out,
    multiIf(p0.matched = 1, p0.cache_read_per_mtok, p1.matched = 1, p1.cache_read_per_mtok,
            p2.matched = 1, p2.cache_read_per_mtok, p3.cache_read_per_mtok) AS p_cr,
    multiIf(p0.matched = 1, p0.cache_write_per_mtok, p1.matched = 1, p1.cache_write_per_mtok,
            p2.matched = 1, p2.cache_write_per_mtok, p3.cache_write_per_mtok) AS p_cw,
    multiIf(p0.matched = 1, p0.reasoning_per_mtok, p1.matched = 1, p1.reasoning_per_mtok,
            p2.matched = 1, p2.reasoning_per_mtok, p3.reasoning_per_mtok) AS p_re,
    least(c.input_tokens, 1000000000) AS t_in,
    least(c.output_tokens, 1000000000) AS t_out,
    if(p_cr IS NULL, 0, least(c.cache_read_tokens, 1000000000)) AS t_cr,
    if(p_cw IS NULL, 0, least(c.cache_creation_tokens, 1000000000)) AS t_cw,
    if(p_re IS NULL, 0, least(c.reasoning_tokens, 1000000000)) AS t_re,
    multiIf(
        c.span_cost IS NOT NULL, assumeNotNull(c.span_cost),
        c.usage_known AND (p0.matched = 1 OR p1.matched = 1 OR p2.matched = 1 OR p3.matched = 1),
            toDecimal64(toDecimal128(
                toDecimal128(p_in, 9) * if(t_in > t_cr + t_cw, t_in - t_cr - t_cw, 0)
                + toDecimal128(p_out, 9) * if(t_out > t_re, t_out - t_re, 0)
                + toDecimal128(ifNull(p_cr, 0), 9) * t_cr
                + toDecimal128(ifNull(p_cw, 0), 9) * t_cw
                + toDecimal128(ifNull(p_re, 0), 9) * t_re, 18) / 1000000, 12),
        toDecimal64(0, 12)) AS cost_usd,
    multiIf(c.span_cost IS NOT NULL, 'span', NOT c.usage_known, 'unknown',
            p0.matched = 1 OR p1.matched = 1 OR p2.matched = 1 OR p3.matched = 1, 'model_prices', 'unpriced')
        AS cost_source,
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
        toUInt64OrNull(coalesce(nullIf(sa['gen_ai.usage.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.prompt_tokens'], ''),
                                nullIf(sa['llm.usage.prompt_tokens'], ''), '')) AS input_n,
        ifNull(input_n, 0) AS input_tokens,
        toUInt64OrNull(coalesce(nullIf(sa['gen_ai.usage.output_tokens'], ''),
                                nullIf(sa['gen_ai.usage.completion_tokens'], ''),
                                nullIf(sa['llm.usage.completion_tokens'], ''), '')) AS output_n,
        ifNull(output_n, 0) AS output_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.cache_read.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_read_input_tokens'], ''), '')) AS cache_read_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.cache_creation.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_write.input_tokens'], ''),
                                nullIf(sa['gen_ai.usage.cache_creation_input_tokens'], ''), ''))
            AS cache_creation_tokens,
        toUInt64OrZero(coalesce(nullIf(sa['gen_ai.usage.reasoning.output_tokens'], ''),
                                nullIf(sa['gen_ai.usage.reasoning_tokens'], ''), '')) AS reasoning_tokens,
        -- usage is known when the span reports input or output tokens (a number, 0 included); a stream read without
        -- include_usage, or a cut one, reports none
        input_n IS NOT NULL OR output_n IS NOT NULL AS usage_known,
        toDecimal64OrNull(coalesce(nullIf(sa['promptpulse.cost.usd'], ''), nullIf(sa['gen_ai.usage.cost'], ''), ''), 12)
            AS span_cost,
        transform(provider, ${PROVIDER_ALIASES_FROM}, ${PROVIDER_ALIASES_TO}, provider) AS price_provider,
        replaceRegexpOne(lower(trimBoth(if(response_model != '', response_model, request_model))),
                         ${MODEL_PREFIX_PATTERN}, '') AS price_name,
        replaceRegexpOne(price_name, ${MODEL_SUFFIX_PATTERN}, '') AS price_model,
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
    FROM ${DB}.model_prices FINAL WHERE service_tier = '' AND above_input_tokens = 0
) AS p0 ON c.price_provider = p0.provider AND c.price_name = p0.model AND c.call_date >= p0.effective_date
ASOF LEFT JOIN
(
    SELECT provider, replaceRegexpOne(model, ${MODEL_SUFFIX_PATTERN}, '') AS family, effective_date, input_per_mtok,
           output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, reasoning_per_mtok, toUInt8(1) AS matched
    FROM ${DB}.model_prices FINAL
    WHERE service_tier = '' AND above_input_tokens = 0
      AND (model = family OR (provider, family) NOT IN (SELECT provider, model FROM ${DB}.model_prices FINAL
                                                        WHERE service_tier = '' AND above_input_tokens = 0))
) AS p1 ON c.price_provider = p1.provider AND c.price_model = p1.family AND c.call_date >= p1.effective_date
ASOF LEFT JOIN
(
    SELECT model, effective_date, input_per_mtok, output_per_mtok, cache_read_per_mtok,
           cache_write_per_mtok, reasoning_per_mtok, toUInt8(1) AS matched
    FROM ${DB}.model_prices FINAL WHERE service_tier = '' AND above_input_tokens = 0
) AS p2 ON c.price_name = p2.model AND c.call_date >= p2.effective_date
ASOF LEFT JOIN
(
    SELECT replaceRegexpOne(model, ${MODEL_SUFFIX_PATTERN}, '') AS family, effective_date, input_per_mtok,
           output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, reasoning_per_mtok, toUInt8(1) AS matched
    FROM ${DB}.model_prices FINAL
    WHERE service_tier = '' AND above_input_tokens = 0
      AND (model = family OR (provider, family) NOT IN (SELECT provider, model FROM ${DB}.model_prices FINAL
                                                        WHERE service_tier = '' AND above_input_tokens = 0))
) AS p3 ON c.price_model = p3.family AND c.call_date >= p3.effective_date
);
