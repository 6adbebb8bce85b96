-- Success rate below 95% (warning) / 90% (critical)
-- rule: success_rate; severity: per-row; labels: service, environment, prompt_name, model, provider, severity
-- Successful calls / calls over the last 5 minutes; severity critical below 90%, warning below 95%.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 300: evaluation window in seconds (complete minutes ending at now)
--   warning_below Float64 = 95.0: warning when success % is below
--   critical_below Float64 = 90.0: critical when success % is below
--   min_calls UInt32 = 10: ignore series with fewer calls in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    service, environment, prompt_name, model, provider,
    sum(calls) AS n_calls,
    sum(errors) AS n_errors,
    100 * (1 - n_errors / n_calls) AS value,
    if(value < {critical_below:Float64}, 'critical', 'warning') AS severity,
    if(severity = 'critical', {critical_below:Float64}, {warning_below:Float64}) AS threshold
FROM llm_calls_1m
WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
GROUP BY service, environment, prompt_name, model, provider
HAVING n_calls >= {min_calls:UInt32} AND value < {warning_below:Float64}
ORDER BY value ASC
