-- Quality scores and user feedback attached to one LLM call (trace_id, span_id) or a whole trace (span_id '').
CREATE TABLE IF NOT EXISTS ${DB}.llm_scores${LOCAL} ${ON_CLUSTER}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    name LowCardinality(String),
    value Float64 CODEC(ZSTD(1)),
    label LowCardinality(String),
    comment String CODEC(ZSTD(1)),
    source LowCardinality(String),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ${ENGINE:MergeTree}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (name, timestamp, trace_id)
TTL toDateTime(timestamp) + toIntervalDay(${TTL_CALLS_DAYS})
SETTINGS ${DEDUP_WINDOW};
