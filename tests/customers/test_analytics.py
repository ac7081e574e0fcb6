"""Customer analytics (features, RFM, clusters, churn): pure functions over synthetic frames, no database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from customers.analytics import (
    CHURN_FEATURE_COLUMNS,
    DESCRIPTION_WORDS,
    FEATURE_COLUMNS,
    RFM_GROUPS,
    churn_training_frame,
    cluster_customers,
    customer_features,
    quintile_score,
    rfm_group_for,
    score_rfm,
    train_churn_model,
)

AS_OF = pd.Timestamp("2025-06-01")


def _days_ago(*days: float | None) -> list[pd.Timestamp]:
    return [pd.NaT if day is None else AS_OF - pd.Timedelta(days=day) for day in days]


def _orders(rows: list[tuple[int, int, float, float | None, float | None, int]]) -> pd.DataFrame:
    ids, counts, revenue, first, last, discounted = zip(*rows, strict=True) if rows else ((),) * 6
    return pd.DataFrame({
        "customer_id": pd.Series(ids, dtype="int64"),
        "order_count": pd.Series(counts, dtype="int64"),
        "revenue": pd.Series(revenue, dtype="float64"),
        "first_order_at": pd.Series(_days_ago(*first), dtype="datetime64[ns]"),
        "last_order_at": pd.Series(_days_ago(*last), dtype="datetime64[ns]"),
        "discounted_orders": pd.Series(discounted, dtype="int64"),
    })


def _events(rows: list[tuple[int, int, int, int, int, int, float | None, float | None]]) -> pd.DataFrame:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    frame = pd.DataFrame({
        name: pd.Series(values, dtype="int64")
        for name, values in zip(
            ("customer_id", "events_total", "product_views", "add_to_carts", "offer_views", "offer_clicks"), columns[:6], strict=True,
        )
    })
    frame["first_event_at"] = pd.Series(_days_ago(*columns[6]), dtype="datetime64[ns]")
    frame["last_event_at"] = pd.Series(_days_ago(*columns[7]), dtype="datetime64[ns]")
    return frame


# features


def test_customer_features_outer_joins_orders_and_events() -> None:
    orders = _orders([(1, 4, 400.0, 100, 10, 1), (3, 2, 50.0, 30, 20, 2)])
    events = _events([(2, 14, 10, 3, 4, 1, 70, 5), (3, 7, 0, 2, 0, 0, 200, 1)])

    features = customer_features(orders, events, as_of=AS_OF)

    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert list(features.index) == [1, 2, 3]
    assert not features.isna().any().any()
    only_orders, only_events, both = (features.loc[customer] for customer in (1, 2, 3))
    assert only_orders.to_dict() == pytest.approx({
        "recency_days": 10, "frequency": 4, "monetary": 400, "avg_order_value": 100, "tenure_days": 100,
        "activity_per_week": 0, "cart_rate": 0, "offer_response": 0, "discount_share": 0.25,
    })
    assert only_events.to_dict() == pytest.approx({
        "recency_days": 5, "frequency": 0, "monetary": 0, "avg_order_value": 0, "tenure_days": 70,
        "activity_per_week": 14 / 10, "cart_rate": 0.3, "offer_response": 0.25, "discount_share": 0,
    })
    # Recency comes from the last order even when an event is more recent; tenure from the earliest date.
    assert both["recency_days"] == pytest.approx(20)
    assert both["tenure_days"] == pytest.approx(200)
    assert both["cart_rate"] == pytest.approx(2.0)
    assert both["discount_share"] == pytest.approx(1.0)


def test_customer_features_counts_short_tenure_as_one_week() -> None:
    events = _events([(1, 21, 0, 0, 0, 0, 2, 1)])

    features = customer_features(_orders([]), events, as_of=AS_OF)

    assert features.loc[1, "activity_per_week"] == pytest.approx(21)


def test_customer_features_without_dates_never_look_recent() -> None:
    orders = _orders([(1, 1, 10.0, 300, 300, 0)])
    events = _events([(2, 0, 0, 0, 0, 0, None, None)])

    features = customer_features(orders, events, as_of=AS_OF)

    assert features.loc[2, "recency_days"] == pytest.approx(300)
    assert features.loc[2, "tenure_days"] == 0


def test_customer_features_accepts_aware_as_of_and_aware_columns() -> None:
    orders = _orders([(1, 1, 10.0, 3, 3, 0)])
    orders["first_order_at"] = orders["first_order_at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Moscow")
    orders["last_order_at"] = orders["last_order_at"].dt.tz_localize("UTC")

    features = customer_features(orders, _events([]), as_of=AS_OF.tz_localize("UTC"))

    assert features.loc[1, ["recency_days", "tenure_days"]].tolist() == pytest.approx([3, 3])


def test_customer_features_rejects_duplicate_customers() -> None:
    orders = _orders([(1, 1, 10.0, 3, 3, 0), (1, 2, 10.0, 3, 3, 0)])

    with pytest.raises(ValueError, match="one row per customer_id"):
        customer_features(orders, _events([]), as_of=AS_OF)


# RFM


def test_quintile_score_gives_tied_values_one_score() -> None:
    frequency = pd.Series([1] * 70 + [2] * 15 + [3] * 15)

    scores = quintile_score(frequency)

    assert set(scores[:70]) == {1}
    assert set(scores[70:85]) == {4}
    assert set(scores[85:]) == {5}


def test_quintile_score_splits_distinct_values_into_fifths() -> None:
    scores = quintile_score(pd.Series(np.arange(100, 0, -1)))

    assert np.bincount(scores).tolist() == [0, 20, 20, 20, 20, 20]
    assert scores[0] == 5


@pytest.mark.parametrize(
    ("r_score", "fm_score", "group"),
    [
        (5, 5, "champions"), (5, 4, "champions"), (4, 4, "loyal"), (3, 5, "loyal"),
        (5, 2, "potential_loyalists"), (4, 3, "potential_loyalists"), (5, 1, "new"), (4, 1, "promising"),
        (3, 3, "need_attention"), (3, 2, "about_to_sleep"), (2, 3, "at_risk"), (1, 4, "at_risk"),
        (1, 5, "cant_lose"), (2, 5, "cant_lose"), (2, 2, "hibernating"), (1, 2, "lost"), (1, 1, "lost"),
    ],
)
def test_rfm_grid_maps_scores_to_groups(r_score: int, fm_score: int, group: str) -> None:
    assert rfm_group_for(r_score, fm_score) == group


def test_rfm_grid_reaches_every_group() -> None:
    reached = {rfm_group_for(r, fm) for r in range(1, 6) for fm in range(1, 6)}

    assert reached == set(RFM_GROUPS)


def test_score_rfm_scores_buyers_only() -> None:
    # Customer i: recency 100 - i days, i + 1 orders, spends 10 * (i + 1); 0 is worst, 99 best.
    features = pd.DataFrame(
        {column: 0.0 for column in FEATURE_COLUMNS}, index=pd.Index(range(101), name="customer_id"),
    )
    features["recency_days"] = [100.0 - i for i in range(100)] + [1.0]
    features["frequency"] = [i + 1 for i in range(100)] + [0]
    features["monetary"] = [10.0 * (i + 1) for i in range(100)] + [0.0]

    rfm = score_rfm(features)

    assert 100 not in rfm.index
    assert rfm.loc[99, ["r_score", "f_score", "m_score", "fm_score"]].tolist() == [5, 5, 5, 5]
    assert rfm.loc[99, "rfm_group"] == "champions"
    assert rfm.loc[0, ["r_score", "f_score", "m_score"]].tolist() == [1, 1, 1]
    assert rfm.loc[0, "rfm_group"] == "lost"
    assert list(rfm["rfm_group"].cat.categories) == list(RFM_GROUPS)


def test_score_rfm_rounds_fm_half_up() -> None:
    features = pd.DataFrame(
        {"recency_days": [1.0] * 5, "frequency": [1] * 5, "monetary": [10.0, 20.0, 30.0, 40.0, 50.0]}, index=range(5),
    )

    rfm = score_rfm(features)

    # All tied on frequency (f 1); m 1..5. Banker's rounding would turn (1 + 4) / 2 into 2, not 3.
    assert rfm["m_score"].tolist() == [1, 2, 3, 4, 5]
    assert rfm["fm_score"].tolist() == [1, 2, 2, 3, 3]


def test_score_rfm_handles_no_buyers() -> None:
    features = customer_features(_orders([]), _events([(1, 3, 1, 0, 0, 0, 5, 1)]), as_of=AS_OF)

    assert score_rfm(features).empty


# clusters


def _three_behaviours(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def block(size: int, **means: float) -> pd.DataFrame:
        data = {column: np.abs(rng.normal(means.get(column, 0.0), 0.05 * max(means.get(column, 0.0), 0.2), size)) for column in FEATURE_COLUMNS}
        return pd.DataFrame(data)

    regulars = block(500, recency_days=10, frequency=20, monetary=4000, avg_order_value=200, tenure_days=900, activity_per_week=2, cart_rate=0.2, offer_response=0.05, discount_share=0.05)
    bargain = block(300, recency_days=60, frequency=3, monetary=90, avg_order_value=30, tenure_days=400, activity_per_week=1, cart_rate=0.2, offer_response=0.6, discount_share=0.9)
    browsers = block(200, recency_days=5, frequency=0, monetary=0, avg_order_value=0, tenure_days=30, activity_per_week=40, cart_rate=0.1, offer_response=0.05, discount_share=0)
    features = pd.concat([regulars, bargain, browsers], ignore_index=True)
    features["frequency"] = features["frequency"].round().astype("int64")
    features.index = pd.Index(rng.permutation(len(features)) + 1000, name="customer_id")
    return features


def test_cluster_customers_finds_and_describes_separated_groups() -> None:
    features = _three_behaviours()

    result = cluster_customers(features, sample_size=800)

    assert result.k == 3
    assert result.reason is None
    assert result.silhouette is not None and result.silhouette > 0.5
    assert set(result.silhouette_by_k) == set(range(2, 9))
    assert result.labels.index.equals(features.index)
    assert result.profiles["size"].tolist() == [500, 300, 200]
    assert result.profiles["share"].sum() == pytest.approx(1.0)
    assert list(result.profiles.columns) == ["size", "share", *FEATURE_COLUMNS]
    assert "frequent" in result.descriptions[0]
    assert "discount_sensitive" in result.descriptions[1]
    assert result.descriptions[2][0] == "never_bought"
    assert "browses_a_lot" in result.descriptions[2]
    for words in result.descriptions.values():
        assert 1 <= len(words) <= 4
        assert set(words) <= set(DESCRIPTION_WORDS)
    assert result.description_text(1).startswith(DESCRIPTION_WORDS[result.descriptions[1][0]])


def test_cluster_customers_is_deterministic() -> None:
    features = _three_behaviours()

    first = cluster_customers(features, sample_size=600, random_state=7)
    second = cluster_customers(features, sample_size=600, random_state=7)

    assert first.labels.equals(second.labels)
    assert first.silhouette_by_k == second.silhouette_by_k


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        (_three_behaviours().iloc[:15], "too few customers to cluster: 15, need 20"),
        (pd.DataFrame({column: [1.0] * 50 for column in FEATURE_COLUMNS}), "all customers have identical features"),
    ],
)
def test_cluster_customers_returns_one_cluster_when_it_cannot_cluster(features: pd.DataFrame, reason: str) -> None:
    result = cluster_customers(features)

    assert result.k == 1
    assert result.silhouette is None
    assert result.reason == reason
    assert set(result.labels) == {0}
    assert result.profiles["size"].tolist() == [len(features)]
    assert result.descriptions == {0: ["typical"]}


# churn


def _simulated_orders(customers: int, *, days: int, seed: int) -> pd.DataFrame:
    """Buy-till-you-die: each customer buys at their own rate until an unobserved dropout.

    Customers who have been silent for long relative to their rate are likelier to have dropped out,
    which is the mechanism the model has to pick up."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, days, customers)
    rate = rng.gamma(2.0, 1 / 60, customers)  # about one order a month on average
    lifetime = rng.exponential(rng.uniform(60, 400, customers))
    end = np.minimum(start + lifetime, days)
    rows: list[tuple[int, float, float]] = []
    for customer in range(customers):
        moment = start[customer]
        while moment <= end[customer]:
            rows.append((customer, moment, float(rng.lognormal(3.5, 0.5))))
            moment += rng.exponential(1 / rate[customer])
    customer_ids, day, total = zip(*rows, strict=True)
    return pd.DataFrame({
        "customer_id": np.asarray(customer_ids, dtype="int64"),
        "ordered_at": pd.Timestamp("2023-01-01") + pd.to_timedelta(np.asarray(day), unit="D"),
        "total": np.asarray(total),
    })


