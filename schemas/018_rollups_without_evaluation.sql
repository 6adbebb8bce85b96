-- Issue 15 §2: an in-app judge's own LLM calls (feature ${EVALUATION_FEATURE}) are counted on their own, never in the
-- app's metrics. The minute rollup skips them (1h and 1d cascade from it), so every service-level total read from the
-- rollups is the app's traffic only; the evaluation cost stays visible in evaluation_cost (014, read from llm_calls)
-- and on the results (judge_cost_usd). The view as in 013 plus the WHERE (MODIFY QUERY: atomic, no insert missed).
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
WHERE feature != ${EVALUATION_FEATURE}
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- Rollup rows written before this file: drop the judges' series (their calls stay in llm_calls and evaluation_cost).
-- A no-op once done; mutations_sync so the processor starts on the corrected rollups.
ALTER TABLE ${DB}.llm_calls_1m${LOCAL} ${ON_CLUSTER} DELETE WHERE feature = ${EVALUATION_FEATURE} SETTINGS mutations_sync = 2;

ALTER TABLE ${DB}.llm_calls_1h${LOCAL} ${ON_CLUSTER} DELETE WHERE feature = ${EVALUATION_FEATURE} SETTINGS mutations_sync = 2;

ALTER TABLE ${DB}.llm_calls_1d${LOCAL} ${ON_CLUSTER} DELETE WHERE feature = ${EVALUATION_FEATURE} SETTINGS mutations_sync = 2;
