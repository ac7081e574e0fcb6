"""Churn risk per tenant: label = no order within `horizon_days`, learned on the tenant's own past, else a documented recency rule.

Training looks back from ``cutoff = as_of - horizon``: features use orders up to and including the
cutoff, the label is 1 when the customer has no order in ``(cutoff, as_of]``. Prediction computes the
same features at ``as_of`` with the same function, so the model answers "will this customer place no
order in the next horizon?".

Fallback ("recency_rule"), used when history is shorter than ``min_history_days`` (default two
horizons), there are fewer than ``min_customers`` labelled customers, or either class has fewer than
MIN_PER_CLASS members::

    p = 1 / (1 + exp(-(recency_days / typical_gap - 2)))

``typical_gap`` is the median of repeat customers' mean inter-purchase gap (half the horizon when
fewer than MIN_REPEAT_CUSTOMERS bought twice). Someone silent for twice the usual gap is a coin flip;
each further gap adds one unit of log-odds. The probability only grows with recency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from customers.analytics._common import DAY, naive_utc_series, naive_utc_timestamp, require_columns

ORDER_TIME_COLUMNS: tuple[str, ...] = ("customer_id", "ordered_at", "total")
CHURN_FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",           # days since the last order
    "frequency",              # orders so far
    "monetary",               # revenue so far
    "avg_order_value",
    "tenure_days",            # days since the first order
    "active_span_days",       # first to last order
    "mean_gap_days",          # mean days between orders; for one-order customers, tenure (a lower bound)
    "recency_gap_ratio",      # recency / mean gap: "overdue" relative to the customer's own rhythm
    "orders_last_horizon",    # orders in the horizon before the reference date (trend)
)
RECENCY_RULE = "recency_rule"
MIN_PER_CLASS = 20  # stratified split and 3-fold calibration need a handful of each class in every fold
MIN_REPEAT_CUSTOMERS = 10
MAX_TRAINING_ROWS = 200_000  # beyond this, more rows barely move AUC but cost seconds per fit
VALID_SHARE = 0.25
ISOTONIC_MIN_ROWS = 5000  # isotonic calibration overfits small sets; sigmoid is the safer choice there


@dataclass
class ChurnModel:
    method: str  # "recency_rule", "logistic_regression" or "hist_gradient_boosting"
    is_fallback: bool
    horizon_days: int
    trained_as_of: pd.Timestamp
    typical_gap_days: float
    reason: str | None = None  # plain English, set when is_fallback
    roc_auc: float | None = None  # on the held-out validation split
    brier: float | None = None
    base_rate: float | None = None  # churn rate among labelled customers
    n_train: int = 0
    n_valid: int = 0
    calibration: str | None = None
    candidate_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    estimator: Any = None

    def predict(self, order_times: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.Series:
        """Churn probability for every customer with an order up to as_of, indexed by customer_id."""
        features = churn_features(order_times, as_of=as_of, horizon_days=self.horizon_days)
        if self.is_fallback or len(features) == 0:
            probability = recency_rule_probability(features["recency_days"].to_numpy(), typical_gap_days=self.typical_gap_days)
        else:
            probability = self.estimator.predict_proba(features.to_numpy(dtype="float64"))[:, 1]
        return pd.Series(probability, index=features.index, name="churn_probability")

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for the model page: what was trained when, on how many customers, how good."""
        return {
            "method": self.method,
            "is_fallback": self.is_fallback,
            "reason": self.reason,
            "horizon_days": self.horizon_days,
            "trained_as_of": self.trained_as_of.isoformat(),
            "typical_gap_days": self.typical_gap_days,
            "roc_auc": self.roc_auc,
            "brier": self.brier,
            "base_rate": self.base_rate,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "calibration": self.calibration,
            "candidate_scores": self.candidate_scores,
        }


def recency_rule_probability(recency_days: np.ndarray, *, typical_gap_days: float) -> np.ndarray:
    overdue = np.asarray(recency_days, dtype="float64") / max(typical_gap_days, 1.0)
    return 1.0 / (1.0 + np.exp(-(overdue - 2.0)))


def churn_features(order_times: pd.DataFrame, *, as_of: pd.Timestamp, horizon_days: int = 90) -> pd.DataFrame:
    """CHURN_FEATURE_COLUMNS at as_of from orders up to as_of, one row per customer, indexed by customer_id."""
    prepared = _prepare(order_times)
    return _features_at(prepared, at_day=_day_number(naive_utc_timestamp(as_of)), horizon_days=horizon_days)


