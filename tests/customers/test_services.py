"""Batch write services: the fast paths (set-based SQL on PostgreSQL, the common-event shortcut)
give exactly what the portable paths give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers import intake
from customers import services as customer_services
from customers.intake import RowInvalid
from customers.models import Company, Customer, Event, Order, OrderLine
from customers.services import events as event_services
from customers.services import profiles
from tenants.models import Tenant

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    {"event_id": "e1", "type": "page_view", "customer_external_id": " c1 ", "occurred_at": "2026-04-30T10:00:00Z"},
    {"event_id": " e2 ", "type": "page_view", "customer_external_id": "c1", "occurred_at": "2026-04-30T10:00:00",
     "properties": {"path": "/", "n": 1.5, "deep": {"a": [1, 2]}}},
    {"type": "add_to_cart", "customer_external_id": "c1", "properties": {"sku": "A"}},  # derived id, default time
    {"event_id": "", "type": "signup", "customer_external_id": "c1", "occurred_at": "", "properties": {}},
    {"event_id": "e3", "type": "x", "customer_external_id": "c1", "occurred_at": "2026-04-30T12:00:00+03:00",
     "properties": {"text": "привет"}},
    {"event_id": "e4", "type": "x", "customer_external_id": "c1", "properties": []},  # falsy: no properties
    # Datetimes, as the CSV import's date parser gives them: aware, naive (UTC), future, too early.
    {"event_id": "d1", "type": "x", "customer_external_id": "c1", "occurred_at": datetime(2026, 4, 30, 9, tzinfo=UTC)},
    {"event_id": "d2", "type": "x", "customer_external_id": "c1", "occurred_at": datetime(2026, 4, 30, 9)},
    {"event_id": "d3", "type": "x", "customer_external_id": "c1", "occurred_at": datetime(2026, 5, 2, tzinfo=UTC)},
    {"event_id": "d4", "type": "x", "customer_external_id": "c1", "occurred_at": datetime(1969, 1, 1, tzinfo=UTC)},
    {"type": "x", "customer_external_id": "c1", "occurred_at": datetime(2026, 4, 30, 9, tzinfo=UTC)},  # derived id
    # The shortcut declines these; the full path decides (and names the errors).
    {"event_id": "e5", "type": "x", "customer_external_id": "c1", "occurred_at": "2026-06-01T00:00:00Z"},
    {"event_id": "e6", "type": "x", "customer_external_id": "c1", "occurred_at": "1969-12-31T00:00:00Z"},
    {"event_id": "e7", "type": "x", "customer_external_id": "   "},
    {"event_id": "e8", "type": "x", "customer_external_id": "c1", "properties": {"k": "a\x00b"}},
    {"event_id": "e9\x00", "type": "x", "customer_external_id": "c1"},
    {"event_id": "e10", "type": "x", "customer_external_id": "c1", "properties": {"big": 2**70}},
    {"event_id": "e11", "type": "x", "customer_external_id": "c1", "properties": {"blob": "ж" * 3990}},
    {"event_id": "e12", "type": "x", "customer_external_id": "c1", "properties": {"blob": "ж" * 4010}},
    {"event_id": 12, "type": "x", "customer_id": "7", "email": "A@Example.com"},
    {"event_id": "e13", "type": "Bad", "customer_external_id": "c1", "extra": True},
    {"event_id": "e14", "type": "x", "customer_external_id": "c1", "properties": "text"},
])
def test_the_common_event_shortcut_agrees_with_the_full_validation(raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    def full(event: dict[str, Any]) -> tuple[str, Any]:
        try:
            return "ok", intake.clean_event(event, reference=NOW)
        except intake.RowInvalid as exc:
            return "invalid", exc.errors

    # when
    fast = full(raw)
    monkeypatch.setattr(intake, "_clean_common_event", lambda event, reference: None)
    slow = full(raw)

    # then
    assert fast == slow


def test_the_common_event_shortcut_takes_the_datetimes_of_the_csv_import() -> None:
    raw = {"event_id": "d1", "type": "x", "customer_external_id": "c1", "occurred_at": datetime(2026, 4, 30, 9)}

    event = intake._clean_common_event(raw, NOW)

    assert event is not None and event["occurred_at"] == datetime(2026, 4, 30, 9, tzinfo=UTC)


def test_properties_are_limited_to_8000_characters_as_json_writes_them() -> None:
    errors = intake._Errors()

    intake.properties_json({"blob": "ж" * 1330}, errors)  # 7,990 characters as \u0436 escapes
    intake.properties_json({"blob": "ж" * 1340}, errors)

    assert errors.errors == {"properties": ["At most 8 KB of properties."]}


def _scenario(tenant: Tenant) -> dict[str, Any]:
    """Customers, events (live and deferred first/last seen) and orders through the services."""
    first = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "a", "email": "A@example.com", "first_name": "Ann", "attributes": {"plan": "gold"}, "tags": "vip"},
        {"external_id": "b", "email": "b@example.com", "company": {"name": "Parts & Co"}},
        {"external_id": "c", "email": "a@example.com"},  # taken by a in this batch
        {"external_id": "d", "first_name": "x" * 101},
    ], with_objects=False)
    second = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "a", "last_name": "Lee", "attributes": {"city": "Riga"}},
        {"external_id": "b", "email": "b@example.com", "company": {"name": "Parts & Co"}},
        {"external_id": "e", "email": "b@example.com"},  # held by b
    ])
    events = customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "v1", "type": "page_view", "customer_external_id": "a", "occurred_at": "2026-01-02T10:00:00Z"},
        {"event_id": "v2", "type": "page_view", "customer_external_id": "new-1", "occurred_at": "2026-01-03T10:00:00Z"},
        {"event_id": "v1", "type": "page_view", "customer_external_id": "a"},
        {"event_id": "v3", "type": "signup", "email": "b@example.com", "occurred_at": "2026-01-01T09:00:00Z"},
    ])
    deferred: event_services.SeenBounds = {}
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "h1", "type": "page_view", "customer_external_id": "a", "occurred_at": "2025-06-01T00:00:00Z"},
        {"event_id": "h2", "type": "page_view", "customer_external_id": "a", "occurred_at": "2026-02-01T00:00:00Z"},
    ], defer_seen=deferred)
    event_services.widen_seen(tenant=tenant, bounds=deferred)
    order_rows = [
        {"external_id": "o1", "customer_external_id": "a", "ordered_at": "2026-01-05T00:00:00Z",
         "lines": [{"sku": "s1", "quantity": 2, "unit_price": "1.25"}, {"sku": "s2", "name": "Two", "unit_price": "3"}]},
        {"external_id": "o2", "customer_external_id": "new-2", "ordered_at": "2026-01-06T00:00:00Z", "total": "9.99"},
    ]
    orders = customer_services.record_orders(tenant=tenant, rows=order_rows)
    resent = customer_services.record_orders(tenant=tenant, rows=[{**order_rows[0], "status": "refunded"}, order_rows[1]])
    people = {
        c.external_id: (c.kind, c.email, c.first_name, c.last_name, c.tags, c.attributes, c.search_text, c.company_id is not None,
                        c.first_seen_at is not None, c.last_seen_at)
        for c in Customer.objects.for_tenant(tenant)
    }
    return {
        "first": first.as_dict(), "second": second.as_dict(), "objects": sorted(c.external_id for c in second.objects.values()),
        "events": events.as_dict(), "orders": orders.as_dict(), "resent": resent.as_dict(), "people": people,
        "a_first_seen": Customer.objects.for_tenant(tenant).get(external_id="a").first_seen_at,
        "stored_events": sorted(Event.objects.for_tenant(tenant).values_list("event_id", "type", "customer__external_id")),
        "stored_orders": sorted(Order.objects.for_tenant(tenant).values_list("external_id", "status", "total", "customer__external_id")),
        "lines": sorted(OrderLine.objects.for_tenant(tenant).values_list("order__external_id", "product_sku", "product_name",
                                                                          "quantity", "unit_price")),
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares the PostgreSQL paths with the portable ones")
def test_set_based_writes_give_what_the_portable_writes_give(tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the scenario once through the PostgreSQL paths
    fast = _scenario(tenant)

    # when: again for another tenant through the portable (ORM) paths
    monkeypatch.setattr(connection, "vendor", "sqlite")
    twin = Tenant.objects.create(name="Twin", slug="twin", currency=tenant.currency)
    portable = _scenario(twin)
    monkeypatch.undo()

    # then: the same outcome (first/last seen of new profiles depend on the clock, not compared)
    assert fast["a_first_seen"] == portable["a_first_seen"] == datetime(2025, 6, 1, tzinfo=UTC)
    for key in ("first", "second", "objects", "events", "orders", "resent", "stored_events", "stored_orders", "lines"):
        assert fast[key] == portable[key], key
    assert fast["people"].keys() == portable["people"].keys()
    for external_id, person in fast["people"].items():
        assert person[:9] == portable["people"][external_id][:9], external_id
    assert fast["first"]["created"] == 2 and {r["index"] for r in fast["first"]["rejected"]} == {2, 3}
    assert (fast["second"]["updated"], fast["second"]["unchanged"]) == (1, 1)
    assert fast["resent"] == {"created": 0, "updated": 1, "unchanged": 1, "rejected": []}
    assert fast["lines"][0] == ("o1", "s1", "", Decimal("2.000"), Decimal("1.2500"))


def test_deferred_first_and_last_seen_are_applied_once_and_a_rerun_repairs_them(tenant: Tenant) -> None:
    # given: events stored with their first/last seen deferred, and the widening lost
    rows = [{"event_id": f"h{i}", "type": "page_view", "customer_external_id": "p", "occurred_at": f"2025-0{i}-01T00:00:00Z"}
            for i in range(1, 4)]
    lost: event_services.SeenBounds = {}
    customer_services.ingest_events(tenant=tenant, rows=rows, defer_seen=lost)
    person = Customer.objects.for_tenant(tenant).get(external_id="p")
    assert person.first_seen_at is None and lost == {person.pk: (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))}

    # when: the same rows again (all duplicates now), then the widening
    again: event_services.SeenBounds = {}
    result = customer_services.ingest_events(tenant=tenant, rows=rows, defer_seen=again)
    event_services.widen_seen(tenant=tenant, bounds=again)

    # then
    person.refresh_from_db()
    assert (result.accepted, result.duplicates) == (0, 3)
    assert (person.first_seen_at, person.last_seen_at) == (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    assert again == {}


def test_deferred_seen_is_applied_to_every_customer_in_interleaved_rounds(tenant: Tenant, other_tenant: Tenant,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # given: seven customers' deferred bounds, rounds of two, and another tenant's customer with the same id in the bounds
    monkeypatch.setattr(event_services, "SEEN_ROUND", 2)
    rows = [{"event_id": f"r{i}", "type": "page_view", "customer_external_id": f"r{i}", "occurred_at": f"2025-01-0{i + 1}T00:00:00Z"}
            for i in range(7)]
    bounds: event_services.SeenBounds = {}
    customer_services.ingest_events(tenant=tenant, rows=rows, defer_seen=bounds)
    stranger = Customer.objects.create(tenant=other_tenant, external_id="stranger")
    bounds[stranger.pk] = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))

    # when: four rounds of at most two customers, one UPDATE each
    with CaptureQueriesContext(connection) as queries:
        event_services.widen_seen(tenant=tenant, bounds=bounds)

    # then: every customer of the tenant got its own day, nobody else was touched
    assert len([q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]) == 4
    seen = dict(Customer.objects.for_tenant(tenant).values_list("external_id", "first_seen_at"))
    assert seen == {f"r{i}": datetime(2025, 1, i + 1, tzinfo=UTC) for i in range(7)}
    stranger.refresh_from_db()
    assert stranger.first_seen_at is None and bounds == {}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the staged path is PostgreSQL's")
def test_staged_events_note_their_customers_for_segments_unless_suspended(tenant: Tenant, other_tenant: Tenant,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a known customer of each tenant with the same external id, and a recorder of the changes noted
    mine = Customer.objects.create(tenant=tenant, external_id="same")
    Customer.objects.create(tenant=other_tenant, external_id="same")
    noted: list[tuple[int, set[int], set[str]]] = []
    def note(*, tenant_id: int, customer_ids: Any, kinds: Any) -> None:
        if not event_services.freshness.is_suspended():
            noted.append((tenant_id, set(customer_ids), set(kinds)))

    monkeypatch.setattr(event_services.freshness, "customers_changed", note)
    rows = event_services.stage_events([event_services.staged_event(intake.clean_event(
        {"event_id": f"s{i}", "type": kind, "customer_external_id": "same", "occurred_at": f"2025-05-0{i}T00:00:00Z"}))
        for i, kind in ((1, "page_view"), (2, "add_to_cart"))])
    bounds: event_services.SeenBounds = {}

    # when: written as the import writes them, then again with changes suspended
    result = event_services.ingest_staged_events(tenant=tenant, staged=rows, source="import", defer_seen=bounds)
    with event_services.freshness.suspended():
        event_services.ingest_staged_events(tenant=tenant, staged=rows, source="import", defer_seen=bounds)

    # then: stored for this tenant's customer only, noted once, and its window gathered
    assert (result.accepted, result.duplicates, result.customer_ids) == (2, 0, {mine.pk})
    assert noted == [(tenant.pk, {mine.pk}, {"seen", "event:page_view", "event:add_to_cart"})]
    assert bounds == {mine.pk: (datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 2, tzinfo=UTC))}
    assert not Event.objects.for_tenant(other_tenant).filter(event_id__in=["s1", "s2"]).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares the staged PostgreSQL path with the row-by-row one")
def test_a_staged_api_batch_gives_what_the_row_by_row_path_gives(other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: two tenants alike (a known customer, an erased one) and batches as the API takes them, with first/last
    # seen widened at once: repeats in the batch, an unknown and an erased customer, a refused event
    batch = [
        {"event_id": "a1", "type": "page_view", "customer_external_id": "known", "occurred_at": "2025-03-01T10:00:00Z"},
        {"event_id": "a2", "type": "add_to_cart", "customer_external_id": "fresh", "occurred_at": "2025-03-02T10:00:00Z",
         "properties": {"sku": "A-1"}},
        {"event_id": "a1", "type": "page_view", "customer_external_id": "known", "occurred_at": "2025-03-01T10:00:00Z"},
        {"event_id": "a3", "type": "page_view", "customer_external_id": "gone", "occurred_at": "2025-03-03T10:00:00Z"},
        {"event_id": "a4", "type": "Not A Type", "customer_external_id": "known"},
        {"event_id": "a5", "type": "page_view", "customer_external_id": "known", "occurred_at": "2024-12-31T23:00:00Z"},
    ]
    later = [{"event_id": "a6", "type": "page_view", "customer_external_id": "fresh", "occurred_at": "2025-04-01T00:00:00Z"}, batch[0]]
    outcomes = {}
    for staged in (True, False):
        tenant = Tenant.objects.create(name=f"Twin {staged}", slug=f"twin-{staged}".lower(), currency="EUR")
        Customer.objects.create(tenant=tenant, external_id="known", first_seen_at=datetime(2025, 1, 1, tzinfo=UTC),
                                last_seen_at=datetime(2025, 1, 1, tzinfo=UTC))
        customer_services.erase_customer(tenant=tenant, actor=None, customer=Customer.objects.create(tenant=tenant, external_id="gone"))
        if not staged:
            monkeypatch.setattr(event_services, "staged_event", lambda event: None)

        # when
        first = customer_services.ingest_events(tenant=tenant, rows=batch)
        second = customer_services.ingest_events(tenant=tenant, rows=later)
        monkeypatch.undo()

        outcomes[staged] = {
            "first": (first.as_dict(), first.new_customers, len(first.customer_ids)), "second": second.as_dict(),
            "events": sorted(Event.objects.for_tenant(tenant).values_list("event_id", "customer__external_id", "type", "occurred_at",
                                                                        "properties")),
            "seen": sorted(Customer.objects.for_tenant(tenant).active().values_list("external_id", "first_seen_at", "last_seen_at")),
        }

    # then: the same answers, events and first/last seen
    assert outcomes[True] == outcomes[False]
    first_answer, new_customers, customers = outcomes[True]["first"]
    assert (first_answer["accepted"], first_answer["duplicates"], [r["index"] for r in first_answer["rejected"]]) == (3, 1, [3, 4])
    assert (new_customers, customers) == (1, 2)
    assert outcomes[True]["second"] == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert outcomes[True]["seen"] == [
        ("fresh", datetime(2025, 3, 2, 10, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
        ("known", datetime(2024, 12, 31, 23, tzinfo=UTC), datetime(2025, 3, 1, 10, tzinfo=UTC)),
    ]


def test_live_events_move_last_seen_only_past_the_slack(tenant: Tenant) -> None:
    # given
    now = timezone.now()
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "l1", "type": "page_view", "customer_external_id": "q", "occurred_at": (now - timedelta(minutes=30)).isoformat()}])
    person = Customer.objects.for_tenant(tenant).get(external_id="q")
    seen = person.last_seen_at

    # when: one event within the slack, then one past it
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "l2", "type": "page_view", "customer_external_id": "q", "occurred_at": (now - timedelta(minutes=27)).isoformat()}])
    person.refresh_from_db()
    within = person.last_seen_at
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "l3", "type": "page_view", "customer_external_id": "q", "occurred_at": now.isoformat()}])
    person.refresh_from_db()

    # then
    assert within == seen and person.last_seen_at == now


# Bulk upserts: rows cleaned ahead, the erasure check of big batches, emails decided by the unique index --------


ROWS = [
    {"external_id": "a", "email": "A@Example.com", "first_name": "Ann", "tags": "vip, new", "attributes": {"plan": "gold"}},
    {"external_id": "b", "email": "b@example.com", "company": {"name": "Parts & Co", "industry": "repair"}},
    {"external_id": "c", "email": "a@example.com"},  # a's email, in the same batch
    {"external_id": "d", "first_name": "x" * 101},  # too long
    {"external_id": "a", "first_name": "Twice"},  # a again
    {"email": "noid@example.com"},  # no external_id
]


def _profiles(tenant: Tenant) -> dict[str, tuple[Any, ...]]:
    return {c.external_id: (c.kind, c.email, c.first_name, c.tags, c.attributes, c.search_text, c.company.name if c.company else None)
            for c in Customer.objects.for_tenant(tenant).select_related("company")}


def _cleaned_ahead(tenant: Tenant, rows: list[dict[str, Any]]) -> tuple[list[Any], dict[int, dict[str, list[str]]]]:
    """The rows as an import hands them over: cleaned in its reading thread, refusals kept apart."""
    definitions = customer_services.attribute_definitions(tenant=tenant)
    cleaned: list[Any] = []
    refused: dict[int, dict[str, list[str]]] = {}
    for index, raw in enumerate(rows):
        try:
            cleaned.append(customer_services.clean_customer_row(raw, tenant_id=tenant.pk, definitions=definitions))
        except RowInvalid as exc:
            refused[index] = exc.errors
    return cleaned, refused


def test_rows_cleaned_ahead_are_written_as_the_raw_rows_are(tenant: Tenant) -> None:
    # given: twin tenants
    twin = Tenant.objects.create(name="Twin", slug="twin", currency=tenant.currency)

    # when: raw rows for one, the same rows cleaned ahead for the other
    raw = customer_services.upsert_customers(tenant=tenant, rows=ROWS, with_objects=False)
    cleaned, refused = _cleaned_ahead(twin, ROWS)
    ahead = customer_services.upsert_customers(tenant=twin, rows=cleaned, with_objects=False)

    # then: the same profiles; the refusals are the same, whoever found them
    assert _profiles(tenant) == _profiles(twin)
    assert (raw.created, raw.updated, raw.unchanged) == (ahead.created, ahead.updated, ahead.unchanged) == (2, 0, 0)
    assert {i for i in raw.errors} == {2, 3, 4, 5}
    assert refused == {3: raw.errors[3], 5: raw.errors[5]}
    assert raw.errors[2] == {"email": ["This email belongs to another customer."]}


def test_a_new_customer_with_a_taken_email_is_refused_and_the_owner_keeps_it(tenant: Tenant) -> None:
    # given
    customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "owner", "email": "taken@example.com", "first_name": "Olga"},
        {"external_id": "mover", "email": "old@example.com"},
    ])

    # when: a newcomer with the owner's email; another with the email "mover" gives up in the same batch
    result = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "new-1", "email": "Taken@example.com", "first_name": "Nick"},
        {"external_id": "mover", "email": "new@example.com"},
        {"external_id": "new-2", "email": "old@example.com"},
        {"external_id": "new-3", "email": "free@example.com"},
    ])

    # then: the email is decided as before the batch; nothing stored is lost
    assert result.errors == {0: {"email": ["This email belongs to another customer."]},
                             2: {"email": ["This email belongs to another customer."]}}
    assert (result.created, result.updated) == (1, 1)
    people = dict(Customer.objects.for_tenant(tenant).values_list("external_id", "email"))
    assert people == {"owner": "taken@example.com", "mover": "new@example.com", "new-3": "free@example.com"}
    assert Customer.objects.for_tenant(tenant).get(external_id="owner").first_name == "Olga"


@pytest.mark.parametrize("few", [0, 1000])
def test_erased_people_are_not_stored_again_by_a_big_batch(tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch,
                                                             few: int) -> None:
    # given: an erased person, and (few=0) more tombstones than a big batch reads at once
    monkeypatch.setattr(profiles, "FEW_TOMBSTONES", few)
    customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "gone", "email": "gone@example.com"}, {"external_id": "gone-2", "email": "gone2@example.com"}])
    for external_id in ("gone", "gone-2"):
        person = Customer.objects.for_tenant(tenant).get(external_id=external_id)
        customer_services.erase_customer(tenant=tenant, actor=None, customer=person)
    rows = [{"external_id": f"n{i}", "email": f"n{i}@example.com"} for i in range(600)]  # 1,200 identifiers
    rows[10] = {"external_id": "gone", "first_name": "Back"}
    rows[20] = {"external_id": "someone-else", "email": "GONE2@example.com"}

    # when
    result = customer_services.upsert_customers(tenant=tenant, rows=rows, with_objects=False)

    # then
    erased = {"non_field_errors": ["This person asked to be erased; they are not stored again."]}
    assert result.errors == {10: erased, 20: erased}
    assert result.created == 598
    assert not Customer.objects.for_tenant(tenant).filter(external_id__in=["gone", "someone-else"]).exists()


@pytest.mark.parametrize("values", [
    ["plain", "", "with space", "comma,brace{}"],
    ['quote"inside', "back\\slash", 'both\\"', "NULL"],
    [],
])
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL array literal")
def test_text_array_literals_read_back_as_the_values(values: list[str], db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [profiles.text_array(values)])
        assert cursor.fetchone()[0] == values
        cursor.execute("SELECT %s::text[]", [profiles.text_array(iter(values))])
        assert cursor.fetchone()[0] == values


def test_deleting_a_company_keeps_its_buyers(tenant: Tenant) -> None:
    # given
    customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "b1", "company": {"name": "Garage 24"}}, {"external_id": "c1", "first_name": "Consumer"}])
    company = Company.objects.for_tenant(tenant).get(name="Garage 24")

    # when
    company.delete()

    # then
    buyer = Customer.objects.for_tenant(tenant).get(external_id="b1")
    assert buyer.company_id is None and buyer.kind == Customer.Kind.BUSINESS_BUYER


def test_events_cleaned_ahead_are_stored_as_raw_events_are(tenant: Tenant, other_tenant: Tenant) -> None:
    # given: a batch with a good event, a repeat, a bad time and a missing customer reference
    at = (timezone.now() - timedelta(hours=1)).isoformat()
    rows: list[dict[str, Any]] = [
        {"event_id": "ahead-1", "type": "product_view", "customer_external_id": "ahead-p1", "occurred_at": at, "properties": {"sku": "a"}},
        {"event_id": "ahead-1", "type": "product_view", "customer_external_id": "ahead-p1", "occurred_at": at},
        {"event_id": "ahead-2", "type": "product_view", "customer_external_id": "ahead-p2", "occurred_at": "yesterday"},
        {"event_id": "ahead-3", "type": "signup"},
    ]
    precleaned: list[Any] = []
    for row in rows:
        try:
            precleaned.append(intake.clean_event(row))
        except RowInvalid as exc:
            precleaned.append(exc)

    # when: the same rows, cleaned by the service and cleaned ahead (in another tenant's copy)
    plain = customer_services.ingest_events(tenant=tenant, rows=rows)
    ahead = customer_services.ingest_events(tenant=other_tenant, rows=rows, precleaned=precleaned)

    # then: the same outcome, row by row
    assert (plain.accepted, plain.duplicates, plain.rejected) == (ahead.accepted, ahead.duplicates, ahead.rejected)
    assert plain.accepted == 1 and [r["index"] for r in plain.rejected] == [2, 3]
    stored = Event.objects.for_tenant(other_tenant).get(event_id="ahead-1")
    assert stored.properties == {"sku": "a"} and stored.customer.external_id == "ahead-p1"
    with pytest.raises(ValueError):
        customer_services.ingest_events(tenant=tenant, rows=rows, precleaned=precleaned[:1])
