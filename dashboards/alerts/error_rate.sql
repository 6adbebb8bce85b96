-- Error rate above 5% for 5 minutes
-- rule: error_rate; severity: critical; labels: service, environment, prompt_name, model, provider
-- Failed calls / calls over the last 5 minutes, per service, prompt, model and provider.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 300: evaluation window in seconds (complete minutes ending at now)
--   max_error_pct Float64 = 5.0: error rate threshold, percent
--   min_calls UInt32 = 10: ignore series with fewer calls in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    service, environment, prompt_name, model, provider,
    sum(calls) AS n_calls,
    sum(errors) AS n_errors,
    100 * n_errors / n_calls AS value,
    {max_error_pct:Float64} AS threshold
FROM llm_calls_1m
WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
GROUP BY service, environment, prompt_name, model, provider
HAVING n_calls >= {min_calls:UInt32} AND value > threshold
ORDER BY value DESC
