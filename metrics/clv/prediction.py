"""Customer value: E[purchases] x E[spend] from BG/NBD and Gamma-Gamma, and the per-tenant
entry point that falls back to a rate model when a tenant's history cannot support a fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.clv._common import ArrayLike
from metrics.clv._common import arr as _arr
from metrics.clv.bgnbd import BGNBDParams, bgnbd_expected_purchases, bgnbd_prob_alive, fit_bgnbd, simulate_bgnbd
from metrics.clv.gamma_gamma import GammaGammaParams, fit_gamma_gamma, gamma_gamma_expected_value
from metrics.clv.summary import summary_from_transactions

TRANSACTION_COLUMNS = ("customer_id", "ordered_at", "total")
PREDICTION_COLUMNS = ("expected_purchases", "prob_alive", "expected_value")
# The rate model's exposure floor: a repeat purchase a few days after the first would otherwise
# extrapolate to dozens of purchases a year.
RATE_MODEL_MIN_WEEKS = 4.0


def clv(bgnbd: BGNBDParams | Sequence[float], gamma_gamma: GammaGammaParams | Sequence[float], x: ArrayLike,
        t_x: ArrayLike, T: ArrayLike, m: ArrayLike, *, horizon: float, discount_rate: float = 0.0,
        step: float = 1.0) -> np.ndarray:
    """Expected value of each customer's purchases over the next `horizon` periods.

    E[Y(horizon)] x E[M]; with a per-period `discount_rate`, the expected purchases of each
    `step`-long slice are discounted at its end: sum_k (E[Y(k s)] - E[Y((k-1) s)]) / (1+d)^(k s).
    """
    spend = gamma_gamma_expected_value(gamma_gamma, x, m)
    if discount_rate == 0.0:
        return bgnbd_expected_purchases(bgnbd, horizon, x, t_x, T) * spend
    ends = np.append(np.arange(step, horizon, step), horizon)
    previous = np.zeros(np.broadcast(_arr(x), _arr(t_x), _arr(T)).shape)
    total = np.zeros_like(previous)
    for end in ends:
        cumulative = bgnbd_expected_purchases(bgnbd, end, x, t_x, T)
        total += (cumulative - previous) / (1.0 + discount_rate) ** end
        previous = cumulative
    return total * spend



@dataclass(frozen=True)
class CLVPrediction:
    """One tenant's customer-value predictions and how they were made.

    `customers` is indexed by customer_id with columns expected_purchases (over the horizon),
    prob_alive (NaN when the rate model was used: it has no notion of dropping out) and
    expected_value (expected purchases x expected average order value).
    """

    bgnbd: BGNBDParams | None
    gamma_gamma: GammaGammaParams | None
    customers: pd.DataFrame
    n_customers: int
    n_repeaters: int
    fitted: bool  # both models fitted; otherwise `reason` says what was used instead
    reason: str
    method: str  # "bgnbd+gamma_gamma", "bgnbd+observed_spend", "rate_model" or "none"
    as_of: pd.Timestamp
    horizon_days: int
    mean_spend: float  # the average order value assumed for customers without repeat purchases


def predict_customer_value(transactions: pd.DataFrame, *, as_of: pd.Timestamp, horizon_days: int = 365,
                           min_repeaters: int = 20) -> CLVPrediction:
    """Expected purchases, P(alive) and expected value over the next `horizon_days` for every
    customer with an order on or before `as_of`'s calendar day.

    `transactions` holds one tenant's revenue orders: customer_id, ordered_at, total. Orders on
    one day are one purchase; time is in weeks, as in the CDNOW fit. Time-zone-aware dates count
    in their own zone's calendar days, and an aware `as_of` is read in that zone.
    """
    missing = [column for column in TRANSACTION_COLUMNS if column not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack the column(s) {', '.join(missing)}")
    if horizon_days <= 0:
        raise ValueError("horizon_days must be positive")
    dates = pd.to_datetime(transactions["ordered_at"])
    totals = pd.to_numeric(transactions["total"])
    if dates.isna().any() or totals.isna().any() or transactions["customer_id"].isna().any():
        raise ValueError("transactions have missing customer ids, dates or totals")
    as_of = pd.Timestamp(as_of)
    if as_of.tz is not None and dates.dt.tz is not None:
        as_of = as_of.tz_convert(dates.dt.tz)
    # The dates as a Series: an array would turn aware dates into UTC instants, not local days.
    orders = pd.DataFrame({"customer_id": transactions["customer_id"].to_numpy(), "ordered_at": dates.reset_index(drop=True),
                           "total": totals.to_numpy(dtype=float)})
    summary = summary_from_transactions(orders, "customer_id", "ordered_at", "total", as_of, freq="W")
    x, t_x, T, m = (summary[column].to_numpy() for column in ("frequency", "recency", "T", "monetary_value"))
    horizon = horizon_days / 7.0
    n_repeaters = int((x > 0).sum())
    # The average order value for customers without repeat purchases, until a spend model gives one.
    if n_repeaters:
        mean_spend = float((m * x).sum() / x.sum())
    else:
        mean_spend = float(summary["calibration_value"].mean()) if len(summary) else math.nan

    def result(*, method: str, reason: str, expected: np.ndarray, alive: np.ndarray, spend: np.ndarray, mean_spend: float,
               bgnbd: BGNBDParams | None = None, gamma_gamma: GammaGammaParams | None = None) -> CLVPrediction:
        customers = pd.DataFrame({"expected_purchases": expected, "prob_alive": alive, "expected_value": expected * spend},
                                 index=summary.index)
        customers.index.name = "customer_id"
        return CLVPrediction(bgnbd=bgnbd, gamma_gamma=gamma_gamma, customers=customers, n_customers=len(summary),
                             n_repeaters=n_repeaters, fitted=method == "bgnbd+gamma_gamma", reason=reason, method=method,
                             as_of=as_of, horizon_days=horizon_days, mean_spend=mean_spend)

    observed_spend = np.where(x > 0, m, mean_spend)
    if summary.empty:
        empty = np.zeros(0)
        return result(method="none", reason=f"no orders on or before {as_of:%Y-%m-%d}", expected=empty, alive=empty,
                      spend=empty, mean_spend=mean_spend)

    def rate_model(why: str) -> CLVPrediction:
        expected = x / np.maximum(T, RATE_MODEL_MIN_WEEKS) * horizon
        return result(method="rate_model", reason=f"{why}; rate model used (repeat purchases per week since the first order)",
                      expected=expected, alive=np.full(len(x), np.nan), spend=observed_spend, mean_spend=mean_spend)

    if n_repeaters < min_repeaters:
        return rate_model(f"too few repeat buyers to fit ({n_repeaters} < {min_repeaters})")
    try:
        bgnbd = fit_bgnbd(x, t_x, T)
    except ValueError as exc:
        return rate_model(f"the purchase model could not be fitted ({exc})")
    if not bgnbd.converged:
        return rate_model("the purchase model's fit did not converge")
    expected = bgnbd_expected_purchases(bgnbd, horizon, x, t_x, T)
    alive = bgnbd_prob_alive(bgnbd, x, t_x, T)
    if not (np.all(np.isfinite(expected)) and np.all(np.isfinite(alive))):
        return rate_model("the fitted purchase model gave non-finite predictions")

    gamma_gamma, spend_problem = _fit_spend(x, m, min_repeaters)
    if gamma_gamma is None:
        return result(method="bgnbd+observed_spend", bgnbd=bgnbd, expected=expected, alive=alive, spend=observed_spend,
                      mean_spend=mean_spend,
                      reason=f"{spend_problem}; expected_value uses each customer's average repeat order value")
    return result(method="bgnbd+gamma_gamma", reason="", bgnbd=bgnbd, gamma_gamma=gamma_gamma, expected=expected,
                  alive=alive, spend=gamma_gamma_expected_value(gamma_gamma, x, m), mean_spend=gamma_gamma.mean_spend)


def _fit_spend(x: np.ndarray, m: np.ndarray, min_repeaters: int) -> tuple[GammaGammaParams | None, str]:
    """The Gamma-Gamma fit, or None and why not."""
    buyers = int(((x > 0) & (m > 0)).sum())
    if buyers < max(min_repeaters, 2):
        return None, f"too few repeat buyers with positive spend to fit the spend model ({buyers} < {max(min_repeaters, 2)})"
    try:
        fitted = fit_gamma_gamma(x, m)
    except ValueError as exc:
        return None, f"the spend model could not be fitted ({exc})"
    if not fitted.converged:
        return None, "the spend model's fit did not converge"
    if not math.isfinite(fitted.mean_spend):
        return None, "the fitted spend model has no finite mean (q <= 1)"
    return fitted, ""


def simulate_transactions(bgnbd: Sequence[float], gamma_gamma: Sequence[float], *, n_customers: int,
                          as_of: pd.Timestamp, max_age_days: int = 273,
                          seed: int | np.random.Generator = 0) -> pd.DataFrame:
    """Orders (customer_id, ordered_at, total) up to `as_of` for customers whose first order falls
    uniformly in the `max_age_days` days before it, repeat purchases drawn from a BG/NBD and order
    values from a Gamma-Gamma process with the given parameters (time in weeks). Naive dates."""
    p, q, gamma = (float(v) for v in gamma_gamma[:3])
    rng = np.random.default_rng(seed)
    age_days = rng.integers(0, max_age_days + 1, size=n_customers)
    sample = simulate_bgnbd(bgnbd, age_days / 7.0, seed=rng)
    x = sample["frequency"].to_numpy().astype(np.int64)
    t_x = sample["recency"].to_numpy()
    counts = x + 1
    owner = np.repeat(np.arange(n_customers), counts)
    position = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    # The first order starts the clock and the x-th repeat is at t_x; given that, the x - 1
    # repeats before it are uniform on (0, t_x).
    offset_weeks = rng.uniform(0.0, 1.0, size=owner.size) * t_x[owner]
    offset_weeks[position == 0] = 0.0
    last = (position == x[owner]) & (position > 0)
    offset_weeks[last] = t_x[owner[last]]
    offset_days = np.minimum(np.rint(offset_weeks * 7.0), age_days[owner]).astype("timedelta64[D]")
    first_day = np.datetime64(pd.Timestamp(as_of).tz_localize(None).normalize().date()) - age_days.astype("timedelta64[D]")
    nu = rng.gamma(q, 1.0 / gamma, size=n_customers)
    return pd.DataFrame({"customer_id": owner, "ordered_at": (first_day[owner] + offset_days).astype("datetime64[ns]"),
                         "total": rng.gamma(p, 1.0 / nu[owner])})
