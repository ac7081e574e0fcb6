"""Per-tenant prediction jobs: RFM scores and groups, behavioural clusters, churn risk and
predicted lifetime value, stored in CustomerScore, each with a PredictionRun for its model page,
and the built-in segments over them.

Rules:
- Per-customer inputs are aggregated in SQL (one GROUP BY per table) and read with COPY, so a
  million customers reach pandas as a million rows, not as ten million events.
- People whose latest "analytics" or "personalization" consent entry is a withdrawal are left
  out of every profiling model: not used to train, not scored, and their earlier scores are
  cleared. Each run records how many were left out.
- Scores are written with one COPY into a staging table and one upsert per job; each job writes
  only its own columns.
- After writing, the job syncs its built-in segments (one per RFM group, one per cluster, "high
  churn risk", "top 20% predicted value") and rebuilds them and every segment that reads scores.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from threadpoolctl import threadpool_limits

from customers.analytics import churn as churn_model
from customers.analytics import clusters as cluster_model
from customers.analytics import features as feature_model
from customers.analytics import rfm as rfm_model
from customers.models import Consent, Customer, CustomerScore, Event, Order, PredictionRun, Segment
from customers.segments import services as segment_services
from customers.services.consent import customers_who_withdrew
from tenants.models import JobRun, Tenant

SCORES = CustomerScore._meta.db_table
ORDERS = Order._meta.db_table
EVENTS = Event._meta.db_table
CUSTOMERS = Customer._meta.db_table
PROFILING_PURPOSES = (Consent.Purpose.ANALYTICS, Consent.Purpose.PERSONALIZATION)
CHURN_HORIZON_DAYS = 90
CHURN_HIGH = 0.5
CLV_HORIZON_DAYS = 365
Progress = Callable[[int], None]


# Consent --------------------------------------------------------------------------------------


def excluded_customer_ids(*, tenant: Tenant) -> set[int]:
    return set(customers_who_withdrew(tenant=tenant, purposes=PROFILING_PURPOSES))


def is_excluded(*, tenant: Tenant, customer: Customer) -> bool:
    return customers_who_withdrew(tenant=tenant, purposes=PROFILING_PURPOSES).filter(customer_id=customer.pk).exists()


# Reading inputs -------------------------------------------------------------------------------


def _read_frame(sql: str, params: list[Any], columns: list[str], dates: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a query and return its rows as a DataFrame: COPY on PostgreSQL (fast at millions of rows)."""
    if connection.vendor == "postgresql":
        # COPY (query) runs serially, and so does writing a temporary table; an unlogged table
        # lets PostgreSQL aggregate in parallel (measured: 7.8 s against 15 s over ten million
        # events), then one COPY reads the result. The name is unique to this run.
        stage = f"prediction_input_{uuid.uuid4().hex}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE UNLOGGED TABLE {stage} ({', '.join(columns)}) AS {sql}", params)
            try:
                buffer = io.StringIO()
                cursor.copy_expert(f"COPY {stage} TO STDOUT WITH (FORMAT csv)", buffer)
            finally:
                cursor.execute(f"DROP TABLE {stage}")
        buffer.seek(0)
        frame = pd.read_csv(buffer, names=columns, header=None)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="mixed").dt.tz_localize(None)
    return frame


def left_out_ids(*, tenant: Tenant) -> tuple[set[int], int]:
    """Erased people and those left out by consent, and how many the consent left out. Read once
    per job; the loaders drop these few ids from their frames rather than in SQL, where the NOT IN
    would keep PostgreSQL from aggregating in parallel."""
    excluded = excluded_customer_ids(tenant=tenant)
    erased = set(Customer.objects.for_tenant(tenant).filter(erased_at__isnull=False).values_list("pk", flat=True))
    return erased | excluded, len(excluded)


def _without(frame: pd.DataFrame, left_out: set[int]) -> pd.DataFrame:
    if not left_out:
        return frame
    return frame[~frame["customer_id"].isin(left_out)].reset_index(drop=True)


def load_order_aggregates(*, tenant: Tenant, left_out: set[int]) -> pd.DataFrame:
    statuses = ", ".join(f"'{s}'" for s in Order.REVENUE_STATUSES)
    sql = (f"SELECT o.customer_id, count(*), sum(o.total), min(o.ordered_at), max(o.ordered_at), 0 FROM {ORDERS} o "
           f"WHERE o.tenant_id = %s AND o.status IN ({statuses}) GROUP BY o.customer_id")
    frame = _read_frame(sql, [tenant.pk], list(feature_model.ORDER_COLUMNS), dates=("first_order_at", "last_order_at"))
    return _without(frame, left_out)


