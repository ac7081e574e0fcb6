"""CLV model: BG/NBD + Gamma-Gamma on simulated data with known parameters, the formulas against
published figures, the evaluation command, and (when the file is present) CDNOW itself."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from scipy import special

from metrics import clv
from metrics.clv import bgnbd, gamma_gamma
from metrics.management.commands import evaluate_predictions

CDNOW = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "cdnow" / "CDNOW_sample.txt"
TRUE_BGNBD = (0.5, 6.0, 0.8, 2.5)
TRUE_GAMMA_GAMMA = (6.0, 4.0, 15.0)


def _write_cdnow_like(path: Path, *, customers: int, seed: int) -> None:
    """A CDNOW-format file: first purchases in the first 12 weeks of 1997, repeat purchases from
    a BG/NBD process and spend from a Gamma-Gamma process, for 78 weeks."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = TRUE_BGNBD
    p_shape, q, gamma = TRUE_GAMMA_GAMMA
    start, end = pd.Timestamp("1997-01-01"), 78 * 7 - 1
    lines = []
    for customer in range(1, customers + 1):
        days_between = 7.0 * alpha / rng.gamma(r)  # mean gap of a Poisson process with rate ~ Gamma(r, alpha) per week
        drop, nu = rng.beta(a, b), rng.gamma(q, 1.0 / gamma)
        day = int(rng.integers(0, 84))

        def purchase(day: int, customer: int = customer, nu: float = nu) -> str:
            return f"{customer:05d} 0001 {start + pd.Timedelta(days=day):%Y%m%d} {rng.integers(1, 4)} {rng.gamma(p_shape, 1.0 / nu):.2f}"

        lines.append(purchase(day))
        while True:
            day += max(1, math.ceil(rng.exponential(days_between)))
            if day > end:
                break
            lines.append(purchase(day))
            if rng.random() < drop:  # drops out after a repeat purchase
                break
    path.write_text("\n".join(lines) + "\n")


# --- BG/NBD -------------------------------------------------------------------------------------


def test_fit_bgnbd_recovers_simulated_parameters() -> None:
    # given
    T = np.random.default_rng(1).uniform(20.0, 40.0, size=20_000)
    sample = clv.simulate_bgnbd(TRUE_BGNBD, T, seed=2)

    # when
    fitted = clv.fit_bgnbd(sample["frequency"], sample["recency"], sample["T"])

    # then
    assert fitted.converged
    assert fitted.n_customers == 20_000
    for got, want in zip((fitted.r, fitted.alpha, fitted.a, fitted.b), TRUE_BGNBD, strict=True):
        assert got == pytest.approx(want, rel=0.25)
    assert fitted.log_likelihood == pytest.approx(
        clv.bgnbd_log_likelihood((fitted.r, fitted.alpha, fitted.a, fitted.b), sample["frequency"], sample["recency"], T).sum())


def test_bgnbd_gradient_matches_finite_differences() -> None:
    # given
    sample = clv.simulate_bgnbd(TRUE_BGNBD, np.full(200, 30.0), seed=3)
    x, t_x, T = (sample[c].to_numpy() for c in ("frequency", "recency", "T"))
    params = np.array([0.4, 5.0, 0.9, 2.0])

    # when
    _ll, grad = bgnbd._bgnbd_terms(*params, x, t_x, T, gradient=True)

    # then
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        numeric = (clv.bgnbd_log_likelihood(params + step, x, t_x, T).sum()
                   - clv.bgnbd_log_likelihood(params - step, x, t_x, T).sum()) / 2e-6
        assert grad[i].sum() == pytest.approx(numeric, rel=1e-5)


def test_expected_purchases_matches_fader_hardie_worked_example() -> None:
    # Fader, Hardie & Lee's BG/NBD spreadsheet note: x = 2, t_x = 30.43, T = 38.86, next 39 weeks.
    params = tuple(clv.PUBLISHED_CDNOW_BGNBD.values())

    assert clv.bgnbd_expected_purchases(params, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.002)


@pytest.mark.parametrize("x", [1, 5, 20])
def test_expected_purchases_equals_the_untransformed_hypergeometric_formula(x: int) -> None:
    r, alpha, a, b = TRUE_BGNBD
    t, t_x, T = 26.0, 20.0, 30.0
    direct = ((a + b + x - 1) / (a - 1)
              * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
              / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)))

    assert clv.bgnbd_expected_purchases(TRUE_BGNBD, t, x, t_x, T) == pytest.approx(direct, rel=1e-9)


def test_expected_purchases_grows_with_the_horizon_from_zero() -> None:
    horizons = np.array([0.0, 1.0, 10.0, 52.0, 520.0])

    expected = clv.bgnbd_expected_purchases(TRUE_BGNBD, horizons, 3, 25.0, 30.0)

    assert expected[0] == 0.0
    assert np.all(np.diff(expected) > 0)


