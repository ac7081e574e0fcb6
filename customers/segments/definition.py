"""Segment definitions: the JSON a builder or an integrator sends, its validation, and its
compilation to one SQL query.

    {"match": "all", "conditions": [
        {"type": "profile", "field": "kind", "op": "eq", "value": "business_buyer"},
        {"type": "attribute", "key": "plan", "op": "eq", "value": "pro"},
        {"type": "company", "field": "size", "op": "in", "value": ["50-249", "250-999"]},
        {"type": "consent", "purpose": "marketing", "channel": "email", "status": "granted"},
        {"type": "event", "event_type": "add_to_cart", "op": "at_least", "count": 2, "within_days": 30},
        {"type": "order", "measure": "total", "op": "gte", "value": 500, "within_days": 365},
        {"type": "score", "field": "churn_probability", "op": "gte", "value": 0.7},
        {"type": "segment", "segment_id": 12, "op": "not_in"},
        {"type": "group", "match": "any", "conditions": [...]}]}

Compilation gives a `Q` over the tenant's customers; every condition on another table is a
subquery on that table, so the whole definition is one statement. With `customer_ids` each
subquery is narrowed to those customers too: the incremental refresh evaluates a few people
without scanning everyone else's events. Negative conditions ("did not", "fewer than", "not in")
are NOT IN over the positive set; the rebuild raises work_mem so PostgreSQL hashes that set.

Rules: erased customers are never members. Order conditions count revenue orders only
(cancelled and refunded ones are not purchases). Consent is the latest ledger entry for the
purpose on the channel or on "all channels", as customers.services.consent.allows decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from b2p_platform.exceptions import DomainError
from customers.models import (
    AttributeDefinition,
    Company,
    Consent,
    Customer,
    CustomerScore,
    Event,
    Order,
    Segment,
    SegmentMembership,
)
from tenants.models import Tenant

MAX_DEPTH = 4
MAX_CONDITIONS = 50

MATCHES = ("all", "any")
CONDITION_TYPES = ("profile", "attribute", "company", "consent", "event", "order", "score", "segment", "group")
TEXT_OPS = ("eq", "neq", "contains", "starts_with", "in", "is_set", "is_not_set")
NUMBER_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "is_set", "is_not_set")
DATE_OPS = ("within_days", "not_within_days", "before", "after", "is_set", "is_not_set")
CHOICE_OPS = ("eq", "neq", "in", "is_set", "is_not_set")
EVENT_OPS = ("did", "did_not", "at_least", "fewer_than")
ORDER_MEASURES = ("count", "total", "days_since_last")
ORDER_OPS = ("gte", "gt", "lte", "lt", "eq")
SEGMENT_OPS = ("in", "not_in")
CONSENT_STATUSES = ("granted", "withdrawn", "unknown")

PROFILE_FIELDS: dict[str, tuple[str, ...]] = {
    "kind": CHOICE_OPS, "external_id": TEXT_OPS, "email": TEXT_OPS, "phone": TEXT_OPS, "first_name": TEXT_OPS,
    "last_name": TEXT_OPS, "locale": TEXT_OPS, "timezone": TEXT_OPS, "company_role": TEXT_OPS,
    "tags": ("contains", "not_contains"), "created_at": DATE_OPS, "first_seen_at": DATE_OPS, "last_seen_at": DATE_OPS,
}
COMPANY_FIELDS: dict[str, tuple[str, ...]] = {
    "name": TEXT_OPS, "industry": TEXT_OPS, "size": CHOICE_OPS, "external_id": TEXT_OPS, "any": ("is_set", "is_not_set"),
}
SCORE_FIELDS: dict[str, tuple[str, ...]] = {
    "rfm_group": CHOICE_OPS, "cluster": CHOICE_OPS, "r_score": NUMBER_OPS, "f_score": NUMBER_OPS, "m_score": NUMBER_OPS,
    "recency_days": NUMBER_OPS, "frequency": NUMBER_OPS, "monetary": NUMBER_OPS, "churn_probability": NUMBER_OPS,
    "expected_purchases": NUMBER_OPS, "expected_value": NUMBER_OPS, "prob_alive": NUMBER_OPS,
}
ATTRIBUTE_OPS: dict[str, tuple[str, ...]] = {
    AttributeDefinition.Type.STRING: TEXT_OPS,
    AttributeDefinition.Type.NUMBER: NUMBER_OPS,
    AttributeDefinition.Type.BOOLEAN: ("eq", "is_set", "is_not_set"),
    AttributeDefinition.Type.DATE: ("before", "after", "is_set", "is_not_set"),
    AttributeDefinition.Type.CHOICE: CHOICE_OPS,
}
NO_VALUE_OPS = ("is_set", "is_not_set")
# Profile fields that event ingestion changes (first/last seen), not profile edits.
SEEN_FIELDS = ("first_seen_at", "last_seen_at")


class DefinitionError(DomainError):
    """An invalid definition, with one message list per path ("conditions.2.value")."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(_("The segment definition is invalid."), field="definition")
        self.errors = errors

    def as_dict(self) -> dict[str, Any]:
        return {"definition": self.errors}


