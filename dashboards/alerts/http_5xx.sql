-- Any 5xx from a provider
-- rule: http_5xx; severity: critical; labels: service, environment, prompt_name, model, provider
-- Calls answered with HTTP 500-599 in the window (the rollups' http_5xx counter).
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 300: evaluation window in seconds (complete minutes ending at now)
--   max_5xx UInt32 = 0: fire when more 5xx than this
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    service, environment, prompt_name, model, provider,
    sum(http_5xx) AS value,
    {max_5xx:UInt32} AS threshold,
    sum(calls) AS n_calls,
    sum(errors_model_error) AS n_model_errors
FROM llm_calls_1m
WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
GROUP BY service, environment, prompt_name, model, provider
HAVING value > threshold
ORDER BY value DESC