def test_expected_purchases_is_continuous_through_a_equal_to_one() -> None:
    r, alpha, _a, b = TRUE_BGNBD

    values = [clv.bgnbd_expected_purchases((r, alpha, a, b), 39, 2, 30.0, 38.0) for a in (0.999, 1.0, 1.001)]

    assert np.all(np.isfinite(values))
    assert values[1] == pytest.approx((values[0] + values[2]) / 2, rel=1e-4)


def test_expected_purchases_stay_finite_for_degenerate_parameters() -> None:
    # a and b in the hundred thousands (a fit on a handful of customers) overflow 2F1
    params = (0.9, 13.0, 1.3e5, 8.7e4)

    expected = clv.bgnbd_expected_purchases(params, 39, np.array([0.0, 1.0, 2.0]), np.array([0.0, 8.0, 13.0]), 38.0)

    assert np.all(np.isfinite(expected)) and np.all(expected > 0)
    assert expected[0] == pytest.approx(sum(clv.bgnbd_prob_at_least(params, y, 39, 0.0, 0.0, 38.0) for y in range(1, 200)))


def test_predictive_distribution_sums_to_the_expectation_and_gives_a_median() -> None:
    x, t_x, T, t = np.array([0, 1, 4, 12]), np.array([0.0, 10.0, 28.0, 29.0]), np.full(4, 30.0), 39.0

    tail_sum = sum(clv.bgnbd_prob_at_least(TRUE_BGNBD, y, t, x, t_x, T) for y in range(1, 500))
    median = clv.bgnbd_median_purchases(TRUE_BGNBD, t, x, t_x, T)

    np.testing.assert_allclose(tail_sum, clv.bgnbd_expected_purchases(TRUE_BGNBD, t, x, t_x, T), rtol=1e-9)
    assert median[0] == 0 and median[-1] > median[1]


def test_prob_alive_is_one_without_repeat_purchases_and_falls_with_time_since_the_last() -> None:
    assert clv.bgnbd_prob_alive(TRUE_BGNBD, 0, 0.0, 30.0) == 1.0

    alive = clv.bgnbd_prob_alive(TRUE_BGNBD, 3, np.array([29.0, 20.0, 10.0, 2.0]), 30.0)

    assert np.all((alive > 0) & (alive < 1))
    assert np.all(np.diff(alive) < 0)


# --- Gamma-Gamma and CLV ------------------------------------------------------------------------


def test_fit_gamma_gamma_recovers_simulated_parameters() -> None:
    # given
    x = np.random.default_rng(4).integers(1, 12, size=20_000).astype(float)
    m = clv.simulate_gamma_gamma(TRUE_GAMMA_GAMMA, x, seed=5)

    # when
    fitted = clv.fit_gamma_gamma(np.append(x, 0.0), np.append(m, 0.0))  # x = 0 is left out

    # then
    assert fitted.n_customers == 20_000
    for got, want in zip((fitted.p, fitted.q, fitted.gamma), TRUE_GAMMA_GAMMA, strict=True):
        assert got == pytest.approx(want, rel=0.2)
    assert fitted.mean_spend == pytest.approx(np.mean(m), rel=0.1)


def test_gamma_gamma_gradient_matches_finite_differences() -> None:
    # given
    x = np.random.default_rng(6).integers(1, 8, size=200).astype(float)
    m = clv.simulate_gamma_gamma(TRUE_GAMMA_GAMMA, x, seed=7)
    params = np.array([5.0, 3.0, 12.0])

    # when
    _ll, grad = gamma_gamma._gamma_gamma_terms(*params, x, m, gradient=True)

    # then
    for i in range(3):
        step = np.zeros(3)
        step[i] = 1e-6
        numeric = (clv.gamma_gamma_log_likelihood(params + step, x, m).sum()
                   - clv.gamma_gamma_log_likelihood(params - step, x, m).sum()) / 2e-6
        assert grad[i].sum() == pytest.approx(numeric, rel=1e-5)


def test_gamma_gamma_expected_value_shrinks_observed_spend_towards_the_population_mean() -> None:
    p, q, gamma = TRUE_GAMMA_GAMMA
    population = gamma * p / (q - 1)

    values = clv.gamma_gamma_expected_value(TRUE_GAMMA_GAMMA, np.array([0, 1, 10, 1000]), np.array([0.0, 100.0, 100.0, 100.0]))

    assert values[0] == pytest.approx(population)
    assert population < values[1] < values[2] < values[3] < 100.0
    assert values[3] == pytest.approx(100.0, rel=0.01)


