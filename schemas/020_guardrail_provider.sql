-- guardrail_failures (014) with the checked call's provider, so the Quality dashboard's provider filter applies to
-- the guardrail panels as to every other panel. A plain view has no MODIFY QUERY: CREATE OR REPLACE (atomic; the
-- same view on every apply). 020: 019 is taken by another change.
CREATE OR REPLACE VIEW ${DB}.guardrail_failures ${ON_CLUSTER} AS
SELECT
    toStartOfHour(s.timestamp) AS hour, s.guardrail AS guardrail, s.rule AS rule,
    c.service AS service, c.environment AS environment, c.prompt_name AS prompt_name,
    c.prompt_version AS prompt_version, c.model AS model, c.provider AS provider, c.feature AS feature,
    count() AS checks, countIf(s.value < 0.5) AS failures
FROM ${DB}.llm_scores AS s
LEFT JOIN
(
    SELECT trace_id, span_id, service, environment, prompt_name, prompt_version,
           if(request_model != '', request_model, response_model) AS model, provider, feature
    FROM ${DB}.llm_calls
    WHERE trace_id IN (SELECT trace_id FROM ${DB}.llm_scores WHERE guardrail != '')
) AS c ON c.trace_id = s.trace_id AND c.span_id = s.span_id
WHERE s.guardrail != ''
GROUP BY hour, guardrail, rule, service, environment, prompt_name, prompt_version, model, provider, feature;
