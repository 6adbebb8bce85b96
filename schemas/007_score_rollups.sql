-- Score rollups. Scores arrive after their calls (user feedback minutes or days later, evaluations in a later
-- batch), so they cannot be counted in llm_calls_1m/1h, whose rows are written once per call batch. Instead each
-- inserted llm_scores block is attributed to its call *at insert time* and aggregated into its own rollup:
--   llm_scores (insert) --llm_scores_1m_mv: look up the scored call in llm_calls--> llm_scores_1m --> llm_scores_1h
-- Attribution (the same rule as GET /api/scores): a score names its call by (trace_id, span_id); a trace-level
-- score (span_id '') goes to the trace's first LLM call. The lookup reads only the block's traces
-- (trace_id IN the inserted block: the idx_trace_id bloom filter skips the rest of llm_calls). A score whose call is
-- not in llm_calls at insert time (not yet arrived, or past its TTL) keeps empty dimensions and is counted in
-- `unattributed`; it is never attributed later (the raw-row panels join at query time and would).
-- Time bucket = the score's own timestamp (when the feedback was given), as the dashboards, alerts and API filter.
-- Dimensions are those of llm_calls_1m, so the same dashboard filters apply; plus the score `name`.
-- Read: avg = sum(value_sum) / sum(scores); positive % = sum(positives) / sum(scores) (value >= 0.5);
-- min(value_min), max(value_max); sumMap(value_hist) counts scores per 0.1 step (key = floor(value * 10));
-- uniqMerge(scored_calls) = distinct (trace_id, span_id) scored.
CREATE TABLE IF NOT EXISTS ${DB}.llm_scores_1m${LOCAL} ${ON_CLUSTER}
(
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    name LowCardinality(String),
    service LowCardinality(String),
    environment LowCardinality(String),
    prompt_name LowCardinality(String),
    prompt_version LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    operation LowCardinality(String),
    feature LowCardinality(String),
    scores SimpleAggregateFunction(sum, UInt64),
    value_sum SimpleAggregateFunction(sum, Float64),
    value_min SimpleAggregateFunction(min, Float64),
    value_max SimpleAggregateFunction(max, Float64),
    positives SimpleAggregateFunction(sum, UInt64),
    value_hist SimpleAggregateFunction(sumMap, Map(Int32, UInt64)),
    unattributed SimpleAggregateFunction(sum, UInt64),
    scored_calls AggregateFunction(uniq, String, String)
)
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (service, prompt_name, prompt_version, model, provider, environment, operation, feature, name, bucket)
TTL bucket + toIntervalDay(${TTL_1M_DAYS})
SETTINGS ${DEDUP_WINDOW};

CREATE TABLE IF NOT EXISTS ${DB}.llm_scores_1h${LOCAL} ${ON_CLUSTER} AS ${DB}.llm_scores_1m${LOCAL}
ENGINE = ${ENGINE:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (service, prompt_name, prompt_version, model, provider, environment, operation, feature, name, bucket)
TTL bucket + toIntervalDay(${TTL_1H_DAYS})
SETTINGS ${DEDUP_WINDOW};

-- c.calls: the trace's LLM calls sorted by time, as (span_id, timestamp, service, environment, prompt_name,
-- prompt_version, model, provider, operation, feature); a missing trace gives [] and so an all-empty tuple.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_scores_1m_mv ${ON_CLUSTER} TO ${DB}.llm_scores_1m${LOCAL} AS
SELECT
    toStartOfMinute(timestamp) AS bucket,
    name,
    call.3 AS service, call.4 AS environment, call.5 AS prompt_name, call.6 AS prompt_version, call.7 AS model,
    call.8 AS provider, call.9 AS operation, call.10 AS feature,
    count() AS scores,
    sum(value) AS value_sum,
    min(value) AS value_min,
    max(value) AS value_max,
    countIf(value >= 0.5) AS positives,
    sumMap(map(toInt32(if(isFinite(value), greatest(least(floor(value * 10), 1000000000), -1000000000), 0)),
               toUInt64(1))) AS value_hist,
    countIf(call.1 = '') AS unattributed,
    uniqState(trace_id, span_id) AS scored_calls
FROM
(
    SELECT s.timestamp AS timestamp, s.name AS name, s.value AS value, s.trace_id AS trace_id, s.span_id AS span_id,
           if(s.span_id = '', c.calls[1], arrayFirst(x -> x.1 = s.span_id, c.calls)) AS call
    FROM ${DB}.llm_scores${LOCAL} AS s
    LEFT JOIN
    (
        SELECT trace_id,
               arraySort(x -> x.2, groupArray((span_id, timestamp, service, environment, prompt_name, prompt_version,
                                               if(request_model != '', request_model, response_model), provider,
                                               operation, feature))) AS calls
        FROM ${DB}.llm_calls${LOCAL}
        WHERE trace_id IN (SELECT trace_id FROM ${DB}.llm_scores${LOCAL})
        GROUP BY trace_id
    ) AS c ON s.trace_id = c.trace_id
)
GROUP BY bucket, name, service, environment, prompt_name, prompt_version, model, provider, operation, feature;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_scores_1h_mv ${ON_CLUSTER} TO ${DB}.llm_scores_1h${LOCAL} AS
SELECT
    toStartOfHour(m.bucket) AS bucket,
    name, service, environment, prompt_name, prompt_version, model, provider, operation, feature,
    sum(scores) AS scores,
    sum(value_sum) AS value_sum,
    min(value_min) AS value_min,
    max(value_max) AS value_max,
    sum(positives) AS positives,
    sumMap(value_hist) AS value_hist,
    sum(unattributed) AS unattributed,
    uniqMergeState(scored_calls) AS scored_calls
FROM ${DB}.llm_scores_1m${LOCAL} AS m
GROUP BY bucket, name, service, environment, prompt_name, prompt_version, model, provider, operation, feature;
