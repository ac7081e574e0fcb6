"""Transactions -> one (x, t_x, T, m) row per customer, the input of both models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FREQ_DAYS = {"D": 1, "W": 7}


def summary_from_transactions(
    df: pd.DataFrame,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    calibration_end: Any,
    observation_end: Any = None,
    freq: str = "W",
) -> pd.DataFrame:
    """One row per customer whose first purchase is on or before `calibration_end` (inclusive).

    Columns: frequency (x, repeat purchase days), recency (t_x), T, monetary_value (mean value of
    repeat purchase days, 0 when x = 0), calibration_value (all calibration spend),
    holdout_frequency and holdout_value (purchase days and spend after calibration_end up to
    observation_end inclusive; none without an observation_end), all times in units of `freq`
    ("W" weeks or "D" days). Time-zone-aware dates count in their own zone's calendar days.
    """
    if freq not in FREQ_DAYS:
        raise ValueError(f"freq must be one of {sorted(FREQ_DAYS)}, not {freq!r}")
    unit = float(FREQ_DAYS[freq])
    calibration_end = _naive_day(calibration_end)
    dates = pd.to_datetime(df[date_col])
    if dates.dt.tz is not None:  # calendar days in the dates' own time zone
        dates = dates.dt.tz_localize(None)
    frame = pd.DataFrame({
        "customer": df[customer_col].to_numpy(),
        "day": dates.dt.normalize().to_numpy(),
        "value": df[value_col].to_numpy(dtype=float) if value_col else np.zeros(len(df)),
    })
    # Without an observation end there is no holdout: scoring "as of today" is the everyday use.
    observation_end = calibration_end if observation_end is None else _naive_day(observation_end)
    if observation_end < calibration_end:
        raise ValueError("observation_end is before calibration_end")
    frame = frame[frame["day"] <= observation_end]
    # Several transactions on one day are one purchase, as in the papers.
    days = frame.groupby(["customer", "day"], sort=True, observed=True)["value"].sum().reset_index()
    first_day = days.groupby("customer", sort=False)["day"].transform("min")
    days = days[first_day <= calibration_end].assign(first_day=first_day[first_day <= calibration_end])
    in_calibration = days["day"] <= calibration_end
    cal = days[in_calibration]
    repeat = cal[cal["day"] > cal["first_day"]]
    grouped = cal.groupby("customer", sort=True)
    summary = pd.DataFrame({
        "frequency": grouped["day"].count() - 1,
        "recency": (grouped["day"].max() - grouped["first_day"].min()).dt.days / unit,
        "T": (calibration_end - grouped["first_day"].min()).dt.days / unit,
        "calibration_value": grouped["value"].sum(),
    })
    summary["frequency"] = summary["frequency"].astype(float)
    summary["monetary_value"] = repeat.groupby("customer")["value"].mean().reindex(summary.index).fillna(0.0)
    hold = days[~in_calibration].groupby("customer")
    summary["holdout_frequency"] = hold["day"].count().reindex(summary.index).fillna(0).astype(float)
    summary["holdout_value"] = hold["value"].sum().reindex(summary.index).fillna(0.0)
    summary.index.name = customer_col
    summary.attrs["holdout_length"] = (observation_end - calibration_end).days / unit
    summary.attrs["calibration_end"] = calibration_end
    summary.attrs["observation_end"] = observation_end
    return summary[["frequency", "recency", "T", "monetary_value", "calibration_value", "holdout_frequency", "holdout_value"]]


def _naive_day(value: Any) -> pd.Timestamp:
    day = pd.Timestamp(value)
    return (day.tz_localize(None) if day.tz is not None else day).normalize()
