"""Offers selectors: the request queue's processing-time metric, in SQL on PostgreSQL and portably
elsewhere (the embedded mode runs on SQLite), against medians worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from customers import services as customer_services
from offers import selectors
from offers.models import Offer, OfferRequest, Product
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def _request(tenant: Tenant, offer: Offer, customer: Any, *, days_ago: float, decided_h: float | None,
             fulfilled_h: float | None = None) -> OfferRequest:
    created = NOW - timedelta(days=days_ago)
    return OfferRequest.objects.create(
        tenant=tenant, offer=offer, customer=customer, status="approved" if decided_h is not None else "new",
        price=Decimal("1"), list_price=Decimal("1"), currency="EUR", created_at=created,
        decided_at=created + timedelta(hours=decided_h) if decided_h is not None else None,
        fulfilled_at=created + timedelta(hours=fulfilled_h) if fulfilled_h is not None else None)


def _shop(tenant: Tenant) -> tuple[Offer, Any]:
    product = Product.objects.create(tenant=tenant, sku="sim", name="SIM", base_price=Decimal("10"), currency="EUR")
    offer = Offer.objects.create(tenant=tenant, name="SIM deal", kind="percent_off", status="active", product=product,
                                 value=Decimal("10"), currency="EUR")
    customer = customer_services.upsert_customers(tenant=tenant, rows=[{"external_id": "m-1"}]).objects[0]
    return offer, customer


@pytest.fixture
def decided_requests(tenant: Tenant, other_tenant: Tenant) -> None:
    """Four decided requests in the window: hours to decision 1, 2, 4, 10 (median 3.0); three of
    them fulfilled after 5, 6, 20 hours (median 6.0). Around them, rows that must not count."""
    offer, customer = _shop(tenant)
    _request(tenant, offer, customer, days_ago=1, decided_h=1, fulfilled_h=5)
    _request(tenant, offer, customer, days_ago=2, decided_h=2, fulfilled_h=6)
    _request(tenant, offer, customer, days_ago=3, decided_h=4, fulfilled_h=20)
    _request(tenant, offer, customer, days_ago=89, decided_h=10)
    _request(tenant, offer, customer, days_ago=4, decided_h=None)  # undecided
    _request(tenant, offer, customer, days_ago=91, decided_h=500, fulfilled_h=900)  # claimed before the window
    their_offer, their_customer = _shop(other_tenant)
    for _ in range(5):
        _request(other_tenant, their_offer, their_customer, days_ago=1, decided_h=300, fulfilled_h=400)


@pytest.fixture(params=["postgresql", "sqlite"])
def vendor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The SQL path, and the portable one (the embedded mode's), both run against the test database."""
    if request.param != connection.vendor:
        if connection.vendor != "postgresql":
            pytest.skip("percentile_cont needs PostgreSQL")
        monkeypatch.setattr(connection, "vendor", request.param)
    return str(request.param)


def test_processing_times_are_the_medians_of_the_window(decided_requests: None, tenant: Tenant, vendor: str) -> None:
    times = selectors.processing_times(tenant=tenant, days=90, now=NOW)

    assert times == selectors.ProcessingTimes(to_decision_h=3.0, to_fulfilment_h=6.0, n=4)


def test_an_odd_count_takes_the_middle_value(tenant: Tenant, other_tenant: Tenant, vendor: str) -> None:
    offer, customer = _shop(tenant)
    for hours in (7.5, 0.5, 30):
        _request(tenant, offer, customer, days_ago=1, decided_h=hours, fulfilled_h=hours * 2)

    times = selectors.processing_times(tenant=tenant, now=NOW)

    assert (times.to_decision_h, times.to_fulfilment_h, times.n) == (7.5, 15.0, 3)


def test_no_decided_requests_is_no_number(tenant: Tenant, other_tenant: Tenant, vendor: str) -> None:
    offer, customer = _shop(tenant)
    _request(tenant, offer, customer, days_ago=1, decided_h=None)

    assert selectors.processing_times(tenant=tenant, now=NOW) == selectors.ProcessingTimes(None, None, 0)


def test_postgresql_answers_in_one_statement(decided_requests: None, tenant: Tenant,
                                             django_assert_num_queries: Callable[..., Any]) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with django_assert_num_queries(1) as captured:
        selectors.processing_times(tenant=tenant, now=NOW)
    sql = captured.captured_queries[0]["sql"]
    assert sql.count("percentile_cont(0.5) WITHIN GROUP") == 2 and '"created_at" >=' in sql


def test_the_window_is_a_parameter(decided_requests: None, tenant: Tenant, vendor: str) -> None:
    week = selectors.processing_times(tenant=tenant, days=7, now=NOW)
    everything = selectors.processing_times(tenant=tenant, days=100, now=NOW)

    assert (week.to_decision_h, week.to_fulfilment_h, week.n) == (2.0, 6.0, 3)
    assert (everything.to_decision_h, everything.to_fulfilment_h, everything.n) == (4.0, 13.0, 5)
