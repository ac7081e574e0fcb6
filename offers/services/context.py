"""Everything about one customer that eligibility, ranking and pricing read, loaded once.

On PostgreSQL this is one statement: the customer row (when asked for by id), segment
memberships, scores, consents, claims, stored recommendations, recent product views, and a
business buyer's negotiated prices and volume tiers. Serving is latency-bound: each round trip
and each ORM query built costs more than the rows, so the API's hot path makes exactly one query
after authentication. Other databases (the embedded SQLite mode) read the same facts through the
ORM, one query each.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from customers.models import Company, Consent, Customer, CustomerScore, Event, SegmentMembership
from customers.services.consent import current_consents, withdrew_in
from offers.models import OfferRequest, PriceList, PriceListItem, Recommendation, VolumeTier
from tenants.models import Tenant

COUNTED_STATUSES = ("new", "in_review", "approved", "fulfilled")  # a declined claim does not use a cap
RECENT_EVENTS = 20  # the latest product views and carts that lift matching offers before retraining
RECENT_DAYS = 30  # older behaviour is the trained model's to weigh; the window also keeps the read short
RECENT_EVENT_TYPES = ("product_view", "add_to_cart")
# The customer fields a by-id read loads; the rest of the instance is deferred (read on access).
_CUSTOMER_FIELDS = ("id", "tenant_id", "kind", "company_id", "erased_at")


@dataclass
class CustomerContext:
    customer: Customer
    company_size: str
    segment_ids: set[int]
    score: Any  # CustomerScore, or the same fields read in one statement
    consents: dict[tuple[str, str], Any]
    claims: Counter[int]
    negotiated: dict[int, Decimal]
    tiers: list[VolumeTier]
    personalized: bool
    recommended: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    recent_products: list[str] = field(default_factory=list)  # SKUs, newest first


def load_context(*, tenant: Tenant, customer: Customer) -> CustomerContext:
    """The context of a customer already loaded (and already known to be this tenant's)."""
    if connection.vendor == "postgresql":
        found = _read_facts(tenant_id=tenant.pk, customer_id=customer.pk, customer=customer)
        if found is None:  # deleted since it was loaded: nothing of it is left to read
            return _empty(customer)
        return found
    return _orm_context(tenant=tenant, customer=customer)


def load_context_for_id(*, tenant: Tenant, customer_id: Any) -> CustomerContext | None:
    """The context of this tenant's customer with this id, or None (another tenant's, or no such
    customer: the caller answers 404 either way)."""
    try:
        pk = int(customer_id)
    except (TypeError, ValueError):
        return None
    if not 0 < pk < 2**63:
        return None
    if connection.vendor == "postgresql":
        return _read_facts(tenant_id=tenant.pk, customer_id=pk, customer=None)
    customer = Customer.objects.for_tenant(tenant).filter(pk=pk).first()
    return _orm_context(tenant=tenant, customer=customer) if customer is not None else None


def _empty(customer: Customer) -> CustomerContext:
    return CustomerContext(customer=customer, company_size="", segment_ids=set(), score=None, consents={}, claims=Counter(),
                           negotiated={}, tiers=[], personalized=True)


def _orm_context(*, tenant: Tenant, customer: Customer) -> CustomerContext:
    segment_ids = set(SegmentMembership.objects.for_tenant(tenant).filter(customer=customer).values_list("segment_id", flat=True))
    score = CustomerScore.objects.for_tenant(tenant).filter(customer=customer).first()
    consents = current_consents(tenant=tenant, customer=customer)
    claims = Counter(dict(
        OfferRequest.objects.for_tenant(tenant).filter(customer=customer, status__in=COUNTED_STATUSES)
        .values_list("offer_id").annotate(n=Count("id")).values_list("offer_id", "n")
    ))
    recommended = {r.offer_id: (r.score, r.reason) for r in Recommendation.objects.for_tenant(tenant).filter(customer=customer)}
    recent = (Event.objects.for_tenant(tenant).filter(customer=customer, type__in=RECENT_EVENT_TYPES,
                                                      occurred_at__gt=timezone.now() - timedelta(days=RECENT_DAYS))
              .order_by("-occurred_at").values_list("properties", flat=True)[:RECENT_EVENTS])
    company_size = ""
    negotiated: dict[int, Decimal] = {}
    tiers: list[VolumeTier] = []
    if customer.company_id:
        company_size = Company.objects.for_tenant(tenant).filter(pk=customer.company_id).values_list("size", flat=True).first() or ""
    if customer.kind == Customer.Kind.BUSINESS_BUYER:
        if customer.company_id:
            items = PriceListItem.objects.for_tenant(tenant).filter(price_list__company_id=customer.company_id, price_list__is_active=True)
            negotiated = {i.product_id: i.price for i in items}
        tiers = list(VolumeTier.objects.for_tenant(tenant).order_by("-min_quantity", "id"))
    return CustomerContext(
        customer=customer, company_size=company_size, segment_ids=segment_ids, score=score, consents=consents, claims=claims,
        negotiated=negotiated, tiers=tiers, personalized=not withdrew_in(consents, purpose=Consent.Purpose.PERSONALIZATION),
        recommended=recommended, recent_products=_skus(recent),
    )


def _skus(properties: Any) -> list[str]:
    return [p["sku"] for p in properties if isinstance(p, dict) and isinstance(p.get("sku"), str) and p["sku"]]


def _table(model: Any) -> str:
    return model._meta.db_table


# Numbers that are money come back as text: JSON numbers would turn them into floats.
_FACTS_SQL = f"""
SELECT c.id, c.tenant_id, c.kind, c.company_id, c.erased_at, coalesce(co.size, ''),
  (SELECT coalesce(json_agg(m.segment_id), '[]') FROM {_table(SegmentMembership)} m
     WHERE m.tenant_id = c.tenant_id AND m.customer_id = c.id),
  (SELECT json_build_object('churn_probability', s.churn_probability, 'expected_value', s.expected_value)
     FROM {_table(CustomerScore)} s WHERE s.tenant_id = c.tenant_id AND s.customer_id = c.id),
  (SELECT coalesce(json_agg(json_build_array(x.channel, x.purpose, x.status, x.occurred_at, x.id)), '[]')
     FROM {_table(Consent)} x WHERE x.tenant_id = c.tenant_id AND x.customer_id = c.id),
  (SELECT coalesce(json_agg(json_build_array(r.offer_id, r.n)), '[]') FROM (
     SELECT q.offer_id, count(*) AS n FROM {_table(OfferRequest)} q
     WHERE q.tenant_id = c.tenant_id AND q.customer_id = c.id AND q.status IN ({", ".join(f"'{s}'" for s in COUNTED_STATUSES)})
     GROUP BY q.offer_id) r),
  (SELECT coalesce(json_agg(json_build_array(e.offer_id, e.score, e.reason)), '[]') FROM {_table(Recommendation)} e
     WHERE e.tenant_id = c.tenant_id AND e.customer_id = c.id),
  (SELECT coalesce(json_agg(v.sku), '[]') FROM (
     SELECT ev.properties ->> 'sku' AS sku FROM {_table(Event)} ev
     WHERE ev.tenant_id = c.tenant_id AND ev.customer_id = c.id AND ev.occurred_at > now() - interval '{RECENT_DAYS} days'
       AND ev.type IN ({", ".join(f"'{t}'" for t in RECENT_EVENT_TYPES)})
     ORDER BY ev.occurred_at DESC LIMIT {RECENT_EVENTS}) v WHERE v.sku IS NOT NULL AND v.sku <> ''),
  CASE WHEN c.kind = 'business_buyer' AND c.company_id IS NOT NULL THEN
    (SELECT json_agg(json_build_array(i.product_id, i.price::text)) FROM {_table(PriceListItem)} i
       JOIN {_table(PriceList)} p ON p.id = i.price_list_id
     WHERE i.tenant_id = c.tenant_id AND p.tenant_id = c.tenant_id AND p.company_id = c.company_id AND p.is_active)
  END,
  CASE WHEN c.kind = 'business_buyer' THEN
    (SELECT json_agg(json_build_array(t.product_id, t.min_quantity, t.percent_off::text) ORDER BY t.min_quantity DESC, t.id)
       FROM {_table(VolumeTier)} t WHERE t.tenant_id = c.tenant_id)
  END
FROM {_table(Customer)} c
LEFT JOIN {_table(Company)} co ON co.id = c.company_id AND co.tenant_id = c.tenant_id
WHERE c.tenant_id = %(t)s AND c.id = %(c)s
"""  # noqa: S608 - constant table names and values; the ids are bound parameters


_PREPARED_NAME = "b2p_customer_facts"
_prepared_on: weakref.WeakSet[Any] = weakref.WeakSet()  # the driver connections that hold the statement


def _fetch_facts(tenant_id: int, customer_id: int) -> tuple[Any, ...] | None:
    """Run the statement, prepared once per connection: planning it took three times as long as
    running it. Behind a transaction-mode pooler (where Django is told to disable server-side
    cursors) a session's prepared statement may be gone on the next query, so it is sent whole."""
    connection.ensure_connection()
    raw = connection.connection
    with connection.cursor() as cursor:
        if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
            cursor.execute(_FACTS_SQL, {"t": tenant_id, "c": customer_id})
            return cursor.fetchone()
        if raw not in _prepared_on:
            cursor.execute(f"PREPARE {_PREPARED_NAME}(bigint, bigint) AS {_FACTS_SQL % {'t': '$1', 'c': '$2'}}")
            _prepared_on.add(raw)
        cursor.execute(f"EXECUTE {_PREPARED_NAME}(%s, %s)", [tenant_id, customer_id])
        return cursor.fetchone()


def _read_facts(*, tenant_id: int, customer_id: int, customer: Customer | None) -> CustomerContext | None:
    row = _fetch_facts(tenant_id, customer_id)
    if row is None:
        return None
    (*fields, company_size, segments, score, consent_rows, claim_rows, recommendation_rows, skus, negotiated_rows, tier_rows) = row
    if customer is None:
        customer = Customer.from_db("default", list(_CUSTOMER_FIELDS), fields)
    consents: dict[tuple[str, str], Any] = {}
    for channel, purpose, status, occurred_at, entry_id in consent_rows:
        entry = SimpleNamespace(channel=channel, purpose=purpose, status=status, occurred_at=parse_datetime(occurred_at), id=entry_id)
        held = consents.get((channel, purpose))
        if held is None or (entry.occurred_at, entry.id) > (held.occurred_at, held.id):
            consents[(channel, purpose)] = entry
    return CustomerContext(
        customer=customer,
        company_size=company_size,
        segment_ids=set(segments),
        score=SimpleNamespace(**score) if score else None,
        consents=consents,
        claims=Counter({offer_id: n for offer_id, n in claim_rows}),
        negotiated={product_id: Decimal(price) for product_id, price in negotiated_rows or ()},
        tiers=[VolumeTier(tenant_id=tenant_id, product_id=product_id, min_quantity=minimum, percent_off=Decimal(percent))
               for product_id, minimum, percent in tier_rows or ()],
        personalized=not withdrew_in(consents, purpose=Consent.Purpose.PERSONALIZATION),
        recommended={offer_id: (value, reason) for offer_id, value, reason in recommendation_rows},
        recent_products=list(skus),
    )
