-- Prompt version latency 20% above baseline
-- rule: version_latency_regression; severity: warning; labels: service, environment, prompt_name, prompt_version
-- Median latency of each prompt version in the last hour vs the prompt's median latency in the same hour of the previous days (all versions): catches a new version that is slower.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 3600: evaluation window in seconds (complete minutes ending at now)
--   days UInt16 = 7: baseline: the same hour on each of the previous N days
--   quantile Float64 = 0.5: latency quantile compared (0.5 = median)
--   ratio Float64 = 1.2: fire above ratio x baseline
--   min_calls UInt32 = 20: ignore series with fewer calls in the window
--   min_periods UInt16 = 2: fire only with at least this many baseline periods of history
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT cur.service AS service, cur.environment AS environment, cur.prompt_name AS prompt_name,
    cur.prompt_version AS prompt_version,
    cur.v AS value, base.baseline * {ratio:Float64} AS threshold, base.baseline AS baseline,
    cur.n AS current_n, base.periods AS periods, base.history AS history
FROM (
    SELECT service, environment, prompt_name, prompt_version,
        promptpulse_hist_quantile(sumMap(latency_hist), {quantile:Float64}) AS v, sum(calls) AS n
    FROM llm_calls_1m
    WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
    GROUP BY service, environment, prompt_name, prompt_version
) AS cur
INNER JOIN (
    SELECT service, environment, prompt_name,
        anyIf(v, k = 0) AS current, anyIf(c, k = 0) AS current_n,
        groupArrayIf(v, k > 0 AND c >= {min_calls:UInt32}) AS history,
        arrayReduce('quantileExactInclusive(0.5)', history) AS baseline,
        arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - baseline), history)) AS mad,
        length(history) AS periods
    FROM (
        SELECT service, environment, prompt_name, intDiv(dateDiff('second', bucket, t_end) - 1, 86400) AS k,
               promptpulse_hist_quantile(sumMap(latency_hist), {quantile:Float64}) AS v, sum(calls) AS c
        FROM llm_calls_1m
        WHERE bucket >= t_end - toIntervalSecond({days:UInt16} * 86400 + {window_s:UInt32})
          AND bucket < t_end
          AND (dateDiff('second', bucket, t_end) - 1) % 86400 < {window_s:UInt32}
        GROUP BY service, environment, prompt_name, k
    )
    GROUP BY service, environment, prompt_name
) AS base ON cur.service = base.service AND cur.environment = base.environment AND cur.prompt_name = base.prompt_name
WHERE cur.n >= {min_calls:UInt32} AND base.periods >= {min_periods:UInt16} AND value > threshold
ORDER BY value / threshold DESC