def test_clv_is_expected_purchases_times_spend_and_discounting_lowers_it() -> None:
    x, t_x, T, m = np.array([0.0, 2.0, 6.0]), np.array([0.0, 20.0, 29.0]), np.full(3, 30.0), np.array([0.0, 40.0, 25.0])

    value = clv.clv(TRUE_BGNBD, TRUE_GAMMA_GAMMA, x, t_x, T, m, horizon=52)
    discounted = clv.clv(TRUE_BGNBD, TRUE_GAMMA_GAMMA, x, t_x, T, m, horizon=52, discount_rate=0.01)

    np.testing.assert_allclose(value, clv.bgnbd_expected_purchases(TRUE_BGNBD, 52, x, t_x, T)
                               * clv.gamma_gamma_expected_value(TRUE_GAMMA_GAMMA, x, m))
    assert np.all(discounted < value) and np.all(discounted > value * 1.01 ** -52)


def test_summary_counts_a_day_once_and_averages_repeat_purchases_only() -> None:
    # given: A buys twice on day 0, then on days 7 and 14 and in the holdout; B once; C after calibration
    df = pd.DataFrame({
        "customer": ["A", "A", "A", "A", "A", "B", "C"],
        "date": ["2024-01-01", "2024-01-01", "2024-01-08", "2024-01-15", "2024-02-05", "2024-01-22", "2024-02-01"],
        "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 9.0, 3.0],
    })

    # when
    summary = clv.summary_from_transactions(df, "customer", "date", "amount", "2024-01-29", "2024-02-26")

    # then
    assert list(summary.index) == ["A", "B"]
    a, b = summary.loc["A"], summary.loc["B"]
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (2, 2.0, 4.0, 30.0)
    assert (a["calibration_value"], a["holdout_frequency"], a["holdout_value"]) == (75.0, 1, 7.0)
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 1.0, 0.0)
    assert summary.attrs["holdout_length"] == 4.0


def test_summary_without_observation_end_scores_as_of_the_calibration_end_in_local_days() -> None:
    # given: 23:30 in Moscow is the previous day in UTC; customer 3 arrives after the calibration end
    dates = pd.to_datetime(["2024-01-01 23:30", "2024-01-08 01:00", "2024-01-12 09:00"]).tz_localize("Europe/Moscow")
    df = pd.DataFrame({"customer": [1, 1, 3], "date": dates, "amount": [5.0, 8.0, 2.0]})

    # when
    summary = clv.summary_from_transactions(df, "customer", "date", "amount", pd.Timestamp("2024-01-15", tz="UTC"), freq="D")

    # then
    assert list(summary.index) == [1, 3]
    assert (summary.loc[1, "frequency"], summary.loc[1, "recency"], summary.loc[1, "T"]) == (1, 7.0, 14.0)
    assert summary["holdout_frequency"].sum() == 0 and summary.attrs["holdout_length"] == 0.0


# --- evaluate_predictions -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "transactions.txt"
    _write_cdnow_like(path, customers=800, seed=7)
    return path


def test_evaluate_predictions_prints_the_evaluation(cdnow_like: Path) -> None:
    out = StringIO()

    call_command("evaluate_predictions", "--cdnow", str(cdnow_like), stdout=out)

    text = out.getvalue()
    assert "calibration to 1997-09-30 (39 weeks)" in text
    for label in ("BG/NBD expectation", "BG/NBD predictive median", "rate model (x/T)", "ranked by predicted value",
                  "ranked by RFM score", "published", "Against the targets", "Definitions"):
        assert label in text
    assert "predictive median" in text.split("Against the targets")[1].split("\n\n")[0]  # says which point prediction
    assert "<- MAE point prediction" in text and "<- aggregate forecast" in text


def test_evaluate_predictions_json_holds_every_figure(cdnow_like: Path) -> None:
    out = StringIO()

    call_command("evaluate_predictions", "--cdnow", str(cdnow_like), "--json", "--bootstrap", "50", stdout=out)

    result = json.loads(out.getvalue())
    assert result["customers"] == 800
    assert set(result["purchases"]) >= {"bgnbd", "bgnbd_median", "rate_model", "zero"}
    assert result["mae_point_prediction"] == "bgnbd_median"
    assert set(result["definitions"]) >= {"purchase", "predicted_value", "mae_point_prediction", "aggregate_forecast"}
    assert result["top_revenue_capture_bootstrap"]["resamples"] == 50
    low, high = result["top_revenue_capture_bootstrap"]["clv"]
    assert low <= high
    assert result["purchases"]["bgnbd"]["mae"] < result["purchases"]["rate_model"]["mae"]
    assert 0 < result["top_revenue_capture"]["clv"] <= result["top_revenue_capture"]["oracle"] <= 1
    assert 0 < result["top_revenue_capture"]["rfm"] <= 1
    assert result["bgnbd"]["r"] == pytest.approx(TRUE_BGNBD[0], rel=0.5)
    assert result["simulated_capture"]["samples"] == 200


