-- The review app's three queues, one self-contained row per queue x item (judges' verdicts
-- are added after): the trusted judges' disagreements on candidate outputs (splits first),
-- the Friday batch, and calibration gaps (categories whose dev/test labels are too few).
-- Parameters: $principal, $gap_target, $gap_batch, $disagreement_limit.
WITH disagreement AS (
    SELECT case_id, app_version,
           string_agg(DISTINCT rubric || ' ' || rubric_version || ': ' || reason, '; ') AS reason,
           max(queued_at) AS queued_at
    FROM {{ REVIEW_QUEUE }} GROUP BY ALL
), trusted_votes AS (
    -- votes of the judges the calibration trusts (test split, all categories)
    SELECT v.case_id, v.app_version, count(*) FILTER (WHERE v.verdict = 'pass') AS n_pass,
           count(*) FILTER (WHERE v.verdict = 'fail') AS n_fail
    FROM {{ JUDGE_VERDICTS }} v
    JOIN {{ JUDGE_CALIBRATION }} c ON c.judge = v.judge AND c.rubric = v.rubric AND c.rubric_version = v.rubric_version
                            AND c.split = 'test' AND c.category = 'all' AND c.trusted
    GROUP BY ALL
), ranked AS (
    -- Only trusted judges vote, so only their disagreements and errors are queued (an
    -- untrusted judge's dissent says more about that judge than about the output). An
    -- expert's time goes first where they split on the verdict, then to errors and quorum.
    SELECT q.*, CASE WHEN tv.n_pass > 0 AND tv.n_fail > 0 THEN 0 ELSE 1 END AS priority,
           CASE WHEN tv.n_pass > 0 AND tv.n_fail > 0
                     THEN 'trusted judges split ' || tv.n_pass || ' pass / ' || tv.n_fail || ' fail. '
                ELSE '' END AS trust_note
    FROM disagreement q LEFT JOIN trusted_votes tv USING (case_id, app_version)
), disagreement_items AS (
    SELECT 'disagreement' AS queue, q.case_id || '|' || q.app_version AS item_id,
           'candidate' AS subject, c.trace_id, q.case_id, q.app_version, c.category, c.user_segment,
           t.ts, c.input, o.output, NULL::JSON AS context, NULL::JSON AS tool_calls, NULL::JSON AS metadata,
           c.reference_good, c.reference_borderline,
           'The judges disagree or failed: ' || q.trust_note || q.reason AS reason,
           row_number() OVER (ORDER BY q.priority, q.queued_at DESC, {{ disagreement_key }}) AS position
    FROM ranked q
    JOIN {{ ACTIVE_POOL }} p ON p.case_id = q.case_id
    JOIN {{ GOLDEN_CASES }} c ON c.case_id = q.case_id
    JOIN {{ CANDIDATE_OUTPUTS }} o ON o.case_id = q.case_id AND o.app_version = q.app_version AND o.output IS NOT NULL
    LEFT JOIN {{ TRACES }} t ON t.trace_id = c.trace_id
    QUALIFY position <= $disagreement_limit
), weekly_items AS (
    SELECT 'weekly' AS queue, w.trace_id AS item_id, {{ trace_columns }},
           'Friday review: a fresh random production sample of the week from ' || strftime(w.week, '%Y-%m-%d') AS reason,
           row_number() OVER (ORDER BY w.sample_key) AS position
    {{ trace_from }} JOIN {{ WEEKLY_REVIEW_SAMPLE }} w ON w.trace_id = t.trace_id
    WHERE w.week = (SELECT max(week) FROM {{ WEEKLY_REVIEW_SAMPLE }})
), calibration_set AS (
    SELECT t.category, count(*) FILTER (WHERE l.verdict = 'pass') AS n_pass,
           count(*) FILTER (WHERE l.verdict = 'fail') AS n_fail
    FROM {{ HUMAN_LABELS }} l JOIN {{ TRACES }} t ON t.trace_id = l.subject_id
    WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal AND l.split IN ('dev', 'test')
    GROUP BY 1
), gaps AS (
    -- TPR needs passes and TNR needs fails: the rarer class decides how thin a category is
    SELECT c.category, coalesce(s.n_pass, 0) AS n_pass, coalesce(s.n_fail, 0) AS n_fail,
           least($gap_target - least(coalesce(s.n_pass, 0), coalesce(s.n_fail, 0)), $gap_batch) AS wanted
    FROM (SELECT DISTINCT category FROM {{ TRACE_SAMPLE }}) c LEFT JOIN calibration_set s USING (category)
    WHERE least(coalesce(s.n_pass, 0), coalesce(s.n_fail, 0)) < $gap_target
), gap_candidates AS (
    -- a uniform draw from the category's traffic: picking likely fails (say, traces users
    -- disliked) would fill the gap faster but measure the judges on an unrepresentative set
    SELECT s.trace_id,
           row_number() OVER (PARTITION BY s.category
                              ORDER BY {{ gap_key }}) AS rk
    FROM {{ TRACE_SAMPLE }} s JOIN {{ VISIBLE_TRACES }} t ON t.trace_id = s.trace_id JOIN gaps g ON g.category = s.category
    WHERE s.stratum = 'traffic' AND {{ split }} IN ('dev', 'test')
      AND NOT EXISTS (SELECT 1 FROM {{ HUMAN_LABELS }} l WHERE l.subject_id = s.trace_id)
), gap_items AS (
    SELECT 'calibration_gap' AS queue, t.trace_id AS item_id, {{ trace_columns }},
           'Calibration gap: ' || g.category || ' has ' || g.n_fail || ' failing and ' || g.n_pass
               || ' passing outputs labelled in the dev and test splits (target: ' || $gap_target || ' of each)' AS reason,
           row_number() OVER (ORDER BY g.category, t.trace_id) AS position
    {{ trace_from }} JOIN gap_candidates c ON c.trace_id = t.trace_id JOIN gaps g ON g.category = t.category
    WHERE c.rk <= g.wanted
)
SELECT * FROM disagreement_items
UNION ALL BY NAME SELECT * FROM weekly_items
UNION ALL BY NAME SELECT * FROM gap_items
