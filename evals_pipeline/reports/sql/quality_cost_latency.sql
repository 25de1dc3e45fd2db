-- Per app version: the ensemble's overall pass rate (traffic-weighted, from segment_report),
-- the candidate outputs' mean cost and latency, and production traffic's cost and latency.
SELECT q.app_version, q.score AS pass_rate, q.ci_low AS pass_rate_ci_low, q.ci_high AS pass_rate_ci_high,
       c.cost AS candidate_cost_usd_per_case, c.latency AS candidate_latency_ms, t.cost_per_trace AS production_cost_usd_per_trace,
       t.p50 AS production_latency_p50_ms, t.p95 AS production_latency_p95_ms, t.n AS production_traces
FROM (SELECT * FROM {{ SEGMENT_REPORT }} WHERE scorer = 'ensemble' AND level = 'overall') q
LEFT JOIN (SELECT app_version, avg(cost_usd) AS cost, avg(latency_ms) AS latency
           FROM {{ CANDIDATE_OUTPUTS }} GROUP BY 1) c USING (app_version)
LEFT JOIN (SELECT app_version, avg(cost_usd) AS cost_per_trace, quantile_cont(latency_ms, 0.5) AS p50,
                  quantile_cont(latency_ms, 0.95) AS p95, count(*) AS n
           FROM {{ TRACES }} GROUP BY 1) t USING (app_version)
ORDER BY 1
