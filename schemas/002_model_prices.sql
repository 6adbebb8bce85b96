-- Dated per-model prices, USD per million tokens. Loaded by Python at schema apply from the one bundled price
-- table (promptpulse.instrumentation.pricing.load_prices(): instrumentation/prices/prices.csv plus
-- PROMPTPULSE_PRICES_FILE); `model` is already normalised (pricing.normalize_model). Rows that leave the table are
-- written again with is_deleted = 1, so `FROM model_prices FINAL` always equals the loaded table.
-- A small table read by the llm_calls materialized view: replicated to every node on a cluster, never sharded.
CREATE TABLE IF NOT EXISTS ${DB}.model_prices ${ON_CLUSTER}
(
    provider LowCardinality(String),
    model String,
    effective_date Date,
    input_per_mtok Decimal(18, 9),
    output_per_mtok Decimal(18, 9),
    cache_read_per_mtok Nullable(Decimal(18, 9)),
    cache_write_per_mtok Nullable(Decimal(18, 9)),
    reasoning_per_mtok Nullable(Decimal(18, 9)),
    version UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ${ENGINE:ReplacingMergeTree(version, is_deleted)}
ORDER BY (provider, model, effective_date);
