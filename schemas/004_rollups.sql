-- Percentile helpers. Latency and TTFT distributions are stored as log-bucket histograms, Map(UInt16, UInt64)
-- merged with sumMap: bucket k > 0 holds values v (ms) with 1.02^(k-401) < v <= 1.02^(k-400); k = 0 holds v <= 0.
-- Reading a bucket back as 2 * 1.02^(k-400) / 2.02 is within 1% of every value in it (see docs/SCHEMA.md).
--   SELECT prompt_name, promptpulse_hist_quantile(sumMap(latency_hist), 0.95) FROM llm_calls_1h GROUP BY prompt_name
--   promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99]) gives an array.
-- SQL functions are server-global (not per database), hence the promptpulse_ prefix.
CREATE FUNCTION IF NOT EXISTS promptpulse_hist_bucket ${ON_CLUSTER} AS (v) ->
    if(v > 0, toUInt16(greatest(least(ceil(log(v) / log(1.02)) + 400, 65535), 1)), toUInt16(0));

CREATE FUNCTION IF NOT EXISTS promptpulse_hist_value ${ON_CLUSTER} AS (k) ->
    if(k = 0, 0., pow(1.02, k - 400) * 2 / 2.02);

CREATE FUNCTION IF NOT EXISTS promptpulse_hist_quantile ${ON_CLUSTER} AS (h, q) ->
    if(empty(mapKeys(h)), nan,
       promptpulse_hist_value(arrayElement(mapKeys(mapSort(h)),
           arrayFirstIndex(c -> c >= greatest(1, ceil(q * arraySum(mapValues(h)))),
                           arrayCumSum(mapValues(mapSort(h)))))));

CREATE FUNCTION IF NOT EXISTS promptpulse_hist_quantiles ${ON_CLUSTER} AS (h, qs) ->
    arrayMap(q -> promptpulse_hist_quantile(h, q), qs);

-- Rollups: one row per time bucket and series (service, environment, prompt, version, model, provider,
-- operation, feature). `model` is the requested model (the answering model when none was requested).
-- Counters are SimpleAggregateFunction(sum ...): read them with sum(); histograms with sumMap(); users with
-- uniqMerge(users). Never average stored quantiles: merge the histograms, then take the quantile.
CREATE TABLE IF NOT EXISTS ${DB}.llm_calls_1m${LOCAL} ${ON_CLUSTER}
(
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
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
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 12)),
    users AggregateFunction(uniq, String),
    http_5xx SimpleAggregateFunction(sum, UInt64),  -- http_status 500-599 (the "any 5xx" alert)
    retries SimpleAggregateFunction(sum, UInt64),  -- sum(retry_count)
    retried_calls SimpleAggregateFunction(sum, UInt64),  -- calls with retry_count > 0
    stream_latency_ms_sum SimpleAggregateFunction(sum, Float64)  -- latency of the ttft_count calls
)
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (service, prompt_name, prompt_version, model, provider, environment, operation, feature, bucket)
TTL bucket + toIntervalDay(${TTL_1M_DAYS})
SETTINGS ttl_only_drop_parts = 1, ${DEDUP_WINDOW};

-- index_granularity 256 (~10 days of one series per granule): long-range queries read whole days from
-- llm_calls_1d and only the first and last day's hours here; with the default 8192 every granule holds some series'
-- first or last day and the edges cost a full scan (10M calls: 55 -> 32 ms for the 30-day p99, docs/BENCHMARKS.md).
CREATE TABLE IF NOT EXISTS ${DB}.llm_calls_1h${LOCAL} ${ON_CLUSTER} AS ${DB}.llm_calls_1m${LOCAL}
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (service, prompt_name, prompt_version, model, provider, environment, operation, feature, bucket)
TTL bucket + toIntervalDay(${TTL_1H_DAYS})
SETTINGS ttl_only_drop_parts = 1, index_granularity = 256, ${DEDUP_WINDOW};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_1m_mv ${ON_CLUSTER} TO ${DB}.llm_calls_1m${LOCAL} AS
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
    sum(toDecimal128(cost_usd, 12)) AS cost_usd,
    uniqStateIf(user_id, user_id != '') AS users,
    countIf(http_status BETWEEN 500 AND 599) AS http_5xx,
    sum(toUInt64(retry_count)) AS retries,
    countIf(retry_count > 0) AS retried_calls,
    sumIf(toFloat64(latency_ms), ttft_ms IS NOT NULL) AS stream_latency_ms_sum
FROM ${DB}.llm_calls${LOCAL}
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

-- The hourly rollup is fed from the minute rollup's inserted blocks (a cascade), not from llm_calls: re-aggregating
-- the few minute rows of a batch costs a fraction of grouping every call again (measured in docs/BENCHMARKS.md).
-- Sums and histogram maps add exactly; users merges the uniq states. Deduplication cascades too
-- (deduplicate_blocks_in_dependent_materialized_views).
CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_1h_mv ${ON_CLUSTER} TO ${DB}.llm_calls_1h${LOCAL} AS
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
    sum(cost_usd) AS cost_usd,
    uniqMergeState(users) AS users,
    sum(http_5xx) AS http_5xx,
    sum(retries) AS retries,
    sum(retried_calls) AS retried_calls,
    sum(stream_latency_ms_sum) AS stream_latency_ms_sum
FROM ${DB}.llm_calls_1m${LOCAL} AS m
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;
