-- Calls per minute over all series (an aggregate projection of llm_calls_1m), for the Overview's peak RPM: the
-- busiest minute of a range is read at 1-minute resolution over any range, and at 30 days with 10M calls that is
-- ~5M series-minute rows grouped by minute (~150 ms); the projection holds one row per minute (43,200 for 30 days:
-- ~30 ms, docs/BENCHMARKS.md "Console first render"). ClickHouse answers from it by itself when a query sums calls
-- by bucket with no series filter (the dashboards' filters all set to All); a filter reads the table's own rows.
-- Same sums, so every reader gets the same numbers. As 010: AggregatingMergeTree needs
-- deduplicate_merge_projection_mode for a projection ('rebuild' recomputes it from merged rows); parts written
-- before this file carry no projection until they are merged and are read from the table (same answer). Both
-- statements are no-ops when applied again.
ALTER TABLE ${DB}.llm_calls_1m${LOCAL} ${ON_CLUSTER} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE ${DB}.llm_calls_1m${LOCAL} ${ON_CLUSTER} ADD PROJECTION IF NOT EXISTS per_minute
    (SELECT bucket, sum(calls) GROUP BY bucket);
