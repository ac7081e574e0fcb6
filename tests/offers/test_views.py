"""Offers dashboard pages: offers and vouchers, catalogue, request queue, preview, model page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers import services as customer_services
from offers.models import Offer, OfferRequest, Product, Voucher
from offers.services import claims
from tenants.models import Tenant
from tenants.roles import Role


def _product(tenant: Tenant) -> Product:
    return Product.objects.create(tenant=tenant, sku="tv-1", name="TV", category="tv", base_price=Decimal("500"), currency="EUR")


def test_marketer_creates_an_offer_and_vouchers(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    product = _product(tenant)
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), {
        "name": "TV week", "kind": "percent_off", "status": "active", "product_id": product.pk, "value": "15", "currency": "eur",
        "priority": "3", "eligibility": json.dumps({"kinds": ["consumer"]})})
    offer = Offer.objects.for_tenant(tenant).get(name="TV week")
    assert response.status_code == 302 and offer.currency == "EUR" and offer.eligibility == {"kinds": ["consumer"]}
    made = dashboard_client.post(reverse("offers:detail", args=[tenant.slug, offer.pk]),
                                 {"count": "5", "prefix": "TV-", "max_redemptions": "1"})
    assert made.status_code == 302 and Voucher.objects.for_tenant(tenant).filter(offer=offer).count() == 5
    page = dashboard_client.get(reverse("offers:detail", args=[tenant.slug, offer.pk]))
    assert page.status_code == 200 and b"TV-" in page.content
    listing = dashboard_client.get(reverse("offers:list", args=[tenant.slug]))
    assert b"TV week" in listing.content and b"10% off SIM" not in listing.content  # the other tenant's offer


def test_bad_offer_form_shows_errors_and_stores_nothing(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), {
        "name": "x", "kind": "percent_off", "status": "active", "value": "15", "currency": "EUR", "priority": "0",
        "eligibility": "{not json"})
    assert response.status_code == 400 and response.context["form"].errors["eligibility"]
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), {
        "name": "x", "kind": "percent_off", "status": "active", "value": "15", "currency": "EUR", "priority": "0"})
    assert response.status_code == 400 and "product_id" in response.context["form"].errors
    assert not Offer.objects.for_tenant(tenant).exists()


def test_request_queue_flags_sla_and_a_request_moves_on(dashboard_client: Client, tenant: Tenant) -> None:
    person = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "q", "first_name": "Quinn"}]).objects[0]
    offer = Offer.objects.create(tenant=tenant, name="TV week", kind="percent_off", status="active", product=_product(tenant),
                                 value=Decimal("10"), currency="EUR")
    old = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk).request
    OfferRequest.objects.for_tenant(tenant).filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    queue = dashboard_client.get(reverse("offers:requests", args=[tenant.slug]))
    assert queue.status_code == 200 and queue.context["rows"][0].overdue
    moved = dashboard_client.post(reverse("offers:request_detail", args=[tenant.slug, old.pk]),
                                  {"status": "approved", "comment": "ok by phone"})
    assert moved.status_code == 302
    old.refresh_from_db()
    assert old.status == "approved" and old.events.last().comment == "ok by phone"
    wrong = dashboard_client.post(reverse("offers:request_detail", args=[tenant.slug, old.pk]), {"status": "new"})
    assert wrong.status_code == 400


def test_preview_shows_what_a_customer_gets_and_why(dashboard_client: Client, tenant: Tenant) -> None:
    person = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "p-7", "email": "p7@ex.com"}]).objects[0]
    Offer.objects.create(tenant=tenant, name="TV week", kind="amount_off", status="active", product=_product(tenant),
                         value=Decimal("50"), currency="EUR")
    for query in (str(person.pk), "p-7", "P7@ex.com"):
        response = dashboard_client.get(reverse("offers:preview", args=[tenant.slug]), {"customer": query})
        assert response.context["customer"] == person
        assert [s.offer.name for s in response.context["served"]] == ["TV week"]
        assert b"450.00" in response.content and b"amount_off" in response.content


def test_pages_render_and_viewers_cannot_change_anything(make_member: Callable, login_as: Callable, tenant: Tenant) -> None:
    client = login_as(make_member(role=Role.VIEWER).user)
    offer = Offer.objects.create(tenant=tenant, name="TV week", kind="percent_off", status="active", product=_product(tenant),
                                 value=Decimal("10"), currency="EUR")
    for name, args in (("offers:list", []), ("offers:detail", [offer.pk]), ("offers:products", []), ("offers:requests", []),
                       ("offers:preview", []), ("offers:recommendations", [])):
        assert client.get(reverse(name, args=[tenant.slug, *args])).status_code == 200, name
    assert client.get(reverse("offers:create", args=[tenant.slug])).status_code == 403
    assert client.post(reverse("offers:detail", args=[tenant.slug, offer.pk]), {"count": "1", "max_redemptions": "1"}).status_code == 403
    assert not Voucher.objects.for_tenant(tenant).exists()
