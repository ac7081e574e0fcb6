"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend.

Pure numpy/pandas/scipy, no Django, so Celery jobs and commands can both call it. One fit per
tenant: pass the tenant's own transactions to `summary_from_transactions` and fit on that frame.

Models and formulas:
- BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while active, a
  customer buys at Poisson rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop out
  with probability p ~ Beta(a, b). Likelihood (their eq. 6), conditional expectation (eq. 10) and
  P(alive) (appendix) are implemented below.
- Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie, "The Gamma-Gamma model of
  monetary value"): each transaction value ~ Gamma(p, nu), nu ~ Gamma(q, gamma), independent of
  the purchase process; fitted on the mean repeat-transaction value of customers with x > 0.

Conventions (those that reproduce the published CDNOW figures, see tests/metrics/test_clv.py):
- transactions on the same day are one purchase (values summed); the first purchase day starts
  the customer's clock and is not a repeat purchase;
- time is in weeks of 7 days: t_x = (last - first purchase day) / 7, T = (calibration end - first
  purchase day) / 7, calibration end inclusive;
- the monetary value is the mean value of the repeat purchase days only (the first excluded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

ArrayLike = Sequence[float] | np.ndarray | pd.Series | float

FREQ_DAYS = {"D": 1, "W": 7}

# Fader, Hardie & Lee (2005) on CDNOW's 2,357-customer sample, weeks 1-39 as calibration.
PUBLISHED_CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_CDNOW_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
# The quality targets on CDNOW, 39 weeks fitted and 39 forecast.
CDNOW_TARGETS = {"top_revenue_capture_min": 0.70, "purchases_mae_max": 0.78, "parameter_tolerance": 0.01}
CDNOW_COLUMNS = ["customer_id", "cohort", "date", "quantity", "amount"]


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    converged: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_customers: int
    converged: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def mean_spend(self) -> float:
        """Population mean transaction value, gamma * p / (q - 1) (infinite when q <= 1)."""
        return self.gamma * self.p / (self.q - 1.0) if self.q > 1.0 else math.inf


def _arr(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=float)


# ---------------------------------------------------------------------------------------------
# Summary: transactions -> (x, t_x, T, m) per customer


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


# ---------------------------------------------------------------------------------------------
# BG/NBD


def bgnbd_log_likelihood(params: Sequence[float], x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005 eq. 6), in log space: A1 + log(exp(A2) + d_x exp(A3))."""
    r, alpha, a, b = (float(v) for v in params[:4])
    x, t_x, T = np.broadcast_arrays(_arr(x), _arr(t_x), _arr(T))
    return _bgnbd_terms(r, alpha, a, b, x, t_x, T, gradient=False)[0]


def _bgnbd_terms(r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *,
                 gradient: bool, x_groups: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Log-likelihood per customer and, with `gradient`, its 4 x n derivatives in (r, alpha, a, b)."""
    # The gamma/beta functions depend on x alone, a small integer: evaluate them once per distinct
    # x and gather, which makes a million-customer pass a few array operations.
    xu, inv = x_groups if x_groups is not None else np.unique(x, return_inverse=True)
    repeat_u = xu > 0
    # B(a + 1, b + x - 1) only exists for x > 0; the term is absent (-inf) otherwise.
    b_x1_u = np.where(repeat_u, b + xu - 1.0, 1.0)
    beta_ab = special.betaln(a, b)
    a1_u = special.gammaln(r + xu) - special.gammaln(r) + r * math.log(alpha)
    a2_u = special.betaln(a, b + xu) - beta_ab
    a3_u = np.where(repeat_u, special.betaln(a + 1.0, b_x1_u) - beta_ab, -np.inf)
    xr = r + x
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    a2 = a2_u[inv] - xr * log_alpha_T
    a3 = a3_u[inv] - xr * log_alpha_tx
    lse = np.logaddexp(a2, a3)
    ll = a1_u[inv] + lse
    if not gradient:
        return ll, None
    w2 = np.exp(a2 - lse)  # the share of each term in the likelihood: d log(e^A2 + e^A3) = w2 dA2 + w3 dA3
    w3 = np.exp(a3 - lse)
    psi_ab, psi_b = special.digamma(a + b), special.digamma(b)
    psi_abx_u = special.digamma(a + b + xu)
    d_r_u = special.digamma(r + xu) - special.digamma(r) + math.log(alpha)
    d_a2_u = psi_ab - psi_abx_u
    d_a3_u = special.digamma(a + 1.0) - special.digamma(a) + psi_ab - psi_abx_u
    d_b2_u = special.digamma(b + xu) - psi_abx_u - psi_b + psi_ab
    d_b3_u = special.digamma(b_x1_u) - psi_abx_u - psi_b + psi_ab
    d_r = d_r_u[inv] - w2 * log_alpha_T - w3 * log_alpha_tx
    d_alpha = r / alpha - xr * (w2 / (alpha + T) + w3 / (alpha + t_x))
    d_a = w2 * d_a2_u[inv] + w3 * d_a3_u[inv]
    d_b = w2 * d_b2_u[inv] + w3 * d_b3_u[inv]
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None,
              initial: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b).

    Optimised over log-parameters with L-BFGS-B and the analytic gradient. Customers with the
    same (x, t_x, T) are evaluated once with a weight (real data in days repeats a lot);
    `weights` lets a caller pass such a grouped summary itself.
    """
    x, t_x, T = (np.ravel(v) for v in np.broadcast_arrays(_arr(x), _arr(t_x), _arr(T)))
    if x.size == 0:
        raise ValueError("no customers to fit")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(T))):
        raise ValueError("x, t_x and T must be finite")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise ValueError("need x >= 0 and 0 <= t_x <= T")
    w = np.ones_like(x) if weights is None else np.ravel(_arr(weights))
    grouped = pd.DataFrame({"x": x, "t_x": t_x, "T": T, "w": w}).groupby(["x", "t_x", "T"], sort=False)["w"].sum()
    if len(grouped) < 0.8 * x.size:
        x, t_x, T = (grouped.index.get_level_values(level).to_numpy(dtype=float) for level in ("x", "t_x", "T"))
        w = grouped.to_numpy(dtype=float)
    n = float(w.sum())
    x_groups = np.unique(x, return_inverse=True)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, grad = _bgnbd_terms(*params, x, t_x, T, gradient=True, x_groups=x_groups)
        assert grad is not None
        # Weighted sums by hand, not `grad @ w`: a BLAS product starts threads on every call, which
        # costs more than the sum and stalls on a busy machine.
        value = -float(np.sum(w * ll)) / n
        if not np.isfinite(value):
            return 1e10, np.zeros(4)
        return value, -np.sum(grad * w, axis=1) / n * params  # chain rule for log-parameters

    theta, value, converged = _minimise(objective, np.log(np.asarray(initial, dtype=float)))
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=-value * n, n_customers=round(n), converged=converged)


def _minimise(objective: Any, start: np.ndarray) -> tuple[np.ndarray, float, bool]:
    bounds = [(-12.0, 12.0)] * len(start)
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
    # L-BFGS-B can stop on a flat ridge (the model's parameters trade off); one restart from
    # where it stopped is cheap and settles it.
    again = optimize.minimize(objective, result.x, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
    best = again if again.fun <= result.fun else result
    gradient_small = bool(np.max(np.abs(best.jac)) < 1e-5)
    return best.x, float(best.fun), bool(best.success or gradient_small)


def bgnbd_prob_alive(params: BGNBDParams | Sequence[float], x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(still active | x, t_x, T) = 1 / (1 + d_x a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)); 1 when x = 0."""
    r, alpha, a, b = _bgnbd_tuple(params)
    x, t_x, T = np.broadcast_arrays(_arr(x), _arr(t_x), _arr(T))
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)
    log_odds = np.log(a) - np.log(b_x1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, special.expit(-log_odds), 1.0)


