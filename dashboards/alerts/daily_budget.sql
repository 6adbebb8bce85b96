-- Daily spend above 110% of budget
-- rule: daily_budget; severity: warning; labels: scope, environment
-- Spend since midnight UTC vs daily_budget_usd x budget_ratio (all services and environments).
-- Returns the firing series only: labels, value, threshold (and context).
-- Parameters (defaults):
--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))
--   daily_budget_usd Float64 = 100.0: the daily budget in USD (set it)
--   budget_ratio Float64 = 1.1: fire above this share of the budget
WITH {now:DateTime64(3, 'UTC')} AS t_now, toStartOfDay(toDateTime(t_now, 'UTC')) AS day_start
SELECT 'total' AS scope, 'all' AS environment, toFloat64(sum(cost_usd)) AS value,
    {daily_budget_usd:Float64} * {budget_ratio:Float64} AS threshold,
    {daily_budget_usd:Float64} AS budget, toDate(day_start) AS day
FROM llm_calls_1m
WHERE bucket >= day_start AND bucket <= t_now
HAVING value > threshold
