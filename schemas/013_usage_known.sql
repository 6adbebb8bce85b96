-- No invented zeros (issue 12 §2): a call whose span reports no token usage (an OpenAI stream read without
-- include_usage, a cut stream, an instrumentation that records none) was stored as 0 tokens and $0 with cost_source
-- 'model_prices', like a free call; a model without a price (no model_prices row, no span cost) as $0 too.
-- usage_known (stored): the span reports input or output tokens (explicit zeros included). cost_source: 'span' (the
-- span's own cost), 'model_prices' (computed), 'unknown' (no usage and no span cost), 'unpriced' (usage known, no
-- price). Such calls keep 0 in their token/cost columns, so every sum stays a plain sum over the calls whose numbers
-- are known (the rollups' codecs and SimpleAggregateFunction(sum) columns unchanged); readers divide per-call
-- averages by the calls with known usage / cost and show how many calls lack them (docs/SCHEMA.md).
-- cost_known (ALIAS, no storage) is the one definition every reader and the rollup view use; it also reads rows
-- written before this file: their cost_source was 'model_prices' even without usage, '' for an unpriced model, and a
-- direct INSERT that names no source but gives a cost counts as priced.
-- Old rows (before this file) cannot tell "no usage" from "0 tokens": usage_known DEFAULT is "some token count > 0"
-- (a 0-token call is counted as without usage, never as a free call). Old rollup rows: a row whose token sums are all
-- 0 counts all its calls as without usage (and without cost, when its cost is 0 too), any other row none (its calls
-- cannot be split); calls_unpriced is 0 for them.
-- On a cluster each ALTER runs on the shard-local table and then on its Distributed table; on a single node both
-- name the same table and the second is a no-op (IF NOT EXISTS).
ALTER TABLE ${DB}.llm_calls${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS usage_known Bool DEFAULT input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens > 0 CODEC(T64, ZSTD(1))
        AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS cost_known Bool ALIAS
        cost_source = 'span' OR (cost_source = 'model_prices' AND usage_known) OR (cost_source = '' AND cost_usd > 0);

ALTER TABLE ${DB}.llm_calls ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS usage_known Bool DEFAULT input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens > 0 AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS cost_known Bool ALIAS
        cost_source = 'span' OR (cost_source = 'model_prices' AND usage_known) OR (cost_source = '' AND cost_usd > 0);

-- Rollups: calls_without_usage (NOT usage_known), calls_unpriced (usage known, no cost), calls_without_cost
-- (NOT cost_known: without usage and without a span cost, or unpriced). Mean tokens per call =
-- tokens / (calls - calls_without_usage); mean cost per call = cost_usd / (calls - calls_without_cost).
ALTER TABLE ${DB}.llm_calls_1m${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

ALTER TABLE ${DB}.llm_calls_1m ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

ALTER TABLE ${DB}.llm_calls_1h${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

ALTER TABLE ${DB}.llm_calls_1h ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

ALTER TABLE ${DB}.llm_calls_1d${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

ALTER TABLE ${DB}.llm_calls_1d ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS calls_without_usage SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0, calls, 0) AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS calls_unpriced SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER calls_without_usage,
    ADD COLUMN IF NOT EXISTS calls_without_cost SimpleAggregateFunction(sum, UInt64)
        DEFAULT if(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens + reasoning_tokens = 0 AND cost_usd = 0, calls, 0) AFTER calls_unpriced;

-- The views (MODIFY QUERY: atomic, no insert missed; sets the same SELECT on every apply). Downstream first.
ALTER TABLE ${DB}.llm_calls_1d_mv ${ON_CLUSTER} MODIFY QUERY
SELECT
    toStartOfDay(h.bucket) AS bucket,
    service, environment, prompt_name, prompt_version, model, provider, operation, feature,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(errors_timeout) AS errors_timeout,
    sum(errors_rate_limit) AS errors_rate_limit,
    sum(errors_model_error) AS errors_model_error,
    sum(errors_validation) AS errors_validation,
    sum(errors_auth) AS errors_auth,
    sum(errors_system) AS errors_system,
    sum(streams) AS streams,
    sum(latency_ms_sum) AS latency_ms_sum,
    sumMap(latency_hist) AS latency_hist,
    sum(ttft_count) AS ttft_count,
    sum(ttft_ms_sum) AS ttft_ms_sum,
    sumMap(ttft_hist) AS ttft_hist,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_creation_tokens) AS cache_creation_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(calls_without_usage) AS calls_without_usage,
    sum(calls_unpriced) AS calls_unpriced,
    sum(calls_without_cost) AS calls_without_cost,
    sum(cost_usd) AS cost_usd,
    uniqMergeState(users) AS users,
    sum(http_5xx) AS http_5xx,
    sum(retries) AS retries,
    sum(retried_calls) AS retried_calls,
    sum(stream_latency_ms_sum) AS stream_latency_ms_sum
FROM ${DB}.llm_calls_1h${LOCAL} AS h
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

ALTER TABLE ${DB}.llm_calls_1h_mv ${ON_CLUSTER} MODIFY QUERY
SELECT
    toStartOfHour(m.bucket) AS bucket,
    service, environment, prompt_name, prompt_version, model, provider, operation, feature,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(errors_timeout) AS errors_timeout,
    sum(errors_rate_limit) AS errors_rate_limit,
    sum(errors_model_error) AS errors_model_error,
    sum(errors_validation) AS errors_validation,
    sum(errors_auth) AS errors_auth,
    sum(errors_system) AS errors_system,
    sum(streams) AS streams,
    sum(latency_ms_sum) AS latency_ms_sum,
    sumMap(latency_hist) AS latency_hist,
    sum(ttft_count) AS ttft_count,
    sum(ttft_ms_sum) AS ttft_ms_sum,
    sumMap(ttft_hist) AS ttft_hist,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_creation_tokens) AS cache_creation_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(calls_without_usage) AS calls_without_usage,
    sum(calls_unpriced) AS calls_unpriced,
    sum(calls_without_cost) AS calls_without_cost,
    sum(cost_usd) AS cost_usd,
    uniqMergeState(users) AS users,
    sum(http_5xx) AS http_5xx,
    sum(retries) AS retries,
    sum(retried_calls) AS retried_calls,
    sum(stream_latency_ms_sum) AS stream_latency_ms_sum
FROM ${DB}.llm_calls_1m${LOCAL} AS m
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

ALTER TABLE ${DB}.llm_calls_1m_mv ${ON_CLUSTER} MODIFY QUERY
SELECT
    toStartOfMinute(timestamp) AS bucket,
    service, environment, prompt_name, prompt_version,
    if(request_model != '', request_model, response_model) AS model,
    provider, operation, feature,
    count() AS calls,
    countIf(status = 'error') AS errors,
    countIf(error_category = 'timeout') AS errors_timeout,
    countIf(error_category = 'rate_limit') AS errors_rate_limit,
    countIf(error_category = 'model_error') AS errors_model_error,
    countIf(error_category = 'validation') AS errors_validation,
    countIf(error_category = 'auth') AS errors_auth,
    countIf(error_category = 'system') AS errors_system,
    countIf(is_stream) AS streams,
    sum(toFloat64(latency_ms)) AS latency_ms_sum,
    sumMap(map(promptpulse_hist_bucket(latency_ms), toUInt64(1))) AS latency_hist,
    countIf(ttft_ms IS NOT NULL) AS ttft_count,
    sum(toFloat64(ifNull(ttft_ms, 0))) AS ttft_ms_sum,
    sumMapIf(map(promptpulse_hist_bucket(ifNull(ttft_ms, 0)), toUInt64(1)), ttft_ms IS NOT NULL) AS ttft_hist,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_creation_tokens) AS cache_creation_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    countIf(NOT usage_known) AS calls_without_usage,
    countIf(usage_known AND NOT cost_known) AS calls_unpriced,
    countIf(NOT cost_known) AS calls_without_cost,
    sum(toDecimal128(cost_usd, 12)) AS cost_usd,
    uniqStateIf(user_id, user_id != '') AS users,
    countIf(http_status BETWEEN 500 AND 599) AS http_5xx,
    sum(toUInt64(retry_count)) AS retries,
    countIf(retry_count > 0) AS retried_calls,
    sumIf(toFloat64(latency_ms), ttft_ms IS NOT NULL) AS stream_latency_ms_sum
FROM ${DB}.llm_calls${LOCAL}
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- llm_calls_mv as in 003, plus usage_known and the new cost_source. It replaces the view of every layout (older data
-- dirs kept their own, tests/processor/test_schema_upgrade.py): it names both the inputs of today's table
-- (trace_id_in, latency_in, ...) and the stored columns of earlier layouts (trace_id, latency_ms, ...); a view's
-- output column the target table cannot take (EPHEMERAL on old tables, ALIAS on new ones) is dropped.
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
        c.usage_known AND (p1.matched = 1 OR p2.matched = 1),
            toDecimal64(toDecimal128(
                toDecimal128(p_in, 9) * if(t_in > t_cr + t_cw, t_in - t_cr - t_cw, 0)
                + toDecimal128(p_out, 9) * if(t_out > t_re, t_out - t_re, 0)
                + toDecimal128(ifNull(p_cr, 0), 9) * t_cr
                + toDecimal128(ifNull(p_cw, 0), 9) * t_cw
                + toDecimal128(ifNull(p_re, 0), 9) * t_re, 18) / 1000000, 12),
        toDecimal64(0, 12)) AS cost_usd,
    multiIf(c.span_cost IS NOT NULL, 'span', NOT c.usage_known, 'unknown',
            p1.matched = 1 OR p2.matched = 1, 'model_prices', 'unpriced') AS cost_source,
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