def load_event_aggregates(*, tenant: Tenant, left_out: set[int]) -> pd.DataFrame:
    def count_of(kind: str) -> str:
        return f"sum(CASE WHEN e.type = '{kind}' THEN 1 ELSE 0 END)"

    sql = (f"SELECT e.customer_id, count(*), {count_of('product_view')}, {count_of('add_to_cart')}, {count_of('offer_view')}, "
           f"{count_of('offer_click')}, min(e.occurred_at), max(e.occurred_at) FROM {EVENTS} e "
           f"WHERE e.tenant_id = %s GROUP BY e.customer_id")
    frame = _read_frame(sql, [tenant.pk], list(feature_model.EVENT_COLUMNS), dates=("first_event_at", "last_event_at"))
    return _without(frame, left_out)


def load_order_times(*, tenant: Tenant, left_out: set[int]) -> pd.DataFrame:
    statuses = ", ".join(f"'{s}'" for s in Order.REVENUE_STATUSES)
    sql = (f"SELECT o.customer_id, o.ordered_at, o.total FROM {ORDERS} o "
           f"WHERE o.tenant_id = %s AND o.status IN ({statuses})")
    frame = _read_frame(sql, [tenant.pk], ["customer_id", "ordered_at", "total"], dates=("ordered_at",))
    frame = _without(frame, left_out)
    frame["total"] = frame["total"].astype("float64")
    return frame


def _as_of() -> pd.Timestamp:
    return pd.Timestamp(timezone.now()).tz_convert("UTC").tz_localize(None)


# Writing scores -------------------------------------------------------------------------------


def write_scores(*, tenant: Tenant, frame: pd.DataFrame, columns: tuple[str, ...]) -> int:
    """Upsert `columns` of CustomerScore from `frame` (indexed by customer_id); clear them for
    everyone else in the tenant (no longer scored, or left out by consent)."""
    now = timezone.now()
    stage = "customer_score_stage"
    names = ", ".join(columns)
    data = frame.loc[:, list(columns)].copy()
    for column in columns:  # integers stay integers through an outer join's gaps; text is never NULL
        kind = CustomerScore._meta.get_field(column).get_internal_type()
        if kind == "CharField":
            data[column] = data[column].fillna("").astype(str)
        elif kind != "FloatField":
            data[column] = data[column].astype("Int64")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {stage}")
        types = ", ".join(f"{c} {_sql_type(c)}" for c in columns)
        cursor.execute(f"CREATE TEMPORARY TABLE {stage} (customer_id bigint PRIMARY KEY, {types})")
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            data.to_csv(buffer, header=False, na_rep="\\N", sep="\t")
            buffer.seek(0)
            cursor.copy_expert(f"COPY {stage} (customer_id, {names}) FROM STDIN WITH (FORMAT text)", buffer)
        else:
            rows = [(int(i), *(_py(v) for v in values)) for i, values in zip(data.index, data.itertuples(index=False), strict=True)]
            marks = ", ".join(["%s"] * (len(columns) + 1))
            cursor.executemany(f"INSERT INTO {stage} (customer_id, {names}) VALUES ({marks})", rows)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        cursor.execute(
            f"INSERT INTO {SCORES} (tenant_id, customer_id, {names}, updated_at) "
            f"SELECT %s, s.customer_id, {', '.join('s.' + c for c in columns)}, %s FROM {stage} s "
            f"WHERE s.customer_id IN (SELECT id FROM {CUSTOMERS} WHERE tenant_id = %s) "
            f"ON CONFLICT (tenant_id, customer_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
            [tenant.pk, now, tenant.pk],
        )
        written = cursor.rowcount
        cleared = ", ".join(f"{c} = {_empty(c)}" for c in columns)
        cursor.execute(
            f"UPDATE {SCORES} SET {cleared}, updated_at = %s WHERE tenant_id = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.customer_id = {SCORES}.customer_id)",
            [now, tenant.pk],
        )
        cursor.execute(f"DROP TABLE {stage}")
    return written


def _sql_type(column: str) -> str:
    field = CustomerScore._meta.get_field(column)
    return {"CharField": "varchar(32)", "FloatField": "double precision"}.get(field.get_internal_type(), "integer")


def _empty(column: str) -> str:
    return "''" if CustomerScore._meta.get_field(column).get_internal_type() == "CharField" else "NULL"


