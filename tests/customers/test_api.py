from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import Consent, Customer, ErasureTombstone, Event, Order
from tenants.models import AuditLog, Tenant
from tests.factories import make_api_key

CUSTOMERS = "/api/v1/customers/"
EVENTS = "/api/v1/events/"
ORDERS = "/api/v1/orders/"


def _post(client: APIClient, url: str, data: Any) -> Any:
    return client.post(url, data, format="json")


def test_create_customer_normalises_and_returns_it(api_client: APIClient, tenant: Tenant) -> None:
    response = _post(api_client, CUSTOMERS, {
        "external_id": "crm-42", "email": "  Ivan.Petrov@Example.COM ", "phone": "+7 (912) 345-67-89",
        "first_name": "Иван", "kind": "business_buyer", "company": {"name": "Ремонт Плюс", "size": "10-49"},
        "company_role": "repairer", "tags": ["VIP", "vip", "b2b"], "attributes": {"plan": "postpaid"},
    })

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["email"], body["phone"], body["tags"]) == ("ivan.petrov@example.com", "+79123456789", ["b2b", "vip"])
    assert body["company"]["name"] == "Ремонт Плюс"
    assert Customer.objects.for_tenant(tenant).get(external_id="crm-42").search_text.startswith("иван")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": 42}, "email"),
        ({"kind": "alien"}, "kind"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"favourite_colour": "red"}, "favourite_colour"),
        ({"tags": "a" * 60}, "tags"),
        ({"attributes": {"plan": "platinum"}}, "attributes.plan"),  # 'plan' is a defined choice attribute
        ({"attributes": ["x"]}, "attributes"),
        ({"company": {"size": "huge"}}, "company.name"),
        ({"phone": "call me"}, "phone"),
    ],
)
def test_create_customer_bad_input_gives_field_errors(payload: dict, field: str, api_client: APIClient, tenant: Tenant) -> None:
    from customers.models import AttributeDefinition

    AttributeDefinition.objects.create(tenant=tenant, key="plan", label="Plan", type="choice", choices=["prepaid", "postpaid"])
    before = Customer.objects.for_tenant(tenant).count()

    response = _post(api_client, CUSTOMERS, {"external_id": "x-1", **payload})

    assert response.status_code == 400
    assert field in response.json()
    assert Customer.objects.for_tenant(tenant).count() == before


def test_create_duplicate_external_id_is_a_conflict(api_client: APIClient, tenant: Tenant) -> None:
    _post(api_client, CUSTOMERS, {"external_id": "dup"})

    response = _post(api_client, CUSTOMERS, {"external_id": "dup", "email": "x@example.com"})

    assert response.status_code == 409
    assert "external_id" in response.json()


