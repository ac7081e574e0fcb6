"""BG/NBD (Fader, Hardie & Lee 2005): likelihood, fit, P(alive), expected purchases, the
predictive distribution, and a simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from metrics.clv._common import ArrayLike, minimise
from metrics.clv._common import arr as _arr


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

    theta, value, converged = minimise(objective, np.log(np.asarray(initial, dtype=float)))
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=-value * n, n_customers=round(n), converged=converged)


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
