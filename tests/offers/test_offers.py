"""Catalogue, eligibility, per-buyer pricing, configurable offers, claims, vouchers and requests."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from b2p_platform.exceptions import ConflictError, DomainError
from customers import services as customer_services
from customers.models import Company, CustomerScore, Segment, SegmentMembership
from offers.models import (
    Offer,
    OfferRequest,
    Option,
    OptionGroup,
    PriceList,
    PriceListItem,
    Product,
    Recommendation,
    VolumeTier,
    Voucher,
)
from offers.services import catalogue, claims, pricing
from tenants.models import Tenant


def _product(tenant: Tenant, sku: str = "phone-1", price: str = "200.00", category: str = "phones") -> Product:
    return Product.objects.create(tenant=tenant, sku=sku, name=sku.title(), category=category, base_price=Decimal(price), currency="EUR")


def _offer(tenant: Tenant, **fields: Any) -> Offer:
    defaults: dict[str, Any] = {"name": "Offer", "kind": "percent_off", "status": "active", "value": Decimal("10"), "currency": "EUR"}
    return Offer.objects.create(tenant=tenant, **{**defaults, **fields})


def _customer(tenant: Tenant, external_id: str = "c-1", **fields: Any) -> Any:
    return customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": external_id, "email": f"{external_id}@ex.com",
                                                                    **fields}]).objects[0]


def _tariff(tenant: Tenant) -> Offer:
    offer = _offer(tenant, name="Tariff", kind="configurable", value=None, base_price=Decimal("5.00"))
    data = OptionGroup.objects.create(tenant=tenant, offer=offer, key="data", label="Data", min_select=1, max_select=1)
    minutes = OptionGroup.objects.create(tenant=tenant, offer=offer, key="minutes", label="Minutes", min_select=0, max_select=1)
    extras = OptionGroup.objects.create(tenant=tenant, offer=offer, key="extras", label="Extras", min_select=0, max_select=2)
    Option.objects.create(tenant=tenant, group=data, key="5gb", label="5 GB", price=Decimal("7.00"))
    Option.objects.create(tenant=tenant, group=data, key="50gb", label="50 GB", price=Decimal("20.00"))
    Option.objects.create(tenant=tenant, group=minutes, key="unlimited", label="Unlimited", price=Decimal("9.50"))
    Option.objects.create(tenant=tenant, group=extras, key="roaming", label="Roaming", price=Decimal("4.00"),
                          requires=["data.50gb"])
    Option.objects.create(tenant=tenant, group=extras, key="kids", label="Kids filter", price=Decimal("1.00"),
                          excludes=["minutes.unlimited"])
    return offer


# Pricing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "combinable", "expected"), [
    ("percent_off", "10", False, "180.00"),
    ("amount_off", "25", False, "175.00"),
    ("fixed_price", "149.99", False, "149.99"),
    ("amount_off", "500", False, "0.00"),
])
def test_offer_kinds_price_a_product(tenant: Tenant, kind: str, value: str, combinable: bool, expected: str) -> None:
    offer = _offer(tenant, kind=kind, value=Decimal(value), product=_product(tenant), combinable=combinable)
    quote = pricing.quote_offer(offer=offer, context=None)
    assert quote.list_price == Decimal("200.00") and quote.price == Decimal(expected)


def test_business_buyer_gets_negotiated_price_and_volume_tier(tenant: Tenant) -> None:
    # given: a company with a negotiated price and a 5% tier from 10 units
    product = _product(tenant)
    buyer = _customer(tenant, kind="business_buyer", company={"name": "Repair Ltd", "external_id": "r-1"})
    price_list = PriceList.objects.create(tenant=tenant, company=Company.objects.for_tenant(tenant).get(), name="2026")
    PriceListItem.objects.create(tenant=tenant, price_list=price_list, product=product, price=Decimal("150.00"))
    VolumeTier.objects.create(tenant=tenant, min_quantity=10, percent_off=Decimal("5"))
    offer = _offer(tenant, product=product, value=Decimal("10"))  # 10% off the list price, does not combine
    context = pricing.load_context(tenant=tenant, customer=buyer)

    # when / then: the buyer pays the lower of the negotiated price and the offer
    one = pricing.quote_offer(offer=offer, context=context)
    assert one.price == Decimal("150.00") and {"code": "negotiated_price", "product": product.name} in one.reasons
    ten = pricing.quote_offer(offer=offer, context=context, quantity=10)
    assert ten.price == Decimal("1425.00")  # 150 × 0.95 × 10
    offer.combinable = True
    assert pricing.quote_offer(offer=offer, context=context, quantity=10).price == Decimal("1282.50")  # and 10% on top
    consumer = pricing.load_context(tenant=tenant, customer=_customer(tenant, "c-2"))
    assert pricing.quote_offer(offer=offer, context=consumer).price == Decimal("180.00")


def test_bundle_price(tenant: Tenant) -> None:
    phone, case = _product(tenant), _product(tenant, "case-1", "20.00", "cases")
    offer = catalogue.create_offer(tenant=tenant, actor=None, data={
        "name": "Phone + case", "kind": "bundle", "status": "active", "value": Decimal("199.00"), "currency": "EUR",
        "items": [{"product_id": phone.pk}, {"product_id": case.pk, "quantity": 2}]})
    quote = pricing.quote_offer(offer=offer, context=None)
    assert quote.list_price == Decimal("240.00") and quote.price == Decimal("199.00")


def test_configurable_offer_prices_live_and_enforces_constraints(tenant: Tenant) -> None:
    offer = _tariff(tenant)
    quote = pricing.quote_offer(offer=offer, context=None, configuration={"data": "50gb", "extras": ["roaming"]})
    assert quote.price == Decimal("29.00") and len(quote.lines) == 3
    for configuration, where in (
        ({}, "data"),  # a required group left empty
        ({"data": ["5gb", "50gb"]}, "data"),  # too many
        ({"data": "5gb", "extras": ["roaming"]}, "extras.roaming"),  # roaming needs 50 GB
        ({"data": "5gb", "minutes": "unlimited", "extras": ["kids"]}, "extras.kids"),  # excluded pair
        ({"data": "1tb"}, "data"),
        ({"data": "5gb", "colour": "red"}, "colour"),
    ):
        with pytest.raises(pricing.ConfigurationError) as caught:
            pricing.quote_offer(offer=offer, context=None, configuration=configuration)
        assert where in caught.value.errors, (configuration, caught.value.errors)


# Eligibility ----------------------------------------------------------------------------------


def test_eligibility_rules_and_their_reasons(tenant: Tenant) -> None:
    product = _product(tenant)
    buyer = _customer(tenant, kind="business_buyer", company={"name": "Big", "external_id": "b", "size": "250-999"})
    segment = Segment.objects.create(tenant=tenant, name="VIP", definition={"match": "all", "conditions": []}, status="ready")
    SegmentMembership.objects.create(tenant=tenant, segment=segment, customer=buyer)
    CustomerScore.objects.create(tenant=tenant, customer=buyer, churn_probability=0.8, expected_value=500)
    offer = _offer(tenant, product=product, eligibility={
        "segments": [segment.pk], "kinds": ["business_buyer"], "company_sizes": ["250-999"], "min_churn_probability": 0.5,
        "min_expected_value": 100})
    ok, reasons = pricing.check_eligibility(offer=offer, context=pricing.load_context(tenant=tenant, customer=buyer))
    assert ok and {r["code"] for r in reasons} == {"in_segment", "kind", "company_size", "min_churn_probability",
                                                    "min_expected_value"}
    consumer = _customer(tenant, "c-2")
    ok, reasons = pricing.check_eligibility(offer=offer, context=pricing.load_context(tenant=tenant, customer=consumer))
    assert not ok and reasons == [{"code": "kind", "kind": "consumer"}]


def test_consent_window_and_caps(tenant: Tenant) -> None:
    person = _customer(tenant)
    context = pricing.load_context(tenant=tenant, customer=person)
    product = _product(tenant)
    now = timezone.now()
    assert pricing.check_eligibility(offer=_offer(tenant, product=product, ends_at=now - timedelta(days=1)), context=context)[1] \
        == [{"code": "outside_window"}]
    assert pricing.check_eligibility(offer=_offer(tenant, product=product, status="paused"), context=context)[1] == [{"code": "not_active"}]
    needs_consent = _offer(tenant, product=product, eligibility={"consent": ["marketing", "email"]})
    assert not pricing.check_eligibility(offer=needs_consent, context=context)[0]
    customer_services.record_consent(tenant=tenant, customer=person, channel="all", purpose="marketing", status="granted", source="api")
    assert pricing.check_eligibility(offer=needs_consent, context=pricing.load_context(tenant=tenant, customer=person))[0]
    capped = _offer(tenant, product=product, per_customer_cap=1)
    claims.claim_offer(tenant=tenant, customer=person, offer_id=capped.pk)
    assert pricing.check_eligibility(offer=capped, context=pricing.load_context(tenant=tenant, customer=person))[1][0]["code"] \
        == "already_claimed"


# What a customer gets ------------------------------------------------------------------------


def test_offers_for_customer_ranks_by_recommendation_and_respects_opt_out(tenant: Tenant, other_tenant: Tenant) -> None:
    person = _customer(tenant)
    a = _offer(tenant, name="A", product=_product(tenant, "a"), priority=5)
    b = _offer(tenant, name="B", product=_product(tenant, "b"), priority=1)
    _offer(tenant, name="Hidden", product=_product(tenant, "h"), status="draft")
    Recommendation.objects.create(tenant=tenant, customer=person, offer=b, score=0.9, rank=1, reason={"code": "bought", "product": "X"},
                                  model="blend")

    served = pricing.offers_for_customer(tenant=tenant, customer=person)
    assert [s.offer.name for s in served] == ["B", "A"]
    assert served[0].reasons[0] == {"code": "bought", "product": "X"} and served[0].quote.price == Decimal("180.00")

    customer_services.record_consent(tenant=tenant, customer=person, channel="all", purpose="personalization",
                                     status="withdrawn", source="portal")
    served = pricing.offers_for_customer(tenant=tenant, customer=person)
    assert [s.offer.name for s in served] == ["A", "B"]  # the tenant's priority, not the person's scores
    assert all(s.reasons[0] == {"code": "not_personalized"} for s in served)
    assert a.pk in {s.offer.pk for s in served}


def test_recent_behaviour_reranks_and_lists_stay_diverse(tenant: Tenant) -> None:
    person = _customer(tenant)
    for i in range(4):
        _offer(tenant, name=f"Phone {i}", product=_product(tenant, f"p{i}", category="phones"), priority=10 - i)
    _offer(tenant, name="Case", product=_product(tenant, "case", category="cases"), priority=0)
    served = pricing.offers_for_customer(tenant=tenant, customer=person, limit=3)
    assert [s.offer.name for s in served] == ["Phone 0", "Phone 1", "Case"]  # at most two per category
    served = pricing.offers_for_customer(tenant=tenant, customer=person, limit=3, recent_products=["p3"])
    assert served[0].offer.name == "Phone 3"


def test_serving_reads_a_fixed_number_of_queries(tenant: Tenant) -> None:
    person = _customer(tenant)
    for i in range(3):
        _offer(tenant, name=f"O{i}", product=_product(tenant, f"s{i}", category=f"c{i}"))
    _tariff(tenant)
    pricing.offers_for_customer(tenant=tenant, customer=_customer(tenant, "warm-up"))  # prepares the statement once per connection
    pricing.offers_changed(tenant=tenant)
    with CaptureQueriesContext(connection) as few:
        pricing.offers_for_customer(tenant=tenant, customer=person)
    for i in range(3, 12):
        _offer(tenant, name=f"O{i}", product=_product(tenant, f"s{i}", category=f"c{i}"))
    pricing.offers_changed(tenant=tenant)  # what the offer services do after a change
    with CaptureQueriesContext(connection) as many:
        assert len(pricing.offers_for_customer(tenant=tenant, customer=person, limit=50)) == 13
    assert len(many) == len(few) <= 12
    with CaptureQueriesContext(connection) as cached:  # the catalogue is then held for a few seconds
        assert len(pricing.offers_for_customer(tenant=tenant, customer=person, limit=50)) == 13
    assert len(cached) <= len(many) - 3


# Claims, vouchers, requests -------------------------------------------------------------------


def test_claim_is_idempotent_by_key_and_counts_towards_caps(tenant: Tenant) -> None:
    person = _customer(tenant)
    offer = _offer(tenant, product=_product(tenant), total_cap=5, budget=Decimal("1000"))
    first = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, idempotency_key="k-1")
    again = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, idempotency_key="k-1")
    assert first.created and not again.created and again.request.pk == first.request.pk
    offer.refresh_from_db()
    assert offer.claims_count == 1 and offer.spent == Decimal("20.00")
    other = _offer(tenant, product=_product(tenant, "x"))
    with pytest.raises(ConflictError):
        claims.claim_offer(tenant=tenant, customer=person, offer_id=other.pk, idempotency_key="k-1")


def test_claim_refuses_what_the_customer_cannot_get(tenant: Tenant, other_tenant: Tenant) -> None:
    person = _customer(tenant)
    sold_out = _offer(tenant, product=_product(tenant), total_cap=1)
    claims.claim_offer(tenant=tenant, customer=person, offer_id=sold_out.pk)
    with pytest.raises(ConflictError):
        claims.claim_offer(tenant=tenant, customer=_customer(tenant, "c-2"), offer_id=sold_out.pk)
    with pytest.raises(DomainError):  # another tenant's offer is unknown here
        claims.claim_offer(tenant=tenant, customer=person, offer_id=other_tenant.seeded["offer"].pk)
    assert OfferRequest.objects.for_tenant(tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_redemptions_of_a_single_use_voucher_at_once_exactly_one_wins(tenant: Tenant) -> None:
    offer = _offer(tenant, product=_product(tenant), eligibility={"requires_voucher": True})
    Voucher.objects.create(tenant=tenant, offer=offer, code="ONCE-ONLY")
    people = [_customer(tenant, f"v-{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def redeem(person: Any) -> None:
        try:
            barrier.wait()
            claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, voucher_code="once-only")
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost", "won"]
    assert Voucher.objects.for_tenant(tenant).get().redemptions == 1
    assert OfferRequest.objects.for_tenant(tenant).count() == 1


def test_expired_or_wrong_vouchers_are_refused(tenant: Tenant) -> None:
    person = _customer(tenant)
    offer = _offer(tenant, product=_product(tenant))
    Voucher.objects.create(tenant=tenant, offer=offer, code="OLD", expires_at=timezone.now() - timedelta(days=1))
    for code in ("OLD", "NOPE"):
        with pytest.raises(DomainError):
            claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, voucher_code=code)
    made = claims.generate_vouchers(tenant=tenant, actor=None, offer=offer, count=50, prefix="SPRING-", max_redemptions=3)
    assert len({v.code for v in made}) == 50 and all(v.code.startswith("SPRING-") for v in made)


def test_request_workflow_keeps_every_step_and_tells_the_customer(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    person = _customer(tenant)
    offer = _offer(tenant, product=_product(tenant), total_cap=1)
    with django_capture_on_commit_callbacks(execute=True):
        request = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk).request
        claims.transition_request(tenant=tenant, actor="marketer@acme", request=request, to_status="in_review", comment="checking")
        claims.transition_request(tenant=tenant, actor="marketer@acme", request=request, to_status="approved")
        claims.transition_request(tenant=tenant, actor="marketer@acme", request=request, to_status="fulfilled")
    request.refresh_from_db()
    assert request.status == "fulfilled" and request.decided_at and request.fulfilled_at
    steps = list(request.events.values_list("from_status", "to_status", "actor_label"))
    assert steps[0] == ("", "new", "system") and steps[-1] == ("approved", "fulfilled", "marketer@acme")
    assert len(mail.outbox) == 4 and mail.outbox[-1].to == [person.email]
    with pytest.raises(ConflictError):
        claims.transition_request(tenant=tenant, actor="x", request=request, to_status="new")


def test_declining_gives_back_the_cap_and_the_voucher(tenant: Tenant) -> None:
    person = _customer(tenant)
    offer = _offer(tenant, product=_product(tenant), total_cap=1)
    Voucher.objects.create(tenant=tenant, offer=offer, code="ONE")
    request = claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, voucher_code="ONE").request
    claims.transition_request(tenant=tenant, actor="x", request=request, to_status="declined")
    offer.refresh_from_db()
    assert offer.claims_count == 0 and offer.spent == 0 and Voucher.objects.for_tenant(tenant).get().redemptions == 0
    assert claims.claim_offer(tenant=tenant, customer=_customer(tenant, "c-2"), offer_id=offer.pk, voucher_code="ONE").created


# API ------------------------------------------------------------------------------------------


def test_api_catalogue_offer_quote_claim_and_serve(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    # given: products upserted by SKU
    upsert = api_client.post("/api/v1/products/", {"products": [
        {"sku": "tab-1", "name": "Tablet", "category": "tablets", "base_price": "300.00", "currency": "eur"},
        {"sku": "sim-9", "name": "SIM", "base_price": "10.00", "currency": "EUR"}]}, format="json")
    assert upsert.status_code == 200 and upsert.json() == {"created": 2, "updated": 0}
    tablet = Product.objects.for_tenant(tenant).get(sku="tab-1")
    assert tablet.currency == "EUR"

    # when: an offer and a configurable tariff are created, priced and claimed
    offer = api_client.post("/api/v1/offers/", {"name": "Tablet deal", "kind": "amount_off", "status": "active",
                                                "product_id": tablet.pk, "value": "50", "currency": "EUR"}, format="json")
    assert offer.status_code == 201, offer.content
    tariff = api_client.post("/api/v1/offers/", {
        "name": "Tariff", "kind": "configurable", "status": "active", "base_price": "5", "currency": "EUR",
        "option_groups": [{"key": "data", "label": "Data", "options": [{"key": "5gb", "label": "5 GB", "price": "7"},
                                                                        {"key": "50gb", "label": "50 GB", "price": "20"}]}]},
        format="json")
    assert tariff.status_code == 201, tariff.content
    tariff_id = tariff.json()["id"]
    quote = api_client.post(f"/api/v1/offers/{tariff_id}/quote/", {"configuration": {"data": "50gb"}}, format="json")
    assert quote.json()["price"] == "25.00"
    bad = api_client.post(f"/api/v1/offers/{tariff_id}/quote/", {"configuration": {"data": "1tb"}}, format="json")
    assert bad.status_code == 400 and "data" in bad.json()["configuration"]
    person = _customer(tenant, "api-1")
    served = api_client.get(f"/api/v1/customers/{person.pk}/offers/?limit=5").json()
    assert {s["name"] for s in served} >= {"Tablet deal", "Tariff"}
    deal = next(s for s in served if s["name"] == "Tablet deal")
    assert deal["price"] == "250.00" and deal["reasons"]
    claim = api_client.post(f"/api/v1/offers/{offer.json()['id']}/claim/", {"customer_id": person.pk}, format="json",
                            HTTP_IDEMPOTENCY_KEY="abc")
    again = api_client.post(f"/api/v1/offers/{offer.json()['id']}/claim/", {"customer_id": person.pk}, format="json",
                            HTTP_IDEMPOTENCY_KEY="abc")
    assert claim.status_code == 201 and again.status_code == 200 and claim.json()["id"] == again.json()["id"]
    moved = api_client.post(f"/api/v1/offer-requests/{claim.json()['id']}/transition/", {"status": "approved"}, format="json")
    assert moved.json()["status"] == "approved" and len(moved.json()["events"]) == 2

    # then: nobody can claim for another tenant's customer, or with another tenant's voucher
    their_customer = other_tenant.seeded["customer"]
    assert api_client.post(f"/api/v1/offers/{offer.json()['id']}/claim/", {"customer_id": their_customer.pk},
                           format="json").status_code == 400
    their_voucher = other_tenant.seeded["voucher"]
    assert api_client.post(f"/api/v1/offers/{offer.json()['id']}/claim/", {"customer_id": person.pk, "voucher_code": their_voucher.code},
                           format="json").status_code == 400
    assert api_client.get(f"/api/v1/customers/{their_customer.pk}/offers/").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "kind": "percent_off", "currency": "EUR", "value": "10"}, "product_id"),
    ({"name": "x", "kind": "percent_off", "currency": "EUR", "value": "150", "product_id": 0}, "product_id"),
    ({"name": "x", "kind": "bundle", "currency": "EUR"}, "items"),
    ({"name": "x", "kind": "configurable", "currency": "EUR"}, "option_groups"),
    ({"name": "x", "kind": "percent_off", "currency": "EURO"}, "currency"),
    ({"name": "x", "kind": "fixed_price", "currency": "EUR", "tenant": 2}, "tenant"),
    ({"name": "x", "kind": "configurable", "currency": "EUR", "eligibility": {"segments": [999999]},
      "option_groups": [{"key": "a", "label": "A", "options": [{"key": "b", "label": "B", "price": "1"}]}]}, "eligibility"),
])
def test_api_rejects_bad_offers_with_field_errors(api_client: APIClient, tenant: Tenant, body: dict[str, Any], field: str) -> None:
    response = api_client.post("/api/v1/offers/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Offer.objects.for_tenant(tenant).exists()


def test_one_statement_context_equals_the_orm_reading(tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a customer with a membership, scores, consents (latest wins), a claim and a recommendation
    person = _customer(tenant)
    segment = Segment.objects.create(tenant=tenant, name="S", definition={"match": "all", "conditions": []})
    SegmentMembership.objects.create(tenant=tenant, segment=segment, customer=person)
    CustomerScore.objects.create(tenant=tenant, customer=person, churn_probability=0.4, expected_value=120.5)
    for status in ("granted", "withdrawn"):
        customer_services.record_consent(tenant=tenant, customer=person, channel="all", purpose="personalization", status=status,
                                         source="api")
    offer = _offer(tenant, product=_product(tenant))
    claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk)
    Recommendation.objects.create(tenant=tenant, customer=person, offer=offer, score=0.7, rank=1, reason={"code": "bought"}, model="m")

    # when: read in one statement, and the ORM way
    fast = pricing.load_context(tenant=tenant, customer=person)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    slow = pricing.load_context(tenant=tenant, customer=person)

    # then
    assert fast.segment_ids == slow.segment_ids == {segment.pk}
    assert (fast.score.churn_probability, fast.score.expected_value) == (slow.score.churn_probability, slow.score.expected_value)
    assert {k: (v.status, v.id) for k, v in fast.consents.items()} == {k: (v.status, v.id) for k, v in slow.consents.items()}
    assert fast.claims == slow.claims == {offer.pk: 1}
    assert fast.recommended == slow.recommended == {offer.pk: (0.7, {"code": "bought"})}
    assert fast.personalized is slow.personalized is False