def test_email_is_unique_per_tenant_but_not_across(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    # other_tenant already has anna@example.com (look-alike data)
    assert _post(api_client, CUSTOMERS, {"external_id": "a", "email": "anna@example.com"}).status_code == 201
    response = _post(api_client, CUSTOMERS, {"external_id": "b", "email": "ANNA@example.com"})

    assert response.status_code == 400 and "email" in response.json()


def test_patch_updates_only_given_fields_and_merges_attributes(api_client: APIClient, tenant: Tenant) -> None:
    created = _post(api_client, CUSTOMERS, {"external_id": "p1", "first_name": "Olga", "attributes": {"a": 1, "b": 2}}).json()

    response = api_client.patch(f"{CUSTOMERS}{created['id']}/", {"last_name": "Smirnova", "attributes": {"b": 3}}, format="json")

    assert response.status_code == 200
    assert (response.json()["first_name"], response.json()["last_name"]) == ("Olga", "Smirnova")
    assert response.json()["attributes"] == {"a": 1, "b": 3}
    bad = api_client.patch(f"{CUSTOMERS}{created['id']}/", {"external_id": "other"}, format="json")
    assert bad.status_code == 400 and "external_id" in bad.json()


def test_list_filters_and_cursor_pagination(api_client: APIClient, tenant: Tenant, other_tenant: Tenant) -> None:
    rows = [{"external_id": f"f{i}", "email": f"p{i}@example.com", "tags": ["vip"] if i % 2 else [],
             "kind": "business_buyer" if i % 3 == 0 else "consumer", "attributes": {"plan": "postpaid" if i < 4 else "prepaid"}}
            for i in range(10)]
    assert _post(api_client, f"{CUSTOMERS}bulk/", {"customers": rows}).json()["created"] == 10

    def ids(params: dict) -> set[str]:
        return {c["external_id"] for c in api_client.get(CUSTOMERS, params).json()["results"]}

    assert ids({"email": "P3@example.com"}) == {"f3"}
    assert ids({"tag": "vip"}) == {"f1", "f3", "f5", "f7", "f9"}
    assert ids({"kind": "business_buyer"}) == {"f0", "f3", "f6", "f9"}
    assert ids({"attribute": "plan:postpaid"}) == {"f0", "f1", "f2", "f3"}
    assert ids({"external_id": "c-1"}) == set()  # other tenant's look-alike
    first = api_client.get(CUSTOMERS, {"limit": 4}).json()
    second = api_client.get(first["next"]).json()
    assert len(first["results"]) == 4 and not {c["id"] for c in first["results"]} & {c["id"] for c in second["results"]}
    assert "count" not in first  # cursor pages never COUNT
    assert api_client.get(CUSTOMERS, {"attribute": "nocolon"}).status_code == 400


def test_bulk_upsert_reports_rows_and_stores_the_good_ones(api_client: APIClient, tenant: Tenant) -> None:
    _post(api_client, CUSTOMERS, {"external_id": "u1", "first_name": "Old"})

    response = _post(api_client, f"{CUSTOMERS}bulk/", {"customers": [
        {"external_id": "u1", "first_name": "New"},
        {"external_id": "u2", "email": "broken"},
        {"external_id": "u3"},
        {"external_id": "u3", "first_name": "again"},
        {"email": "no-id@example.com"},
        {"external_id": "u1", "first_name": "New"},
    ]})

    body = response.json()
    assert response.status_code == 200
    assert (body["created"], body["updated"]) == (1, 1)
    assert [r["index"] for r in body["rejected"]] == [1, 3, 4, 5]
    assert "email" in body["rejected"][0]["errors"] and "external_id" in body["rejected"][1]["errors"]
    assert Customer.objects.for_tenant(tenant).get(external_id="u1").first_name == "New"
    assert not Customer.objects.for_tenant(tenant).filter(external_id="u2").exists()


@pytest.mark.parametrize("payload", [{"customers": []}, {"customers": "x"}, {"customers": [{}] * 1001}, [{"external_id": "x"}]])
def test_bulk_rejects_bad_envelopes(payload: Any, api_client: APIClient, tenant: Tenant) -> None:
    response = _post(api_client, f"{CUSTOMERS}bulk/", payload)

    assert response.status_code == 400
    assert not Customer.objects.for_tenant(tenant).exists()


def test_malformed_json_is_a_400(api_client: APIClient, tenant: Tenant) -> None:
    for url in (CUSTOMERS, EVENTS, ORDERS, f"{CUSTOMERS}bulk/"):
        response = api_client.post(url, '{"oops": ', content_type="application/json")
        assert response.status_code == 400, url
        assert "detail" in response.json()


def test_events_batch_counts_accepted_duplicates_and_rejected(api_client: APIClient, tenant: Tenant) -> None:
    now = timezone.now()
    events = [
        {"event_id": "ev-1", "type": "page_view", "customer_external_id": "new-person", "properties": {"path": "/"}},
        {"event_id": "ev-1", "type": "page_view", "customer_external_id": "new-person"},
        {"event_id": "ev-2", "type": "Bad Type!", "customer_external_id": "x"},
        {"event_id": "ev-3", "type": "signup", "customer_external_id": "x", "occurred_at": (now + timedelta(days=3)).isoformat()},
        {"event_id": "ev-4", "type": "signup", "customer_external_id": "x", "occurred_at": "1900-01-01T00:00:00Z"},
        {"event_id": "ev-5", "type": "signup"},
        {"event_id": "ev-6", "type": "signup", "customer_id": 999999999},
        {"event_id": "ev-7", "type": "tariff_configured", "email": "nobody@example.com"},
        {"event_id": "ev-8", "type": "tariff_configured", "customer_external_id": "new-person", "extra": 1},
        "not an object",
    ]

    first = _post(api_client, EVENTS, {"events": events}).json()
    second = _post(api_client, EVENTS, {"events": events[:1]}).json()

    assert (first["accepted"], first["duplicates"]) == (1, 1)
    reasons = {r["index"]: r["errors"] for r in first["rejected"]}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8, 9}
    assert "type" in reasons[2] and "occurred_at" in reasons[3] and "occurred_at" in reasons[4]
    assert "customer_id" in reasons[6] and "email" in reasons[7] and "extra" in reasons[8]
    assert (second["accepted"], second["duplicates"]) == (0, 1)
    person = Customer.objects.for_tenant(tenant).get(external_id="new-person")
    assert Event.objects.for_tenant(tenant).filter(customer=person).count() == 1
    assert person.last_seen_at is not None


