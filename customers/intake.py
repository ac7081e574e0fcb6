"""Validation of incoming customers, events and orders, shared by the API and CSV imports.

Pure functions, no database: each `clean_*` returns a normalised dict or raises `RowInvalid`
with field errors. They are written for throughput (tens of thousands of rows a second), so
they avoid DRF serializers on the hot path while giving the same kind of field errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.dateparse import parse_datetime
from django.utils.timezone import now

MAX_BATCH = 1000
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")
PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")
FUTURE_TOLERANCE = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOMER_FIELDS = {
    "external_id", "kind", "email", "phone", "first_name", "last_name", "locale", "timezone",
    "company", "company_role", "tags", "attributes",
}
COMPANY_FIELDS = {"external_id", "name", "industry", "size"}
EVENT_FIELDS = {"event_id", "type", "customer_id", "customer_external_id", "email", "occurred_at", "properties"}
ORDER_FIELDS = {"external_id", "customer_id", "customer_external_id", "email", "status", "currency", "total", "ordered_at", "lines"}
LINE_FIELDS = {"sku", "name", "quantity", "unit_price"}
MAX_PROPERTIES = 8000  # characters of an event's properties as compact JSON
BIGINT_MAX = 2**63 - 1
_EVENT_TYPE_MATCH = EVENT_TYPE_RE.match
_PHONE_NOISE = re.compile(r"[\s().-]")
_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TAG_SEPARATORS = re.compile(r"[,;|]")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Addresses of the everyday shape, which Django's validate_email accepts (a subset of its dot-atom
# user part, host labels and letter TLD); anything else is left to validate_email itself.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,63}"
).fullmatch
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 itself, not an escaped backslash before "u0000"
# What json.dumps(default=str) writes: datetimes and dataclasses through str(), as it does.
_ORJSON_AS_JSON_DUMPS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_TIMEZONES = frozenset(zoneinfo.available_timezones())


_DECIMAL_LIMIT = Decimal(10) ** 12
_QUANTUM = {places: Decimal(1).scaleb(-places) for places in (2, 3, 4)}


@functools.cache
def _choices(choices: type[Any]) -> tuple[str, ...]:
    """A TextChoices' values; Django's `.values` builds the list anew on every access."""
    return tuple(choices.values)


class RowInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise RowInvalid(self.errors)


def _unknown(data: dict[str, Any], allowed: set[str], errors: _Errors, prefix: str = "") -> None:
    for key in data:
        if key not in allowed:
            errors.add(f"{prefix}{key}", "Unknown field.")


def _text(value: Any, field: str, errors: _Errors, *, max_length: int, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            errors.add(field, "This field is required.")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.add(field, "Must be a string.")
        return ""
    text = str(value).strip()
    if len(text) > max_length:
        errors.add(field, f"At most {max_length} characters.")
    if "\x00" in text:  # PostgreSQL text cannot hold it: a clear error, not a failed batch
        errors.add(field, "Must not contain NUL characters.")
    return text


def normalize_email(value: Any, field: str, errors: _Errors) -> str:
    email = _text(value, field, errors, max_length=254).lower()
    if email and not _PLAIN_EMAIL(email):
        try:
            validate_email(email)
        except ValidationError:
            errors.add(field, "Enter a valid email address.")
    return email


def normalize_phone(value: Any, field: str, errors: _Errors) -> str:
    raw = _text(value, field, errors, max_length=40)
    if not raw:
        return ""
    phone = _PHONE_NOISE.sub("", raw)
    if not PHONE_RE.match(phone):
        errors.add(field, "Enter a phone number of digits, optionally starting with +.")
    return phone


def parse_moment(value: Any, field: str, errors: _Errors, *, required: bool = True, default_now: bool = False,
                 reference: datetime | None = None) -> datetime | None:
    """An aware datetime not in the future (beyond clock skew) and not before 1970. `reference` is
    "now" (a batch passes its own once, instead of reading the clock twice per row)."""
    if value in (None, ""):
        if default_now:
            return reference or now()
        if required:
            errors.add(field, "This field is required.")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            # fromisoformat is C-fast and takes "Z" on 3.11; parse_datetime covers the rest.
            moment = datetime.fromisoformat(value)
        except ValueError:
            try:
                moment = parse_datetime(value.strip())
            except ValueError:
                moment = None
        if moment is None:
            errors.add(field, "Use an ISO 8601 date and time, e.g. 2026-05-01T12:30:00Z.")
            return None
    else:
        errors.add(field, "Use an ISO 8601 date and time, e.g. 2026-05-01T12:30:00Z.")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > (reference or now()) + FUTURE_TOLERANCE:
        errors.add(field, "Must not be in the future.")
    elif moment < EARLIEST:
        errors.add(field, "Must not be before 1970.")
    return moment


def parse_decimal(value: Any, field: str, errors: _Errors, *, min_value: Decimal | None = None, places: int = 2) -> Decimal | None:
    if value in (None, "") or isinstance(value, bool):
        errors.add(field, "A number is required.")
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors.add(field, "A number is required.")
        return None
    if not number.is_finite() or abs(number) >= _DECIMAL_LIMIT:
        errors.add(field, "The number is out of range.")
        return None
    if min_value is not None and number < min_value:
        errors.add(field, f"Must be at least {min_value}.")
    return number.quantize(_QUANTUM[places] if places in _QUANTUM else Decimal(1).scaleb(-places))


def clean_company(raw: Any, errors: _Errors) -> dict[str, Any] | None:
    from customers.models import Company

    if raw in (None, ""):
        return None
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        errors.add("company", "Must be an object with name (and external_id, industry, size).")
        return None
    _unknown(raw, COMPANY_FIELDS, errors, "company.")
    company = {
        "external_id": _text(raw.get("external_id"), "company.external_id", errors, max_length=128),
        "name": _text(raw.get("name"), "company.name", errors, max_length=200, required=True),
        "industry": _text(raw.get("industry"), "company.industry", errors, max_length=100),
        "size": _text(raw.get("size"), "company.size", errors, max_length=10),
    }
    sizes = _choices(Company.Size)
    if company["size"] and company["size"] not in sizes:
        errors.add("company.size", f"Choose one of {', '.join(sizes)}.")
    return company


def clean_attributes(raw: Any, definitions: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    """Defined attributes are type-checked; undefined keys are kept as given (JSON scalars)."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        errors.add("attributes", "Must be an object of key: value.")
        return {}
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        field = f"attributes.{key}"
        if not isinstance(key, str) or not _ATTRIBUTE_KEY.match(key):
            errors.add("attributes", f"Invalid attribute name {key!r}.")
            continue
        definition = definitions.get(key)
        if value is None:
            cleaned[key] = None
        elif definition is None:
            if isinstance(value, dict | list):
                errors.add(field, "Attribute values must be text, numbers or true/false.")
            else:
                cleaned[key] = value
        else:
            cleaned[key] = _typed_attribute(value, definition, field, errors)
    return cleaned