def test_churn_training_frame_labels_customers_by_the_horizon() -> None:
    orders = pd.DataFrame({
        "customer_id": [1, 1, 2, 3, 4],
        "ordered_at": _days_ago(200, 30, 150, 10, 91),
        "total": [10.0, 20.0, 5.0, 7.0, 3.0],
    })

    features, labels = churn_training_frame(orders, as_of=AS_OF, horizon_days=90)

    assert list(features.columns) == list(CHURN_FEATURE_COLUMNS)
    assert labels.to_dict() == {1: 0, 2: 1, 4: 1}
    assert features.loc[1, ["recency_days", "frequency", "monetary", "tenure_days"]].tolist() == pytest.approx([110, 1, 10, 110])
    assert features.loc[4, "recency_days"] == pytest.approx(1)


def test_churn_model_learns_and_is_calibrated_out_of_time() -> None:
    horizon = 90
    orders = _simulated_orders(5000, days=900, seed=1)
    as_of = pd.Timestamp("2023-01-01") + pd.Timedelta(days=900 - horizon)
    past = orders.loc[orders["ordered_at"] <= as_of]

    model = train_churn_model(past, as_of=as_of, horizon_days=horizon)
    probability = model.predict(past, as_of=as_of)

    future = orders.loc[orders["ordered_at"] > as_of, "customer_id"].unique()
    observed = (~probability.index.isin(future)).astype(int)
    assert not model.is_fallback
    assert model.method in {"logistic_regression", "hist_gradient_boosting"}
    assert model.roc_auc is not None and model.roc_auc > 0.6
    assert model.n_train > model.n_valid > 0
    assert roc_auc_score(observed, probability) > 0.6
    assert abs(probability.mean() - observed.mean()) < 0.05
    assert probability.between(0, 1).all()


