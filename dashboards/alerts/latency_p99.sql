-- p99 latency above 5 s
-- rule: latency_p99; severity: critical; labels: service, environment, prompt_name, model, provider
-- p99 latency (ms) over the last 2 minutes (seed: p99 > 5000 ms for 2 minutes).
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 120: evaluation window in seconds (complete minutes ending at now)
--   threshold_ms Float64 = 5000.0: p99 target, ms
--   min_calls UInt32 = 5: ignore series with fewer calls in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT
    service, environment, prompt_name, model, provider,
    sum(calls) AS n_calls,
    promptpulse_hist_quantile(sumMap(latency_hist), 0.99) AS value,
    {threshold_ms:Float64} AS threshold
FROM llm_calls_1m
WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
GROUP BY service, environment, prompt_name, model, provider
HAVING n_calls >= {min_calls:UInt32} AND value > threshold
ORDER BY value DESC