def _py(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# Built-in segments ----------------------------------------------------------------------------


def _score_condition(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"match": "all", "conditions": [{"type": "score", "field": field, "op": op, "value": value}]}


def _sync_and_rebuild(*, tenant: Tenant, segments: list[Segment], stale_prefix: str = "") -> None:
    keep = {s.pk for s in segments}
    if stale_prefix:
        stale = Segment.objects.for_tenant(tenant).filter(builtin_key__startswith=stale_prefix).exclude(pk__in=keep)
        stale.delete()
    readers = [s.pk for s in Segment.objects.for_tenant(tenant) if "score" in s.depends_on]
    segment_services.rebuild_segments(tenant=tenant, segment_ids=readers)


RFM_LABELS = {
    "champions": "Champions", "loyal": "Loyal", "potential_loyalists": "Potential loyalists", "new": "New customers",
    "promising": "Promising", "need_attention": "Need attention", "about_to_sleep": "About to sleep", "at_risk": "At risk",
    "cant_lose": "Can't lose them", "hibernating": "Hibernating", "lost": "Lost",
}


def _record(*, tenant: Tenant, model: str, job: JobRun | None, started: float, **fields: Any) -> PredictionRun:
    return PredictionRun.objects.create(tenant=tenant, model=model, job=job, trained_at=timezone.now(),
                                        duration_ms=int((time.perf_counter() - started) * 1000), **fields)


# Jobs -----------------------------------------------------------------------------------------


def run_rfm_and_clusters(*, tenant: Tenant, job: JobRun | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """RFM scores and groups for buyers, and behavioural clusters for everyone with activity."""
    started = time.perf_counter()
    step = progress or (lambda n: None)
    phases: dict[str, float] = {}
    mark = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 2)
        mark[0] = now

    left_out, excluded = left_out_ids(tenant=tenant)
    orders = load_order_aggregates(tenant=tenant, left_out=left_out)
    phase("read_orders")
    events = load_event_aggregates(tenant=tenant, left_out=left_out)
    phase("read_events")
    step(1)
    as_of = _as_of()
    feats = feature_model.customer_features(orders, events, as_of=as_of)
    del orders, events
    rfm = rfm_model.score_rfm(feats)
    phase("features_rfm")
    rfm_frame = feats.loc[rfm.index, ["recency_days", "frequency", "monetary"]].join(
        rfm[["r_score", "f_score", "m_score"]]).join(rfm["rfm_group"].astype(str))
    groups = rfm["rfm_group"].value_counts().to_dict()
    _record(tenant=tenant, model=PredictionRun.Model.RFM, job=job, started=started, n_customers=len(rfm), n_excluded=excluded,
            method="quintiles", metrics={}, details={"groups": {g: int(groups.get(g, 0)) for g in rfm_model.RFM_GROUPS}})
    step(1)
    rfm_segments = [
        segment_services.sync_builtin_segment(
            tenant=tenant, key=f"rfm:{group}", kind=Segment.Kind.RFM, name=f"RFM: {RFM_LABELS.get(group, group)}",
            definition=_score_condition("rfm_group", "eq", group), meta={"group": group},
        )
        for group in rfm_model.RFM_GROUPS
    ]

    started_clusters = time.perf_counter()
    # One BLAS/OpenMP thread: on two cores, more threads than cores only wait on each other
    # (measured by the analytics tests' author: 2.9 s against 3.4–9.2 s at a million rows).
    with threadpool_limits(1):
        result = cluster_model.cluster_customers(feats)
    phase("clusters")
    # RFM and cluster columns in one upsert: each pass over a million score rows costs seconds.
    scores = result.labels.to_frame("cluster").join(rfm_frame, how="outer")
    write_scores(tenant=tenant, frame=scores, columns=(*PredictionRun.SCORE_COLUMNS["rfm"], *PredictionRun.SCORE_COLUMNS["clusters"]))
    profiles = result.profiles.reset_index().to_dict(orient="records")
    _record(tenant=tenant, model=PredictionRun.Model.CLUSTERS, job=job, started=started_clusters, n_customers=len(result.labels),
            n_excluded=excluded, method=f"k-means, k={result.k}", is_fallback=result.silhouette is None,
            reason=result.reason or "", metrics={"k": result.k, "silhouette": result.silhouette,
                                                 "silhouette_by_k": {str(k): v for k, v in result.silhouette_by_k.items()}},
            details={"profiles": _jsonable(profiles), "descriptions": {str(k): v for k, v in result.descriptions.items()}})
    cluster_segments = [
        segment_services.sync_builtin_segment(
            tenant=tenant, key=f"cluster:{k}", kind=Segment.Kind.CLUSTER,
            name=_("Cluster %(n)s: %(words)s") % {"n": k + 1, "words": result.description_text(k)},
            definition=_score_condition("cluster", "eq", int(k)), meta={"words": result.descriptions[k]},
        )
        for k in sorted(result.descriptions)
    ]
    phase("write_clusters")
    step(1)
    _sync_and_rebuild(tenant=tenant, segments=[*rfm_segments, *cluster_segments], stale_prefix="cluster:")
    phase("rebuild_segments")
    step(1)
    return {"phases": phases, "rfm_customers": len(rfm), "clustered": len(result.labels), "k": result.k, "silhouette": result.silhouette,
            "excluded": excluded, "seconds": round(time.perf_counter() - started, 1)}


def run_churn(*, tenant: Tenant, job: JobRun | None = None, progress: Progress | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    step = progress or (lambda n: None)
    left_out, excluded = left_out_ids(tenant=tenant)
    order_times = load_order_times(tenant=tenant, left_out=left_out)
    step(1)
    as_of = _as_of()
    model = churn_model.train_churn_model(order_times, as_of=as_of, horizon_days=CHURN_HORIZON_DAYS)
    probability = model.predict(order_times, as_of=as_of)
    write_scores(tenant=tenant, frame=probability.to_frame("churn_probability"), columns=PredictionRun.SCORE_COLUMNS["churn"])
    summary = model.summary()
    _record(tenant=tenant, model=PredictionRun.Model.CHURN, job=job, started=started, n_customers=len(probability),
            n_excluded=excluded, method=model.method, is_fallback=model.is_fallback, reason=model.reason or "",
            metrics=_jsonable({k: summary[k] for k in ("roc_auc", "brier", "base_rate", "n_train", "n_valid", "calibration",
                                                      "horizon_days", "typical_gap_days", "candidate_scores")}))
    step(1)
    segment = segment_services.sync_builtin_segment(
        tenant=tenant, key="churn:high", kind=Segment.Kind.PREDICTION, name=_("High churn risk"),
        definition=_score_condition("churn_probability", "gte", CHURN_HIGH), meta={"threshold": CHURN_HIGH},
    )
    _sync_and_rebuild(tenant=tenant, segments=[segment])
    step(1)
    return {"scored": len(probability), "method": model.method, "is_fallback": model.is_fallback, "roc_auc": model.roc_auc,
            "excluded": excluded, "seconds": round(time.perf_counter() - started, 1)}


def run_clv(*, tenant: Tenant, job: JobRun | None = None, progress: Progress | None = None) -> dict[str, Any]:
    from metrics import clv

    started = time.perf_counter()
    step = progress or (lambda n: None)
    left_out, excluded = left_out_ids(tenant=tenant)
    order_times = load_order_times(tenant=tenant, left_out=left_out)
    step(1)
    prediction = clv.predict_customer_value(order_times, as_of=_as_of(), horizon_days=CLV_HORIZON_DAYS)
    frame = prediction.customers
    write_scores(tenant=tenant, frame=frame, columns=PredictionRun.SCORE_COLUMNS["clv"])
    metrics = {"horizon_days": CLV_HORIZON_DAYS, "n_repeaters": prediction.n_repeaters,
               "bgnbd": _params(prediction.bgnbd), "gamma_gamma": _params(prediction.gamma_gamma)}
    _record(tenant=tenant, model=PredictionRun.Model.CLV, job=job, started=started, n_customers=len(frame), n_excluded=excluded,
            method="BG/NBD + Gamma-Gamma" if prediction.fitted else "rate model", is_fallback=not prediction.fitted,
            reason=prediction.reason or "", metrics=_jsonable(metrics))
    step(1)
    values = frame["expected_value"].dropna()
    threshold = float(np.quantile(values, 0.8)) if len(values) else 0.0
    segment = segment_services.sync_builtin_segment(
        tenant=tenant, key="clv:top20", kind=Segment.Kind.PREDICTION, name=_("Top 20% by predicted value"),
        definition=_score_condition("expected_value", "gte", round(threshold, 2)), meta={"threshold": threshold},
    )
    _sync_and_rebuild(tenant=tenant, segments=[segment])
    step(1)
    return {"scored": len(frame), "fitted": prediction.fitted, "excluded": excluded, "seconds": round(time.perf_counter() - started, 1)}


def _params(params: Any) -> dict[str, float] | None:
    if params is None:
        return None
    if hasattr(params, "_asdict"):
        return {k: float(v) for k, v in params._asdict().items()}
    if hasattr(params, "__dataclass_fields__"):
        return {k: float(getattr(params, k)) for k in params.__dataclass_fields__}
    return {"values": [float(v) for v in params]}  # type: ignore[dict-item]


def _jsonable(value: Any) -> Any:
    """Plain JSON types for JSONField: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
