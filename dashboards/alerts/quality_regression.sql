-- Quality score 5% below baseline
-- rule: quality_regression; severity: warning; labels: score_name, service, environment, prompt_name, prompt_version
-- Average score of each prompt version in the last 24 h vs the median of the prompt's daily averages of the previous days (all versions), per score name, i.e. per evaluation rule (llm_scores_1m: scores attributed to their calls at insert time; unattributed ones left out): catches a new version that scores lower.
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   window_s UInt32 = 86400: evaluation window in seconds (complete minutes ending at now)
--   days UInt16 = 14: baseline: the previous N days
--   drop_pct Float64 = 5.0: fire when the average is this many percent below baseline
--   min_scores UInt32 = 10: scores needed in a window
--   min_periods UInt16 = 2: fire only with at least this many baseline periods of history
WITH toStartOfMinute({now:DateTime64(3, 'UTC')}) AS t_end
SELECT cur.score_name AS score_name, cur.service AS service, cur.environment AS environment,
    cur.prompt_name AS prompt_name, cur.prompt_version AS prompt_version,
    cur.v AS value, base.baseline * (1 - {drop_pct:Float64} / 100) AS threshold, base.baseline AS baseline,
    base.mad AS mad, cur.n AS current_n, base.periods AS periods, base.history AS history
FROM (
    SELECT name AS score_name, service, environment, prompt_name, prompt_version,
        sum(value_sum) / sum(scores) AS v, sum(scores) AS n
    FROM llm_scores_1m
    WHERE service != '' AND bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end
    GROUP BY score_name, service, environment, prompt_name, prompt_version
) AS cur
INNER JOIN (
    SELECT score_name, service, environment, prompt_name,
        anyIf(v, k = 0) AS current, anyIf(c, k = 0) AS current_n,
        groupArrayIf(v, k > 0 AND c >= {min_scores:UInt32}) AS history,
        arrayReduce('quantileExactInclusive(0.5)', history) AS baseline,
        arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - baseline), history)) AS mad,
        length(history) AS periods
    FROM (
        SELECT score_name, service, environment, prompt_name, intDiv(dateDiff('second', bucket, t_end) - 1, 86400) AS k,
               sum(value_sum) / sum(scores) AS v, sum(scores) AS c
        FROM (
            SELECT bucket, name AS score_name, service, environment, prompt_name, scores, value_sum
            FROM llm_scores_1m
            WHERE service != ''
        )
        WHERE bucket >= t_end - toIntervalSecond({days:UInt16} * 86400 + {window_s:UInt32})
          AND bucket < t_end
          AND (dateDiff('second', bucket, t_end) - 1) % 86400 < {window_s:UInt32}
        GROUP BY score_name, service, environment, prompt_name, k
    )
    GROUP BY score_name, service, environment, prompt_name
) AS base ON cur.score_name = base.score_name AND cur.service = base.service AND cur.environment = base.environment AND cur.prompt_name = base.prompt_name
WHERE cur.n >= {min_scores:UInt32} AND base.periods >= {min_periods:UInt16} AND value < threshold
ORDER BY value / greatest(threshold, 1e-9) ASC