@dataclass
class Validated:
    definition: dict[str, Any]
    depends_on: set[str] = field(default_factory=set)
    segment_ids: set[int] = field(default_factory=set)


class _Checker:
    def __init__(self, *, tenant: Tenant, segment: Segment | None) -> None:
        self.tenant = tenant
        self.segment = segment
        self.errors: dict[str, list[str]] = {}
        self.count = 0
        self.out = Validated(definition={})
        self.attributes = {a.key: a for a in AttributeDefinition.objects.for_tenant(tenant)}

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def group(self, raw: Any, path: str, depth: int) -> dict[str, Any]:
        prefix = f"{path}." if path else ""
        if not isinstance(raw, dict):
            self.error(path or "definition", _("Expected an object with “match” and “conditions”."))
            return {}
        unknown = set(raw) - {"type", "match", "conditions"}
        if unknown:
            self.error(path or "definition", _("Unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(unknown))})
        match = raw.get("match", "all")
        if match not in MATCHES:
            self.error(f"{prefix}match", _("Choose “all” or “any”."))
        conditions = raw.get("conditions")
        if not isinstance(conditions, list) or not conditions:
            self.error(f"{prefix}conditions", _("Add at least one condition."))
            return {"type": "group", "match": match, "conditions": []}
        if depth > MAX_DEPTH:
            self.error(path or "definition", _("Groups nest at most %(n)s deep.") % {"n": MAX_DEPTH})
        checked = [self.condition(c, f"{prefix}conditions.{i}", depth) for i, c in enumerate(conditions)]
        return {"type": "group", "match": match, "conditions": checked}

    def condition(self, raw: Any, path: str, depth: int) -> dict[str, Any]:
        self.count += 1
        if self.count == MAX_CONDITIONS + 1:
            self.error("definition", _("At most %(n)s conditions.") % {"n": MAX_CONDITIONS})
        if not isinstance(raw, dict):
            self.error(path, _("Expected an object."))
            return {}
        kind = raw.get("type")
        if kind == "group":
            return self.group(raw, path, depth + 1)
        handler = getattr(self, f"_{kind}", None) if isinstance(kind, str) and kind in CONDITION_TYPES else None
        if handler is None:
            self.error(f"{path}.type", _("Unknown condition type."))
            return {}
        result: dict[str, Any] = handler(raw, path)
        return result

    def _keys(self, raw: dict[str, Any], path: str, allowed: Iterable[str]) -> None:
        unknown = set(raw) - {"type", *allowed}
        if unknown:
            self.error(path, _("Unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(unknown))})

    def _op(self, raw: dict[str, Any], path: str, ops: tuple[str, ...]) -> str:
        op = raw.get("op")
        if op not in ops:
            self.error(f"{path}.op", _("Choose one of: %(ops)s.") % {"ops": ", ".join(ops)})
        return str(op)

    def _value(self, raw: dict[str, Any], path: str, op: str, kind: str, choices: Iterable[str] = ()) -> Any:
        """The condition's value checked against its type: text, number, days, date, bool or choice."""
        if op in NO_VALUE_OPS:
            return None
        value = raw.get("value")
        where = f"{path}.value"
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > 500:
                self.error(where, _("Give a list of 1 to 500 values."))
                return []
            return [self._scalar(v, where, kind, choices) for v in value]
        if op in ("within_days", "not_within_days"):
            return self._days(value, where)
        if op in ("before", "after"):
            return self._date(value, where)
        return self._scalar(value, where, kind, choices)

    def _scalar(self, value: Any, where: str, kind: str, choices: Iterable[str]) -> Any:
        choices = list(choices)
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.error(where, _("Enter a number."))
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                self.error(where, _("Enter true or false."))
            return value
        if kind == "int_choice":
            if isinstance(value, bool) or not isinstance(value, int):
                self.error(where, _("Enter a whole number."))
            return value
        if not isinstance(value, str) or not value.strip() or len(value) > 300:
            self.error(where, _("Enter a text of 1 to 300 characters."))
            return value
        if choices and value not in choices:
            self.error(where, _("Choose one of: %(choices)s.") % {"choices": ", ".join(choices)})
        return value.strip()

    def _days(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36500:
            self.error(where, _("Enter a whole number of days between 1 and 36500."))
        return value

    def _date(self, value: Any, where: str) -> Any:
        try:
            return date.fromisoformat(value).isoformat() if isinstance(value, str) else self.error(where, _("Enter a date as YYYY-MM-DD."))
        except ValueError:
            self.error(where, _("Enter a date as YYYY-MM-DD."))
            return value

    def _within(self, raw: dict[str, Any], path: str) -> int | None:
        if raw.get("within_days") in (None, ""):
            return None
        return int(self._days(raw.get("within_days"), f"{path}.within_days") or 0)

    def _profile(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("field", "op", "value"))
        name = raw.get("field")
        if name not in PROFILE_FIELDS:
            self.error(f"{path}.field", _("Unknown profile field."))
            return {}
        op = self._op(raw, path, PROFILE_FIELDS[name])
        kind = "date" if name.endswith("_at") else "text"
        choices = Customer.Kind.values if name == "kind" else ()
        value = self._value(raw, path, op, kind, choices)
        if name == "tags" and isinstance(value, str):
            value = value.lower()
        self.out.depends_on.add("seen" if name in SEEN_FIELDS else "profile")
        if op in ("within_days", "not_within_days"):
            self.out.depends_on.add("time")
        return {"type": "profile", "field": name, "op": op, "value": value}

    def _attribute(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("key", "op", "value"))
        key = raw.get("key")
        if not isinstance(key, str) or not key.strip():
            self.error(f"{path}.key", _("Name the attribute."))
            return {}
        definition = self.attributes.get(key)
        if definition is None:
            # An attribute nobody defined: its type is whatever the value's JSON type is.
            sample = raw.get("value")
            sample = sample[0] if isinstance(sample, list) and sample else sample
            attr_type = ("boolean" if isinstance(sample, bool) else "number" if isinstance(sample, (int, float))
                         else AttributeDefinition.Type.STRING)
            ops = tuple(dict.fromkeys(ATTRIBUTE_OPS[attr_type] + ATTRIBUTE_OPS[AttributeDefinition.Type.NUMBER]))
        else:
            attr_type = definition.type
            ops = ATTRIBUTE_OPS[attr_type]
        op = self._op(raw, path, ops)
        kind = {"number": "number", "boolean": "boolean", "date": "date"}.get(attr_type, "text")
        choices = definition.choices if definition and attr_type == AttributeDefinition.Type.CHOICE else ()
        self.out.depends_on.add("profile")
        return {"type": "attribute", "key": key, "op": op, "value": self._value(raw, path, op, kind, choices)}

    def _company(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("field", "op", "value"))
        name = raw.get("field")
        if name not in COMPANY_FIELDS:
            self.error(f"{path}.field", _("Unknown company field."))
            return {}
        op = self._op(raw, path, COMPANY_FIELDS[name])
        choices = Company.Size.values if name == "size" else ()
        self.out.depends_on.add("profile")
        return {"type": "company", "field": name, "op": op, "value": self._value(raw, path, op, "text", choices)}

    def _consent(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("purpose", "channel", "status"))
        purpose, channel, status = raw.get("purpose"), raw.get("channel", "all"), raw.get("status", "granted")
        if purpose not in Consent.Purpose.values:
            self.error(f"{path}.purpose", _("Choose one of: %(c)s.") % {"c": ", ".join(Consent.Purpose.values)})
        if channel not in Consent.Channel.values:
            self.error(f"{path}.channel", _("Choose one of: %(c)s.") % {"c": ", ".join(Consent.Channel.values)})
        if status not in CONSENT_STATUSES:
            self.error(f"{path}.status", _("Choose one of: %(c)s.") % {"c": ", ".join(CONSENT_STATUSES)})
        self.out.depends_on.add("consent")
        return {"type": "consent", "purpose": purpose, "channel": channel, "status": status}

    def _event(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("event_type", "op", "count", "within_days"))
        event_type = raw.get("event_type")
        if not isinstance(event_type, str) or not event_type.strip() or len(event_type) > 64:
            self.error(f"{path}.event_type", _("Name the event type."))
            event_type = ""
        op = self._op(raw, path, EVENT_OPS)
        count = 1
        if op in ("at_least", "fewer_than"):
            count = raw.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
                self.error(f"{path}.count", _("Enter a whole number of times, at least 1."))
                count = 1
        within = self._within(raw, path)
        self.out.depends_on.add(f"event:{event_type}")
        if within:
            self.out.depends_on.add("time")
        return {"type": "event", "event_type": event_type, "op": op, "count": count, "within_days": within}

    def _order(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("measure", "op", "value", "within_days"))
        measure = raw.get("measure")
        if measure not in ORDER_MEASURES:
            self.error(f"{path}.measure", _("Choose one of: %(c)s.") % {"c": ", ".join(ORDER_MEASURES)})
        op = self._op(raw, path, ORDER_OPS)
        value = raw.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.error(f"{path}.value", _("Enter a number, 0 or more."))
        within = self._within(raw, path)
        if measure == "days_since_last" and within:
            self.error(f"{path}.within_days", _("A window does not apply to days since the last order."))
        self.out.depends_on.add("order")
        if within or measure == "days_since_last":
            self.out.depends_on.add("time")
        return {"type": "order", "measure": measure, "op": op, "value": value, "within_days": within}

    def _score(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("field", "op", "value"))
        name = raw.get("field")
        if name not in SCORE_FIELDS:
            self.error(f"{path}.field", _("Unknown prediction field."))
            return {}
        op = self._op(raw, path, SCORE_FIELDS[name])
        kind = "text" if name == "rfm_group" else "int_choice" if name == "cluster" else "number"
        self.out.depends_on.add("score")
        return {"type": "score", "field": name, "op": op, "value": self._value(raw, path, op, kind)}

    def _segment(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        self._keys(raw, path, ("segment_id", "op"))
        segment_id = raw.get("segment_id")
        op = self._op(raw, path, SEGMENT_OPS)
        if isinstance(segment_id, bool) or not isinstance(segment_id, int):
            self.error(f"{path}.segment_id", _("Choose a segment."))
            return {}
        self.out.segment_ids.add(segment_id)
        self.out.depends_on.add(f"segment:{segment_id}")
        return {"type": "segment", "segment_id": segment_id, "op": op}


def validate_definition(*, tenant: Tenant, definition: Any, segment: Segment | None = None) -> Validated:
    """Check a definition's shape, types and references; raise DefinitionError with every problem."""
    checker = _Checker(tenant=tenant, segment=segment)
    root = checker.group(definition, "", 1)
    known = dict(Segment.objects.for_tenant(tenant).filter(pk__in=checker.out.segment_ids).values_list("pk", "definition"))
    for missing in sorted(checker.out.segment_ids - set(known)):
        checker.error("definition", _("Segment %(id)s does not exist.") % {"id": missing})
    if segment is not None and segment.pk and _reaches(tenant, start=checker.out.segment_ids, target=segment.pk):
        checker.error("definition", _("A segment cannot include itself, directly or through other segments."))
    if checker.errors:
        raise DefinitionError(checker.errors)
    checker.out.definition = {"match": root["match"], "conditions": root["conditions"]}
    return checker.out


def _reaches(tenant: Tenant, *, start: set[int], target: int) -> bool:
    """Does following segment references from `start` arrive at `target`? (cycle check)"""
    seen: set[int] = set()
    frontier = set(start)
    while frontier:
        if target in frontier:
            return True
        seen |= frontier
        rows = Segment.objects.for_tenant(tenant).filter(pk__in=frontier).values_list("depends_on", flat=True)
        frontier = {int(dep.split(":", 1)[1]) for deps in rows for dep in deps if dep.startswith("segment:")} - seen
    return False


# Compilation ------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, *, tenant: Tenant, customer_ids: list[int] | None, now: datetime) -> None:
        self.tenant = tenant
        self.customer_ids = customer_ids
        self.now = now

    @staticmethod
    def absent(queryset: QuerySet[Any]) -> Q:
        """Customers with no row in `queryset`: NOT EXISTS, which PostgreSQL runs as a hash anti-join
        (NOT IN over a large set falls back to a per-row rescan once the set outgrows work_mem)."""
        return Q(~Exists(queryset.filter(customer_id=OuterRef("pk"))))

    def narrow(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.customer_ids is not None:
            return queryset.filter(customer_id__in=self.customer_ids)
        return queryset

    def group(self, node: dict[str, Any]) -> Q:
        parts = [self.condition(c) for c in node["conditions"]]
        combined = parts[0]
        for part in parts[1:]:
            combined = (combined & part) if node["match"] == "all" else (combined | part)
        return combined

    def condition(self, node: dict[str, Any]) -> Q:
        handler = getattr(self, f"_{node['type']}")
        return handler(node) if node["type"] != "group" else self.group(node)

    def _group(self, node: dict[str, Any]) -> Q:
        return self.group(node)

    def _field(self, lookup: str, op: str, value: Any, *, is_text: bool = True) -> Q:
        """One field compared with op; text is compared case-insensitively."""
        if op == "is_set":
            return ~Q(**{f"{lookup}__isnull": True}) & ~Q(**{lookup: ""}) if is_text else Q(**{f"{lookup}__isnull": False})
        if op == "is_not_set":
            return Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""}) if is_text else Q(**{f"{lookup}__isnull": True})
        if op in ("within_days", "not_within_days"):
            since = self.now - timedelta(days=value)
            return Q(**{f"{lookup}__gte": since}) if op == "within_days" else Q(**{f"{lookup}__lt": since})
        if op in ("before", "after"):
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=timezone.get_current_timezone())
            return Q(**{f"{lookup}__lt": moment}) if op == "before" else Q(**{f"{lookup}__gte": moment + timedelta(days=1)})
        suffix = {"eq": "__iexact" if is_text else "", "contains": "__icontains", "starts_with": "__istartswith",
                  "in": "__in", "gt": "__gt", "gte": "__gte", "lt": "__lt", "lte": "__lte", "neq": "__iexact" if is_text else ""}[op]
        q = Q(**{f"{lookup}{suffix}": value})
        return ~q if op == "neq" else q

    def _profile(self, node: dict[str, Any]) -> Q:
        name, op, value = node["field"], node["op"], node["value"]
        if name == "tags":
            tagged = Customer.objects.for_tenant(self.tenant).with_tag(value)
            return Q(pk__in=tagged.values("pk")) if op == "contains" else ~Q(pk__in=tagged.filter(pk=OuterRef("pk")).values("pk"))
        if name == "kind" and op in ("eq", "neq", "in"):
            q = Q(kind__in=value) if op == "in" else Q(kind=value)
            return ~q if op == "neq" else q
        return self._field(name, op, value, is_text=not name.endswith("_at"))

    def _attribute(self, node: dict[str, Any]) -> Q:
        key, op, value = node["key"], node["op"], node["value"]
        lookup = f"attributes__{key}"
        if op == "is_set":
            return Q(**{"attributes__has_key": key}) & ~Q(**{lookup: None})
        if op == "is_not_set":
            return ~Q(**{"attributes__has_key": key}) | Q(**{lookup: None})
        if op in ("before", "after"):
            # Dates are stored as ISO text, which sorts like the dates themselves.
            return Q(**{f"{lookup}__lt": value}) if op == "before" else Q(**{f"{lookup}__gt": value})
        if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
            return self._field(lookup, op, value, is_text=True) & Q(attributes__has_key=key)
        if op in ("eq", "neq"):
            q = Q(attributes__contains={key: value})  # GIN-indexed containment on PostgreSQL
            return ~q if op == "neq" else q
        return self._field(lookup, op, value, is_text=False)

    def _company(self, node: dict[str, Any]) -> Q:
        name, op, value = node["field"], node["op"], node["value"]
        if name == "any":
            return Q(company__isnull=op == "is_not_set")
        if name == "size" and op in ("eq", "neq", "in"):
            q = Q(company__size__in=value) if op == "in" else Q(company__size=value)
            return ~q & Q(company__isnull=False) if op == "neq" else q
        q = self._field(f"company__{name}", op, value)
        return q if op != "neq" else q & Q(company__isnull=False)

    def _consent(self, node: dict[str, Any]) -> Q:
        purpose, channel, status = node["purpose"], node["channel"], node["status"]
        channels = [channel] if channel == Consent.Channel.ALL else [channel, Consent.Channel.ALL]
        relevant = self.narrow(Consent.objects.for_tenant(self.tenant).filter(purpose=purpose, channel__in=channels))
        later = Consent.objects.for_tenant(self.tenant).filter(
            customer_id=OuterRef("customer_id"), purpose=purpose, channel__in=channels,
        ).filter(Q(occurred_at__gt=OuterRef("occurred_at")) | Q(occurred_at=OuterRef("occurred_at"), id__gt=OuterRef("id")))
        if status == "unknown":
            return self.absent(relevant)
        latest = relevant.filter(status=status).filter(~Exists(later))
        return Q(pk__in=latest.values("customer_id"))

    def _event(self, node: dict[str, Any]) -> Q:
        events = self.narrow(Event.objects.for_tenant(self.tenant).filter(type=node["event_type"]))
        if node.get("within_days"):
            events = events.filter(occurred_at__gte=self.now - timedelta(days=node["within_days"]))
        threshold = node.get("count", 1) if node["op"] in ("at_least", "fewer_than") else 1
        if threshold <= 1:
            return Q(pk__in=events.values("customer_id")) if node["op"] in ("did", "at_least") else self.absent(events)
        who = events.values("customer_id").annotate(n=Count("id")).filter(n__gte=threshold).values("customer_id")
        return Q(pk__in=who) if node["op"] in ("did", "at_least") else ~Q(pk__in=who)

    def _order(self, node: dict[str, Any]) -> Q:
        orders = self.narrow(Order.objects.for_tenant(self.tenant).filter(status__in=Order.REVENUE_STATUSES))
        measure, op, value = node["measure"], node["op"], node["value"]
        if measure == "days_since_last":
            # days since = whole days between the last order and now; never-buyers have none.
            edge = self.now - timedelta(days=value)
            after = {"lte": "ordered_at__gte", "lt": "ordered_at__gt", "gte": "ordered_at__gt", "gt": "ordered_at__gte",
                     "eq": "ordered_at__gt"}[op]
            since_edge = orders.filter(**{after: edge}).values("customer_id")
            if op in ("lte", "lt"):
                return Q(pk__in=since_edge)
            bought = orders.values("customer_id") if op != "eq" else orders.filter(
                ordered_at__gt=edge - timedelta(days=1)).values("customer_id")
            return Q(pk__in=bought) & self.absent(orders.filter(**{after: edge}))
        if node.get("within_days"):
            orders = orders.filter(ordered_at__gte=self.now - timedelta(days=node["within_days"]))
        aggregate = Count("id") if measure == "count" else Sum("total")
        grouped = orders.values("customer_id").annotate(m=aggregate)
        # Customers without orders have count 0 and total 0: "fewer/less than" must include them,
        # so those ops are the complement of the opposite positive set.
        if op in ("gte", "gt"):
            return Q(pk__in=grouped.filter(**{f"m__{op}": value}).values("customer_id"))
        if op in ("lte", "lt"):
            opposite = "gt" if op == "lte" else "gte"
            return ~Q(pk__in=grouped.filter(**{f"m__{opposite}": value}).values("customer_id"))
        if value == 0:
            return ~Q(pk__in=grouped.filter(m__gt=0).values("customer_id"))
        return Q(pk__in=grouped.filter(m=value).values("customer_id"))

    def _score(self, node: dict[str, Any]) -> Q:
        name, op, value = node["field"], node["op"], node["value"]
        scores = self.narrow(CustomerScore.objects.for_tenant(self.tenant))
        if op in ("is_set", "is_not_set"):
            having = scores.exclude(rfm_group="") if name == "rfm_group" else scores.filter(**{f"{name}__isnull": False})
            return Q(pk__in=having.values("customer_id")) if op == "is_set" else self.absent(having)
        if op == "neq":
            return self.absent(scores.filter(**{name: value}))
        matching = scores.filter(self._field(name, op, value, is_text=False))
        return Q(pk__in=matching.values("customer_id"))

    def _segment(self, node: dict[str, Any]) -> Q:
        members = self.narrow(SegmentMembership.objects.for_tenant(self.tenant).filter(segment_id=node["segment_id"]))
        return Q(pk__in=members.values("customer_id")) if node["op"] == "in" else self.absent(members)


@contextmanager
def query_settings() -> Iterator[None]:
    """Run segment queries in a transaction with room to hash large id sets (NOT IN over an
    aggregate: "fewer than N times", "spent less than X")."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '256MB'")
        yield


def compile_definition(
    *, tenant: Tenant, definition: dict[str, Any], customer_ids: list[int] | None = None, now: datetime | None = None,
) -> QuerySet[Customer]:
    """The tenant's customers a validated definition selects, as one query (ids only)."""
    compiler = _Compiler(tenant=tenant, customer_ids=customer_ids, now=now or timezone.now())
    customers = Customer.objects.for_tenant(tenant).filter(erased_at__isnull=True)
    if customer_ids is not None:
        customers = customers.filter(pk__in=customer_ids)
    return customers.filter(compiler.group({"match": definition["match"], "conditions": definition["conditions"]}))