def test_evaluate_holdout_reports_capture_noise_reproducibly_for_a_seed(cdnow_like: Path) -> None:
    # given
    transactions = clv.read_cdnow(cdnow_like)

    # when
    result, again, other_seed = (clv.evaluate_holdout(transactions, bootstrap_resamples=100, simulated_samples=30, seed=seed)
                                 for seed in (3, 3, 4))

    # then: bootstrap intervals of both rankings and of their paired difference
    boot = result["top_revenue_capture_bootstrap"]
    for name in ("clv", "rfm", "clv_minus_rfm"):
        low, high = boot[name]
        assert -1 <= low <= high <= 1, name
    # and the capture the fitted model reaches on samples drawn from itself, of the same customers' size
    simulated = result["simulated_capture"]
    assert (simulated["samples"], simulated["customers"], simulated["target"]) == (30, result["customers"], 0.70)
    low, high = simulated["interval_95"]
    assert 0 < low <= simulated["mean"] <= high <= 1
    assert simulated["sd"] > 0 and 0 <= simulated["share_reaching_target"] <= 1
    # and the same seed gives the same figures, another seed other draws
    assert again["top_revenue_capture_bootstrap"] == boot and again["simulated_capture"] == simulated
    assert other_seed["simulated_capture"] != simulated


def test_evaluate_holdout_skips_the_simulation_for_zero_samples(cdnow_like: Path) -> None:
    result = clv.evaluate_holdout(clv.read_cdnow(cdnow_like), bootstrap_resamples=0, simulated_samples=0)

    assert result["simulated_capture"] == {"samples": 0}


def test_evaluate_predictions_rejects_a_file_in_another_format(tmp_path: Path) -> None:
    bad = tmp_path / "orders.csv"
    bad.write_text("customer,date,amount\n1,2024-01-01,10\n")

    with pytest.raises(CommandError, match="columns"):
        call_command("evaluate_predictions", "--cdnow", str(bad))


def test_evaluate_predictions_exits_non_zero_for_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = evaluate_predictions.Command()

    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", "evaluate_predictions", "--cdnow", str(tmp_path / "missing.txt")])

    assert exited.value.code != 0
    assert "cannot read" in capsys.readouterr().err


# --- CDNOW itself -------------------------------------------------------------------------------


@pytest.mark.skipif(not CDNOW.exists(), reason=f"{CDNOW} is not present")
def test_cdnow_reproduces_published_parameters_and_quality_targets() -> None:
    # when: weeks 1-39 fitted, weeks 40-78 forecast
    result = clv.evaluate_holdout(clv.read_cdnow(CDNOW), calibration_weeks=39, bootstrap_resamples=0)

    # then: the papers' aggregation (one purchase per customer-day) and Fader, Hardie & Lee (2005)
    assert (result["records"], result["purchase_days"], result["calibration_repeat_purchases"]) == (6919, 6696, 2457)
    assert (result["customers"], result["repeat_customers"]) == (2357, 946)
    for family in ("bgnbd", "gamma_gamma"):
        for name, published in result["published"][family].items():
            assert result[family][name] == pytest.approx(published, abs=0.01), (family, name)
    purchases = result["purchases"]
    assert purchases["rate_model"]["mae"] == pytest.approx(1.02, abs=0.01)
    # The predictive median is the point forecast for absolute error and meets the 0.78 target;
    # the conditional expectation (0.785) beats the rate model and predicting zero but not 0.78.
    assert result["mae_point_prediction"] == "bgnbd_median"
    assert purchases["bgnbd_median"]["mae"] <= 0.78
    assert purchases["bgnbd"]["mae"] < min(0.79, purchases["zero"]["mae"], purchases["rate_model"]["mae"])
    capture = result["top_revenue_capture"]
    assert capture["rfm"] == pytest.approx(0.68, abs=0.01)
    # The target is 0.70; BG/NBD x Gamma-Gamma gets 0.663 here, within sampling noise of
    # RFM's 0.679 (see the report on the issue). Pinned so a change in definitions shows up.
    assert capture["clv"] == pytest.approx(0.663, abs=0.005)
    # Even if the fitted model were exactly true, its ranking would capture about 0.70 on samples
    # of this size, reaching the target about half the time: the target sits at the model's mean.
    simulated = result["simulated_capture"]
    assert simulated["mean"] == pytest.approx(0.70, abs=0.01)
    assert 0.3 <= simulated["share_reaching_target"] <= 0.8
