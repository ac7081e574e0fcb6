"""RFM quintile scores and named groups for customers with at least one order.

Scores: each of recency (fewer days is better), frequency and monetary gets 1..5 from the share of buyers
*strictly worse* than the customer: ``score = 1 + floor(5 * worse / n)``. This is a quintile of the
rank taken with ``rank(method="min")``, so equal values always get equal scores. With heavy ties the
quintiles are unequal and scores can be skipped: when 70 % of buyers ordered once, all of them get
f_score 1 and the two-order buyers (70 % strictly below them) get 4. The usual
``qcut(rank(method="first"))`` was rejected because it splits identical customers across scores by
row order, which would put two people with the same history into different groups.

Groups: ``fm = round_half_up((f_score + m_score) / 2)``, then the common R-vs-FM grid (the "RFM
segments" grid with F replaced by the F/M mean, and its lowest corner split off as ``lost``):

======  ==============  ===================  ===================  ==========  ==========
R \\ FM  1               2                    3                    4           5
======  ==============  ===================  ===================  ==========  ==========
5       new             potential_loyalists  potential_loyalists  champions   champions
4       promising       potential_loyalists  potential_loyalists  loyal       loyal
3       about_to_sleep  about_to_sleep       need_attention       loyal       loyal
2       hibernating     hibernating          at_risk              at_risk     cant_lose
1       lost            lost                 at_risk              at_risk     cant_lose
======  ==============  ===================  ===================  ==========  ==========
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customers.analytics._common import require_columns

# Display order: best first, then the ones to win back, then the gone.
RFM_GROUPS: tuple[str, ...] = (
    "champions", "loyal", "potential_loyalists", "new", "promising", "need_attention",
    "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost",
)
RFM_COLUMNS: tuple[str, ...] = ("r_score", "f_score", "m_score", "fm_score", "rfm_group")

# Rows are R 1..5, columns FM 1..5 (the docstring table upside down).
_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "lost", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
)
_GRID_CODES = np.array([[RFM_GROUPS.index(group) for group in row] for row in _GRID], dtype="int64")


def rfm_group_for(r_score: int, fm_score: int) -> str:
    """The grid cell for one pair of scores (for UIs that explain a group)."""
    return _GRID[r_score - 1][fm_score - 1]


def quintile_score(values: pd.Series) -> np.ndarray:
    """1..5 by the share of rows strictly below; ties share the lower score (see module docstring)."""
    count = len(values)
    if count == 0:
        return np.zeros(0, dtype="int64")
    worse = values.rank(method="min").to_numpy(dtype="float64") - 1.0
    return (1 + np.floor(5.0 * worse / count)).astype("int64")


def score_rfm(features: pd.DataFrame) -> pd.DataFrame:
    """r/f/m/fm scores and rfm_group (categorical over RFM_GROUPS) for customers with frequency >= 1."""
    require_columns(features, ("recency_days", "frequency", "monetary"), name="features")
    buyers = features.loc[features["frequency"] >= 1, ["recency_days", "frequency", "monetary"]]
    r_score = quintile_score(-buyers["recency_days"])
    f_score = quintile_score(buyers["frequency"])
    m_score = quintile_score(buyers["monetary"])
    # Integer round-half-up: numpy's round() would send 2.5 to 2 but 3.5 to 4.
    fm_score = (f_score + m_score + 1) // 2
    codes = _GRID_CODES[r_score - 1, fm_score - 1] if len(buyers) else np.zeros(0, dtype="int64")
    return pd.DataFrame(
        {
            "r_score": r_score,
            "f_score": f_score,
            "m_score": m_score,
            "fm_score": fm_score,
            "rfm_group": pd.Categorical.from_codes(codes, categories=list(RFM_GROUPS)),
        },
        index=buyers.index,
    )
