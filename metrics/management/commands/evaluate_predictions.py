import json
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from metrics import clv


class Command(BaseCommand):
    help = (
        "Fit BG/NBD + Gamma-Gamma on the calibration weeks of a CDNOW-format file (customer, cohort, YYYYMMDD, "
        "CDs, dollars), forecast the holdout weeks and compare with the actual purchases, beside a plain rate "
        "model and RFM ranking. Per-customer error is scored on the predictive median, the aggregate on the expectation."
    )
    # Reads a file and fits a model: nothing that the project's system checks guard.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cdnow", required=True, metavar="FILE", help="transactions in CDNOW's whitespace-separated format")
        parser.add_argument("--calibration-weeks", type=int, default=39, help="weeks from the first transaction to fit on")
        parser.add_argument("--holdout-weeks", type=int, default=None, help="weeks to forecast (default: as many as calibration)")
        parser.add_argument("--top-share", type=float, default=0.2, help="share of customers for the revenue-capture figure")
        parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                            help="customer resamples for the capture intervals (0: none)")
        parser.add_argument("--json", action="store_true", help="print one JSON object holding every figure")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["calibration_weeks"] <= 0 or (options["holdout_weeks"] is not None and options["holdout_weeks"] <= 0):
            raise CommandError("--calibration-weeks and --holdout-weeks must be positive")
        if not 0.0 < options["top_share"] <= 1.0:
            raise CommandError("--top-share must be in (0, 1]")
        if options["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more")
        try:
            transactions = clv.read_cdnow(options["cdnow"])
            result = clv.evaluate_holdout(transactions, calibration_weeks=options["calibration_weeks"],
                                          holdout_weeks=options["holdout_weeks"], top_share=options["top_share"],
                                          bootstrap_resamples=options["bootstrap"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(_finite(result)))
        else:
            self.stdout.write(render(result))


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render(result: dict[str, Any]) -> str:
    """The evaluation as a plain-text report."""
    published_bg, published_gg = result["published"]["bgnbd"], result["published"]["gamma_gamma"]
    bg, gg = result["bgnbd"], result["gamma_gamma"]
    targets, purchases, capture = result["targets"], result["purchases"], result["top_revenue_capture"]
    point = result["mae_point_prediction"]
    share = f"{result['top_share']:.0%}"
    deviation = max(abs(result[family][name] - published)
                    for family in ("bgnbd", "gamma_gamma") for name, published in result["published"][family].items())
    lines = [
        f"{result['records']:,} records, {result['purchase_days']:,} customer purchase days; "
        f"{result['customers']:,} customers ({result['repeat_customers']:,} with repeat purchases, "
        f"{result['calibration_repeat_purchases']:,} repeat purchases in calibration); "
        f"calibration to {result['calibration_end']} ({result['calibration_weeks']} weeks), "
        f"holdout to {result['holdout_end']} ({result['holdout_weeks']} weeks)",
        "",
        "Against the targets",
        f"  parameters within {targets['parameter_tolerance']} of the published ones   max deviation "
        f"{deviation:.4f}  {_verdict(deviation <= targets['parameter_tolerance'])}",
        f"  per-customer MAE of repeat purchases <= {targets['purchases_mae_max']}   "
        f"{purchases[point]['mae']:.3f} ({_LABELS[point]})  {_verdict(purchases[point]['mae'] <= targets['purchases_mae_max'])}",
        f"  top {share} by predicted value capture >= {targets['top_revenue_capture_min']:.2f}   "
        f"{capture['clv']:.3f}  {_verdict(capture['clv'] >= targets['top_revenue_capture_min'])}",
        "",
        "Fitted parameters      fitted   published (CDNOW, Fader, Hardie & Lee 2005)",
        f"  BG/NBD: log-likelihood {bg['log_likelihood']:,.2f} on {bg['n_customers']:,} customers",
        *(f"    {name:<14}{bg[name]:>10.3f}{published_bg[name]:>12.3f}" for name in ("r", "alpha", "a", "b")),
        f"  Gamma-Gamma: log-likelihood {gg['log_likelihood']:,.2f} on {gg['n_customers']:,} repeat customers, "
        f"mean spend {_number(gg['mean_spend'])}",
        *(f"    {name:<14}{gg[name]:>10.2f}{published_gg[name]:>12.2f}" for name in ("p", "q", "gamma")),
        "",
        "Holdout repeat purchases per customer      MAE     RMSE   predicted     actual   aggregate error",
    ]
    for key, label in _LABELS.items():
        e = purchases[key]
        used = "  <- MAE point prediction" if key == point else "  <- aggregate forecast" if key == "bgnbd" else ""
        lines.append(f"  {label:<38}{e['mae']:>7.3f}{e['rmse']:>9.3f}{e['total_predicted']:>12,.0f}"
                     f"{e['total_actual']:>11,.0f}{_number(e['aggregate_error_pct'], '{:+.1f} %'):>18}{used}")
    revenue = result["revenue"]
    lines += [
        "  (RFM ranks customers but forecasts no purchases: it has no error figures)",
        "",
        f"Holdout revenue: predicted {revenue['predicted']:,.0f}, actual {revenue['actual']:,.0f} "
        f"({_number(revenue['aggregate_error_pct'], '{:+.1f} %')})",
        f"Share of holdout revenue from the top {share} of customers",
        f"  ranked by predicted value (BG/NBD x Gamma-Gamma)  {capture['clv']:.3f}  <- used",
        f"  ranked by RFM score (R + F + M quintiles)          {capture['rfm']:.3f}",
        f"  ranked by actual holdout revenue (ceiling)         {capture['oracle']:.3f}",
        "  alternatives, reported and not used:",
        f"    first purchase as a spend observation, x = 0     {capture['clv_first_purchase_as_spend_for_x0']:.3f}",
        f"    first purchase as a spend observation, everyone  {capture['clv_first_purchase_as_spend_for_all']:.3f}",
        f"    expected purchases alone (no spend model)        {capture['expected_purchases_only']:.3f}",
    ]
    boot = result["top_revenue_capture_bootstrap"]
    if boot["resamples"]:
        lines.append(f"  95% intervals over {boot['resamples']:,} customer resamples (models not refitted): predicted value "
                     f"{_interval(boot['clv'])}, RFM {_interval(boot['rfm'])}, difference {_interval(boot['clv_minus_rfm'])}")
    lines += [
        "",
        "Mean holdout purchases by calibration repeat purchases x",
        "  x       customers   actual   BG/NBD   median   rate model",
        *(f"  {row['x']:<6}{row['customers']:>11,}{row['actual']:>9.2f}{row['bgnbd']:>9.2f}{row['bgnbd_median']:>9.2f}"
          f"{row['rate_model']:>13.2f}" for row in result["by_calibration_frequency"]),
        "",
        "Definitions",
        *(f"  {name}: {text}" for name, text in result["definitions"].items()),
    ]
    return "\n".join(lines)


_LABELS = {"bgnbd_median": "BG/NBD predictive median", "bgnbd": "BG/NBD expectation", "rate_model": "rate model (x/T)",
           "zero": "nobody returns"}


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _interval(bounds: list[float]) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _number(value: float | None, fmt: str = "{:,.2f}") -> str:
    return "n/a" if value is None or not math.isfinite(value) else fmt.format(value)
