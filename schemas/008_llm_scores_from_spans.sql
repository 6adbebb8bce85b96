-- Scores sent as spans — promptpulse.score() and any OTLP producer following docs/INSTRUMENTATION.md: a span with
-- gen_ai.evaluation.name whose parent is the evaluated call. The score names its call by (TraceId, ParentSpanId);
-- llm_scores_1m_mv (007) then attributes it to the call's dimensions like any other score.
-- Only evaluation spans pass the WHERE, so the view costs one map lookup per inserted span.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_scores_from_spans_mv ${ON_CLUSTER} TO ${DB}.llm_scores${LOCAL} AS
SELECT
    toDateTime64(Timestamp, 3, 'UTC') AS timestamp,
    TraceId AS trace_id,
    ParentSpanId AS span_id,
    SpanAttributes['gen_ai.evaluation.name'] AS name,
    assumeNotNull(toFloat64OrNull(SpanAttributes['gen_ai.evaluation.score.value'])) AS value,
    SpanAttributes['gen_ai.evaluation.score.label'] AS label,
    SpanAttributes['gen_ai.evaluation.explanation'] AS comment,
    'otlp' AS source
FROM ${DB}.otel_traces${LOCAL}
WHERE SpanAttributes['gen_ai.evaluation.name'] != ''
  AND toFloat64OrNull(SpanAttributes['gen_ai.evaluation.score.value']) IS NOT NULL;
