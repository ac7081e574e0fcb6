"""Per-customer behaviour features from per-customer order and event aggregates; every feature is numeric and never NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd

from customers.analytics._common import days_between, naive_utc_series, naive_utc_timestamp, require_columns

ORDER_COLUMNS: tuple[str, ...] = (
    "customer_id", "order_count", "revenue", "first_order_at", "last_order_at", "discounted_orders",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "customer_id", "events_total", "product_views", "add_to_carts", "offer_views", "offer_clicks",
    "first_event_at", "last_event_at",
)
FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",       # days since the last order, else since the last event
    "frequency",          # number of orders
    "monetary",           # revenue over all orders
    "avg_order_value",    # monetary / frequency, 0 without orders
    "tenure_days",        # days since the first order or event, whichever came first
    "activity_per_week",  # events per week of tenure (tenure counted as at least one week)
    "cart_rate",          # add_to_carts / max(product_views, 1)
    "offer_response",     # offer_clicks / max(offer_views, 1)
    "discount_share",     # discounted_orders / max(order_count, 1)
)
_ORDER_COUNTS = ("order_count", "revenue", "discounted_orders")
_EVENT_COUNTS = ("events_total", "product_views", "add_to_carts", "offer_views", "offer_clicks")


def customer_features(orders: pd.DataFrame, events: pd.DataFrame, *, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per customer found in either frame, indexed by customer_id, columns FEATURE_COLUMNS."""
    require_columns(orders, ORDER_COLUMNS, name="orders")
    require_columns(events, EVENT_COLUMNS, name="events")
    as_of = naive_utc_timestamp(as_of)
    order_part = orders.loc[:, list(ORDER_COLUMNS)].set_index("customer_id")
    event_part = events.loc[:, list(EVENT_COLUMNS)].set_index("customer_id")
    for part, name in ((order_part, "orders"), (event_part, "events")):
        if not part.index.is_unique:
            raise ValueError(f"{name} must have one row per customer_id")
    joined = order_part.join(event_part, how="outer", sort=True)

    counts = {column: joined[column].fillna(0).to_numpy(dtype="float64") for column in (*_ORDER_COUNTS, *_EVENT_COUNTS)}
    order_count = counts["order_count"]
    since_first_order = days_between(as_of, naive_utc_series(joined["first_order_at"]))
    since_last_order = days_between(as_of, naive_utc_series(joined["last_order_at"]))
    since_first_event = days_between(as_of, naive_utc_series(joined["first_event_at"]))
    since_last_event = days_between(as_of, naive_utc_series(joined["last_event_at"]))

    # Aggregates can contain rows dated after as_of when a job is re-run for a past date; those count as "now".
    tenure = np.clip(np.fmax(since_first_order, since_first_event), 0, None)
    recency = np.clip(np.where(np.isnan(since_last_order), since_last_event, since_last_order), 0, None)
    has_last_activity = ~np.isnan(recency)
    tenure = np.where(np.isnan(tenure), 0.0, tenure)
    # First dates can be missing while a last date is present (partial aggregates); tenure is never below recency.
    tenure = np.where(has_last_activity, np.fmax(tenure, recency), tenure)
    # No dated activity at all: silent for as long as we know of them (tenure), and with no dates whatsoever the
    # oldest recency observed, so such a customer never looks like a recent buyer.
    recency = np.where(has_last_activity, recency, np.where(tenure > 0, tenure, np.nan))
    oldest = float(np.nanmax(recency)) if np.isfinite(recency).any() else 0.0
    recency = np.where(np.isnan(recency), oldest, recency)

    features = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": order_count.astype("int64"),
            "monetary": counts["revenue"],
            "avg_order_value": np.divide(counts["revenue"], order_count, out=np.zeros_like(order_count), where=order_count > 0),
            "tenure_days": tenure,
            "activity_per_week": counts["events_total"] / np.maximum(tenure / 7.0, 1.0),
            "cart_rate": counts["add_to_carts"] / np.maximum(counts["product_views"], 1.0),
            "offer_response": counts["offer_clicks"] / np.maximum(counts["offer_views"], 1.0),
            "discount_share": counts["discounted_orders"] / np.maximum(order_count, 1.0),
        },
        index=pd.Index(joined.index, name="customer_id"),
    )
    return features.loc[:, list(FEATURE_COLUMNS)]
