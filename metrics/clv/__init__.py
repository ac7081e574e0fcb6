"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend.

Pure numpy/pandas/scipy, no Django, so Celery jobs and commands can both call it. One fit per
tenant: the platform's job calls `predict_customer_value(transactions, as_of=...)` with the
tenant's own revenue orders; it falls back to a rate model, and says why, when the tenant has
too few repeat buyers (or the fit fails).

Models and formulas:
- BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while active, a
  customer buys at Poisson rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop out
  with probability p ~ Beta(a, b). Likelihood (their eq. 6), conditional expectation (eq. 10),
  P(alive) (appendix) and the conditional predictive distribution are in `bgnbd`.
- Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013, "The Gamma-Gamma
  model of monetary value"): each transaction value ~ Gamma(p, nu), nu ~ Gamma(q, gamma),
  independent of the purchase process; fitted on the mean repeat-transaction value of customers
  with x > 0 (`gamma_gamma`).

Conventions, those of the papers (they reproduce the published CDNOW figures: 6,919 records make
6,696 purchase days, 2,457 repeat purchases in weeks 1-39 and the published parameters, see
tests/metrics/test_clv.py):
- transactions on the same day are one purchase (values summed); the first purchase day starts
  the customer's clock and is not a repeat purchase;
- time is in weeks of 7 days: t_x = (last - first purchase day) / 7, T = (calibration end - first
  purchase day) / 7, calibration end inclusive;
- the monetary value is the mean value of the repeat purchase days only (the first excluded);
- a customer's predicted value is E[purchases over the horizon] x E[M | x, m]; without repeat
  purchases E[M] is the Gamma-Gamma population mean gamma p / (q - 1): the model's answer, since
  the first purchase is not one of its observations (on CDNOW first purchases average $33.0,
  repeat purchases $38.8, so they are not drawn alike).

Holdout evaluation (`evaluation`, `manage.py evaluate_predictions`), choices made from the models
and decision theory, never from the holdout:
- holdout purchases are purchase days after the calibration end (all repeat purchases) and
  holdout revenue all spend then;
- the per-customer error (MAE) is scored on the median of each customer's predictive
  distribution, the point forecast that minimises expected absolute error; the conditional
  expectation (which minimises squared error) is scored beside it and is what the aggregate
  forecast sums, since a sum of medians is not a forecast of the total;
- the top-customer revenue capture ranks by predicted value, i.e. expected holdout revenue.
  Alternatives for zero-repeat customers' spend are reported, not used.
"""

from metrics.clv._common import ArrayLike
from metrics.clv.bgnbd import (
    BGNBDParams,
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_log_likelihood,
    bgnbd_median_purchases,
    bgnbd_prob_alive,
    bgnbd_prob_at_least,
    fit_bgnbd,
    simulate_bgnbd,
)
from metrics.clv.evaluation import (
    CDNOW_COLUMNS,
    CDNOW_TARGETS,
    DEFINITIONS,
    PUBLISHED_CDNOW_BGNBD,
    PUBLISHED_CDNOW_GAMMA_GAMMA,
    evaluate_holdout,
    read_cdnow,
    revenue_share_of_top,
    rfm_score,
)
from metrics.clv.gamma_gamma import (
    GammaGammaParams,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
    gamma_gamma_log_likelihood,
    simulate_gamma_gamma,
)
from metrics.clv.prediction import (
    PREDICTION_COLUMNS,
    TRANSACTION_COLUMNS,
    CLVPrediction,
    clv,
    predict_customer_value,
    simulate_transactions,
)
from metrics.clv.summary import FREQ_DAYS, summary_from_transactions

__all__ = [
    "CDNOW_COLUMNS",
    "CDNOW_TARGETS",
    "DEFINITIONS",
    "FREQ_DAYS",
    "PREDICTION_COLUMNS",
    "PUBLISHED_CDNOW_BGNBD",
    "PUBLISHED_CDNOW_GAMMA_GAMMA",
    "TRANSACTION_COLUMNS",
    "ArrayLike",
    "BGNBDParams",
    "CLVPrediction",
    "GammaGammaParams",
    "bgnbd_expected_purchases",
    "bgnbd_expected_purchases_new_customer",
    "bgnbd_log_likelihood",
    "bgnbd_median_purchases",
    "bgnbd_prob_alive",
    "bgnbd_prob_at_least",
    "clv",
    "evaluate_holdout",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_value",
    "gamma_gamma_log_likelihood",
    "predict_customer_value",
    "read_cdnow",
    "revenue_share_of_top",
    "rfm_score",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "simulate_transactions",
    "summary_from_transactions",
]