def test_single_event_and_event_without_id_are_idempotent(api_client: APIClient, tenant: Tenant) -> None:
    event = {"type": "product_view", "customer_external_id": "c9", "occurred_at": "2026-03-01T10:00:00Z", "properties": {"sku": "A"}}

    assert _post(api_client, EVENTS, event).json()["accepted"] == 1
    assert _post(api_client, EVENTS, event).json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    bad = _post(api_client, EVENTS, {**event, "type": ""})
    assert bad.status_code == 400 and "type" in bad.json()
    assert Event.objects.for_tenant(tenant).count() == 1


def test_events_that_the_database_could_not_store_are_rejected_with_a_reason(api_client: APIClient, tenant: Tenant) -> None:
    events = [
        {"event_id": "n1\u0000", "type": "page_view", "customer_external_id": "x"},
        {"event_id": "n2", "type": "page_view", "customer_external_id": "x", "properties": {"k": "a\u0000b"}},
        {"event_id": "n3", "type": "page_view", "customer_id": 10**30},
        {"event_id": "n4", "type": "page_view", "customer_external_id": "x\u0000"},
        {"event_id": "n5", "type": "page_view", "customer_external_id": "x", "properties": {"order": 123456789012345678901234567890}},
    ]

    body = _post(api_client, EVENTS, {"events": events}).json()

    assert body["accepted"] == 1
    assert {r["index"]: sorted(r["errors"]) for r in body["rejected"]} == {
        0: ["event_id"], 1: ["properties"], 2: ["customer_id"], 3: ["customer_external_id"]}
    # Integers beyond 64 bits are kept exactly (the fast JSON parser would read them as floats).
    assert Event.objects.for_tenant(tenant).get(event_id="n5").properties == {"order": 123456789012345678901234567890}


def test_event_bodies_in_another_charset_or_with_nan_are_handled_like_json(api_client: APIClient, tenant: Tenant) -> None:
    latin = '{"event_id": "c1", "type": "page_view", "customer_external_id": "café"}'.encode("latin-1")

    ok = api_client.post(EVENTS, latin, content_type="application/json; charset=latin-1")
    nan = api_client.post(EVENTS, '{"type": "page_view", "customer_external_id": "a", "properties": {"x": NaN}}',
                          content_type="application/json")

    assert ok.status_code == 200, ok.json()
    assert Customer.objects.for_tenant(tenant).filter(external_id="café").exists()
    assert nan.status_code == 400 and "detail" in nan.json()


@pytest.mark.parametrize("payload", [{"events": [{"type": "x", "customer_external_id": "a"}] * 1001}, {"events": []}, {"events": {}}, [1, 2]])
def test_event_envelopes_are_checked(payload: Any, api_client: APIClient, tenant: Tenant) -> None:
    assert _post(api_client, EVENTS, payload).status_code == 400
    assert not Event.objects.for_tenant(tenant).exists()


def test_orders_are_idempotent_and_status_changes_apply(api_client: APIClient, tenant: Tenant) -> None:
    order = {"external_id": "inv-1", "customer_external_id": "buyer-1", "ordered_at": "2026-02-01T09:00:00Z",
             "lines": [{"sku": "sim", "name": "SIM", "quantity": 2, "unit_price": "5.50"}, {"sku": "case", "unit_price": "10"}]}

    created = _post(api_client, ORDERS, order)
    again = _post(api_client, ORDERS, order)
    refunded = _post(api_client, ORDERS, {**order, "status": "refunded"})

    assert created.status_code == 201 and created.json()["total"] == "21.00" and len(created.json()["lines"]) == 2
    assert created.json()["currency"] == tenant.currency
    assert again.status_code == 200
    assert refunded.json()["status"] == "refunded"
    assert Order.objects.for_tenant(tenant).count() == 1
    listing = api_client.get(ORDERS, {"status": "refunded"}).json()["results"]
    assert [o["external_id"] for o in listing] == ["inv-1"]


@pytest.mark.parametrize(
    ("order", "field"),
    [
        ({"ordered_at": "2026-02-01T09:00:00Z", "total": "10"}, "external_id"),
        ({"external_id": "o", "total": "10", "customer_external_id": "b"}, "ordered_at"),
        ({"external_id": "o", "ordered_at": "yesterday", "total": "1", "customer_external_id": "b"}, "ordered_at"),
        ({"external_id": "o", "ordered_at": "2026-02-01T09:00:00Z", "total": "ten", "customer_external_id": "b"}, "total"),
        ({"external_id": "o", "ordered_at": "2026-02-01T09:00:00Z", "total": "1", "customer_external_id": "b", "currency": "euros"}, "currency"),
        ({"external_id": "o", "ordered_at": "2026-02-01T09:00:00Z", "customer_external_id": "b", "lines": [{"sku": "x"}]}, "lines.0.unit_price"),
    ],
)
def test_bad_orders_get_field_errors(order: dict, field: str, api_client: APIClient, tenant: Tenant) -> None:
    response = _post(api_client, ORDERS, order)

    assert response.status_code == 400
    assert field in response.json()
    assert not Order.objects.for_tenant(tenant).exists()