def _typed_attribute(value: Any, definition: Any, field: str, errors: _Errors) -> Any:
    kind = definition.type
    if kind == "number":
        if isinstance(value, bool):
            errors.add(field, "Must be a number.")
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            errors.add(field, "Must be a number.")
            return None
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "да"):
            return True
        if text in ("false", "0", "no", "нет"):
            return False
        errors.add(field, "Must be true or false.")
        return None
    if kind == "date":
        try:
            return datetime.strptime(str(value).strip()[:10], "%Y-%m-%d").date().isoformat()
        except ValueError:
            errors.add(field, "Use a date like 2026-05-01.")
            return None
    text = str(value).strip()
    if kind == "choice" and text not in definition.choices:
        errors.add(field, f"Choose one of: {', '.join(map(str, definition.choices))}.")
    if len(text) > 500:
        errors.add(field, "At most 500 characters.")
    return text


def clean_tags(raw: Any, errors: _Errors) -> list[str]:
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        raw = _TAG_SEPARATORS.split(raw)
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        errors.add("tags", "Must be a list of strings.")
        return []
    tags = sorted({t.strip().lower() for t in raw if t.strip()})
    if any(len(t) > 50 for t in tags) or len(tags) > 50:
        errors.add("tags", "At most 50 tags of at most 50 characters.")
    return tags


