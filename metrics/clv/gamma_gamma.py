"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013): likelihood, fit,
conditional expected spend, and a simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special

from metrics.clv._common import ArrayLike, minimise
from metrics.clv._common import arr as _arr


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

    theta, _value, converged = minimise(objective, np.log(np.asarray(initial, dtype=float)))
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
