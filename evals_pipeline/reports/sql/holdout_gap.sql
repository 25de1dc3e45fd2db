-- Active minus holdout score per rotation, evaluator and category, with a 95% interval from
-- the two sides' standard errors (independent samples).
SELECT a.quarter, a.evaluator, a.category, a.n AS active_n, a.mean_score AS active_score,
       h.n AS holdout_n, h.mean_score AS holdout_score, a.mean_score - h.mean_score AS gap,
       a.mean_score - h.mean_score - 1.96 * sqrt(coalesce(a.std_error, 0) ^ 2 + coalesce(h.std_error, 0) ^ 2) AS gap_ci_low,
       a.mean_score - h.mean_score + 1.96 * sqrt(coalesce(a.std_error, 0) ^ 2 + coalesce(h.std_error, 0) ^ 2) AS gap_ci_high,
       a.std_error AS active_std_error, h.std_error AS holdout_std_error
FROM {{ ACTIVE_EVALUATION }} a JOIN {{ HOLDOUT_EVALUATION }} h USING (quarter, evaluator, category)
ORDER BY 1, 3