def clean_customer(raw: Any, *, definitions: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """A customer's fields, normalised. With `partial`, only the fields present are returned."""
    from customers.models import Customer

    errors = _Errors()
    if not isinstance(raw, dict):
        raise RowInvalid({"non_field_errors": ["Each customer must be a JSON object."]})
    _unknown(raw, CUSTOMER_FIELDS, errors)
    cleaned: dict[str, Any] = {}
    present = set(raw) if partial else CUSTOMER_FIELDS
    if "external_id" in present:
        cleaned["external_id"] = _text(raw.get("external_id"), "external_id", errors, max_length=128, required=not partial)
        if cleaned["external_id"] and not SLUG_RE.match(cleaned["external_id"]):
            errors.add("external_id", "Use letters, digits and . _ : @ / - only.")
    if "kind" in present:
        kind = raw.get("kind") or Customer.Kind.CONSUMER
        kinds = _choices(Customer.Kind)
        if kind not in kinds:
            errors.add("kind", f"Choose one of {', '.join(kinds)}.")
        cleaned["kind"] = kind
    if "email" in present:
        cleaned["email"] = normalize_email(raw.get("email"), "email", errors)
    if "phone" in present:
        cleaned["phone"] = normalize_phone(raw.get("phone"), "phone", errors)
    for name, max_length in (("first_name", 100), ("last_name", 100), ("company_role", 64), ("locale", 8)):
        if name in present:
            cleaned[name] = _text(raw.get(name), name, errors, max_length=max_length)
    if "timezone" in present:
        cleaned["timezone"] = _text(raw.get("timezone"), "timezone", errors, max_length=64)
        if cleaned["timezone"] and cleaned["timezone"] not in _TIMEZONES:
            errors.add("timezone", "Unknown time zone.")
    if "company" in present:
        cleaned["company"] = clean_company(raw.get("company"), errors)
    if "tags" in present:
        cleaned["tags"] = clean_tags(raw.get("tags"), errors)
    if "attributes" in present:
        cleaned["attributes"] = clean_attributes(raw.get("attributes"), definitions, errors)
    errors.raise_if_any()
    return cleaned


def _customer_ref(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    customer_id = raw.get("customer_id")
    if customer_id is not None and customer_id != "":
        try:
            ref["customer_id"] = int(customer_id)
        except (TypeError, ValueError):
            errors.add("customer_id", "Must be an integer.")
        else:
            if not -BIGINT_MAX <= ref["customer_id"] <= BIGINT_MAX:  # a database error later, not a 500
                del ref["customer_id"]
                errors.add("customer_id", "Must be an integer.")
    external_id = raw.get("customer_external_id")
    if external_id is not None and external_id != "":
        text = _text(external_id, "customer_external_id", errors, max_length=128)
        if text:  # blank once stripped is no reference (a profile with an empty id would be created)
            ref["customer_external_id"] = text
    email = raw.get("email")
    if email is not None and email != "":
        ref["email"] = normalize_email(email, "email", errors)
    if not ref and not errors.errors:
        errors.add("customer_external_id", "Name the customer: customer_id, customer_external_id or email.")
    return ref


def derived_event_id(ref: dict[str, Any], event_type: str, occurred_at: datetime, properties: dict[str, Any]) -> str:
    """For events sent without an id: the same event sent twice gets the same id."""
    body = json.dumps([sorted(ref.items()), event_type, occurred_at.isoformat(), properties], sort_keys=True, default=str)
    return "h:" + hashlib.sha256(body.encode()).hexdigest()[:40]


def properties_json(properties: dict[str, Any], errors: _Errors, field: str = "properties") -> str:
    """Compact JSON of an event's properties, at most MAX_PROPERTIES characters as json.dumps
    writes them (non-ASCII as \\uXXXX escapes: the rule since the start), in the text PostgreSQL
    stores (no NUL). orjson writes it ten times faster; json.dumps takes over for what orjson
    refuses (integers over 64 bits, keys that are not strings)."""
    try:
        data = orjson.dumps(properties, default=str, option=_ORJSON_AS_JSON_DUMPS)
    except TypeError:
        data = None
    if data is None or len(data) * 3 > MAX_PROPERTIES:
        # Near the limit (json.dumps writes at most three characters per UTF-8 byte): measure exactly.
        try:
            text = json.dumps(properties, default=str, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            errors.add(field, "Must be a JSON object of text, numbers, true/false, lists and objects.")
            return "{}"
        if len(text) > MAX_PROPERTIES:
            errors.add(field, "At most 8 KB of properties.")
            return "{}"
        if data is None:
            data = text.encode()
    if b"\\u0000" in data and _JSON_NUL.search(data):  # valid JSON, but PostgreSQL's jsonb cannot hold a NUL
        errors.add(field, "Must not contain NUL characters.")
        return "{}"
    return data.decode()


_EVENT_TYPE_MESSAGE = "Use a lower-case name such as page_view (letters, digits, _ . : -)."


def clean_event(raw: Any, *, reference: datetime | None = None) -> dict[str, Any]:
    """One event, normalised. `reference` is "now" for the batch: the default occurred_at and
    the limit of "not in the future". The hot path of ingestion: the common shape (an external
    id, an ISO time, small properties) is checked in a couple of µs by `_clean_common_event`;
    anything else, valid or not, takes the full path, which names every error."""
    if reference is None:
        reference = now()
    if type(raw) is dict and EVENT_FIELDS.issuperset(raw):
        event = _clean_common_event(raw, reference)
        if event is not None:
            return event
    if not isinstance(raw, dict):
        raise RowInvalid({"non_field_errors": ["Each event must be a JSON object."]})
    errors = _Errors()
    if not EVENT_FIELDS.issuperset(raw):
        _unknown(raw, EVENT_FIELDS, errors)
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not _EVENT_TYPE_MATCH(event_type):
        errors.add("type", _EVENT_TYPE_MESSAGE)
    ref = _customer_ref(raw, errors)
    occurred_at = parse_moment(raw.get("occurred_at"), "occurred_at", errors, default_now=True, reference=reference)
    properties = raw.get("properties") or {}
    properties_text = "{}"
    if not isinstance(properties, dict):
        errors.add("properties", "Must be an object.")
    elif properties:
        properties_text = properties_json(properties, errors)
    event_id = raw.get("event_id")
    if event_id is not None and event_id != "":
        event_id = _text(event_id, "event_id", errors, max_length=128)
    if errors.errors:
        raise RowInvalid(errors.errors)
    assert occurred_at is not None
    return {
        "event_id": event_id or derived_event_id(ref, event_type, occurred_at, properties),
        "type": event_type,
        "occurred_at": occurred_at,
        "properties": properties,
        "properties_json": properties_text,
        **ref,
    }



def _clean_common_event(raw: dict[str, Any], reference: datetime) -> dict[str, Any] | None:
    """clean_event's result for a valid event of the common shape, or None to take the full path.
    Must accept nothing the full path refuses and return exactly what it returns."""
    event_type = raw.get("type")
    if type(event_type) is not str or not _EVENT_TYPE_MATCH(event_type) or "customer_id" in raw or "email" in raw:
        return None
    external_id = raw.get("customer_external_id")
    if type(external_id) is not str:
        return None
    external_id = external_id.strip()
    if not external_id or len(external_id) > 128 or "\x00" in external_id:
        return None
    occurred = raw.get("occurred_at")
    if occurred is None or occurred == "":
        occurred_at = reference
    elif type(occurred) is str or type(occurred) is datetime:  # text from the API, a datetime from the CSV import's parser
        if type(occurred) is datetime:
            occurred_at = occurred
        else:
            try:
                occurred_at = datetime.fromisoformat(occurred)
            except ValueError:
                return None
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        if occurred_at > reference + FUTURE_TOLERANCE or occurred_at < EARLIEST:
            return None
    else:
        return None
    properties = raw.get("properties") or {}
    if type(properties) is not dict:
        return None
    properties_text = "{}"
    if properties:
        try:
            data = orjson.dumps(properties, default=str, option=_ORJSON_AS_JSON_DUMPS)
        except TypeError:
            return None
        if len(data) * 3 > MAX_PROPERTIES or b"\\u0000" in data:
            return None
        properties_text = data.decode()
    event_id = raw.get("event_id")
    if event_id is None or event_id == "":
        event_id = ""
    elif type(event_id) is str:
        event_id = event_id.strip()
        if len(event_id) > 128 or "\x00" in event_id:
            return None
    else:
        return None
    return {
        "event_id": event_id or derived_event_id({"customer_external_id": external_id}, event_type, occurred_at, properties),
        "type": event_type,
        "occurred_at": occurred_at,
        "properties": properties,
        "properties_json": properties_text,
        "customer_external_id": external_id,
    }

def clean_order(raw: Any, *, default_currency: str) -> dict[str, Any]:
    from customers.models import Order

    errors = _Errors()
    if not isinstance(raw, dict):
        raise RowInvalid({"non_field_errors": ["Each order must be a JSON object."]})
    _unknown(raw, ORDER_FIELDS, errors)
    external_id = _text(raw.get("external_id"), "external_id", errors, max_length=128, required=True)
    ref = _customer_ref(raw, errors)
    status = raw.get("status") or Order.Status.PAID
    statuses = _choices(Order.Status)
    if status not in statuses:
        errors.add("status", f"Choose one of {', '.join(statuses)}.")
    currency = (_text(raw.get("currency"), "currency", errors, max_length=3) or default_currency).upper()
    if not _CURRENCY.match(currency):
        errors.add("currency", "Use a three-letter ISO 4217 code.")
    ordered_at = parse_moment(raw.get("ordered_at"), "ordered_at", errors)
    lines_raw = raw.get("lines") or []
    lines: list[dict[str, Any]] = []
    if not isinstance(lines_raw, list) or len(lines_raw) > 500:
        errors.add("lines", "Must be a list of at most 500 lines.")
        lines_raw = []
    for i, line in enumerate(lines_raw):
        prefix = f"lines.{i}."
        if not isinstance(line, dict):
            errors.add(f"lines.{i}", "Each line must be an object.")
            continue
        _unknown(line, LINE_FIELDS, errors, prefix)
        lines.append({
            "sku": _text(line.get("sku"), prefix + "sku", errors, max_length=128, required=True),
            "name": _text(line.get("name"), prefix + "name", errors, max_length=300),
            "quantity": parse_decimal(line.get("quantity", 1), prefix + "quantity", errors, places=3),
            "unit_price": parse_decimal(line.get("unit_price"), prefix + "unit_price", errors, places=4),
        })
    lines_ok = lines and all(line["quantity"] is not None and line["unit_price"] is not None for line in lines)
    if raw.get("total") in (None, "") and lines_ok:
        total = sum((line["quantity"] * line["unit_price"] for line in lines), Decimal(0)).quantize(Decimal("0.01"))
    else:
        total = parse_decimal(raw.get("total"), "total", errors)
    errors.raise_if_any()
    return {"external_id": external_id, "status": status, "currency": currency, "total": total,
            "ordered_at": ordered_at, "lines": lines, **ref}
