-- Tag rollups (issue 13 §1: a tag filter). llm_calls.tags is an Array: a call can carry several tags, and the
-- rollups of 004/009 keep none. llm_calls_tags_1m / _1h: the columns of llm_calls_1m / _1h (same order: readers
-- UNION them with `* EXCEPT tag`, tests/processor/test_tag_rollups.py checks it) plus `tag`, one row per (tag,
-- series, bucket). A call counts once under each of its distinct non-empty tags: the rows of different tags must
-- never be added up (a call with two tags is in both), so readers filter on one tag (the dashboards' `tag` variable
-- is single-valued). Untagged calls are in no row here; the untagged rollups stay the source for "all calls".
-- Judge calls (feature ${EVALUATION_FEATURE}) are never app traffic, as in 018. No daily table: a tagged long range
-- reads these hours (dashboards/queries.py). TTLs as llm_calls_1m / _1h.
-- Created with AS SELECT (as 009): on a data dir from before this file, the first apply backfills every call
-- llm_calls still holds (its TTL, 90 days by default: tagged history older than that is not recoverable) before the
-- views below exist; IF NOT EXISTS makes every later apply a no-op. The processor applies the schema before it
-- accepts spans, so no call is missed or doubled. The minute table takes only the calls within its own TTL.
CREATE TABLE IF NOT EXISTS ${DB}.llm_calls_tags_1m${LOCAL} ${ON_CLUSTER}
(
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    tag LowCardinality(String),
    service LowCardinality(String),
    environment LowCardinality(String),
    prompt_name LowCardinality(String),
    prompt_version LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    operation LowCardinality(String),
    feature LowCardinality(String),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    errors_timeout SimpleAggregateFunction(sum, UInt64),
    errors_rate_limit SimpleAggregateFunction(sum, UInt64),
    errors_model_error SimpleAggregateFunction(sum, UInt64),
    errors_validation SimpleAggregateFunction(sum, UInt64),
    errors_auth SimpleAggregateFunction(sum, UInt64),
    errors_system SimpleAggregateFunction(sum, UInt64),
    streams SimpleAggregateFunction(sum, UInt64),
    latency_ms_sum SimpleAggregateFunction(sum, Float64),
    latency_hist SimpleAggregateFunction(sumMap, Map(UInt16, UInt64)),
    ttft_count SimpleAggregateFunction(sum, UInt64),
    ttft_ms_sum SimpleAggregateFunction(sum, Float64),
    ttft_hist SimpleAggregateFunction(sumMap, Map(UInt16, UInt64)),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cache_read_tokens SimpleAggregateFunction(sum, UInt64),
    cache_creation_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens SimpleAggregateFunction(sum, UInt64),
    calls_without_usage SimpleAggregateFunction(sum, UInt64),
    calls_unpriced SimpleAggregateFunction(sum, UInt64),
    calls_without_cost SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 12)),
    users AggregateFunction(uniq, String),
    http_5xx SimpleAggregateFunction(sum, UInt64),
    retries SimpleAggregateFunction(sum, UInt64),
    retried_calls SimpleAggregateFunction(sum, UInt64),
    stream_latency_ms_sum SimpleAggregateFunction(sum, Float64)
)
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (tag, service, prompt_name, prompt_version, model, provider, environment, operation, feature, bucket)
TTL bucket + toIntervalDay(${TTL_1M_DAYS})
SETTINGS ttl_only_drop_parts = 1, ${DEDUP_WINDOW}
AS SELECT
    toStartOfMinute(timestamp) AS bucket,
    tag, service, environment, prompt_name, prompt_version,
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
ARRAY JOIN arrayFilter(t -> t != '', arrayDistinct(tags)) AS tag
WHERE feature != ${EVALUATION_FEATURE} AND timestamp >= now() - toIntervalDay(${TTL_1M_DAYS})
GROUP BY bucket, tag, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- The hourly backfill reads llm_calls, not llm_calls_tags_1m: the minute table keeps 35 days (TTL_1M_DAYS), the calls
-- 90, so reading the minutes would lose the older tagged hours.
CREATE TABLE IF NOT EXISTS ${DB}.llm_calls_tags_1h${LOCAL} ${ON_CLUSTER}
(
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    tag LowCardinality(String),
    service LowCardinality(String),
    environment LowCardinality(String),
    prompt_name LowCardinality(String),
    prompt_version LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    operation LowCardinality(String),
    feature LowCardinality(String),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    errors_timeout SimpleAggregateFunction(sum, UInt64),
    errors_rate_limit SimpleAggregateFunction(sum, UInt64),
    errors_model_error SimpleAggregateFunction(sum, UInt64),
    errors_validation SimpleAggregateFunction(sum, UInt64),
    errors_auth SimpleAggregateFunction(sum, UInt64),
    errors_system SimpleAggregateFunction(sum, UInt64),
    streams SimpleAggregateFunction(sum, UInt64),
    latency_ms_sum SimpleAggregateFunction(sum, Float64),
    latency_hist SimpleAggregateFunction(sumMap, Map(UInt16, UInt64)),
    ttft_count SimpleAggregateFunction(sum, UInt64),
    ttft_ms_sum SimpleAggregateFunction(sum, Float64),
    ttft_hist SimpleAggregateFunction(sumMap, Map(UInt16, UInt64)),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cache_read_tokens SimpleAggregateFunction(sum, UInt64),
    cache_creation_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens SimpleAggregateFunction(sum, UInt64),
    calls_without_usage SimpleAggregateFunction(sum, UInt64),
    calls_unpriced SimpleAggregateFunction(sum, UInt64),
    calls_without_cost SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 12)),
    users AggregateFunction(uniq, String),
    http_5xx SimpleAggregateFunction(sum, UInt64),
    retries SimpleAggregateFunction(sum, UInt64),
    retried_calls SimpleAggregateFunction(sum, UInt64),
    stream_latency_ms_sum SimpleAggregateFunction(sum, Float64)
)
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tag, service, prompt_name, prompt_version, model, provider, environment, operation, feature, bucket)
TTL bucket + toIntervalDay(${TTL_1H_DAYS})
SETTINGS ttl_only_drop_parts = 1, ${DEDUP_WINDOW}
AS SELECT
    toStartOfHour(timestamp) AS bucket,
    tag, service, environment, prompt_name, prompt_version,
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
ARRAY JOIN arrayFilter(t -> t != '', arrayDistinct(tags)) AS tag
WHERE feature != ${EVALUATION_FEATURE}
GROUP BY bucket, tag, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- The minute view: llm_calls_1m_mv (018) with the ARRAY JOIN over the call's distinct non-empty tags.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_tags_1m_mv ${ON_CLUSTER} TO ${DB}.llm_calls_tags_1m${LOCAL} AS
SELECT
    toStartOfMinute(timestamp) AS bucket,
    tag, service, environment, prompt_name, prompt_version,
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
ARRAY JOIN arrayFilter(t -> t != '', arrayDistinct(tags)) AS tag
WHERE feature != ${EVALUATION_FEATURE}
GROUP BY bucket, tag, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- The hourly view cascades from the minute table's inserted blocks, as llm_calls_1h_mv (004): re-aggregating the few
-- minute rows of a batch costs less than grouping every (call, tag) again, and sums, histograms and uniq states add
-- exactly. Deduplication cascades too.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_tags_1h_mv ${ON_CLUSTER} TO ${DB}.llm_calls_tags_1h${LOCAL} AS
SELECT
    toStartOfHour(m.bucket) AS bucket,
    tag, service, environment, prompt_name, prompt_version, model, provider, operation, feature,
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
FROM ${DB}.llm_calls_tags_1m${LOCAL} AS m
GROUP BY bucket, tag, service, environment, prompt_name, prompt_version, model, provider, operation, feature;
