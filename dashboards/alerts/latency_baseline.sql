-- p95 latency above 2x baseline
-- rule: latency_baseline; severity: warning; labels: service, environment, prompt_name, model
-- p95 of the last 15 minutes vs the median p95 of the same 15 minutes of the week in previous weeks.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 900: evaluation window in seconds (complete minutes ending at now)
--   weeks UInt16 = 4: baseline: the same window in each of the previous N weeks
--   ratio Float64 = 2.0: fire above ratio x baseline p95
--   min_calls UInt32 = 20: ignore series with fewer calls in the window
--   min_periods UInt16 = 2: fire only with at least this many baseline periods of history
--   mad_k Float64 = 3.0: and only when the change exceeds mad_k x 1.4826 x MAD of the history
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT service, environment, prompt_name, model, current AS value, {ratio:Float64} * baseline AS threshold, baseline, mad, current_n, periods, history
FROM (
    SELECT service, environment, prompt_name, model,
        anyIf(v, k = 0) AS current, anyIf(c, k = 0) AS current_n,
        groupArrayIf(v, k > 0 AND c >= {min_calls:UInt32}) AS history,
        arrayReduce('quantileExactInclusive(0.5)', history) AS baseline,
        arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - baseline), history)) AS mad,
        length(history) AS periods
    FROM (
        SELECT service, environment, prompt_name, model, intDiv(dateDiff('second', bucket, t_end) - 1, 604800) AS k,
               promptpulse_hist_quantile(sumMap(latency_hist), 0.95) AS v, sum(calls) AS c
        FROM llm_calls_1m
        WHERE bucket >= t_end - toIntervalSecond({weeks:UInt16} * 604800 + {window_s:UInt32})
          AND bucket < t_end
          AND (dateDiff('second', bucket, t_end) - 1) % 604800 < {window_s:UInt32}
        GROUP BY service, environment, prompt_name, model, k
    )
    GROUP BY service, environment, prompt_name, model
)
WHERE periods >= {min_periods:UInt16} AND current_n >= {min_calls:UInt32} AND current > {ratio:Float64} * baseline AND current - baseline > {mad_k:Float64} * 1.4826 * mad
ORDER BY value / greatest(threshold, 1e-9) DESC