def test_churn_model_is_deterministic() -> None:
    orders = _simulated_orders(1500, days=600, seed=2)
    as_of = pd.Timestamp("2023-01-01") + pd.Timedelta(days=600)

    first = train_churn_model(orders, as_of=as_of, random_state=3)
    second = train_churn_model(orders, as_of=as_of, random_state=3)

    assert first.summary() == second.summary()
    pd.testing.assert_series_equal(first.predict(orders, as_of=as_of), second.predict(orders, as_of=as_of))


def test_churn_model_falls_back_to_recency_rule_on_short_history() -> None:
    orders = pd.DataFrame({
        "customer_id": [1, 1, 2, 2, 3],
        "ordered_at": _days_ago(120, 100, 60, 40, 5),
        "total": [10.0, 10.0, 10.0, 10.0, 10.0],
    })

    model = train_churn_model(orders, as_of=AS_OF, horizon_days=90)
    probability = model.predict(orders, as_of=AS_OF)

    assert model.is_fallback
    assert model.method == "recency_rule"
    assert model.reason == "history too short: 120 days of orders, need 180"
    assert model.roc_auc is None
    # Fewer than ten repeat buyers: the typical gap is half the horizon, so p = 0.5 at 90 days of silence.
    assert model.typical_gap_days == 45
    assert probability.loc[3] < probability.loc[2] < probability.loc[1]
    assert model.predict(orders, as_of=AS_OF + pd.Timedelta(days=90 - 5)).loc[3] == pytest.approx(0.5)


def test_churn_model_falls_back_with_too_few_customers() -> None:
    orders = _simulated_orders(60, days=600, seed=4)
    as_of = pd.Timestamp("2023-01-01") + pd.Timedelta(days=600)

    model = train_churn_model(orders, as_of=as_of, min_customers=200)

    assert model.is_fallback
    assert model.reason is not None and model.reason.startswith("too few customers to learn from")
    assert model.summary()["method"] == "recency_rule"
