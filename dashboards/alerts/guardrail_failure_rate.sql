-- Guardrail failure rate above 5%
-- rule: guardrail_failure_rate; severity: warning; labels: guardrail, rule, service, environment, prompt_name
-- Failed guardrail checks / guardrail checks in the hours overlapping the last hour (the hourly view guardrail_failures, schemas/014), per guardrail type, rule, service, environment and prompt.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 3600: window in seconds: the hour buckets from toStartOfHour(now - window_s) up to now
--   max_failure_pct Float64 = 5.0: failure rate threshold, percent
--   min_checks UInt32 = 20: ignore series with fewer checks in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    guardrail, rule, service, environment, prompt_name,
    sum(checks) AS n_checks,
    sum(failures) AS n_failures,
    100 * n_failures / n_checks AS value,
    {max_failure_pct:Float64} AS threshold
FROM guardrail_failures
WHERE hour >= toStartOfHour(t_end - toIntervalSecond({window_s:UInt32})) AND hour < t_end
GROUP BY guardrail, rule, service, environment, prompt_name
HAVING n_checks >= {min_checks:UInt32} AND value > threshold
ORDER BY value DESC
