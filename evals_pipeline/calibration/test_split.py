"""The test split is touched once per judge and rubric version (DESIGN: calibration).

A judge measured on the test split keeps that measurement on later runs: measuring again
would let the judge (or its prompt) be tuned against the test split. A second look needs
`force` and is recorded as forced in `calibration_test_uses`.
"""

from __future__ import annotations

import pandas as pd

Key = tuple[str, str, str]  # judge, rubric, rubric_version
Look = tuple[str, str, str, bool, int]  # judge, rubric, rubric_version, forced, n


def rows_touching_test_once(
    fresh: pd.DataFrame, stored: pd.DataFrame, used: set[Key], force: bool
) -> tuple[pd.DataFrame, list[Look]]:
    """The calibration rows to keep, and the test-split looks this run takes.

    `fresh`: rows measured now (all splits); `stored`: the test-split rows already in
    `judge_calibration`; `used`: (judge, rubric, version) whose test split was looked at.
    """
    keep, looks = [], []
    for key, g in fresh[fresh["split"] == "test"].groupby(["judge", "rubric", "rubric_version"]):
        n = int(g.loc[g["category"] == "all", "n"].iloc[0])
        if key in used and not force:
            prev = stored[
                (stored["judge"] == key[0])
                & (stored["rubric"] == key[1])
                & (stored["rubric_version"] == key[2])
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