def bgnbd_expected_purchases(params: BGNBDParams | Sequence[float], t: ArrayLike, x: ArrayLike, t_x: ArrayLike,
                             T: ArrayLike) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next t periods (FHL 2005 eq. 10).

    (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] P(alive),
    z = t/(alpha+T+t). The bracket is evaluated after Euler's transformation,
    (1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z), c = a+b+x-1,
    whose parameters stay small for large x, where the untransformed 2F1 overflows.
    """
    r, alpha, a, b = _bgnbd_tuple(params)
    if abs(a - 1.0) < 1e-4:  # 0/0 at a = 1: the limit, as the mean of both sides
        return 0.5 * (bgnbd_expected_purchases((r, alpha, 1.0 - 2e-4, b), t, x, t_x, T)
                      + bgnbd_expected_purchases((r, alpha, 1.0 + 2e-4, b), t, x, t_x, T))
    t, x, t_x, T = np.broadcast_arrays(_arr(t), _arr(x), _arr(t_x), _arr(T))
    c = a + b + x - 1.0
    one_minus_z = (alpha + T) / (alpha + T + t)
    z = t / (alpha + T + t)
    with np.errstate(invalid="ignore", over="ignore"):
        bracket = 1.0 - one_minus_z ** (a - 1.0) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        expected = c / (a - 1.0) * bracket * bgnbd_prob_alive((r, alpha, a, b), x, t_x, T)
    broken = ~np.isfinite(expected)
    if broken.any():
        # Degenerate fits (a and b in the thousands, e.g. on a handful of customers) overflow
        # 2F1; summing the predictive tail P(Y >= y) gives the same expectation without it.
        expected = np.array(expected, dtype=float)
        expected[broken] = _expected_purchases_by_tail((r, alpha, a, b), t[broken], x[broken], t_x[broken], T[broken])
    return expected


def _expected_purchases_by_tail(params: tuple[float, float, float, float], t: np.ndarray, x: np.ndarray,
                                t_x: np.ndarray, T: np.ndarray, *, max_purchases: int = 100_000) -> np.ndarray:
    total = np.zeros(x.shape)
    for y in range(1, max_purchases + 1):
        tail = bgnbd_prob_at_least(params, y, t, x, t_x, T)
        total += tail
        if np.all(tail < 1e-12 * np.maximum(total, 1e-12)):
            break
    return total


def bgnbd_prob_at_least(params: BGNBDParams | Sequence[float], y: int, t: ArrayLike, x: ArrayLike, t_x: ArrayLike,
                        T: ArrayLike) -> np.ndarray:
    """P(Y(t) >= y | x, t_x, T), the conditional predictive distribution of future purchases.

    Only an active customer buys again. Given active at T, lambda ~ Gamma(r+x, alpha+T) and
    p ~ Beta(a, b+x) independently; Y(t) >= y needs y Poisson purchases in t (an NBD tail) and
    survival of the first y-1 of them, E[(1-p)^(y-1)] = B(a, b+x+y-1) / B(a, b+x).
    Summed over y >= 1 this gives eq. 10's expectation.
    """
    r, alpha, a, b = _bgnbd_tuple(params)
    t, x, t_x, T = np.broadcast_arrays(_arr(t), _arr(x), _arr(t_x), _arr(T))
    if y <= 0:
        return np.ones(x.shape)
    purchases_tail = stats.nbinom.sf(y - 1, r + x, (alpha + T) / (alpha + T + t))
    survives = np.exp(special.betaln(a, b + x + y - 1.0) - special.betaln(a, b + x))
    return bgnbd_prob_alive((r, alpha, a, b), x, t_x, T) * purchases_tail * survives


def bgnbd_median_purchases(params: BGNBDParams | Sequence[float], t: ArrayLike, x: ArrayLike, t_x: ArrayLike,
                           T: ArrayLike, *, max_purchases: int = 1000) -> np.ndarray:
    """Median of Y(t) | x, t_x, T: the point forecast that minimises expected absolute error
    (the expectation minimises squared error)."""
    arrays = np.broadcast_arrays(_arr(t), _arr(x), _arr(t_x), _arr(T))
    shape = arrays[0].shape
    t, x, t_x, T = (np.ravel(v) for v in arrays)
    median = np.zeros(x.shape)
    candidates = np.arange(x.size)  # P(Y >= y) falls with y: whoever drops to 1/2 or below is done
    for y in range(1, max_purchases + 1):
        above = bgnbd_prob_at_least(params, y, t[candidates], x[candidates], t_x[candidates], T[candidates]) > 0.5
        candidates = candidates[above]
        if candidates.size == 0:
            break
        median[candidates] += 1.0
    return median.reshape(shape)


def bgnbd_expected_purchases_new_customer(params: BGNBDParams | Sequence[float], t: ArrayLike) -> np.ndarray:
    """E[X(t)] for a customer just acquired (FHL 2005 eq. 9)."""
    r, alpha, a, b = _bgnbd_tuple(params)
    if abs(a - 1.0) < 1e-4:  # 0/0 at a = 1: the limit, as the mean of both sides
        return 0.5 * (bgnbd_expected_purchases_new_customer((r, alpha, 1.0 - 2e-4, b), t)
                      + bgnbd_expected_purchases_new_customer((r, alpha, 1.0 + 2e-4, b), t))
    t = _arr(t)
    z = t / (alpha + t)
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1.0, z))


def _bgnbd_tuple(params: BGNBDParams | Sequence[float]) -> tuple[float, float, float, float]:
    if isinstance(params, BGNBDParams):
        return params.r, params.alpha, params.a, params.b
    r, alpha, a, b = (float(v) for v in params[:4])
    return r, alpha, a, b


def simulate_bgnbd(params: Sequence[float], T: ArrayLike, *, seed: int | np.random.Generator = 0) -> pd.DataFrame:
    """Draw (x, t_x) for customers observed for T periods from a BG/NBD with `params`.

    Given lambda, purchases in (0, T] are Poisson(lambda T) with uniform times; the customer
    drops out after repeat purchase K ~ Geometric(p), so x = min(K, N) and t_x is the x-th of N
    uniform order statistics, i.e. T * Beta(x, N - x + 1).
    """
    r, alpha, a, b = (float(v) for v in params[:4])
    rng = np.random.default_rng(seed)
    T = _arr(T)
    lam = rng.gamma(r, 1.0 / alpha, size=T.shape)
    p = rng.beta(a, b, size=T.shape)
    n_events = rng.poisson(lam * T)
    drop_after = rng.geometric(np.clip(p, 1e-12, 1.0))
    x = np.minimum(n_events, drop_after)
    t_x = np.zeros_like(T)
    has = x > 0
    t_x[has] = T[has] * rng.beta(x[has], n_events[has] - x[has] + 1)
    return pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma


def gamma_gamma_log_likelihood(params: Sequence[float], frequency: ArrayLike, monetary: ArrayLike) -> np.ndarray:
    """Per-customer log density of the mean m of x transaction values (x > 0)."""
    p, q, gamma = (float(v) for v in params[:3])
    x, m = np.broadcast_arrays(_arr(frequency), _arr(monetary))
    return _gamma_gamma_terms(p, q, gamma, x, m, gradient=False)[0]


def _gamma_gamma_terms(p: float, q: float, gamma: float, x: np.ndarray, m: np.ndarray, *, gradient: bool,
                       x_groups: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    # As for BG/NBD, the gamma functions depend on x alone: once per distinct x.
    xu, inv = x_groups if x_groups is not None else np.unique(x, return_inverse=True)
    pxu = p * xu
    const_u = special.gammaln(pxu + q) - special.gammaln(pxu) - special.gammaln(q) + q * math.log(gamma)
    px = p * x
    log_m, log_x = np.log(m), np.log(x)
    log_mx = np.log(gamma + m * x)
    ll = const_u[inv] + (px - 1.0) * log_m + px * log_x - (px + q) * log_mx
    if not gradient:
        return ll, None
    psi_pxq_u = special.digamma(pxu + q)
    d_p = x * ((psi_pxq_u - special.digamma(pxu))[inv] + log_m + log_x - log_mx)
    d_q = (psi_pxq_u - special.digamma(q) + math.log(gamma))[inv] - log_mx
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return ll, np.stack([d_p, d_q, d_gamma])


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike, *,
                    initial: Sequence[float] = (1.0, 1.0, 1.0)) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma) on customers with x > 0 and m > 0."""
    x, m = (np.ravel(v) for v in np.broadcast_arrays(_arr(frequency), _arr(monetary)))
    keep = (x > 0) & (m > 0) & np.isfinite(m) & np.isfinite(x)
    x, m = x[keep], m[keep]
    if x.size < 2:
        raise ValueError("need at least two customers with repeat purchases and positive spend")
    n = float(x.size)
    # Work in units of the mean spend so the optimiser sees numbers near 1 whatever the currency.
    scale = float(np.mean(m))
    m_scaled = m / scale
    x_groups = np.unique(x, return_inverse=True)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, grad = _gamma_gamma_terms(*params, x, m_scaled, gradient=True, x_groups=x_groups)
        assert grad is not None
        value = -float(np.sum(ll)) / n
        if not np.isfinite(value):
            return 1e10, np.zeros(3)
        return value, -np.sum(grad, axis=1) / n * params

    theta, _value, converged = _minimise(objective, np.log(np.asarray(initial, dtype=float)))
    p, q, gamma_scaled = (float(v) for v in np.exp(theta))
    gamma = gamma_scaled * scale
    ll = float(gamma_gamma_log_likelihood((p, q, gamma), x, m).sum())
    return GammaGammaParams(p=p, q=q, gamma=gamma, log_likelihood=ll, n_customers=int(n), converged=converged)


