"""The rest of CRUD for integrators: archiving offers, changing and deleting voucher codes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from offers.models import Offer, OfferRequest, Voucher
from offers.services import claims
from tenants.models import AuditLog, Tenant
from tests.factories import make_api_key
from tests.offers.test_offers import _customer, _offer, _product


def test_deleting_an_offer_archives_it_and_keeps_its_claims(api_client: APIClient, tenant: Tenant, other_tenant: Tenant,
                                                            django_capture_on_commit_callbacks: Any) -> None:
    # given: an offer someone claimed
    person = _customer(tenant)
    offer = _offer(tenant, name="Deal", product=_product(tenant), value=Decimal("10"))
    claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk)
    assert [o["name"] for o in api_client.get(f"/api/v1/customers/{person.pk}/offers/").json()] == ["Deal"]

    # when (the copy of active offers each process holds is dropped after commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(f"/api/v1/offers/{offer.pk}/")

    # then: archived, off the list, not claimable; the request stays; audited
    assert response.status_code == 204
    assert Offer.objects.for_tenant(tenant).get(pk=offer.pk).status == Offer.Status.ARCHIVED
    assert api_client.get(f"/api/v1/customers/{person.pk}/offers/").json() == []
    other = _customer(tenant, "c-2")
    claim = api_client.post(f"/api/v1/offers/{offer.pk}/claim/", {"customer_id": other.pk}, format="json")
    assert claim.status_code == 409 and "offer" in claim.json()
    assert OfferRequest.objects.for_tenant(tenant).filter(offer=offer).count() == 1
    assert AuditLog.objects.for_tenant(tenant).filter(action="offer.archived").count() == 1
    assert api_client.delete(f"/api/v1/offers/{offer.pk}/").status_code == 204  # again: nothing more happens
    assert AuditLog.objects.for_tenant(tenant).filter(action="offer.archived").count() == 1


def test_another_tenants_offer_and_voucher_are_404_and_unchanged(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    their_offer, their_voucher = other_tenant.seeded["offer"], other_tenant.seeded["voucher"]
    status, uses = their_offer.status, their_voucher.max_redemptions
    assert api_client.delete(f"/api/v1/offers/{their_offer.pk}/").status_code == 404
    assert api_client.patch(f"/api/v1/vouchers/{their_voucher.pk}/", {"max_redemptions": 9}, format="json").status_code == 404
    assert api_client.delete(f"/api/v1/vouchers/{their_voucher.pk}/").status_code == 404
    assert Offer.objects.for_tenant(other_tenant).get(pk=their_offer.pk).status == status
    assert Voucher.objects.for_tenant(other_tenant).get(pk=their_voucher.pk).max_redemptions == uses


def test_a_voucher_can_be_given_more_uses_or_expired(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a single-use code, used once
    person = _customer(tenant)
    offer = _offer(tenant, product=_product(tenant), eligibility={"requires_voucher": True})
    voucher = claims.create_voucher(tenant=tenant, actor=None, offer=offer, code="SPRING-1")
    claims.claim_offer(tenant=tenant, customer=person, offer_id=offer.pk, voucher_code="SPRING-1")

    # when / then: more uses are fine, fewer than used are refused, unknown fields are refused
    more = api_client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"max_redemptions": 3}, format="json")
    assert more.status_code == 200 and more.json()["max_redemptions"] == 3
    fewer = api_client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"max_redemptions": 0}, format="json")
    assert fewer.status_code == 400 and "max_redemptions" in fewer.json()
    assert api_client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"code": "X"}, format="json").status_code == 400
    assert Voucher.objects.for_tenant(tenant).get(pk=voucher.pk).code == "SPRING-1"

    # when: expired now, the code no longer works
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    assert api_client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"expires_at": past}, format="json").status_code == 200
    other = _customer(tenant, "c-2")
    refused = api_client.post(f"/api/v1/offers/{offer.pk}/claim/", {"customer_id": other.pk, "voucher_code": "SPRING-1"},
                              format="json")
    assert refused.status_code == 400 and "voucher_code" in refused.json()


def test_lowering_uses_below_those_made_is_a_conflict(api_client: APIClient, tenant: Tenant) -> None:
    offer = _offer(tenant, product=_product(tenant))
    voucher = claims.create_voucher(tenant=tenant, actor=None, offer=offer, code="MULTI-1", max_redemptions=5)
    for i in range(2):
        claims.claim_offer(tenant=tenant, customer=_customer(tenant, f"c-{i}"), offer_id=offer.pk, voucher_code="MULTI-1")
    response = api_client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"max_redemptions": 1}, format="json")
    assert response.status_code == 409 and "max_redemptions" in response.json()
    assert Voucher.objects.for_tenant(tenant).get(pk=voucher.pk).max_redemptions == 5


def test_only_an_unused_voucher_can_be_deleted(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    offer = _offer(tenant, product=_product(tenant))
    unused = claims.create_voucher(tenant=tenant, actor=None, offer=offer, code="FRESH-1")
    used = claims.create_voucher(tenant=tenant, actor=None, offer=offer, code="USED-1")
    claims.claim_offer(tenant=tenant, customer=_customer(tenant), offer_id=offer.pk, voucher_code="USED-1")

    assert api_client.delete(f"/api/v1/vouchers/{unused.pk}/").status_code == 204
    assert not Voucher.objects.for_tenant(tenant).filter(pk=unused.pk).exists()
    kept = api_client.delete(f"/api/v1/vouchers/{used.pk}/")
    assert kept.status_code == 409 and "voucher" in kept.json()
    assert Voucher.objects.for_tenant(tenant).filter(pk=used.pk).exists()


def test_a_read_only_key_changes_nothing(tenant: Tenant, other_tenant: Tenant) -> None:
    offer = _offer(tenant, product=_product(tenant))
    voucher = claims.create_voucher(tenant=tenant, actor=None, offer=offer, code="READ-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, scopes=['offers:read'])[1]}")
    assert client.delete(f"/api/v1/offers/{offer.pk}/").status_code == 403
    assert client.patch(f"/api/v1/vouchers/{voucher.pk}/", {"max_redemptions": 4}, format="json").status_code == 403
    assert client.delete(f"/api/v1/vouchers/{voucher.pk}/").status_code == 403
    assert Offer.objects.for_tenant(tenant).get(pk=offer.pk).status == Offer.Status.ACTIVE
    assert Voucher.objects.for_tenant(tenant).get(pk=voucher.pk).max_redemptions == 1
