-- SLA error budget burning (multi-window)
-- rule: sla_burn_rate; severity: per-row; labels: service, environment, window, severity
-- Burn rate = error ratio / (1 - SLO). Critical when both 1h and 5m burn above 14.4x (2% of a 30-day budget in an hour); warning when both 6h and 30m burn above 6x.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   slo_target Float64 = 0.999: availability SLO (ratio)
--   fast_long_s UInt32 = 3600: fast burn: long window
--   fast_short_s UInt32 = 300: fast burn: short window
--   fast_burn Float64 = 14.4: fast burn threshold
--   slow_long_s UInt32 = 21600: slow burn: long window
--   slow_short_s UInt32 = 1800: slow burn: short window
--   slow_burn Float64 = 6.0: slow burn threshold
--   min_calls UInt32 = 10: ignore series with fewer calls in the window
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end, 1 - {slo_target:Float64} AS budget
SELECT service, environment, window, severity, least(burn_long, burn_short) AS value, threshold, burn_long, burn_short, n_calls
FROM (
    SELECT service, environment, '1h/5m' AS window, 'critical' AS severity, {fast_burn:Float64} AS threshold,
        sumIf(errors, bucket >= t_end - toIntervalSecond({fast_long_s:UInt32})) / sumIf(calls, bucket >= t_end - toIntervalSecond({fast_long_s:UInt32})) / budget AS burn_long,
        sumIf(errors, bucket >= t_end - toIntervalSecond({fast_short_s:UInt32})) / sumIf(calls, bucket >= t_end - toIntervalSecond({fast_short_s:UInt32})) / budget AS burn_short,
        sumIf(calls, bucket >= t_end - toIntervalSecond({fast_long_s:UInt32})) AS n_calls
    FROM llm_calls_1m
    WHERE bucket >= t_end - toIntervalSecond({fast_long_s:UInt32}) AND bucket < t_end
    GROUP BY service, environment
    UNION ALL
    SELECT service, environment, '6h/30m' AS window, 'warning' AS severity, {slow_burn:Float64} AS threshold,
        sumIf(errors, bucket >= t_end - toIntervalSecond({slow_long_s:UInt32})) / sumIf(calls, bucket >= t_end - toIntervalSecond({slow_long_s:UInt32})) / budget AS burn_long,
        sumIf(errors, bucket >= t_end - toIntervalSecond({slow_short_s:UInt32})) / sumIf(calls, bucket >= t_end - toIntervalSecond({slow_short_s:UInt32})) / budget AS burn_short,
        sumIf(calls, bucket >= t_end - toIntervalSecond({slow_long_s:UInt32})) AS n_calls
    FROM llm_calls_1m
    WHERE bucket >= t_end - toIntervalSecond({slow_long_s:UInt32}) AND bucket < t_end
    GROUP BY service, environment
)
WHERE n_calls >= {min_calls:UInt32} AND burn_long > threshold AND burn_short > threshold
ORDER BY value DESC
