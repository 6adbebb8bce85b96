-- Daily rollup: the columns of llm_calls_1h, one row per UTC day and series, fed by a cascade from llm_calls_1h
-- (llm_calls -> 1m -> 1h -> 1d). Long ranges read whole days here and only their partial first and last day from
-- llm_calls_1h (dashboards/queries.py, processor/analytics.py): a 30-day p99 merges ~30 rows per series instead of
-- ~720, and daily histograms stop growing once a day covers the latency range, so the query does not grow with
-- traffic (docs/BENCHMARKS.md "Queries"). Sums, histograms and uniq states add exactly, so a range read through
-- days + edge hours gives the same numbers as the same range read from llm_calls_1h alone.
-- Created with AS SELECT: on a data dir from before this file, the first apply copies the existing hourly rows
-- (bucket floored to the day; the engine merges them) before the view below exists; IF NOT EXISTS makes every
-- later apply a no-op. The processor applies the schema before it accepts spans, so no hour is missed or doubled.
CREATE TABLE IF NOT EXISTS ${DB}.llm_calls_1d${LOCAL} ${ON_CLUSTER}
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (service, prompt_name, prompt_version, model, provider, environment, operation, feature, bucket)
TTL bucket + toIntervalDay(${TTL_1H_DAYS})
SETTINGS ttl_only_drop_parts = 1, ${DEDUP_WINDOW}
AS SELECT toStartOfDay(bucket) AS bucket, * EXCEPT bucket FROM ${DB}.llm_calls_1h${LOCAL};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_calls_1d_mv ${ON_CLUSTER} TO ${DB}.llm_calls_1d${LOCAL} AS
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
    sum(cost_usd) AS cost_usd,
    uniqMergeState(users) AS users,
    sum(http_5xx) AS http_5xx,
    sum(retries) AS retries,
    sum(retried_calls) AS retried_calls,
    sum(stream_latency_ms_sum) AS stream_latency_ms_sum
FROM ${DB}.llm_calls_1h${LOCAL} AS h
GROUP BY bucket, service, environment, prompt_name, prompt_version, model, provider, operation, feature;
