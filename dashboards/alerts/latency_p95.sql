-- p95 latency above 2 s
-- rule: latency_p95; severity: warning; labels: service, environment, prompt_name, model, provider
-- p95 latency (ms) over the last 5 minutes, from the merged 1-minute histograms.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 300: evaluation window in seconds (complete minutes ending at now)
--   threshold_ms Float64 = 2000.0: p95 target, ms
--   min_calls UInt32 = 10: ignore series with fewer calls in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    service, environment, prompt_name, model, provider,
    sum(calls) AS n_calls,
    promptpulse_hist_quantile(sumMap(latency_hist), 0.95) AS value,
    {threshold_ms:Float64} AS threshold
FROM llm_calls_1m
WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
GROUP BY service, environment, prompt_name, model, provider
HAVING n_calls >= {min_calls:UInt32} AND value > threshold
ORDER BY value DESC
