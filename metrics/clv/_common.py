"""Helpers shared by the model modules: array coercion and the optimiser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

ArrayLike = Sequence[float] | np.ndarray | pd.Series | float


def arr(values: ArrayLike) -> np.ndarray:
    """Any scalar or sequence as a float array."""
    return np.asarray(values, dtype=float)


def minimise(objective: Any, start: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """L-BFGS-B on log-parameters within exp(+-12): (best point, objective there, converged)."""
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