def churn_training_frame(
    order_times: pd.DataFrame, *, as_of: pd.Timestamp, horizon_days: int = 90,
) -> tuple[pd.DataFrame, pd.Series]:
    """Features at as_of - horizon for customers who had ordered by then, and label 1 = no order after."""
    prepared = _prepare(order_times)
    return _training_frame(prepared, as_of_day=_day_number(naive_utc_timestamp(as_of)), horizon_days=horizon_days)


def train_churn_model(
    order_times: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    horizon_days: int = 90,
    min_customers: int = 200,
    min_history_days: int | None = None,
    random_state: int = 0,
) -> ChurnModel:
    """A calibrated classifier validated on held-out customers, or the recency rule with the reason why."""
    as_of = naive_utc_timestamp(as_of)
    as_of_day = _day_number(as_of)
    prepared = _prepare(order_times)
    prepared = prepared.loc[prepared["day"] <= as_of_day]
    need_days = min_history_days if min_history_days is not None else 2 * horizon_days
    base: dict[str, Any] = {"horizon_days": horizon_days, "trained_as_of": as_of, "typical_gap_days": _typical_gap(prepared, as_of_day, horizon_days)}

    def fallback(reason: str, **scores: Any) -> ChurnModel:
        return ChurnModel(method=RECENCY_RULE, is_fallback=True, reason=reason, **base, **scores)

    if prepared.empty:
        return fallback(f"no orders up to {as_of:%Y-%m-%d}")
    span_days = int(as_of_day - prepared["day"].min())
    if span_days < need_days:
        return fallback(f"history too short: {span_days} days of orders, need {need_days}")
    features, labels = _training_frame(prepared, as_of_day=as_of_day, horizon_days=horizon_days)
    base_rate = float(labels.mean()) if len(labels) else None
    if len(labels) < min_customers:
        return fallback(
            f"too few customers to learn from: {len(labels)} had ordered by {as_of - pd.Timedelta(days=horizon_days):%Y-%m-%d}, need {min_customers}",
            base_rate=base_rate,
        )
    churned = int(labels.sum())
    smaller = min(churned, len(labels) - churned)
    if smaller < MIN_PER_CLASS:
        which = "churned" if churned == smaller else "returning"
        return fallback(
            f"too few {which} customers to learn from: {smaller} of {len(labels)}, need {MIN_PER_CLASS}",
            base_rate=base_rate,
        )

    matrix = features.to_numpy(dtype="float64")
    target = labels.to_numpy(dtype="int64")
    if len(target) > MAX_TRAINING_ROWS:
        keep, _ = train_test_split(
            np.arange(len(target)), train_size=MAX_TRAINING_ROWS, stratify=target, random_state=random_state,
        )
        keep = np.sort(keep)
        matrix, target = matrix[keep], target[keep]
    x_train, x_valid, y_train, y_valid = train_test_split(
        matrix, target, test_size=VALID_SHARE, stratify=target, random_state=random_state,
    )
    calibration = "isotonic" if len(y_train) >= ISOTONIC_MIN_ROWS else "sigmoid"
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state)

    candidate_scores: dict[str, dict[str, float]] = {}
    fitted: dict[str, CalibratedClassifierCV] = {}
    for name, estimator in _candidates(random_state).items():
        # ensemble=False: calibrate on out-of-fold predictions, then keep one model refitted on all training
        # rows; the default keeps one model per fold, which triples prediction time at 1M customers.
        model = CalibratedClassifierCV(clone(estimator), method=calibration, cv=folds, ensemble=False).fit(x_train, y_train)
        probability = model.predict_proba(x_valid)[:, 1]
        candidate_scores[name] = {
            "roc_auc": float(roc_auc_score(y_valid, probability)),
            "brier": float(brier_score_loss(y_valid, probability)),
        }
        fitted[name] = model
    # Brier rewards calibration and ranking together, which is what a probability shown to marketers needs.
    best = min(candidate_scores, key=lambda name: (candidate_scores[name]["brier"], name))
    return ChurnModel(
        method=best,
        is_fallback=False,
        roc_auc=candidate_scores[best]["roc_auc"],
        brier=candidate_scores[best]["brier"],
        base_rate=base_rate,
        n_train=len(y_train),
        n_valid=len(y_valid),
        calibration=calibration,
        candidate_scores=candidate_scores,
        estimator=fitted[best],
        **base,
    )


