"""The serving path: `GET /api/v1/customers/{id}/offers/` reads the customer and everything ranking
and pricing need in one prepared statement; the active-offer copy each process keeps; the
payload the endpoint builds without DRF's serializer machinery."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from customers import services as customer_services
from customers.models import Company
from offers import api as offers_api
from offers.models import PriceList, PriceListItem, Recommendation, VolumeTier
from offers.services import context as context_module
from offers.services import pricing
from tenants.models import Tenant
from tests.offers.test_offers import _customer, _offer, _product, _tariff


def _view(tenant: Tenant, person: Any, sku: str, minutes_ago: int = 1) -> None:
    at = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    customer_services.ingest_events(tenant=tenant, rows=[{"customer_external_id": person.external_id, "type": "product_view",
                                                          "occurred_at": at.isoformat(), "properties": {"sku": sku}}])


def test_the_endpoint_reads_one_statement_after_authentication(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a few offers, a customer, and the catalogue and statement already warm in this process
    person = _customer(tenant)
    for i in range(4):
        _offer(tenant, name=f"O{i}", product=_product(tenant, f"s{i}", category=f"c{i}"))
    _tariff(tenant)
    assert api_client.get(f"/api/v1/customers/{person.pk}/offers/").status_code == 200

    # when
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(f"/api/v1/customers/{person.pk}/offers/?limit=3")

    # then: key, tenant, and the customer with all its facts
    assert response.status_code == 200 and len(response.json()) == 3
    customer_reads = [q["sql"] for q in queries.captured_queries if "customers_customer" in q["sql"] or "EXECUTE" in q["sql"]]
    assert len(customer_reads) == 1 and customer_reads[0].startswith("EXECUTE")


@pytest.mark.parametrize("customer_id", ["0", "-3", "abc", "99999999999999999999999", "9223372036854775807"])
def test_ids_that_name_no_customer_are_404(api_client: APIClient, tenant: Tenant, customer_id: str) -> None:
    assert api_client.get(f"/api/v1/customers/{customer_id}/offers/").status_code == 404


def test_another_tenants_customer_is_404_and_their_offers_never_show(api_client: APIClient, tenant: Tenant,
                                                                    other_tenant: Tenant) -> None:
    # given: the other tenant has an active offer and a customer with a recommendation for it
    theirs = other_tenant.seeded["customer"]
    their_offer = _offer(other_tenant, name="Theirs", product=_product(other_tenant, "t-1"))
    Recommendation.objects.create(tenant=other_tenant, customer=theirs, offer=their_offer, score=1.0, rank=1,
                                  reason={"code": "bought"}, model="m")
    person = _customer(tenant)
    _offer(tenant, name="Ours", product=_product(tenant))

    # when / then
    assert api_client.get(f"/api/v1/customers/{theirs.pk}/offers/").status_code == 404
    assert [o["name"] for o in api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()] == ["Ours"]


def test_an_erased_customer_gets_an_empty_list(api_client: APIClient, tenant: Tenant) -> None:
    person = _customer(tenant)
    _offer(tenant, product=_product(tenant))
    customer_services.erase_customer(tenant=tenant, customer=person, actor=None)
    response = api_client.get(f"/api/v1/customers/{person.pk}/offers/")
    assert response.status_code == 200 and response.json() == []


def test_the_payload_has_exactly_the_documented_fields(api_client: APIClient, tenant: Tenant) -> None:
    person = _customer(tenant)
    _offer(tenant, name="Deal", product=_product(tenant), value=Decimal("10"))
    _tariff(tenant)
    served = api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()
    documented = set(offers_api.ServedOfferSerializer().fields)
    assert all(set(item) == documented for item in served)
    by_name = {item["name"]: item for item in served}
    assert (by_name["Deal"]["price"], by_name["Deal"]["list_price"], by_name["Deal"]["from_price"]) == ("180.00", "200.00", None)
    assert (by_name["Tariff"]["price"], by_name["Tariff"]["from_price"]) == (None, "12.00")  # fee 5 + cheapest required 7


def test_recent_views_in_the_event_log_lift_offers_for_every_caller(api_client: APIClient, tenant: Tenant) -> None:
    # given: two offers of equal priority; the customer viewed the second one's product a minute ago
    person = _customer(tenant)
    _offer(tenant, name="First", product=_product(tenant, "a-1", category="a"), priority=1)
    _offer(tenant, name="Viewed", product=_product(tenant, "b-1", category="b"), priority=1)
    assert api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()[0]["name"] == "First"
    _view(tenant, person, "b-1")

    # when / then: the API and the one function every other caller uses rank it first
    assert api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()[0]["name"] == "Viewed"
    assert pricing.offers_for_customer(tenant=tenant, customer=person)[0].offer.name == "Viewed"


def test_behaviour_older_than_the_recent_window_is_left_to_the_model(api_client: APIClient, tenant: Tenant,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    person = _customer(tenant)
    _offer(tenant, name="First", product=_product(tenant, "a-1", category="a"), priority=1)
    _offer(tenant, name="Viewed long ago", product=_product(tenant, "b-1", category="b"), priority=1)
    _view(tenant, person, "b-1", minutes_ago=(context_module.RECENT_DAYS + 1) * 24 * 60)
    assert api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()[0]["name"] == "First"
    monkeypatch.setattr(connection, "vendor", "sqlite")  # the ORM reading draws the same line
    assert context_module.load_context(tenant=tenant, customer=person).recent_products == []


def test_a_business_buyers_context_is_the_same_read_either_way(tenant: Tenant, other_tenant: Tenant,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a buyer with a company size, a negotiated price, tiers and a recent view; the other tenant has tiers too
    product = _product(tenant)
    buyer = _customer(tenant, kind="business_buyer", company={"name": "Repair Ltd", "external_id": "r-1", "size": "10-49"})
    price_list = PriceList.objects.create(tenant=tenant, company=Company.objects.for_tenant(tenant).get(), name="2026")
    PriceListItem.objects.create(tenant=tenant, price_list=price_list, product=product, price=Decimal("150.10"))
    VolumeTier.objects.create(tenant=tenant, min_quantity=10, percent_off=Decimal("5"))
    VolumeTier.objects.create(tenant=tenant, product=product, min_quantity=50, percent_off=Decimal("7.5"))
    VolumeTier.objects.create(tenant=other_tenant, min_quantity=2, percent_off=Decimal("50"))
    _view(tenant, buyer, product.sku)

    # when
    fast = context_module.load_context_for_id(tenant=tenant, customer_id=buyer.pk)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    slow = context_module.load_context_for_id(tenant=tenant, customer_id=buyer.pk)

    # then
    assert fast is not None and slow is not None
    assert fast.customer.pk == slow.customer.pk == buyer.pk and fast.customer.kind == "business_buyer"
    assert fast.company_size == slow.company_size == "10-49"
    assert fast.negotiated == slow.negotiated == {product.pk: Decimal("150.10")}
    tiers = [(t.product_id, t.min_quantity, t.percent_off) for t in fast.tiers]
    assert tiers == [(t.product_id, t.min_quantity, t.percent_off) for t in slow.tiers]
    assert tiers == [(product.pk, 50, Decimal("7.50")), (None, 10, Decimal("5.00"))]
    assert fast.recent_products == slow.recent_products == [product.sku]
    assert fast.customer.email == buyer.email  # fields the statement does not read load on access


@pytest.mark.django_db(transaction=True)
def test_the_prepared_statement_survives_a_new_connection(tenant: Tenant) -> None:
    person = _customer(tenant)
    assert context_module.load_context_for_id(tenant=tenant, customer_id=person.pk) is not None
    connection.close()  # the next query opens a new session, which holds no prepared statement
    found = context_module.load_context_for_id(tenant=tenant, customer_id=person.pk)
    assert found is not None and found.customer.pk == person.pk


def test_another_process_sees_an_offer_change_within_a_second(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: this process holds the active offers
    clock = [1000.0]
    monkeypatch.setattr(pricing.time, "monotonic", lambda: clock[0])
    person = _customer(tenant)
    _offer(tenant, name="Old", product=_product(tenant))
    assert [o.offer.name for o in pricing.offers_for_customer(tenant=tenant, customer=person)] == ["Old"]

    # when: another process adds an offer and bumps the shared version (this process's copy stays)
    _offer(tenant, name="New", product=_product(tenant, "n-1", category="other"))
    key = pricing._version_key(tenant.pk)
    pricing.cache.set(key, (pricing.cache.get(key) or 0) + 1, timeout=None)

    # then: within the check interval the copy is used; after it, the change shows
    clock[0] += pricing.VERSION_CHECK_INTERVAL / 2
    assert [o.offer.name for o in pricing.offers_for_customer(tenant=tenant, customer=person)] == ["Old"]
    clock[0] += pricing.VERSION_CHECK_INTERVAL
    assert {o.offer.name for o in pricing.offers_for_customer(tenant=tenant, customer=person)} == {"Old", "New"}
