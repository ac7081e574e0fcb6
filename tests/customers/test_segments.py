"""Segment definitions, compilation, stored memberships, freshness and the segments API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from customers import services as customer_services
from customers.models import Customer, CustomerScore, Segment, SegmentChange, SegmentMembership, SegmentSize
from customers.segments import freshness, membership, services
from customers.segments.definition import DefinitionError, compile_definition, validate_definition
from tenants.models import Tenant


def _defn(*conditions: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": match, "conditions": list(conditions)}


def _people(tenant: Tenant) -> dict[str, Customer]:
    now = timezone.now()
    result = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "p-1", "email": "ivan@example.com", "first_name": "Ivan", "tags": ["vip"], "attributes": {"score": 7}},
        {"external_id": "p-2", "email": "olga@example.com", "first_name": "Olga", "kind": "business_buyer",
         "company": {"name": "Repair Ltd", "external_id": "r-1", "size": "50-249", "industry": "repair"}, "company_role": "owner"},
        {"external_id": "p-3", "email": "petr@example.com", "first_name": "Petr", "attributes": {"score": 2}},
    ])
    ivan, olga, petr = (result.objects[i] for i in range(3))
    recent = (now - timedelta(days=2)).isoformat()
    old = (now - timedelta(days=200)).isoformat()
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "x-1", "type": "add_to_cart", "customer_external_id": "p-1", "occurred_at": recent},
        {"event_id": "x-2", "type": "add_to_cart", "customer_external_id": "p-1", "occurred_at": recent},
        {"event_id": "x-3", "type": "add_to_cart", "customer_external_id": "p-2", "occurred_at": old},
    ])
    customer_services.record_orders(tenant=tenant, rows=[
        {"external_id": "so-1", "customer_external_id": "p-1", "ordered_at": recent, "currency": "EUR",
         "lines": [{"sku": "a", "quantity": 1, "unit_price": "300.00"}]},
        {"external_id": "so-2", "customer_external_id": "p-2", "ordered_at": old, "currency": "EUR",
         "lines": [{"sku": "a", "quantity": 1, "unit_price": "50.00"}]},
        {"external_id": "so-3", "customer_external_id": "p-3", "ordered_at": recent, "currency": "EUR", "status": "refunded",
         "lines": [{"sku": "a", "quantity": 1, "unit_price": "999.00"}]},
    ])
    return {"ivan": ivan, "olga": olga, "petr": petr}


def _matches(tenant: Tenant, definition: dict[str, Any]) -> set[str]:
    checked = validate_definition(tenant=tenant, definition=definition)
    return set(compile_definition(tenant=tenant, definition=checked.definition).values_list("external_id", flat=True))


@pytest.mark.parametrize(("condition", "expected"), [
    ({"type": "profile", "field": "kind", "op": "eq", "value": "business_buyer"}, {"p-2"}),
    ({"type": "profile", "field": "tags", "op": "contains", "value": "VIP"}, {"p-1"}),
    ({"type": "profile", "field": "tags", "op": "not_contains", "value": "vip"}, {"p-2", "p-3"}),
    ({"type": "profile", "field": "email", "op": "contains", "value": "OLGA"}, {"p-2"}),
    ({"type": "attribute", "key": "score", "op": "gte", "value": 5}, {"p-1"}),
    ({"type": "attribute", "key": "score", "op": "is_not_set"}, {"p-2"}),
    ({"type": "company", "field": "size", "op": "in", "value": ["50-249", "1000+"]}, {"p-2"}),
    ({"type": "company", "field": "industry", "op": "eq", "value": "Repair"}, {"p-2"}),
    ({"type": "company", "field": "any", "op": "is_not_set"}, {"p-1", "p-3"}),
    ({"type": "event", "event_type": "add_to_cart", "op": "did"}, {"p-1", "p-2"}),
    ({"type": "event", "event_type": "add_to_cart", "op": "did_not"}, {"p-3"}),
    ({"type": "event", "event_type": "add_to_cart", "op": "at_least", "count": 2}, {"p-1"}),
    ({"type": "event", "event_type": "add_to_cart", "op": "fewer_than", "count": 2}, {"p-2", "p-3"}),
    ({"type": "event", "event_type": "add_to_cart", "op": "did", "within_days": 30}, {"p-1"}),
    ({"type": "order", "measure": "count", "op": "gte", "value": 1}, {"p-1", "p-2"}),  # refunds are not purchases
    ({"type": "order", "measure": "count", "op": "eq", "value": 0}, {"p-3"}),
    ({"type": "order", "measure": "total", "op": "gt", "value": 100}, {"p-1"}),
    ({"type": "order", "measure": "total", "op": "lt", "value": 100}, {"p-2", "p-3"}),
    ({"type": "order", "measure": "count", "op": "gte", "value": 1, "within_days": 30}, {"p-1"}),
    ({"type": "order", "measure": "days_since_last", "op": "gte", "value": 90}, {"p-2"}),
    ({"type": "order", "measure": "days_since_last", "op": "lte", "value": 7}, {"p-1"}),
])
def test_each_condition_type_selects_the_right_people(condition: dict[str, Any], expected: set[str], tenant: Tenant,
                                                      other_tenant: Tenant) -> None:
    # given
    _people(tenant)

    # when
    matched = _matches(tenant, _defn(condition))

    # then
    assert matched == expected


def test_nested_and_or_groups_combine(tenant: Tenant) -> None:
    _people(tenant)
    definition = _defn(
        {"type": "order", "measure": "count", "op": "gte", "value": 1},
        {"type": "group", "match": "any", "conditions": [
            {"type": "profile", "field": "tags", "op": "contains", "value": "vip"},
            {"type": "company", "field": "size", "op": "eq", "value": "50-249"},
        ]},
    )
    assert _matches(tenant, definition) == {"p-1", "p-2"}
    assert _matches(tenant, {**definition, "match": "any"}) == {"p-1", "p-2"}


def test_consent_condition_uses_the_latest_entry_including_all_channels(tenant: Tenant) -> None:
    people = _people(tenant)
    for status in ("granted", "withdrawn"):
        customer_services.record_consent(tenant=tenant, customer=people["ivan"], channel="email", purpose="marketing",
                                         status=status, source="api")
    customer_services.record_consent(tenant=tenant, customer=people["olga"], channel="all", purpose="marketing",
                                     status="granted", source="api")
    granted = {"type": "consent", "purpose": "marketing", "channel": "email", "status": "granted"}
    assert _matches(tenant, _defn(granted)) == {"p-2"}
    assert _matches(tenant, _defn({**granted, "status": "withdrawn"})) == {"p-1"}
    assert _matches(tenant, _defn({**granted, "status": "unknown"})) == {"p-3"}


def test_score_and_segment_conditions(tenant: Tenant) -> None:
    people = _people(tenant)
    CustomerScore.objects.create(tenant=tenant, customer=people["petr"], churn_probability=0.9, rfm_group="at_risk")
    vip = Segment.objects.create(tenant=tenant, name="vip", definition=_defn(
        {"type": "profile", "field": "tags", "op": "contains", "value": "vip"}), depends_on=["profile"])
    membership.rebuild_segment(tenant=tenant, segment_id=vip.pk)

    assert _matches(tenant, _defn({"type": "score", "field": "churn_probability", "op": "gte", "value": 0.5})) == {"p-3"}
    assert _matches(tenant, _defn({"type": "score", "field": "rfm_group", "op": "eq", "value": "at_risk"})) == {"p-3"}
    assert _matches(tenant, _defn({"type": "segment", "segment_id": vip.pk, "op": "in"})) == {"p-1"}
    assert _matches(tenant, _defn({"type": "segment", "segment_id": vip.pk, "op": "not_in"})) == {"p-2", "p-3"}


def test_erased_customers_are_never_members(tenant: Tenant) -> None:
    people = _people(tenant)
    customer_services.erase_customer(tenant=tenant, actor=None, customer=people["ivan"])
    assert "p-1" not in _matches(tenant, _defn({"type": "event", "event_type": "add_to_cart", "op": "did"}))


@pytest.mark.parametrize(("definition", "path"), [
    ({"match": "some", "conditions": [{"type": "profile", "field": "kind", "op": "eq", "value": "consumer"}]}, "match"),
    ({"match": "all", "conditions": []}, "conditions"),
    (_defn({"type": "unknown"}), "conditions.0.type"),
    (_defn({"type": "profile", "field": "shoe_size", "op": "eq", "value": 1}), "conditions.0.field"),
    (_defn({"type": "profile", "field": "kind", "op": "eq", "value": "martian"}), "conditions.0.value"),
    (_defn({"type": "event", "event_type": "x", "op": "at_least", "count": "two"}), "conditions.0.count"),
    (_defn({"type": "order", "measure": "total", "op": "gte", "value": -5}), "conditions.0.value"),
    (_defn({"type": "profile", "field": "created_at", "op": "before", "value": "yesterday"}), "conditions.0.value"),
    (_defn({"type": "group", "match": "any", "conditions": [{"type": "consent", "purpose": "x"}]}),
     "conditions.0.conditions.0.purpose"),
    (_defn({"type": "profile", "field": "kind", "op": "eq", "value": "consumer", "tenant_id": 2}), "conditions.0"),
    (_defn({"type": "segment", "segment_id": 999999, "op": "in"}), "definition"),
    ("not a dict", "definition"),
])
def test_invalid_definitions_get_field_errors(definition: Any, path: str, tenant: Tenant) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(tenant=tenant, definition=definition)
    assert path in caught.value.errors, caught.value.errors


def test_a_segment_cannot_reference_itself_through_another(tenant: Tenant) -> None:
    a = services.create_segment(tenant=tenant, actor=None, name="A", definition=_defn(
        {"type": "profile", "field": "kind", "op": "eq", "value": "consumer"}))
    b = services.create_segment(tenant=tenant, actor=None, name="B", definition=_defn(
        {"type": "segment", "segment_id": a.pk, "op": "in"}))
    with pytest.raises(DefinitionError):
        services.update_segment(tenant=tenant, actor=None, segment=a, definition=_defn({"type": "segment", "segment_id": b.pk, "op": "in"}))


def test_other_tenants_segment_cannot_be_referenced(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = other_tenant.seeded["segment"]
    with pytest.raises(DefinitionError):
        validate_definition(tenant=tenant, definition=_defn({"type": "segment", "segment_id": theirs.pk, "op": "in"}))


def test_rebuild_stores_members_history_and_size_and_only_touches_its_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    # given
    people = _people(tenant)
    theirs = other_tenant.seeded["segment"]
    their_members = set(SegmentMembership.objects.for_tenant(other_tenant).values_list("pk", "customer_id"))
    segment = Segment.objects.create(tenant=tenant, name="carts", definition=_defn(
        {"type": "event", "event_type": "add_to_cart", "op": "did"}), depends_on=["event:add_to_cart"])

    # when
    first = membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)
    customer_services.erase_customer(tenant=tenant, actor=None, customer=people["olga"])
    second = membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)

    # then
    assert (first.size, first.entered, first.left) == (2, 2, 0)
    assert (second.size, second.entered, second.left) == (1, 0, 1)
    members = set(SegmentMembership.objects.for_tenant(tenant).filter(segment=segment).values_list("customer_id", flat=True))
    assert members == {people["ivan"].pk}
    changes = list(SegmentChange.objects.for_tenant(tenant).filter(segment=segment).order_by("id").values_list("customer_id", "change"))
    assert changes[-1] == (people["olga"].pk, "left")
    segment.refresh_from_db()
    assert segment.member_count == 1 and segment.status == "ready"
    assert SegmentSize.objects.for_tenant(tenant).get(segment=segment).size == 1
    assert set(SegmentMembership.objects.for_tenant(other_tenant).values_list("pk", "customer_id")) == their_members
    theirs.refresh_from_db()
    assert theirs.member_count == 1


def test_incremental_refresh_moves_a_customer_in_and_out(tenant: Tenant) -> None:
    # given: a built segment of people with two or more carts
    people = _people(tenant)
    segment = Segment.objects.create(tenant=tenant, name="carts2", definition=_defn(
        {"type": "event", "event_type": "add_to_cart", "op": "at_least", "count": 2}), depends_on=["event:add_to_cart"])
    membership.rebuild_segment(tenant=tenant, segment_id=segment.pk)
    unrelated = Segment.objects.create(tenant=tenant, name="vip", definition=_defn(
        {"type": "profile", "field": "tags", "op": "contains", "value": "nobody"}), depends_on=["profile"])
    membership.rebuild_segment(tenant=tenant, segment_id=unrelated.pk)

    # when: Olga adds a second cart
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": "x-9", "type": "add_to_cart", "customer_external_id": "p-2", "occurred_at": timezone.now().isoformat()}])
    result = services.refresh_changed_customers(tenant=tenant, customer_ids=[people["olga"].pk], kinds=["event:add_to_cart"])

    # then: only the segment reading add_to_cart was evaluated, and she entered it
    assert result == {"customers": 1, "segments": 1, "changes": 1}
    segment.refresh_from_db()
    assert segment.member_count == 2
    assert SegmentChange.objects.for_tenant(tenant).filter(segment=segment, customer=people["olga"], change="entered").exists()


def test_segments_built_on_segments_refresh_in_dependency_order(tenant: Tenant) -> None:
    people = _people(tenant)
    base = Segment.objects.create(tenant=tenant, name="base", definition=_defn(
        {"type": "profile", "field": "tags", "op": "contains", "value": "gold"}), depends_on=["profile"])
    derived = Segment.objects.create(tenant=tenant, name="derived", definition=_defn(
        {"type": "segment", "segment_id": base.pk, "op": "in"}), depends_on=[f"segment:{base.pk}"])
    services.rebuild_segments(tenant=tenant)

    customer_services.update_customer(tenant=tenant, customer=people["petr"], data={"tags": ["gold"]})
    services.refresh_changed_customers(tenant=tenant, customer_ids=[people["petr"].pk], kinds=["profile"])

    assert SegmentMembership.objects.for_tenant(tenant).filter(segment=derived, customer=people["petr"]).exists()


def test_changes_queue_one_refresh_task_per_tenant_and_the_task_drains_them(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    from customers import tasks

    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.refresh_customer_segments, "delay", lambda **kw: queued.append(kw))
    freshness._client().delete(*freshness._keys(tenant.pk))

    # when: two changes arrive before the worker runs
    with django_capture_on_commit_callbacks(execute=True):
        freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[3, 1], kinds=["profile"])
    with django_capture_on_commit_callbacks(execute=True):
        freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[2], kinds=["event:signup"])

    # then: one task, which takes both
    assert queued == [{"tenant_id": tenant.pk}]
    assert freshness.take_dirty(tenant_id=tenant.pk) == ([1, 2, 3], {"profile", "event:signup"})
    assert freshness.take_dirty(tenant_id=tenant.pk) == ([], set())


def test_write_services_report_changed_customers(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    noted: list[tuple[list[int], list[str]]] = []
    monkeypatch.setattr(freshness, "customers_changed", lambda **kw: noted.append((sorted(kw["customer_ids"]), sorted(kw["kinds"]))))
    people = _people(tenant)
    customer_services.record_consent(tenant=tenant, customer=people["petr"], channel="email", purpose="marketing",
                                     status="granted", source="api")
    kinds = {k for _ids, ks in noted for k in ks}
    assert {"profile", "event:add_to_cart", "order", "consent"} <= kinds
    assert ([people["petr"].pk], ["consent"]) in noted


def test_builtin_segments_cannot_be_edited_or_deleted(tenant: Tenant) -> None:
    segment = services.sync_builtin_segment(tenant=tenant, key="rfm:lost", kind="rfm", name="RFM: Lost", definition=_defn(
        {"type": "score", "field": "rfm_group", "op": "eq", "value": "lost"}))
    with pytest.raises(Exception, match="Built-in"):
        services.update_segment(tenant=tenant, actor=None, segment=segment, name="Mine now")
    with pytest.raises(Exception, match="Built-in"):
        services.delete_segment(tenant=tenant, actor=None, segment=segment)
