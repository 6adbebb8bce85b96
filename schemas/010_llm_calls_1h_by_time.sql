-- A time-ordered copy of llm_calls_1h's rows (a projection), for the edge hours of long ranges: a 30-day range reads
-- its whole days from llm_calls_1d and only its partial first and last day from llm_calls_1h (009). In the table's
-- series-first order every granule holds some series' first or last day (a series is a prompt version: ~10 days of
-- hours here, less than a granule), so those ~2 days of hours cost a scan of most hourly maps; in bucket order they
-- are a few contiguous granules (10M calls: the 30-day p99 query 50 -> 32 ms, docs/BENCHMARKS.md "Queries").
-- ClickHouse picks the projection by itself when it reads fewer granules (range-only filters); prompt or
-- series filters still read the table's own order. Same rows, so every reader gets the same numbers.
-- AggregatingMergeTree allows a projection only with deduplicate_merge_projection_mode set: 'rebuild' recomputes it
-- from the merged rows. Both statements are no-ops when applied again. Parts written before this file carry no
-- projection until they are merged; ClickHouse reads such parts from the table's order (same answer, slower).
ALTER TABLE ${DB}.llm_calls_1h${LOCAL} ${ON_CLUSTER} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE ${DB}.llm_calls_1h${LOCAL} ${ON_CLUSTER} ADD PROJECTION IF NOT EXISTS by_time (SELECT * ORDER BY bucket);
