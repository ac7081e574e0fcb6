"""CLV model (metrics/clv/): the CDNOW holdout evaluation against the issue's targets (with the
capture's bootstrap intervals and the capture a perfectly specified model reaches on simulated
samples of CDNOW's size, to tell a missed target from sampling noise), the time to fit BG/NBD +
Gamma-Gamma on a synthetic million-customer summary against one pass of the log-likelihood over
the same customers, and the per-tenant entry point (`predict_customer_value`) end to end on a
million customers' simulated orders.

    python -m bench clv                            # or: python bench/bench_clv.py --customers 100000
    python -m bench clv -- --cdnow FILE --json

No database: the model is pure numpy/scipy. The CDNOW part is skipped when the file is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from metrics import clv

DEFAULT_CDNOW = common.ROOT.parent / "shared" / "datasets" / "cdnow" / "CDNOW_sample.txt"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdnow", type=Path, default=DEFAULT_CDNOW, help="CDNOW-format transactions (default: the shared sample)")
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers in the synthetic summary")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--simulated-samples", type=int, default=200,
                        help="samples drawn from the fitted CDNOW model for the capture it allows (about 6 ms each)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.simulated_samples < 1:
        parser.error("--simulated-samples must be at least 1")

    figures: dict[str, Any] = {}
    figures.update(_cdnow(args.cdnow, args.simulated_samples))
    figures.update(_synthetic(args.customers, args.seed))
    figures.update(_tenant(args.customers, args.seed))
    common.emit("clv", figures, as_json=args.json)
    return figures


def _cdnow(path: Path, simulated_samples: int) -> dict[str, Any]:
    if not path.exists():
        print(f"CDNOW evaluation skipped: {path} is not present", flush=True)
        return {"cdnow": "skipped (file absent)"}
    with common.timed() as t:
        result = clv.evaluate_holdout(clv.read_cdnow(path), calibration_weeks=39, simulated_samples=simulated_samples)
    targets = result["targets"]
    tolerance = targets["parameter_tolerance"]
    deviation = max(abs(result[family][name] - published)
                    for family in ("bgnbd", "gamma_gamma") for name, published in result["published"][family].items())
    purchases, capture = result["purchases"], result["top_revenue_capture"]
    print(f"CDNOW ({result['customers']:,} customers, weeks 1-39 fitted, 40-78 forecast)")
    for family in ("bgnbd", "gamma_gamma"):
        for name, published in result["published"][family].items():
            print(f"  {family:<12}{name:<6} fitted {result[family][name]:8.4f}   published {published:7.3f}")
    print(f"  purchases MAE: median {purchases['bgnbd_median']['mae']:.4f} (the point prediction scored), "
          f"expectation {purchases['bgnbd']['mae']:.4f}, rate model {purchases['rate_model']['mae']:.4f} "
          f"(target <= {targets['purchases_mae_max']})")
    print(f"  top 20% revenue capture: predicted value {capture['clv']:.4f}, RFM {capture['rfm']:.4f} "
          f"(target >= {targets['top_revenue_capture_min']})")
    boot, simulated = result["top_revenue_capture_bootstrap"], result["simulated_capture"]
    print(f"    95% over {boot['resamples']:,} customer resamples: predicted value {_interval(boot['clv'])}, "
          f"RFM {_interval(boot['rfm'])}, difference (paired) {_interval(boot['clv_minus_rfm'], signed=True)}")
    print(f"    capture a perfectly specified model reaches on samples this size: mean {simulated['mean']:.3f} "
          f"(sd {simulated['sd']:.3f}), 95% {_interval(simulated['interval_95'])}, "
          f">= {simulated['target']:.2f} in {simulated['share_reaching_target']:.0%} "
          f"({simulated['samples']:,} samples of {simulated['customers']:,} customers from the fitted model)", flush=True)
    return {
        "cdnow_customers": result["customers"],
        "cdnow_seconds": round(t["seconds"], 2),
        "cdnow_bgnbd_fitted": {k: round(result["bgnbd"][k], 3) for k in ("r", "alpha", "a", "b")},
        "cdnow_bgnbd_published": result["published"]["bgnbd"],
        "cdnow_gamma_gamma_fitted": {k: round(result["gamma_gamma"][k], 2) for k in ("p", "q", "gamma")},
        "cdnow_gamma_gamma_published": result["published"]["gamma_gamma"],
        "cdnow_max_parameter_deviation": round(deviation, 4),
        "cdnow_parameters_within_tolerance": deviation <= tolerance,
        "cdnow_mae_bgnbd_expectation": round(purchases["bgnbd"]["mae"], 4),
        "cdnow_mae_point_prediction": result["mae_point_prediction"],
        "cdnow_mae_bgnbd_median": round(purchases["bgnbd_median"]["mae"], 4),
        "cdnow_mae_rate_model": round(purchases["rate_model"]["mae"], 4),
        "cdnow_mae_target_max": targets["purchases_mae_max"],
        "cdnow_mae_target_met_by_expectation": purchases["bgnbd"]["mae"] <= targets["purchases_mae_max"],
        "cdnow_mae_target_met_by_median": purchases["bgnbd_median"]["mae"] <= targets["purchases_mae_max"],
        "cdnow_aggregate_purchases_error_pct": round(purchases["bgnbd"]["aggregate_error_pct"], 1),
        "cdnow_aggregate_revenue_error_pct": round(result["revenue"]["aggregate_error_pct"], 1),
        "cdnow_top20_capture_clv": round(capture["clv"], 4),
        "cdnow_top20_capture_rfm": round(capture["rfm"], 4),
        "cdnow_top20_capture_first_purchase_as_spend_x0": round(capture["clv_first_purchase_as_spend_for_x0"], 4),
        "cdnow_top20_capture_first_purchase_as_spend_all": round(capture["clv_first_purchase_as_spend_for_all"], 4),
        "cdnow_top20_capture_clv_95pct": [round(v, 3) for v in boot["clv"]],
        "cdnow_top20_capture_rfm_95pct": [round(v, 3) for v in boot["rfm"]],
        "cdnow_top20_capture_clv_minus_rfm_95pct": [round(v, 3) for v in boot["clv_minus_rfm"]],
        "cdnow_sim_capture_samples": simulated["samples"],
        "cdnow_sim_capture_mean": round(simulated["mean"], 4),
        "cdnow_sim_capture_sd": round(simulated["sd"], 4),
        "cdnow_sim_capture_95pct": [round(v, 3) for v in simulated["interval_95"]],
        "cdnow_sim_capture_reaching_target": round(simulated["share_reaching_target"], 3),
        "cdnow_top20_capture_target_min": targets["top_revenue_capture_min"],
        "cdnow_top20_capture_target_met": capture["clv"] >= targets["top_revenue_capture_min"],
    }


def _interval(bounds: list[float], *, signed: bool = False) -> str:
    number = "{:+.3f}" if signed else "{:.3f}"
    return f"[{number.format(bounds[0])}, {number.format(bounds[1])}]"


def _synthetic(customers: int, seed: int) -> dict[str, Any]:
    """A CDNOW-like summary: first purchases spread over 12 weeks, observed to week 39, in days."""
    params = tuple(clv.PUBLISHED_CDNOW_BGNBD.values())
    rng = np.random.default_rng(seed)
    with common.timed() as simulate:
        T = (273 - rng.integers(1, 85, size=customers)) / 7.0
        sample = clv.simulate_bgnbd(params, T, seed=rng)
        x, T = sample["frequency"].to_numpy(), sample["T"].to_numpy()
        t_x_continuous = sample["recency"].to_numpy()
        t_x = np.round(t_x_continuous * 7.0) / 7.0  # purchase dates are days, as in real data
        m = clv.simulate_gamma_gamma(tuple(clv.PUBLISHED_CDNOW_GAMMA_GAMMA.values()), x, seed=rng)
    with common.timed() as one_pass:
        clv.bgnbd_log_likelihood(params, x, t_x, T).sum()
    with common.timed() as fit_days:
        fitted = clv.fit_bgnbd(x, t_x, T)
    with common.timed() as fit_continuous:
        clv.fit_bgnbd(x, t_x_continuous, T)
    with common.timed() as fit_spend:
        spend = clv.fit_gamma_gamma(x, m)
    with common.timed() as score:
        clv.bgnbd_prob_alive(fitted, x, t_x, T)
        clv.clv(fitted, spend, x, t_x, T, np.nan_to_num(m), horizon=39.0)
    return {
        "synthetic_customers": customers,
        "synthetic_repeat_customers": int((x > 0).sum()),
        "synthetic_simulate_seconds": round(simulate["seconds"], 2),
        "baseline_loglik_pass_seconds": round(one_pass["seconds"], 3),
        "fit_bgnbd_seconds": round(fit_days["seconds"], 2),
        "fit_bgnbd_vs_loglik_pass": round(fit_days["seconds"] / one_pass["seconds"], 1),
        "fit_bgnbd_continuous_recency_seconds": round(fit_continuous["seconds"], 2),
        "fit_gamma_gamma_seconds": round(fit_spend["seconds"], 2),
        "score_alive_and_clv_seconds": round(score["seconds"], 2),
        "synthetic_bgnbd_true": clv.PUBLISHED_CDNOW_BGNBD,
        "synthetic_bgnbd_fitted": {k: round(getattr(fitted, k), 3) for k in ("r", "alpha", "a", "b")},
        "synthetic_gamma_gamma_fitted": {k: round(getattr(spend, k), 2) for k in ("p", "q", "gamma")},
    }


def _tenant(customers: int, seed: int) -> dict[str, Any]:
    """`predict_customer_value` from raw orders: day aggregation, both fits and the scoring."""
    as_of = pd.Timestamp("2024-06-30")
    true_bgnbd, true_gamma_gamma = (0.5, 6.0, 0.8, 2.5), (6.0, 4.0, 15.0)
    with common.timed() as simulate:
        orders = clv.simulate_transactions(true_bgnbd, true_gamma_gamma, n_customers=customers, as_of=as_of, seed=seed)
    with common.timed() as predict:
        prediction = clv.predict_customer_value(orders, as_of=as_of, horizon_days=365)
    print(f"predict_customer_value: {customers:,} customers, {len(orders):,} orders in {predict['seconds']:.2f} s "
          f"({prediction.method})", flush=True)
    assert prediction.bgnbd is not None and prediction.gamma_gamma is not None, prediction.reason
    return {
        "tenant_customers": prediction.n_customers,
        "tenant_orders": len(orders),
        "tenant_repeaters": prediction.n_repeaters,
        "tenant_simulate_seconds": round(simulate["seconds"], 2),
        "tenant_predict_seconds": round(predict["seconds"], 2),
        "tenant_method": prediction.method,
        "tenant_bgnbd_true": dict(zip(("r", "alpha", "a", "b"), true_bgnbd, strict=True)),
        "tenant_bgnbd_fitted": {k: round(getattr(prediction.bgnbd, k), 3) for k in ("r", "alpha", "a", "b")},
        "tenant_gamma_gamma_true": dict(zip(("p", "q", "gamma"), true_gamma_gamma, strict=True)),
        "tenant_gamma_gamma_fitted": {k: round(getattr(prediction.gamma_gamma, k), 2) for k in ("p", "q", "gamma")},
    }


if __name__ == "__main__":
    main()
