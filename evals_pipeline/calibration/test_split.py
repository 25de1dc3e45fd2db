"""The test split is touched once per judge, rubric version and re-validation window
(DESIGN: calibration; seed 002: re-validate quarterly).

A judge measured on the test split keeps that measurement on later runs: measuring again
would let the judge (or its prompt) be tuned against the test split. A second look needs
`force` and is recorded as forced in `calibration_test_uses`. A new window (the labels of a
newer quarter reached judges.min_test_labels) is a fresh test split: measured once, again.
"""

from __future__ import annotations

from datetime import date

import pandas as pd


def _day(value: object) -> date | None:
    """A window's first quarter as a date (None for every quarter), however pandas holds it."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


Key = tuple[str, str, str, date | None]  # judge, rubric, rubric_version, test_since
Look = tuple[str, str, str, date | None, bool, int]  # ... test_since, forced, n


def rows_touching_test_once(
    fresh: pd.DataFrame, stored: pd.DataFrame, used: set[Key], force: bool
) -> tuple[pd.DataFrame, list[Look]]:
    """The calibration rows to keep, and the test-split looks this run takes.

    `fresh`: rows measured now (all splits); `stored`: the test-split rows already in
    `judge_calibration`; `used`: (judge, rubric, version, test_since) whose test split was
    looked at.
    """
    keep, looks = [], []
    test = fresh[fresh["split"] == "test"]
    for (judge, rubric, version), g in test.groupby(["judge", "rubric", "rubric_version"]):
        since = _day(g["test_since"].iloc[0])
        key = (judge, rubric, version, since)
        n = int(g.loc[g["category"] == "all", "n"].iloc[0])
        if key in used and not force:
            windows = stored["test_since"].map(_day)
            same_window = windows.isna() if since is None else windows.astype(object) == since
            prev = stored[
                (stored["judge"] == judge)
                & (stored["rubric"] == rubric)
                & (stored["rubric_version"] == version)
                & same_window
            ]
            keep.append(prev if not prev.empty else g)
            if (
                prev.empty
            ):  # the stored result is gone: recording a (forced) look keeps the log honest
                looks.append((*key, True, n))
        else:
            keep.append(g)
            looks.append((*key, key in used, n))
    others = fresh[fresh["split"] != "test"]
    return (pd.concat([others, *keep]) if keep else others), looks
