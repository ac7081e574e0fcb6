"""Shared helpers: timestamps are compared as naive UTC, durations are float days."""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = np.timedelta64(1, "D")


def naive_utc_timestamp(value: pd.Timestamp) -> pd.Timestamp:
    """`as_of` may come from `timezone.now()` (aware) while frames from SQL are naive UTC."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def naive_utc_series(values: pd.Series) -> pd.Series:
    """A datetime column as naive UTC; aware columns (psycopg returns them) are converted, not relabelled."""
    series = pd.to_datetime(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def days_between(later: pd.Timestamp, earlier: pd.Series) -> np.ndarray:
    """Float days from each `earlier` to `later`; NaT stays NaN. Plain numpy keeps 1M rows cheap."""
    return np.asarray((later - earlier) / DAY, dtype="float64")


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], *, name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns: {', '.join(missing)}")
