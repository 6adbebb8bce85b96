-- Alert state history written by the alert evaluator: one row per state change of a rule's series.
-- Small; replicated to every node on a cluster, never sharded.
CREATE TABLE IF NOT EXISTS ${DB}.alert_events ${ON_CLUSTER}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    rule LowCardinality(String),
    severity LowCardinality(String),
    state Enum8('pending' = 1, 'firing' = 2, 'resolved' = 3),
    labels Map(LowCardinality(String), String),
    value Float64,
    threshold Float64,
    message String
)
ENGINE = ${ENGINE:MergeTree}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (rule, timestamp)
TTL toDateTime(timestamp) + toIntervalDay(${TTL_1H_DAYS})
SETTINGS ${DEDUP_WINDOW};
