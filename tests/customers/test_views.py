from __future__ import annotations

import json
from collections.abc import Callable

from django.test import Client
from django.urls import reverse

from customers import services
from customers.models import AttributeDefinition, Customer
from tenants.models import Membership, Tenant
from tenants.roles import Role


def _people(tenant: Tenant, n: int = 3) -> list[Customer]:
    rows = [{"external_id": f"v{i}", "email": f"person{i}@example.com", "first_name": f"Person{i}", "tags": ["vip"] if i == 0 else [],
             "attributes": {"plan": "postpaid" if i == 0 else "prepaid"}} for i in range(n)]
    return list(services.upsert_customers(tenant=tenant, rows=rows).objects.values())


def test_customer_list_searches_filters_and_pages(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    _people(tenant, 60)
    url = reverse("customers:list", args=[tenant.slug])

    first = dashboard_client.get(url)
    second = dashboard_client.get(url, {"before": first.context["page"].next_before})
    search = dashboard_client.get(url, {"q": "person7@"})
    tagged = dashboard_client.get(url, {"tag": "vip"})
    by_attribute = dashboard_client.get(url, {"attribute": "plan=postpaid"})
    partial = dashboard_client.get(url, {"q": "person1"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="customer-rows")

    assert len(first.context["customers"]) == 50 and len(second.context["customers"]) == 10
    assert [c.email for c in search.context["customers"]] == ["person7@example.com"]
    assert [c.external_id for c in tagged.context["customers"]] == ["v0"]
    assert [c.external_id for c in by_attribute.context["customers"]] == ["v0"]
    assert partial.content.decode().lstrip().startswith("<tbody")
    assert "anna@example.com" not in first.content.decode()  # other tenant's look-alike


def test_customer_list_bad_filter_shows_error(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.get(reverse("customers:list", args=[tenant.slug]), {"attribute": "nokeyvalue"})

    assert response.status_code == 200
    assert response.context["form"].errors["attribute"]


def test_profile_shows_timeline_consent_and_orders(dashboard_client: Client, tenant: Tenant) -> None:
    person = _people(tenant, 1)[0]
    services.ingest_events(tenant=tenant, rows=[{"type": "offer_view", "customer_id": person.pk, "properties": {"offer": "5G"}}])
    services.record_orders(tenant=tenant, rows=[{"external_id": "o77", "customer_id": person.pk, "ordered_at": "2026-01-02T00:00:00Z",
                                                 "lines": [{"sku": "router", "name": "Router X", "quantity": 1, "unit_price": "99"}]}])
    services.record_consent(tenant=tenant, customer=person, channel="email", purpose="marketing", status="granted", source="import")

    page = dashboard_client.get(reverse("customers:detail", args=[tenant.slug, person.pk])).content.decode()

    assert "offer_view" in page and "offer=5G" in page
    assert "o77" in page and "Router X" in page
    assert 'data-testid="consent-table"' in page and "granted" in page


def test_profile_timeline_loads_older_items(dashboard_client: Client, tenant: Tenant) -> None:
    person = _people(tenant, 1)[0]
    services.ingest_events(tenant=tenant, rows=[
        {"event_id": f"t{i}", "type": "page_view", "customer_id": person.pk, "occurred_at": f"2026-01-01T00:{i % 60:02d}:{i // 60:02d}Z"}
        for i in range(70)
    ])
    url = reverse("customers:detail", args=[tenant.slug, person.pk])

    first = dashboard_client.get(url)
    older = dashboard_client.get(url, {"before": first.context["older"]}, HTTP_HX_REQUEST="true")

    assert len(first.context["timeline"]) == 50
    assert older.content.decode().count("<li class=\"tl-event\"") == 20
    assert "<html" not in older.content.decode()


def test_export_download_and_erase_from_the_dashboard(dashboard_client: Client, tenant: Tenant) -> None:
    person = _people(tenant, 1)[0]

    export = dashboard_client.get(reverse("customers:export_one", args=[tenant.slug, person.pk]))
    wrong = dashboard_client.post(reverse("customers:erase", args=[tenant.slug, person.pk]), {"confirm": "nope"})
    person.refresh_from_db()
    assert person.email and wrong.status_code == 302
    erased = dashboard_client.post(reverse("customers:erase", args=[tenant.slug, person.pk]), {"confirm": "erase"})

    assert json.loads(export.content)["profile"]["email"] == "person0@example.com"
    assert export["Content-Disposition"].startswith("attachment")
    assert erased.status_code == 302
    person.refresh_from_db()
    assert person.is_erased and person.email == ""


def test_viewer_can_read_but_not_erase_or_define(tenant: Tenant, make_member: Callable[..., Membership], login_as: Callable) -> None:
    person = _people(tenant, 1)[0]
    client = login_as(make_member(Role.VIEWER).user)

    assert client.get(reverse("customers:detail", args=[tenant.slug, person.pk])).status_code == 200
    assert client.post(reverse("customers:erase", args=[tenant.slug, person.pk]), {"confirm": "ERASE"}).status_code == 403
    assert client.post(reverse("customers:attributes", args=[tenant.slug]), {"key": "x", "label": "X", "type": "string"}).status_code == 403
    assert client.get(reverse("customers:export_one", args=[tenant.slug, person.pk])).status_code == 403
    person.refresh_from_db()
    assert not person.is_erased


def test_attribute_definitions_are_created_validated_and_removed(dashboard_client: Client, tenant: Tenant) -> None:
    url = reverse("customers:attributes", args=[tenant.slug])

    ok = dashboard_client.post(url, {"key": "plan", "label": "Plan", "type": "choice", "choices": "prepaid\npostpaid"})
    dup = dashboard_client.post(url, {"key": "plan", "label": "Again", "type": "string"})
    no_choices = dashboard_client.post(url, {"key": "tier", "label": "Tier", "type": "choice"})
    definition = AttributeDefinition.objects.for_tenant(tenant).get(key="plan")
    removed = dashboard_client.post(reverse("customers:attribute_delete", args=[tenant.slug, definition.pk]))

    assert ok.status_code == 302 and definition.choices == ["prepaid", "postpaid"]
    assert dup.status_code == 400 and dup.context["form"].errors["key"]
    assert no_choices.status_code == 400 and no_choices.context["form"].errors["choices"]
    assert removed.status_code == 302 and not AttributeDefinition.objects.for_tenant(tenant).exists()


def test_companies_and_their_buyers(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    result = services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "b1", "first_name": "Pavel", "company": {"name": "Garage 24", "industry": "repair"}, "company_role": "repairer"},
        {"external_id": "b2", "first_name": "Nina", "company": {"name": "Garage 24", "industry": "repair"}, "company_role": "owner"},
    ])
    company = result.objects[0].company

    listing = dashboard_client.get(reverse("customers:companies", args=[tenant.slug])).content.decode()
    detail = dashboard_client.get(reverse("customers:company_detail", args=[tenant.slug, company.pk])).content.decode()

    assert result.objects[1].company_id == company.pk and result.objects[0].kind == "business_buyer"
    assert "Garage 24" in listing and "Parts &amp; Co" not in listing
    assert "Pavel" in detail and "Nina" in detail and "repairer" in detail


def test_event_retention_is_enforced_per_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from customers import tasks
    from customers.models import Event

    person = _people(tenant, 1)[0]
    old = (timezone.now() - timedelta(days=40)).isoformat()
    services.ingest_events(tenant=tenant, rows=[
        {"event_id": "old", "type": "page_view", "customer_id": person.pk, "occurred_at": old},
        {"event_id": "new", "type": "page_view", "customer_id": person.pk},
    ])
    Tenant.objects.filter(pk=tenant.pk).update(event_retention_days=30)
    other_before = Event.objects.for_tenant(other_tenant).count()

    deleted = tasks.purge_expired_events(tenant_id=tenant.pk)

    assert deleted == 1
    assert list(Event.objects.for_tenant(tenant).values_list("event_id", flat=True)) == ["new"]
    assert Event.objects.for_tenant(other_tenant).count() == other_before


def test_search_needs_three_characters(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.get(reverse("customers:list", args=[tenant.slug]), {"q": "ab"})

    assert response.context["form"].errors["q"]
