"""Offers dashboard pages: offers and vouchers, catalogue, request queue, preview, model page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
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


# Option-group builder ---------------------------------------------------------------------------

TARIFF_GROUPS = [
    {"key": "data", "label": "Data", "min_select": 1, "max_select": 1, "options": [
        {"key": "5gb", "label": "5 GB", "price": "7.00", "requires": [], "excludes": []},
        {"key": "20gb", "label": "20 GB", "price": "15.00", "requires": [], "excludes": []}]},
    {"key": "minutes", "label": "Minutes", "min_select": 0, "max_select": 1, "options": [
        {"key": "unlimited", "label": "Unlimited", "price": "10.00", "requires": ["data.20gb"], "excludes": []}]},
]


def _tariff_form(**changes: str) -> dict[str, str]:
    return {"name": "Build your tariff", "kind": "configurable", "status": "active", "base_price": "5", "currency": "EUR",
            "priority": "0", "option_groups": json.dumps(TARIFF_GROUPS), **changes}


def test_a_configurable_offer_is_built_with_option_groups(dashboard_client: Client, tenant: Tenant) -> None:
    # when: the form (the builder writes this JSON) is saved
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), _tariff_form())

    # then: the groups are stored, and the edit page hands them back to the builder
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    offer = Offer.objects.for_tenant(tenant).get(name="Build your tariff")
    assert [(g.key, g.min_select, [o.key for o in g.options.all()]) for g in offer.option_groups.all()] == [
        ("data", 1, ["5gb", "20gb"]), ("minutes", 0, ["unlimited"])]
    page = dashboard_client.get(reverse("offers:edit", args=[tenant.slug, offer.pk]))
    assert page.status_code == 200
    assert json.loads(page.context["form"].initial["option_groups"]) == TARIFF_GROUPS
    body = page.content.decode()
    assert 'id="option-builder"' in body and 'id="option-builder-labels"' in body and "js/offer_options.js" in body
    assert '<label for="id_option_groups"' in body  # the JSON fallback keeps its label


def test_option_group_errors_are_shown_by_path_and_nothing_is_stored(dashboard_client: Client, tenant: Tenant) -> None:
    # given: a negative price and a rule naming an option that does not exist
    groups = json.loads(json.dumps(TARIFF_GROUPS))
    groups[0]["options"][1]["price"] = "-1"
    groups[1]["options"][0]["requires"] = ["data.1tb"]

    # when
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), _tariff_form(option_groups=json.dumps(groups)))

    # then: each message is handed to the builder by path, and listed in words above the JSON
    assert response.status_code == 400 and not Offer.objects.for_tenant(tenant).exists()
    assert set(response.context["option_errors"]) == {"0.options.1.price", "1.options.0.requires"}
    listed = response.context["form"].errors["option_groups"]
    assert "Group 1 › Option 2 › Price: A price is 0 or more." in listed
    assert "Group 2 › Option 1 › Needs: There is no option data.1tb." in listed
    assert '"0.options.1.price": ["A price is 0 or more."]' in response.content.decode()


@pytest.mark.parametrize(("option_groups", "field_error"), [
    ("{not json", "This is not valid JSON."),
    ("", "A configurable offer needs option groups."),
    ("[]", "A configurable offer needs option groups."),
])
def test_a_configurable_offer_without_usable_groups_is_refused(dashboard_client: Client, tenant: Tenant, option_groups: str,
                                                                field_error: str) -> None:
    response = dashboard_client.post(reverse("offers:create", args=[tenant.slug]), _tariff_form(option_groups=option_groups))

    assert response.status_code == 400 and response.context["form"].errors["option_groups"] == [field_error]
    assert not Offer.objects.for_tenant(tenant).exists()


def test_another_tenants_offer_cannot_be_edited(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    # given: the other tenant's configurable offer
    theirs = Offer.objects.create(tenant=other_tenant, name="Their tariff", kind="configurable", status="active",
                                  base_price=Decimal("5"), currency="EUR")

    # when / then: under our slug and theirs, reading or saving it is a 404, and nothing changes
    for slug in (tenant.slug, other_tenant.slug):
        edit = reverse("offers:edit", args=[slug, theirs.pk])
        assert dashboard_client.get(edit).status_code == 404
        assert dashboard_client.post(edit, _tariff_form()).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Their tariff" and not theirs.option_groups.exists()
    assert not Offer.objects.for_tenant(tenant).exists()


def test_request_page_names_the_statuses_in_words(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    person = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "q", "first_name": "Quinn"}]).objects[0]
    offer = Offer.objects.create(tenant=tenant, name="TV week", kind="percent_off", status="active", product=_product(tenant),
                                 value=Decimal("10"), currency="EUR")
    claim = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk).request
    claims.transition_request(tenant=tenant, actor="owner@acme.example", request=claim, to_status="in_review")

    page = dashboard_client.get(reverse("offers:request_detail", args=[tenant.slug, claim.pk]))

    body = page.content.decode()
    assert '<option value="approved">Approved</option>' in body and "New → In review" in body
    their_claim = other_tenant.seeded["offer_request"]
    for slug in (tenant.slug, other_tenant.slug):
        their_page = reverse("offers:request_detail", args=[slug, their_claim.pk])
        assert dashboard_client.get(their_page).status_code == 404
        assert dashboard_client.post(their_page, {"status": "approved", "comment": "x"}).status_code == 404
    their_claim.refresh_from_db()
    assert their_claim.status == "new" and their_claim.events.count() == 1


def test_request_queue_shows_the_median_processing_times(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    # given: two decided requests, after 2 and 4 hours (and the other tenant's, which must not count)
    person = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "q"}]).objects[0]
    offer = Offer.objects.create(tenant=tenant, name="TV week", kind="percent_off", status="active", product=_product(tenant),
                                 value=Decimal("10"), currency="EUR")
    now = timezone.now()
    for hours in (2, 4):
        claim = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk).request
        OfferRequest.objects.for_tenant(tenant).filter(pk=claim.pk).update(
            created_at=now - timedelta(hours=10), decided_at=now - timedelta(hours=10 - hours), status="approved")

    # when
    page = dashboard_client.get(reverse("offers:requests", args=[tenant.slug]))

    # then
    assert (page.context["processing"].to_decision_h, page.context["processing"].n) == (3.0, 2)
    assert b'data-testid="time-to-decision">3.0<' in page.content
