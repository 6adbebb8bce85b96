-- Online evaluation (docs/EVALUATION.md): a rule's result is an llm_scores row that also says which rule and
-- metric produced it, whether the rule is a guardrail (and of which type), and the judge model and its cost.
-- name = the rule's name, so every reader of llm_scores (GET /api/scores, the score rollups, quality_regression)
-- shows rule scores as it shows feedback. reason = the explanation (an ALIAS of comment, no storage).
-- judge_cost_usd is NULL for heuristics (no judge) and for a judge whose model has no price (unknown, never 0).
-- source: 'evaluation' for rule results, 'otlp' / 'api' / ... for scores given by hand.
-- On a cluster each ALTER runs on the shard-local table and then on its Distributed table; on a single node both
-- name the same table and the second is a no-op (IF NOT EXISTS).
ALTER TABLE ${DB}.llm_scores${LOCAL} ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS rule LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS metric LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS guardrail LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS judge_model LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS judge_cost_usd Nullable(Float64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS reason String ALIAS comment;

ALTER TABLE ${DB}.llm_scores ${ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS rule LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS metric LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS guardrail LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS judge_model LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS judge_cost_usd Nullable(Float64),
    ADD COLUMN IF NOT EXISTS reason String ALIAS comment;

-- A rule that could not score a call (content missing, a judge that failed or answered badly): an evaluation error,
-- kept apart so it never counts as a score. The judge's cost is spent all the same.
CREATE TABLE IF NOT EXISTS ${DB}.llm_eval_errors${LOCAL} ${ON_CLUSTER}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    rule LowCardinality(String),
    metric LowCardinality(String),
    error String CODEC(ZSTD(1)),
    judge_model LowCardinality(String),
    judge_cost_usd Nullable(Float64) CODEC(ZSTD(1)),
    source LowCardinality(String)
)
ENGINE = ${ENGINE:MergeTree}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (rule, timestamp, trace_id)
TTL toDateTime(timestamp) + toIntervalDay(${TTL_CALLS_DAYS})
SETTINGS ${DEDUP_WINDOW};

-- Evaluation results sent as spans by the in-app evaluator (promptpulse.evaluation): the score spans of 008 with
-- the promptpulse.evaluation.* attributes. MODIFY QUERY: the same view, filling the new columns.
ALTER TABLE ${DB}.llm_scores_from_spans_mv ${ON_CLUSTER} MODIFY QUERY
SELECT
    toDateTime64(Timestamp, 3, 'UTC') AS timestamp,
    TraceId AS trace_id,
    ParentSpanId AS span_id,
    SpanAttributes['gen_ai.evaluation.name'] AS name,
    assumeNotNull(toFloat64OrNull(SpanAttributes['gen_ai.evaluation.score.value'])) AS value,
    SpanAttributes['gen_ai.evaluation.score.label'] AS label,
    SpanAttributes['gen_ai.evaluation.explanation'] AS comment,
    if(SpanAttributes['promptpulse.evaluation.rule'] != '', 'evaluation', 'otlp') AS source,
    SpanAttributes['promptpulse.evaluation.rule'] AS rule,
    SpanAttributes['promptpulse.evaluation.metric'] AS metric,
    SpanAttributes['promptpulse.evaluation.guardrail'] AS guardrail,
    SpanAttributes['promptpulse.evaluation.judge.model'] AS judge_model,
    toFloat64OrNull(SpanAttributes['promptpulse.evaluation.judge.cost_usd']) AS judge_cost_usd
FROM ${DB}.otel_traces${LOCAL}
WHERE SpanAttributes['gen_ai.evaluation.name'] != ''
  AND toFloat64OrNull(SpanAttributes['gen_ai.evaluation.score.value']) IS NOT NULL;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.llm_eval_errors_from_spans_mv ${ON_CLUSTER}
TO ${DB}.llm_eval_errors${LOCAL} AS
SELECT
    toDateTime64(Timestamp, 3, 'UTC') AS timestamp,
    TraceId AS trace_id,
    ParentSpanId AS span_id,
    SpanAttributes['promptpulse.evaluation.rule'] AS rule,
    SpanAttributes['promptpulse.evaluation.metric'] AS metric,
    SpanAttributes['promptpulse.evaluation.error'] AS error,
    SpanAttributes['promptpulse.evaluation.judge.model'] AS judge_model,
    toFloat64OrNull(SpanAttributes['promptpulse.evaluation.judge.cost_usd']) AS judge_cost_usd,
    'otlp' AS source
FROM ${DB}.otel_traces${LOCAL}
WHERE SpanAttributes['promptpulse.evaluation.error'] != '';

-- Guardrails: checks and failures (value < 0.5) per hour, guardrail type and rule, with the checked call's
-- dimensions (rule results always name their call by span_id). Read with a time filter on hour; failure rate =
-- sum(failures) / sum(checks).
CREATE VIEW IF NOT EXISTS ${DB}.guardrail_failures ${ON_CLUSTER} AS
SELECT
    toStartOfHour(s.timestamp) AS hour, s.guardrail AS guardrail, s.rule AS rule,
    c.service AS service, c.environment AS environment, c.prompt_name AS prompt_name,
    c.prompt_version AS prompt_version, c.model AS model, c.feature AS feature,
    count() AS checks, countIf(s.value < 0.5) AS failures
FROM ${DB}.llm_scores AS s
LEFT JOIN
(
    SELECT trace_id, span_id, service, environment, prompt_name, prompt_version,
           if(request_model != '', request_model, response_model) AS model, feature
    FROM ${DB}.llm_calls
    WHERE trace_id IN (SELECT trace_id FROM ${DB}.llm_scores WHERE guardrail != '')
) AS c ON c.trace_id = s.trace_id AND c.span_id = s.span_id
WHERE s.guardrail != ''
GROUP BY hour, guardrail, rule, service, environment, prompt_name, prompt_version, model, feature;

-- The judges' own LLM calls (made in the app through the instrumented SDKs, feature ${EVALUATION_FEATURE}): the cost
-- of evaluation per day, service and judge model, apart from the app's traffic. Results also carry their judge's
-- cost (llm_scores / llm_eval_errors.judge_cost_usd), which covers processor-side judges too.
CREATE VIEW IF NOT EXISTS ${DB}.evaluation_cost ${ON_CLUSTER} AS
SELECT
    toDate(timestamp) AS day, service, provider, if(request_model != '', request_model, response_model) AS model,
    count() AS calls, countIf(status = 'error') AS errors, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sumIf(cost_usd, cost_known) AS cost_usd,
    countIf(NOT cost_known) AS calls_without_cost
FROM ${DB}.llm_calls
WHERE feature = ${EVALUATION_FEATURE}
GROUP BY day, service, provider, model;