def gamma_gamma_expected_value(params: GammaGammaParams | Sequence[float], x: ArrayLike, m: ArrayLike) -> np.ndarray:
    """E[M | x, m] = (gamma + m x) p / (p x + q - 1): the population mean gamma p/(q-1) when x = 0."""
    if isinstance(params, GammaGammaParams):
        p, q, gamma = params.p, params.q, params.gamma
    else:
        p, q, gamma = (float(v) for v in params[:3])
    x, m = np.broadcast_arrays(_arr(x), _arr(m))
    m = np.where(x > 0, m, 0.0)
    return (gamma + m * x) * p / (p * x + q - 1.0)


def simulate_gamma_gamma(params: Sequence[float], frequency: ArrayLike, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Mean transaction value of x transactions per customer (NaN when x = 0)."""
    p, q, gamma = (float(v) for v in params[:3])
    rng = np.random.default_rng(seed)
    x = _arr(frequency)
    nu = rng.gamma(q, 1.0 / gamma, size=x.shape)
    # The sum of x Gamma(p, nu) values is Gamma(p x, nu).
    total = rng.gamma(np.maximum(p * x, 1e-12), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1.0), np.nan)


# ---------------------------------------------------------------------------------------------
# CLV


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


# ---------------------------------------------------------------------------------------------
# Holdout evaluation (CDNOW format)


def read_cdnow(path: str | Path) -> pd.DataFrame:
    """CDNOW's whitespace-separated format: customer id, cohort, YYYYMMDD, CDs, dollars."""
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, comment="#")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path} holds no transactions") from exc
    if df.empty:
        raise ValueError(f"{path} holds no transactions")
    if df.shape[1] != len(CDNOW_COLUMNS):
        raise ValueError(f"{path}: rows have {df.shape[1]} columns, not 5 (customer, cohort, YYYYMMDD, CDs, dollars)")
    df.columns = CDNOW_COLUMNS
    if df.isna().any().any():
        line = int(df.isna().any(axis=1).to_numpy().argmax()) + 1
        raise ValueError(f"{path}: row {line} does not have 5 columns (customer, cohort, YYYYMMDD, CDs, dollars)")
    dates = pd.to_datetime(df["date"], format="%Y%m%d", errors="coerce")
    amounts = pd.to_numeric(df["amount"], errors="coerce")
    quantities = pd.to_numeric(df["quantity"], errors="coerce")
    bad = dates.isna() | amounts.isna() | quantities.isna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 1
        raise ValueError(f"{path}: row {line} has a bad date (YYYYMMDD) or number: {' '.join(df.iloc[line - 1])}")
    return pd.DataFrame({"customer_id": df["customer_id"], "cohort": df["cohort"], "date": dates,
                         "quantity": quantities, "amount": amounts})


