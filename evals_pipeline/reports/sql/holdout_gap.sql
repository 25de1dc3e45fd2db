-- Active minus holdout score per rotation, evaluator, version and category, with a 95% interval
-- from the two sides' standard errors (independent samples).
-- panel:<rubric>: the same trusted judges on the candidate's and baseline's answers to both
-- pools (holdout side judged inside the seal); reference_token_f1: token overlap of the
-- production outputs with the reference, a sanity check only (app_version 'production').
WITH sides AS (
    SELECT a.quarter, a.evaluator, a.category, 'production' AS app_version,
           a.n AS active_n, a.mean_score AS active_score, a.std_error AS active_std_error,
           h.n AS holdout_n, h.mean_score AS holdout_score, h.std_error AS holdout_std_error
    FROM {{ ACTIVE_EVALUATION }} a JOIN {{ HOLDOUT_EVALUATION }} h USING (quarter, evaluator, category)
    UNION ALL
    SELECT a.quarter, 'panel:' || a.rubric, a.category, a.app_version,
           a.n, a.pass_rate, a.std_error, h.n, h.pass_rate, h.std_error
    FROM {{ HOLDOUT_PANEL_EVALUATION }} a
    JOIN {{ HOLDOUT_PANEL_EVALUATION }} h USING (quarter, app_version, category, rubric, rubric_version)
    WHERE a.side = 'active' AND h.side = 'holdout' AND a.n > 0 AND h.n > 0
)
SELECT quarter, evaluator, category, active_n, active_score, holdout_n, holdout_score,
       active_score - holdout_score AS gap,
       active_score - holdout_score - 1.96 * sqrt(coalesce(active_std_error, 0) ^ 2 + coalesce(holdout_std_error, 0) ^ 2) AS gap_ci_low,
       active_score - holdout_score + 1.96 * sqrt(coalesce(active_std_error, 0) ^ 2 + coalesce(holdout_std_error, 0) ^ 2) AS gap_ci_high,
       active_std_error, holdout_std_error, app_version
FROM sides
ORDER BY quarter, evaluator, app_version, category
