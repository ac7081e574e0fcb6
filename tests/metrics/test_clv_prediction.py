"""predict_customer_value: the per-tenant entry point of the CLV model, from raw orders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from metrics import clv

CDNOW = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "cdnow" / "CDNOW_sample.txt"
TRUE_BGNBD = (0.5, 6.0, 0.8, 2.5)
TRUE_GAMMA_GAMMA = (6.0, 4.0, 15.0)
AS_OF = pd.Timestamp("2024-06-30")


def _orders(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "ordered_at", "total"]).assign(
        ordered_at=lambda df: pd.to_datetime(df["ordered_at"]))


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return clv.simulate_transactions(TRUE_BGNBD, TRUE_GAMMA_GAMMA, n_customers=20_000, as_of=AS_OF, seed=11)


def test_predict_customer_value_recovers_simulated_parameters(simulated: pd.DataFrame) -> None:
    # when
    prediction = clv.predict_customer_value(simulated, as_of=AS_OF)

    # then: roughly, since orders on one day merge into one purchase as in real data
    assert prediction.fitted and prediction.reason == "" and prediction.method == "bgnbd+gamma_gamma"
    assert prediction.bgnbd is not None and prediction.gamma_gamma is not None
    bg, gg = prediction.bgnbd, prediction.gamma_gamma
    for got, want in zip((bg.r, bg.alpha, bg.a, bg.b), TRUE_BGNBD, strict=True):
        assert got == pytest.approx(want, rel=0.25)
    for got, want in zip((gg.p, gg.q, gg.gamma), TRUE_GAMMA_GAMMA, strict=True):
        assert got == pytest.approx(want, rel=0.25)
    assert prediction.n_customers == bg.n_customers == simulated["customer_id"].nunique() == 20_000
    assert prediction.horizon_days == 365 and prediction.as_of == AS_OF


def test_predict_customer_value_scores_every_customer_over_the_horizon_in_weeks(simulated: pd.DataFrame) -> None:
    # given
    prediction = clv.predict_customer_value(simulated, as_of=AS_OF, horizon_days=182)
    summary = clv.summary_from_transactions(simulated, "customer_id", "ordered_at", "total", AS_OF)
    x, t_x, T, m = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))

    # when
    customers = prediction.customers

    # then
    assert prediction.n_repeaters == int((x > 0).sum())
    assert list(customers.columns) == list(clv.PREDICTION_COLUMNS)
    assert customers.index.name == "customer_id" and customers.index.equals(summary.index)
    expected = clv.bgnbd_expected_purchases(prediction.bgnbd, 182 / 7, x, t_x, T)
    np.testing.assert_allclose(customers["expected_purchases"], expected)
    np.testing.assert_allclose(customers["prob_alive"], clv.bgnbd_prob_alive(prediction.bgnbd, x, t_x, T))
    np.testing.assert_allclose(customers["expected_value"],
                               expected * clv.gamma_gamma_expected_value(prediction.gamma_gamma, x, m))
    # customers without repeat purchases are valued at the population mean order value
    assert prediction.gamma_gamma is not None
    no_repeat = x == 0
    np.testing.assert_allclose(customers["expected_value"][no_repeat],
                               customers["expected_purchases"][no_repeat] * prediction.gamma_gamma.mean_spend)
    assert prediction.mean_spend == pytest.approx(prediction.gamma_gamma.mean_spend)


def test_predict_customer_value_falls_back_to_a_rate_model_with_too_few_repeat_buyers() -> None:
    # given: 12 repeat buyers of 40 customers, orders after as_of left out
    rows = [(f"c{i}", "2024-01-01", 20.0) for i in range(40)]
    rows += [(f"c{i}", "2024-03-01", 30.0) for i in range(12)]
    rows += [("c39", "2024-07-01", 99.0)]
    orders = _orders(rows)

    # when
    prediction = clv.predict_customer_value(orders, as_of=AS_OF, horizon_days=364)

    # then
    assert not prediction.fitted and prediction.method == "rate_model"
    assert prediction.reason.startswith("too few repeat buyers to fit (12 < 20)")
    assert prediction.bgnbd is None and prediction.gamma_gamma is None
    assert (prediction.n_customers, prediction.n_repeaters) == (40, 12)
    customers = prediction.customers
    weeks = (AS_OF - pd.Timestamp("2024-01-01")).days / 7
    assert customers.loc["c0", "expected_purchases"] == pytest.approx(52 / weeks)  # one repeat per `weeks`, over 52 weeks
    assert customers.loc["c0", "expected_value"] == pytest.approx(52 / weeks * 30.0)  # their own repeat order value
    assert customers.loc["c39", "expected_purchases"] == 0.0  # the July order is after as_of
    assert customers["prob_alive"].isna().all()
    assert prediction.mean_spend == pytest.approx(30.0)


def test_predict_customer_value_keeps_the_purchase_model_when_only_spend_cannot_be_fitted() -> None:
    # given: 25 repeat buyers, but 20 of them only repeat with zero-value orders
    rows = [(f"c{i}", "2024-01-01", 20.0) for i in range(60)]
    rows += [(f"c{i}", f"2024-0{2 + i % 5}-1{i % 9}", 0.0 if i < 20 else 25.0) for i in range(25)]
    orders = _orders(rows)

    # when
    prediction = clv.predict_customer_value(orders, as_of=AS_OF)

    # then
    assert prediction.bgnbd is not None and prediction.gamma_gamma is None
    assert not prediction.fitted and prediction.method == "bgnbd+observed_spend"
    assert prediction.reason.startswith("too few repeat buyers with positive spend to fit the spend model (5 < 20)")
    assert prediction.customers["prob_alive"].between(0, 1).all()
    assert np.isfinite(prediction.customers["expected_value"]).all()


@pytest.mark.parametrize("orders", [
    pd.DataFrame({"customer_id": pd.Series(dtype=object), "ordered_at": pd.Series(dtype="datetime64[ns]"),
                  "total": pd.Series(dtype=float)}),
    _orders([("late", "2024-08-01", 10.0)]),
], ids=["no orders", "orders only after as_of"])
def test_predict_customer_value_on_no_customers_returns_an_empty_frame_and_says_why(orders: pd.DataFrame) -> None:
    prediction = clv.predict_customer_value(orders, as_of=AS_OF)

    assert not prediction.fitted and prediction.method == "none"
    assert prediction.reason == "no orders on or before 2024-06-30"
    assert (prediction.n_customers, prediction.n_repeaters) == (0, 0)
    assert prediction.customers.empty and list(prediction.customers.columns) == list(clv.PREDICTION_COLUMNS)
    assert prediction.bgnbd is None and prediction.gamma_gamma is None and math.isnan(prediction.mean_spend)


def test_predict_customer_value_counts_days_in_the_orders_time_zone() -> None:
    # given: as_of 21:00 UTC on 30 June is 00:00 on 1 July in Moscow, where the orders are
    orders = pd.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "ordered_at": pd.to_datetime(["2024-06-01 10:00", "2024-06-30 23:30", "2024-07-01 12:00",
                                      "2024-07-02 09:00"]).tz_localize("Europe/Moscow"),
        "total": [5.0, 8.0, 13.0, 4.0],
    })

    # when: one repeat buyer, so the rate model, whose figures show which days counted
    prediction = clv.predict_customer_value(orders, as_of=pd.Timestamp("2024-06-30 21:00", tz="UTC"), horizon_days=364)

    # then: 1 July is the last day counted, in Moscow; 2 July is not
    assert prediction.as_of.tzname() == "MSK" and prediction.n_customers == 1
    weeks = 30 / 7  # 1 June to 1 July
    assert prediction.customers.loc[1, "expected_purchases"] == pytest.approx(2 / weeks * 52)
    assert prediction.customers.loc[1, "expected_value"] == pytest.approx(2 / weeks * 52 * 10.5)


def test_predict_customer_value_rejects_orders_without_the_needed_columns() -> None:
    with pytest.raises(ValueError, match="total"):
        clv.predict_customer_value(pd.DataFrame({"customer_id": [1], "ordered_at": [AS_OF]}), as_of=AS_OF)


@pytest.mark.skipif(not CDNOW.exists(), reason=f"{CDNOW} is not present")
def test_predict_customer_value_on_cdnow_calibration_reproduces_the_published_parameters() -> None:
    # given: CDNOW's first 39 weeks as one tenant's orders
    cdnow = clv.read_cdnow(CDNOW)
    orders = pd.DataFrame({"customer_id": cdnow["customer_id"], "ordered_at": cdnow["date"], "total": cdnow["amount"]})

    # when
    prediction = clv.predict_customer_value(orders, as_of=pd.Timestamp("1997-09-30"), horizon_days=273)

    # then
    assert prediction.fitted and (prediction.n_customers, prediction.n_repeaters) == (2357, 946)
    assert prediction.bgnbd is not None and prediction.gamma_gamma is not None
    for name, published in clv.PUBLISHED_CDNOW_BGNBD.items():
        assert getattr(prediction.bgnbd, name) == pytest.approx(published, abs=0.01)
    for name, published in clv.PUBLISHED_CDNOW_GAMMA_GAMMA.items():
        assert getattr(prediction.gamma_gamma, name) == pytest.approx(published, abs=0.01)