def test_consent_ledger_is_appended_and_current_state_derived(api_client: APIClient, tenant: Tenant) -> None:
    customer = _post(api_client, CUSTOMERS, {"external_id": "k1"}).json()
    url = f"{CUSTOMERS}{customer['id']}/consents/"

    _post(api_client, url, {"channel": "email", "purpose": "marketing", "status": "granted", "text_version": "v3", "ip": "203.0.113.9"})
    _post(api_client, url, {"channel": "email", "purpose": "marketing", "status": "withdrawn"})
    bad = _post(api_client, url, {"channel": "pigeon", "purpose": "marketing", "status": "granted"})
    body = api_client.get(url).json()

    assert bad.status_code == 400 and "channel" in bad.json()
    assert [c["status"] for c in body["ledger"]] == ["withdrawn", "granted"]
    assert body["current"] == [{**body["current"][0], "channel": "email", "purpose": "marketing", "status": "withdrawn"}]
    assert body["ledger"][1]["ip"] == "203.0.113.9" and body["ledger"][1]["source"] == "api"
    assert Consent.objects.for_tenant(tenant).count() == 2


def test_export_contains_everything_about_the_person(api_client: APIClient, tenant: Tenant) -> None:
    customer = _post(api_client, CUSTOMERS, {"external_id": "g1", "email": "g1@example.com"}).json()
    _post(api_client, EVENTS, {"type": "page_view", "customer_id": customer["id"]})
    _post(api_client, ORDERS, {"external_id": "go1", "customer_id": customer["id"], "ordered_at": "2026-01-01T00:00:00Z", "total": "5"})

    body = api_client.get(f"{CUSTOMERS}{customer['id']}/export/").json()

    assert body["profile"]["email"] == "g1@example.com"
    assert len(body["events"]) == 1 and body["orders"][0]["external_id"] == "go1"
    assert {"consents", "lead_form_submissions"} <= set(body)


def test_erase_anonymises_keeps_counts_and_blocks_reimport(api_client: APIClient, tenant: Tenant) -> None:
    customer = _post(api_client, CUSTOMERS, {"external_id": "e1", "email": "erase.me@example.com", "first_name": "Eve"}).json()
    _post(api_client, EVENTS, {"type": "page_view", "customer_id": customer["id"], "properties": {"ip": "1.2.3.4"}})
    _post(api_client, ORDERS, {"external_id": "eo1", "customer_id": customer["id"], "ordered_at": "2026-01-01T00:00:00Z", "total": "7"})

    erased = _post(api_client, f"{CUSTOMERS}{customer['id']}/erase/", None).json()
    reimport = _post(api_client, f"{CUSTOMERS}bulk/", {"customers": [{"external_id": "x9", "email": "Erase.Me@example.com"}, {"external_id": "e1"}]})
    event_again = _post(api_client, EVENTS, {"type": "page_view", "customer_external_id": "e1"})

    assert erased["email"] == "" and erased["first_name"] == "" and erased["erased_at"]
    assert Event.objects.for_tenant(tenant).get().properties == {}
    assert Order.objects.for_tenant(tenant).count() == 1  # revenue figures keep their count
    assert ErasureTombstone.objects.for_tenant(tenant).count() == 2
    assert [r["index"] for r in reimport.json()["rejected"]] == [0, 1]
    assert event_again.status_code == 400
    assert AuditLog.objects.for_tenant(tenant).filter(action="customer.erased").exists()
    assert erase_is_idempotent(api_client, customer["id"])


def erase_is_idempotent(client: APIClient, customer_id: int) -> bool:
    return _post(client, f"{CUSTOMERS}{customer_id}/erase/", None).status_code == 200


def test_scopes_apply_per_resource(tenant: Tenant, other_tenant: Tenant) -> None:
    _k, raw = make_api_key(tenant, ["events:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert _post(client, EVENTS, {"type": "page_view", "customer_external_id": "s1"}).status_code == 200
    assert client.get(CUSTOMERS).status_code == 403
    assert _post(client, CUSTOMERS, {"external_id": "s2"}).status_code == 403
    assert client.get(reverse("api:event-list")).status_code == 200  # write includes read