def _candidates(random_state: int) -> dict[str, ClassifierMixin]:
    return {
        "logistic_regression": make_pipeline(
            FunctionTransformer(_log1p_nonnegative), StandardScaler(), LogisticRegression(max_iter=1000),
        ),
        # Early stopping keeps the fit to a few seconds at 150k rows; random_state fixes its internal split.
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, early_stopping=True, random_state=random_state,
        ),
    }


def _log1p_nonnegative(matrix: np.ndarray) -> np.ndarray:
    # Module-level so the fitted pipeline pickles (lambdas do not).
    return np.log1p(np.clip(matrix, 0, None))


def _day_number(stamp: pd.Timestamp) -> float:
    return float((stamp - pd.Timestamp("1970-01-01")) / DAY)


def _prepare(order_times: pd.DataFrame) -> pd.DataFrame:
    """customer_id, day (float days since epoch) and total as float: numeric groupbys are several times faster."""
    require_columns(order_times, ORDER_TIME_COLUMNS, name="order_times")
    ordered_at = naive_utc_series(order_times["ordered_at"])
    prepared = pd.DataFrame({
        "customer_id": order_times["customer_id"].to_numpy(),
        "day": ((ordered_at - pd.Timestamp("1970-01-01")) / DAY).to_numpy(dtype="float64"),
        # Decimal totals from SQL arrive as objects; refunds can make a total negative, which stays as is.
        "total": pd.to_numeric(order_times["total"], errors="coerce").fillna(0.0).to_numpy(dtype="float64"),
    })
    return prepared.loc[~np.isnan(prepared["day"].to_numpy())]


def _features_at(prepared: pd.DataFrame, *, at_day: float, horizon_days: int) -> pd.DataFrame:
    known = prepared.loc[prepared["day"].to_numpy() <= at_day]
    grouped = known.groupby("customer_id", sort=True)
    frame = grouped.agg(frequency=("day", "size"), monetary=("total", "sum"), first=("day", "min"), last=("day", "max"))
    recent = known.loc[known["day"].to_numpy() > at_day - horizon_days].groupby("customer_id").size()

    frequency = frame["frequency"].to_numpy(dtype="float64")
    recency = at_day - frame["last"].to_numpy()
    tenure = at_day - frame["first"].to_numpy()
    span = frame["last"].to_numpy() - frame["first"].to_numpy()
    mean_gap = np.where(frequency > 1, span / np.maximum(frequency - 1, 1), tenure)
    return pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": frequency,
            "monetary": frame["monetary"].to_numpy(),
            "avg_order_value": frame["monetary"].to_numpy() / frequency,
            "tenure_days": tenure,
            "active_span_days": span,
            "mean_gap_days": mean_gap,
            "recency_gap_ratio": recency / np.maximum(mean_gap, 1.0),
            "orders_last_horizon": recent.reindex(frame.index, fill_value=0).to_numpy(dtype="float64"),
        },
        index=pd.Index(frame.index, name="customer_id"),
    )


def _training_frame(prepared: pd.DataFrame, *, as_of_day: float, horizon_days: int) -> tuple[pd.DataFrame, pd.Series]:
    cutoff_day = as_of_day - horizon_days
    features = _features_at(prepared, at_day=cutoff_day, horizon_days=horizon_days)
    days = prepared["day"].to_numpy()
    returned = pd.Index(prepared.loc[(days > cutoff_day) & (days <= as_of_day), "customer_id"].unique())
    labels = pd.Series((~features.index.isin(returned)).astype("int64"), index=features.index, name="churned")
    return features, labels


def _typical_gap(prepared: pd.DataFrame, as_of_day: float, horizon_days: int) -> float:
    if prepared.empty:
        return horizon_days / 2
    features = _features_at(prepared, at_day=as_of_day, horizon_days=horizon_days)
    gaps = features.loc[features["frequency"] >= 2, "mean_gap_days"]
    if len(gaps) < MIN_REPEAT_CUSTOMERS:
        return horizon_days / 2
    return max(float(gaps.median()), 1.0)
