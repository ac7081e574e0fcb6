"""Synthetic demo data: deterministic, realistic enough to exercise every page, and only ever
written to (and deleted from) the tenant it was asked for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F, Sum

from customers import seed
from customers.models import Company, Consent, Customer, Event, Order, OrderLine
from tenants.models import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEED_MODELS = (Customer, Company, Event, Order, OrderLine, Consent)


def _seed(tenant: Tenant, **kwargs: Any) -> dict[str, Any]:
    return seed.seed_customers(**{"tenant": tenant, "customers": 300, "seed": 7, "now": NOW, **kwargs})


def _fingerprint(tenant: Tenant) -> dict[str, Any]:
    customers = Customer.objects.for_tenant(tenant)
    orders = Order.objects.for_tenant(tenant)
    return {
        "emails": list(customers.order_by("external_id").values_list("email", flat=True)),
        "names": list(customers.order_by("external_id").values_list("first_name", "last_name", "kind", "tags", "attributes")),
        "orders": list(orders.order_by("external_id").values_list("external_id", "total", "status", "ordered_at")),
        "events": Event.objects.for_tenant(tenant).count(),
        "event_ids": list(Event.objects.for_tenant(tenant).order_by("event_id").values_list("event_id", flat=True)[:50]),
        "consents": Counter(Consent.objects.for_tenant(tenant).values_list("channel", "purpose", "status")),
    }


def _count_all(tenant: Tenant) -> dict[str, int]:
    return {model.__name__: model.objects.for_tenant(tenant).count() for model in SEED_MODELS}


def test_seed_is_deterministic_for_a_seed(tenant: Tenant) -> None:
    first_counts = _seed(tenant)
    first = _fingerprint(tenant)

    seed.delete_customer_data(tenant=tenant)
    second_counts = _seed(tenant)

    assert _fingerprint(tenant) == first
    assert second_counts["orders_total"] == first_counts["orders_total"]
    assert first_counts["customers"] == 300


def test_another_seed_gives_other_people(tenant: Tenant) -> None:
    _seed(tenant)
    first = _fingerprint(tenant)

    seed.delete_customer_data(tenant=tenant)
    _seed(tenant, seed=8)

    assert _fingerprint(tenant)["emails"] != first["emails"]


def test_copy_and_bulk_create_write_the_same_rows(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(tenant)  # PostgreSQL: COPY
    copied = _fingerprint(tenant)
    seed.delete_customer_data(tenant=tenant)

    monkeypatch.setattr(seed, "_new_writer", lambda t, formats: seed._OrmWriter(t, formats))  # the SQLite path
    _seed(tenant)

    assert _fingerprint(tenant) == copied


def test_seed_creates_consumers_and_business_buyers_with_companies(tenant: Tenant) -> None:
    counts = _seed(tenant)

    customers = Customer.objects.for_tenant(tenant)
    buyers = customers.filter(kind=Customer.Kind.BUSINESS_BUYER)
    consumers = customers.filter(kind=Customer.Kind.CONSUMER)
    assert 0.1 < buyers.count() / 300 < 0.3
    assert not buyers.filter(company__isnull=True).exists()
    assert set(buyers.values_list("company_role", flat=True)) <= {"purchasing_manager", "owner", "repairer", "other"}
    assert not consumers.filter(company__isnull=False).exists()
    assert Company.objects.for_tenant(tenant).count() == counts["companies"] > 0
    assert set(customers.values_list("locale", flat=True)) == {"en", "ru"}


def test_seed_writes_orders_events_and_consents(tenant: Tenant) -> None:
    counts = _seed(tenant)

    orders = Order.objects.for_tenant(tenant)
    statuses = Counter(orders.values_list("status", flat=True))
    assert {Order.Status.CANCELLED, Order.Status.REFUNDED, Order.Status.FULFILLED} <= set(statuses)
    assert counts["orders"] == orders.count() > 100
    # An order's total is the sum of its lines.
    line_sums = dict(
        OrderLine.objects.for_tenant(tenant).values("order_id").annotate(s=Sum(F("quantity") * F("unit_price"))).values_list("order_id", "s")
    )
    assert {o.pk: o.total for o in orders} == {pk: Decimal(s).quantize(Decimal("0.01")) for pk, s in line_sums.items()}
    assert orders.aggregate(s=Sum("total"))["s"] == counts["orders_total"]
    # Repeat purchases: some customers ordered several times.
    per_customer = Counter(orders.values_list("customer_id", flat=True))
    assert max(per_customer.values()) >= 4

    events = Event.objects.for_tenant(tenant)
    assert set(events.values_list("type", flat=True)) == set(Event.BUILTIN_TYPES)
    assert 8 <= counts["events"] / 300 <= 13

    consents = Counter(Consent.objects.for_tenant(tenant).values_list("channel", "purpose", "status"))
    assert consents[("email", "marketing", "granted")] == 300
    assert consents[("all", "personalization", "granted")] == 300
    assert 0 < consents[("email", "marketing", "withdrawn")] < 60
    assert 0 < consents[("all", "personalization", "withdrawn")] < 40


def test_seeded_customers_have_unique_emails_and_search_text(tenant: Tenant) -> None:
    _seed(tenant)

    customers = Customer.objects.for_tenant(tenant)
    emails = list(customers.values_list("email", flat=True))
    assert len(set(emails)) == len(emails) == 300
    first = customers.get(external_id="c000001")
    expected = " ".join(p for p in (first.first_name, first.last_name, first.email, first.phone, first.external_id) if p)
    assert first.search_text == expected.lower()
    assert first.first_seen_at <= first.last_seen_at <= NOW


def test_seed_stays_in_its_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    _seed(other_tenant, customers=40)
    other_before = _fingerprint(other_tenant)

    _seed(tenant)

    assert _fingerprint(other_tenant) == other_before
    own_customers = set(Customer.objects.for_tenant(tenant).values_list("id", flat=True))
    assert set(Event.objects.for_tenant(tenant).values_list("customer_id", flat=True)) <= own_customers
    assert set(Order.objects.for_tenant(tenant).values_list("customer_id", flat=True)) <= own_customers
    own_companies = set(Company.objects.for_tenant(tenant).values_list("id", flat=True))
    assert set(Customer.objects.for_tenant(tenant).exclude(company=None).values_list("company_id", flat=True)) <= own_companies


def test_seeding_again_does_not_duplicate(tenant: Tenant) -> None:
    _seed(tenant)
    before = _count_all(tenant)

    again = _seed(tenant)

    assert again["skipped"] is True
    assert _count_all(tenant) == before


def test_delete_customer_data_leaves_other_tenants_alone(tenant: Tenant, other_tenant: Tenant) -> None:
    _seed(other_tenant, customers=40)
    other_before = _count_all(other_tenant)
    _seed(tenant, customers=60)

    deleted = seed.delete_customer_data(tenant=tenant)

    assert deleted == 60
    assert all(n == 0 for n in _count_all(tenant).values())
    assert _count_all(other_tenant) == other_before


def test_seed_demo_command_is_idempotent_and_resets(db: Any) -> None:
    call_command("seed_demo", customers=30, stdout=_Quiet())
    demo = Tenant.objects.get(slug="demo")
    first = _count_all(demo)

    call_command("seed_demo", customers=30, stdout=_Quiet())
    assert _count_all(demo) == first

    call_command("seed_demo", customers=20, reset=True, stdout=_Quiet())
    assert Customer.objects.for_tenant(demo).count() == 20


class _Quiet:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
