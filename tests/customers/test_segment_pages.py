"""Segment pages, the segments API and the prediction jobs: behaviour, roles and tenant walls."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from customers import services as customer_services
from customers.models import CustomerScore, PredictionRun, Segment, SegmentChange, SegmentMembership
from customers.segments import membership, predictions
from tenants.models import JobRun, Tenant
from tenants.roles import Role
from tests.factories import make_api_key

VIP = {"match": "all", "conditions": [{"type": "profile", "field": "tags", "op": "contains", "value": "vip"}]}


def test_builder_creates_a_segment_and_queues_its_build(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant,
                                                        django_capture_on_commit_callbacks: Any) -> None:
    # given / when
    with django_capture_on_commit_callbacks() as callbacks:
        response = dashboard_client.post(reverse("segments:create", args=[tenant.slug]),
                                         {"name": "VIPs", "description": "", "definition": json.dumps(VIP)})

    # then
    segment = Segment.objects.for_tenant(tenant).get(name="VIPs")
    assert response.status_code == 302 and response.url == reverse("segments:detail", args=[tenant.slug, segment.pk])
    assert segment.status == "building" and segment.depends_on == ["profile"]
    assert JobRun.objects.for_tenant(tenant).filter(kind="segment_rebuild", params={"segment_id": segment.pk}).exists()
    assert len(callbacks) == 1


def test_builder_shows_field_errors_for_a_bad_definition(dashboard_client: Client, tenant: Tenant) -> None:
    bad = {"match": "all", "conditions": [{"type": "event", "event_type": "x", "op": "at_least", "count": 0}]}
    response = dashboard_client.post(reverse("segments:create", args=[tenant.slug]), {"name": "x", "definition": json.dumps(bad)})
    assert response.status_code == 400
    assert any("conditions.0.count" in e for e in response.context["form"].errors["definition"])
    assert not Segment.objects.for_tenant(tenant).exists()


def test_preview_counts_and_samples_without_storing(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "v", "first_name": "Vera", "tags": ["vip"]}])
    response = dashboard_client.post(reverse("segments:preview", args=[tenant.slug]), {"definition": json.dumps(VIP)})
    assert response.status_code == 200
    assert b'data-testid="preview-count">1<' in response.content  # the other tenant's look-alike VIP is not counted
    assert b"Vera" in response.content
    assert not Segment.objects.for_tenant(tenant).exists()
    broken = dashboard_client.post(reverse("segments:preview", args=[tenant.slug]), {"definition": "{"})
    assert broken.status_code == 200 and b'data-testid="preview-errors"' in broken.content


def test_segment_pages_render(dashboard_client: Client, tenant: Tenant) -> None:
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "v", "first_name": "Vera", "tags": ["vip"]}])
    segment = Segment.objects.create(tenant=tenant, name="VIPs", definition=VIP, depends_on=["profile"])
    membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)
    for name, args in (("segments:list", []), ("segments:detail", [segment.pk]), ("segments:edit", [segment.pk]),
                       ("segments:overlap", [segment.pk]), ("segments:models", []), ("segments:create", [])):
        response = dashboard_client.get(reverse(name, args=[tenant.slug, *args]))
        assert response.status_code == 200, name
    detail = dashboard_client.get(reverse("segments:detail", args=[tenant.slug, segment.pk]))
    assert b"Vera" in detail.content and detail.context["segment"].member_count == 1


def test_export_of_a_segment_exports_its_members(dashboard_client: Client, tenant: Tenant) -> None:
    segment = Segment.objects.create(tenant=tenant, name="VIPs", definition=VIP, depends_on=["profile"])
    response = dashboard_client.post(reverse("segments:export", args=[tenant.slug, segment.pk]))
    job = JobRun.objects.for_tenant(tenant).get(kind="customers_export")
    assert response.status_code == 302 and job.params == {"filters": {"segment_id": segment.pk}}


def test_viewer_cannot_create_or_delete_segments(make_member: Callable, login_as: Callable, tenant: Tenant) -> None:
    viewer = make_member(role=Role.VIEWER)
    client = login_as(viewer.user)
    segment = Segment.objects.create(tenant=tenant, name="VIPs", definition=VIP, depends_on=["profile"])
    assert client.post(reverse("segments:create", args=[tenant.slug]), {"name": "x", "definition": json.dumps(VIP)}).status_code == 403
    assert client.post(reverse("segments:delete", args=[tenant.slug, segment.pk])).status_code == 403
    assert client.get(reverse("segments:detail", args=[tenant.slug, segment.pk])).status_code == 200


# API ------------------------------------------------------------------------------------------


def test_api_creates_lists_previews_and_pages_members(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": f"v{i}", "tags": ["vip"]} for i in range(3)])

    created = api_client.post("/api/v1/segments/", {"name": "VIPs", "definition": VIP}, format="json")
    assert created.status_code == 201, created.content
    segment_id = created.json()["id"]
    membership.rebuild_segment(tenant=tenant, segment_id=segment_id)

    preview = api_client.post("/api/v1/segments/preview/", {"definition": VIP}, format="json")
    assert preview.status_code == 200 and preview.json()["count"] == 3
    listed = api_client.get("/api/v1/segments/").json()["results"]
    assert [s["id"] for s in listed] == [segment_id]
    page = api_client.get(f"/api/v1/segments/{segment_id}/members/?limit=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api_client.get(page["next"]).json()
    assert len(rest["results"]) == 1
    customer_id = rest["results"][0]["id"]
    mine = api_client.get(f"/api/v1/customers/{customer_id}/segments/").json()
    assert [m["segment_id"] for m in mine] == [segment_id]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "definition": {"match": "all", "conditions": [{"type": "order", "measure": "x", "op": "gte", "value": 1}]}},
     "definition"),
    ({"name": "", "definition": VIP}, "name"),
    ({"name": "x", "definition": VIP, "tenant": 1}, "tenant"),
    ({"name": "x"}, "definition"),
])
def test_api_rejects_bad_segments_with_field_errors(api_client: APIClient, tenant: Tenant, body: dict[str, Any], field: str) -> None:
    response = api_client.post("/api/v1/segments/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Segment.objects.for_tenant(tenant).exists()


def test_api_key_scopes_guard_segments(tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant, scopes=["segments:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/segments/").status_code == 200
    assert client.post("/api/v1/segments/preview/", {"definition": VIP}, format="json").status_code == 200
    assert client.post("/api/v1/segments/", {"name": "x", "definition": VIP}, format="json").status_code == 403


def test_api_predictions_show_scores_and_models(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    customer = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "p"}]).objects[0]
    CustomerScore.objects.create(tenant=tenant, customer=customer, churn_probability=0.8, rfm_group="at_risk")
    PredictionRun.objects.create(tenant=tenant, model="churn", method="hist_gradient_boosting", metrics={"roc_auc": 0.8})
    body = api_client.get(f"/api/v1/customers/{customer.pk}/predictions/").json()
    assert body["scores"]["churn_probability"] == 0.8 and body["scores"]["rfm_group"] == "at_risk"
    assert body["models"]["churn"]["method"] == "hist_gradient_boosting" and body["excluded"] is False
    assert "clv" not in body["models"]  # the other tenant's runs are not ours


# Prediction jobs ------------------------------------------------------------------------------


def _history(tenant: Tenant, customers: int = 60) -> None:
    """Customers with a few orders and events over a year; every fifth stops buying early."""
    now = timezone.now()
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": f"h{i}"} for i in range(customers)])
    orders, events = [], []
    for i in range(customers):
        last_day = 300 if i % 5 == 0 else 5 + i % 20
        for n, day in enumerate(range(360, last_day - 1, -40 - (i % 3) * 10)):
            orders.append({"external_id": f"ho-{i}-{n}", "customer_external_id": f"h{i}", "currency": "EUR",
                           "ordered_at": (now - timedelta(days=day)).isoformat(),
                           "lines": [{"sku": "s", "quantity": 1, "unit_price": str(20 + i)}]})
        events += [{"event_id": f"he-{i}-{k}", "type": "product_view" if k % 2 else "add_to_cart", "customer_external_id": f"h{i}",
                    "occurred_at": (now - timedelta(days=k * 7 + 1)).isoformat()} for k in range(i % 6 + 1)]
    # someone who browses but never buys: clustered, with no RFM scores (gaps in the score frame)
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "browser"}])
    events += [{"event_id": f"hb-{k}", "type": "product_view", "customer_external_id": "browser",
                "occurred_at": (now - timedelta(days=k + 1)).isoformat()} for k in range(3)]
    for start in range(0, len(orders), 500):
        customer_services.record_orders(tenant=tenant, rows=orders[start:start + 500])
    customer_services.ingest_events(tenant=tenant, rows=events)


def test_prediction_jobs_score_build_builtin_segments_respect_consent_and_touch_only_their_tenant(
    tenant: Tenant, other_tenant: Tenant,
) -> None:
    # given: history, one person who withdrew analytics consent, and the other tenant's rows as they are
    _history(tenant)
    from customers.models import Customer

    opted_out = Customer.objects.for_tenant(tenant).get(external_id="h7")
    customer_services.record_consent(tenant=tenant, customer=opted_out, channel="all", purpose="analytics",
                                     status="withdrawn", source="api")
    before = {model: sorted(model.objects.for_tenant(other_tenant).values_list("pk", flat=True))
              for model in (CustomerScore, Segment, SegmentMembership, SegmentChange, PredictionRun)}
    their_score = CustomerScore.objects.for_tenant(other_tenant).values().get()

    # when
    rfm = predictions.run_rfm_and_clusters(tenant=tenant)
    churn = predictions.run_churn(tenant=tenant)
    clv = predictions.run_clv(tenant=tenant)

    # then: everyone but the opted-out person is scored, and the runs say one was left out
    scores = CustomerScore.objects.for_tenant(tenant)
    assert rfm["rfm_customers"] == 59 and rfm["excluded"] == 1
    assert not scores.filter(customer=opted_out).exclude(rfm_group="").exists()
    assert scores.exclude(rfm_group="").count() == 59
    browser = scores.get(customer__external_id="browser")
    assert browser.cluster is not None and browser.rfm_group == "" and browser.r_score is None
    assert scores.filter(churn_probability__isnull=False).count() == 59
    assert churn["scored"] == 59 and clv["scored"] == 59
    assert PredictionRun.objects.for_tenant(tenant).filter(n_excluded=1).count() == 4
    # built-in segments exist and hold the scored people
    keys = set(Segment.objects.for_tenant(tenant).values_list("builtin_key", flat=True))
    assert {"rfm:champions", "rfm:lost", "churn:high", "clv:top20", "cluster:0"} <= keys
    rfm_members = SegmentMembership.objects.for_tenant(tenant).filter(segment__kind="rfm").count()
    assert rfm_members == 59
    # and the other tenant is exactly as it was
    after = {model: sorted(model.objects.for_tenant(other_tenant).values_list("pk", flat=True)) for model in before}
    assert after == before
    assert CustomerScore.objects.for_tenant(other_tenant).values().get() == their_score


def test_churn_falls_back_to_a_recency_rule_on_short_history_and_says_so(tenant: Tenant) -> None:
    customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "n"}])
    customer_services.record_orders(tenant=tenant, rows=[{"external_id": "n-1", "customer_external_id": "n", "currency": "EUR",
                                                          "ordered_at": timezone.now().isoformat(),
                                                          "lines": [{"sku": "s", "quantity": 1, "unit_price": "5"}]}])
    result = predictions.run_churn(tenant=tenant)
    run = PredictionRun.objects.for_tenant(tenant).get(model="churn")
    assert result["is_fallback"] and run.is_fallback and run.method == "recency_rule" and run.reason
