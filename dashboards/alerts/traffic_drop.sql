-- Sudden traffic drop
-- rule: traffic_drop; severity: warning; labels: service, environment, prompt_name
-- Calls in the last 15 minutes below half the seasonal baseline (also fires on silence).
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 900: evaluation window in seconds (complete minutes ending at now)
--   weeks UInt16 = 4: baseline: the same window in each of the previous N weeks
--   ratio Float64 = 0.5: fire below ratio x baseline
--   min_baseline_calls Float64 = 20.0: only series that normally have this many calls
--   min_periods UInt16 = 2: fire only with at least this many baseline periods of history
--   mad_k Float64 = 3.0: and only when the change exceeds mad_k x 1.4826 x MAD of the history
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT service, environment, prompt_name, current AS value, {ratio:Float64} * baseline AS threshold, baseline, mad, current_n, periods, history
FROM (
    SELECT service, environment, prompt_name,
        anyIf(v, k = 0) AS current, anyIf(c, k = 0) AS current_n,
        groupArrayIf(v, k > 0) AS history,
        arrayReduce('quantileExactInclusive(0.5)', history) AS baseline,
        arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - baseline), history)) AS mad,
        length(history) AS periods
    FROM (
        SELECT service, environment, prompt_name, intDiv(dateDiff('second', bucket, t_end) - 1, 604800) AS k,
               toFloat64(sum(calls)) AS v, sum(calls) AS c
        FROM llm_calls_1m
        WHERE bucket >= t_end - toIntervalSecond({weeks:UInt16} * 604800 + {window_s:UInt32})
          AND bucket < t_end
          AND (dateDiff('second', bucket, t_end) - 1) % 604800 < {window_s:UInt32}
        GROUP BY service, environment, prompt_name, k
    )
    GROUP BY service, environment, prompt_name
)
WHERE periods >= {min_periods:UInt16} AND baseline >= {min_baseline_calls:Float64} AND current < {ratio:Float64} * baseline AND baseline - current > {mad_k:Float64} * 1.4826 * mad
ORDER BY value / greatest(threshold, 1e-9) DESC