def rfm_score(summary: pd.DataFrame) -> pd.Series:
    """Plain RFM: quintile scores (1-5) of recency (time since the last purchase, less is better),
    frequency and monetary value (total calibration spend), summed. Ties share a quintile."""
    recency_gap = summary["T"] - summary["recency"]

    def quintile(values: pd.Series) -> pd.Series:
        return np.ceil(values.rank(method="average", pct=True) * 5).clip(1, 5)

    return quintile(-recency_gap) + quintile(summary["frequency"]) + quintile(summary["calibration_value"])


def revenue_share_of_top(order: np.ndarray, revenue: np.ndarray, share: float) -> float:
    """Share of total `revenue` held by the first `share` of customers in `order` (indices, best first)."""
    total = float(revenue.sum())
    if total <= 0:
        return 0.0
    top = max(1, round(share * len(order)))
    return float(revenue[order[:top]].sum() / total)


def evaluate_holdout(transactions: pd.DataFrame, *, calibration_weeks: int = 39, holdout_weeks: int | None = None,
                     top_share: float = 0.2) -> dict[str, Any]:
    """Fit BG/NBD + Gamma-Gamma on the first `calibration_weeks` weeks of a CDNOW-format frame
    (from `read_cdnow`) and score the forecast of the next `holdout_weeks` (default: as many)."""
    holdout_weeks = calibration_weeks if holdout_weeks is None else holdout_weeks
    start = transactions["date"].min().normalize()
    calibration_end = start + pd.Timedelta(days=7 * calibration_weeks - 1)
    observation_end = calibration_end + pd.Timedelta(days=7 * holdout_weeks)
    summary = summary_from_transactions(transactions, "customer_id", "date", "amount", calibration_end, observation_end)
    if summary.empty:
        raise ValueError("no customer made a first purchase in the calibration period")
    x, t_x, T, m = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    actual = summary["holdout_frequency"].to_numpy()
    revenue = summary["holdout_value"].to_numpy()
    horizon = float(holdout_weeks)

    bgnbd = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, m)
    predicted = bgnbd_expected_purchases(bgnbd, horizon, x, t_x, T)
    rate_predicted = np.divide(x, T, out=np.zeros_like(x), where=T > 0) * horizon  # T = 0: bought on the last day
    value = clv(bgnbd, gg, x, t_x, T, m, horizon=horizon)
    median = bgnbd_median_purchases(bgnbd, horizon, x, t_x, T)
    rfm = rfm_score(summary).to_numpy()
    spend = summary["calibration_value"].to_numpy()

    def errors(pred: np.ndarray) -> dict[str, float]:
        diff = pred - actual
        total_pred, total_actual = float(pred.sum()), float(actual.sum())
        return {
            "mae": float(np.mean(np.abs(diff))),
            "rmse": float(np.sqrt(np.mean(diff**2))),
            "total_predicted": total_pred,
            "total_actual": total_actual,
            "aggregate_error_pct": 100.0 * (total_pred - total_actual) / total_actual if total_actual else math.nan,
        }

    # Ties (e.g. equal RFM scores) go to the bigger calibration spender; lexsort sorts by the last key first.
    by_value = np.lexsort((-spend, -value))
    by_rfm = np.lexsort((-spend, -rfm))
    by_frequency = []
    for level in range(8):
        group = x >= level if level == 7 else x == level
        if group.any():
            by_frequency.append({"x": f"{level}+" if level == 7 else str(level), "customers": int(group.sum()),
                                 "actual": float(actual[group].mean()), "bgnbd": float(predicted[group].mean()),
                                 "bgnbd_median": float(median[group].mean()),
                                 "rate_model": float(rate_predicted[group].mean())})
    predicted_revenue = float(value.sum())
    actual_revenue = float(revenue.sum())
    return {
        "customers": len(summary),
        "repeat_customers": int((x > 0).sum()),
        "calibration_end": calibration_end.date().isoformat(),
        "holdout_end": observation_end.date().isoformat(),
        "calibration_weeks": calibration_weeks,
        "holdout_weeks": holdout_weeks,
        "bgnbd": bgnbd.as_dict(),
        "gamma_gamma": {**gg.as_dict(), "mean_spend": gg.mean_spend},
        "published": {"bgnbd": PUBLISHED_CDNOW_BGNBD, "gamma_gamma": PUBLISHED_CDNOW_GAMMA_GAMMA},
        "targets": CDNOW_TARGETS,
        "purchases": {
            "bgnbd": errors(predicted),  # the conditional expectation, eq. 10
            "bgnbd_median": errors(median),  # the predictive median: the best forecast for absolute error
            "rate_model": errors(rate_predicted),  # x / T per week, times the holdout length
            "zero": errors(np.zeros_like(actual)),  # nobody buys again
        },
        "revenue": {
            "predicted": predicted_revenue,
            "actual": actual_revenue,
            "aggregate_error_pct": 100.0 * (predicted_revenue - actual_revenue) / actual_revenue if actual_revenue else math.nan,
        },
        "top_share": top_share,
        "top_revenue_capture": {
            "clv": revenue_share_of_top(by_value, revenue, top_share),
            "rfm": revenue_share_of_top(by_rfm, revenue, top_share),
            "oracle": revenue_share_of_top(np.argsort(-revenue, kind="stable"), revenue, top_share),
        },
        "by_calibration_frequency": by_frequency,
    }
