"""Customer profiles: create, update and bulk upsert by external_id, with tombstone checks."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import operator
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Q
from django.utils.timezone import now

from b2p_platform.exceptions import ConflictError, DomainError
from customers.intake import RowInvalid, clean_customer
from customers.models import AttributeDefinition, Company, Customer, ErasureTombstone
from customers.segments import freshness
from tenants.models import Tenant

PROFILE_FIELDS = ("kind", "email", "phone", "first_name", "last_name", "locale", "timezone", "company_role", "tags", "attributes")


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    objects: dict[int, Customer] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [{"index": i, "errors": e} for i, e in sorted(self.errors.items())],
        }


def attribute_definitions(*, tenant: Tenant) -> dict[str, AttributeDefinition]:
    return {d.key: d for d in AttributeDefinition.objects.for_tenant(tenant)}


def identifier_hash(tenant: Tenant | int, kind: str, value: str) -> str:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    return hashlib.sha256(f"{tenant_id}:{kind}:{value.strip().lower()}".encode()).hexdigest()


def erased_identifiers(*, tenant: Tenant, rows: list[dict[str, Any]]) -> set[str]:
    """Hashes among these rows' identifiers that belong to erased people (one query)."""
    hashes = set()
    for row in rows:
        for kind in ("email", "phone", "external_id"):
            if row.get(kind):
                hashes.add(identifier_hash(tenant, kind, row[kind]))
    if not hashes:
        return set()
    return set(
        ErasureTombstone.objects.for_tenant(tenant).filter(identifier_hash__in=hashes).values_list("identifier_hash", flat=True)
    )


def _resolve_companies(tenant: Tenant, specs: list[dict[str, Any]]) -> dict[tuple[str, str], Company]:
    """Get or create companies by external_id (when given) or by name; a few queries per batch."""
    keys = {(s["external_id"], s["name"] if not s["external_id"] else "") for s in specs}
    if not keys:
        return {}
    ext_ids = [k[0] for k in keys if k[0]]
    names = [k[1] for k in keys if not k[0]]
    existing = Company.objects.for_tenant(tenant).filter(Q(external_id__in=ext_ids) | Q(external_id="", name__in=names))
    found = {(c.external_id, c.name if not c.external_id else ""): c for c in existing}
    by_key = {(s["external_id"], s["name"] if not s["external_id"] else ""): s for s in specs}
    missing = [by_key[k] for k in keys if k not in found]
    if missing:
        Company.objects.bulk_create(
            [Company(tenant=tenant, **spec) for spec in missing], ignore_conflicts=True
        )
        existing = Company.objects.for_tenant(tenant).filter(Q(external_id__in=ext_ids) | Q(external_id="", name__in=names))
        found = {(c.external_id, c.name if not c.external_id else ""): c for c in existing}
    # Refresh descriptive fields (industry, size) when an upsert brings new values.
    for key, spec in by_key.items():
        company = found.get(key)
        if company is not None and any(spec[f] and getattr(company, f) != spec[f] for f in ("industry", "size", "name")):
            for f in ("industry", "size", "name"):
                if spec[f]:
                    setattr(company, f, spec[f])
            company.save(update_fields=["industry", "size", "name", "updated_at"])
    return found


def _company_key(spec: dict[str, Any]) -> tuple[str, str]:
    return (spec["external_id"], spec["name"] if not spec["external_id"] else "")


# A customer's profile as upserts read and write it: plain values by column (attname), so that a
# batch of thousands is merged without building model instances, then written set-based.
STATE_FIELDS = ("kind", "email", "phone", "first_name", "last_name", "locale", "timezone", "company_id", "company_role",
                "tags", "attributes", "search_text")
_TEXT_DEFAULTS = {"kind": Customer.Kind.CONSUMER, "email": "", "phone": "", "first_name": "", "last_name": "", "locale": "",
                  "timezone": "", "company_role": "", "search_text": ""}


@dataclass(frozen=True, slots=True)
class CleanCustomer:
    """A customer row validated and normalised by `clean_customer_row`: `upsert_customers` writes
    it without cleaning it again. With it, what needs no database: the hashes of its identifiers
    (for the erasure check), and the profile a new customer gets from it with its staging row
    (None when the row names a company, whose id the database gives)."""

    row: dict[str, Any]
    hashes: tuple[str, ...]
    created: dict[str, Any] | None = None
    staged: tuple[Any, ...] | None = None  # the staging row (_stage_row) of a new customer


def clean_customer_row(raw: Any, *, tenant_id: int, definitions: dict[str, AttributeDefinition]) -> CleanCustomer:
    """Validate one raw customer for `upsert_customers` without touching the database, so that a
    bulk load can do it, and whatever else a row needs alone, in its reading thread while the
    chunk before is being written. Raises RowInvalid."""
    row = clean_customer(raw, definitions=definitions, partial=True)
    if not row.get("external_id"):
        raise RowInvalid({"external_id": ["This field is required."]})
    hashes = tuple(_identifier_hashes(tenant_id, row))
    if row.get("company"):
        return CleanCustomer(row, hashes)
    created = _created_state(row, {})
    return CleanCustomer(row, hashes, created, _stage_row(None, row["external_id"], created))


@transaction.atomic
def upsert_customers(*, tenant: Tenant, rows: Sequence[dict[str, Any] | CleanCustomer], source: str = "api",
                     with_objects: bool = True) -> BatchResult:
    """Create or update customers by external_id. `rows` are raw dicts (or rows cleaned ahead by
    `clean_customer_row`); invalid rows are reported by index and the valid ones are written.
    Fields absent from a row are left as they are; attributes are merged key by key.
    `with_objects=False` (imports, the bulk API) skips loading the written customers into
    `result.objects`."""
    result = BatchResult()
    definitions: dict[str, AttributeDefinition] | None = None
    cleaned: dict[int, dict[str, Any]] = {}
    prepared: dict[int, CleanCustomer] = {}
    seen_ids: dict[str, int] = {}
    for index, raw in enumerate(rows):
        if isinstance(raw, CleanCustomer):
            clean = raw
        else:
            if definitions is None:
                definitions = attribute_definitions(tenant=tenant)
            try:
                clean = clean_customer_row(raw, tenant_id=tenant.pk, definitions=definitions)
            except RowInvalid as exc:
                result.errors[index] = exc.errors
                continue
        row = clean.row
        if row["external_id"] in seen_ids:
            result.errors[index] = {"external_id": [f"Duplicate of row {seen_ids[row['external_id']]} in this batch."]}
            continue
        seen_ids[row["external_id"]] = index
        cleaned[index] = row
        prepared[index] = clean

    erased = _erased_hashes(tenant, set().union(*(clean.hashes for clean in prepared.values())))
    if erased:
        for index in [i for i in cleaned if not erased.isdisjoint(prepared[i].hashes)]:
            result.errors[index] = {"non_field_errors": ["This person asked to be erased; they are not stored again."]}
            del cleaned[index]

    existing = _states_by_external_id(tenant, [r["external_id"] for r in cleaned.values()])
    # An email may belong to one customer per tenant. Only rows moving an existing customer to
    # another email are looked up ahead. On PostgreSQL new customers are not: their insert skips
    # those whose email is taken (the unique index decides, as it must anyway against concurrent
    # writers) and _explain_skipped says why; a first import then reads nothing per email.
    new_ahead = connection.vendor != "postgresql"  # the ORM's bulk insert has no ON CONFLICT to fall back on
    owners = _email_owners(tenant, {r["email"] for r in cleaned.values() if r.get("email") and _email_is_checked_ahead(r, existing, new_ahead)})
    seen_emails: dict[str, int] = {}
    for index, row in list(cleaned.items()):
        email = row.get("email")
        if not email:
            continue
        owner = owners.get(email)
        if (owner and owner != row["external_id"]) or email in seen_emails:
            result.errors[index] = {"email": ["This email belongs to another customer."]}
            del cleaned[index]
        else:
            seen_emails[email] = index

    companies = _resolve_companies(tenant, [r["company"] for r in cleaned.values() if r.get("company")])
    to_create: list[tuple[int, str, dict[str, Any], tuple[Any, ...] | None]] = []
    to_update: list[tuple[int, dict[str, Any]]] = []
    update_fields: set[str] = set()
    ids: dict[int, int] = {}
    for index, row in cleaned.items():
        old = existing.get(row["external_id"])
        if old is None:
            clean = prepared[index]
            if clean.created is not None:
                to_create.append((index, row["external_id"], clean.created, clean.staged))
            else:
                to_create.append((index, row["external_id"], _created_state(row, companies), None))
            continue
        ids[index] = old["id"]
        changes = _changes(old, row, companies)
        if changes:
            state = {**old, **changes}
            state["search_text"] = search_text_of(state, row["external_id"])
            to_update.append((index, state))
            update_fields |= changes.keys()
            result.updated += 1
        else:
            result.unchanged += 1
    moment = now()
    if to_create:
        created = _create_customers(tenant, [item[1:] for item in to_create], moment)
        skipped = [(index, external_id, state) for index, external_id, state, _s in to_create if external_id not in created]
        for index, external_id, _state, _staged in to_create:
            if external_id in created:
                ids[index] = created[external_id]
                result.created += 1
        result.errors.update(_explain_skipped(tenant, skipped))
    if to_update:
        _update_customers(tenant, [state for _i, state in to_update], sorted(update_fields | {"search_text"}), moment)
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[ids[item[0]] for item in to_create if item[0] in ids] + [ids[i] for i, _s in to_update],
                                kinds=["profile"])
    if with_objects and ids:
        loaded = Customer.objects.for_tenant(tenant).in_bulk(list(ids.values()))
        result.objects = {index: loaded[pk] for index, pk in ids.items()}
    return result


def _email_is_checked_ahead(row: dict[str, Any], existing: dict[str, dict[str, Any]], new_ahead: bool) -> bool:
    old = existing.get(row["external_id"])
    return new_ahead if old is None else bool(old["email"] != row["email"])


def _explain_skipped(tenant: Tenant, skipped: list[tuple[int, str, dict[str, Any]]]) -> dict[int, dict[str, list[str]]]:
    """Why the insert skipped these new customers: their email belongs to another customer, or
    another request created the id or took the email between our reads and the insert. Read
    before this batch's updates, which may still free an email it holds."""
    if not skipped:
        return {}
    owners = _email_owners(tenant, {state["email"] for _i, _e, state in skipped if state["email"]})
    errors: dict[int, dict[str, list[str]]] = {}
    for index, external_id, state in skipped:
        owner = owners.get(state["email"]) if state["email"] else None
        if owner is not None and owner != external_id:
            errors[index] = {"email": ["This email belongs to another customer."]}
        else:
            errors[index] = {"non_field_errors": ["Changed by another request meanwhile; send it again."]}
    return errors


def _new_state() -> dict[str, Any]:
    return {**_TEXT_DEFAULTS, "company_id": None, "tags": [], "attributes": {}}


def _created_state(row: dict[str, Any], companies: dict[tuple[str, str], Company]) -> dict[str, Any]:
    """The profile a new customer gets from a cleaned row: the changes it makes to an empty one,
    taken in one step for the rows without a company (most of a first import)."""
    state = _new_state()
    if row.get("company"):
        state.update(_changes(state, row, companies))
    else:
        state.update((k, v) for k, v in row.items() if k in _PROFILE_FIELD_SET)
    state["search_text"] = search_text_of(state, row["external_id"])
    return state


_PROFILE_FIELD_SET = frozenset(PROFILE_FIELDS)


def _changes(state: dict[str, Any], row: dict[str, Any], companies: dict[tuple[str, str], Company]) -> dict[str, Any]:
    """The fields a cleaned row changes in a profile state, with their new values (the state is
    left as it is: most rows of a re-run change nothing)."""
    changes: dict[str, Any] = {}
    for name, value in row.items():  # a cleaned row holds only the fields given, in no particular order
        if name not in _PROFILE_FIELD_SET:
            continue
        if name == "attributes":
            value = {**state["attributes"], **value}
        if state[name] != value:
            changes[name] = value
    if "company" in row:
        company = companies.get(_company_key(row["company"])) if row["company"] else None
        if state["company_id"] != (company.pk if company else None):
            changes["company_id"] = company.pk if company else None
        if company is not None and row.get("kind") is None and state["kind"] != Customer.Kind.BUSINESS_BUYER:
            changes["kind"] = Customer.Kind.BUSINESS_BUYER  # a person with a company buys for it
    return changes


def search_text_of(state: dict[str, Any], external_id: str) -> str:
    parts = (state["first_name"], state["last_name"], state["email"], state["phone"], external_id)
    return " ".join(filter(None, parts)).lower()[:600]


def _identifier_hashes(tenant_id: int, row: dict[str, Any]) -> list[str]:
    return [identifier_hash(tenant_id, kind, row[kind]) for kind in ("email", "phone", "external_id") if row.get(kind)]


# A batch with more identifiers than this first reads the tenant's tombstones, if there are at most
# this many: one short range of the unique index instead of sending thousands of 64-character
# hashes to look up (a third of a bulk upsert's queries when the tenant has erased nobody).
FEW_TOMBSTONES = 1000


def _erased_hashes(tenant: Tenant, hashes: set[str]) -> set[str]:
    """The hashes among these that belong to erased people (one query, two for big batches of a
    tenant that erased many people)."""
    if not hashes:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if len(hashes) > FEW_TOMBSTONES:
                cursor.execute("SELECT identifier_hash FROM customers_erasuretombstone WHERE tenant_id = %s LIMIT %s",
                               [tenant.pk, FEW_TOMBSTONES + 1])
                stored = {h for (h,) in cursor.fetchall()}
                if len(stored) <= FEW_TOMBSTONES:
                    return stored & hashes
            cursor.execute(
                "SELECT identifier_hash FROM customers_erasuretombstone WHERE tenant_id = (SELECT %s::bigint) AND identifier_hash = ANY(%s::text[])",
                [tenant.pk, text_array(hashes)],
            )
            return {h for (h,) in cursor.fetchall()}
    return set(ErasureTombstone.objects.for_tenant(tenant).filter(identifier_hash__in=hashes).values_list("identifier_hash", flat=True))


def rows_by_external_id(tenant: Tenant, table: str, columns: tuple[str, ...], external_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`columns` of the rows of `table` with these external ids (PostgreSQL): one index probe per
    id, whatever the table's statistics say (see text_array). Names come from our own constants."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT x.external_id, {', '.join(f'r.{c}' for c in columns)} FROM unnest(%s::text[]) AS x(external_id) "  # noqa: S608
            f"CROSS JOIN LATERAL (SELECT {', '.join(columns)} FROM {table} "
            "WHERE tenant_id = (SELECT %s::bigint) AND external_id = x.external_id LIMIT 1) AS r",
            [text_array(external_ids), tenant.pk],
        )
        return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in cursor.fetchall()}


def _states_by_external_id(tenant: Tenant, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Profile states (with "id") of the customers with these external ids."""
    if not external_ids:
        return {}
    columns = ("id", *STATE_FIELDS)
    if connection.vendor == "postgresql":
        states = rows_by_external_id(tenant, "customers_customer", columns, external_ids)
        for state in states.values():  # Django has psycopg2 return jsonb as text, for JSONField to decode
            state["tags"] = _load_json(state["tags"])
            state["attributes"] = _load_json(state["attributes"])
        return states
    return {values.pop("external_id"): values for values in
            Customer.objects.for_tenant(tenant).filter(external_id__in=external_ids).values("external_id", *columns)}


def _email_owners(tenant: Tenant, emails: set[str]) -> dict[str, str]:
    """external_id of the customer holding each of these emails."""
    if not emails:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # email <> '' lets PostgreSQL use the partial unique index on (tenant_id, email).
            cursor.execute(
                "SELECT x.email, c.external_id FROM unnest(%s::text[]) AS x(email) CROSS JOIN LATERAL "
                "(SELECT external_id FROM customers_customer WHERE tenant_id = (SELECT %s::bigint) AND email = x.email AND email <> '' LIMIT 1) AS c",
                [text_array(emails), tenant.pk],
            )
            return dict(cursor.fetchall())
    return dict(Customer.objects.for_tenant(tenant).filter(email__in=list(emails)).exclude(email="").values_list("email", "external_id"))


_CUSTOMER_STAGE = "customer_stage"
_STAGE_COLUMNS = ("id", "external_id", *STATE_FIELDS)


def _stage_customers(cursor: Any, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY (id, external_id, *STATE_FIELDS) rows into a per-connection temporary table."""
    from customers.services.events import empty_stage_now

    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_CUSTOMER_STAGE} (id bigint, external_id text, kind text, email text, phone text, "
        "first_name text, last_name text, locale text, timezone text, company_id bigint, company_role text, tags jsonb, "
        "attributes jsonb, search_text text) ON COMMIT DELETE ROWS"
    )
    if empty_stage_now():
        cursor.execute(f"DELETE FROM {_CUSTOMER_STAGE}")  # noqa: S608 - constant table name
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    # Empty text is '' (not NULL) in every text column: the unquoted empty field CSV writes for it.
    not_null = ", ".join(c for c in _STAGE_COLUMNS if c in _TEXT_DEFAULTS or c == "external_id")
    cursor.cursor.copy_expert(f"COPY {_CUSTOMER_STAGE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))",
                              buffer)


_PLAIN_STATE = operator.itemgetter(*STATE_FIELDS[:9])
assert STATE_FIELDS[9:] == ("tags", "attributes", "search_text")  # the order _stage_row writes them in


def _stage_row(pk: int | None, external_id: str, state: dict[str, Any]) -> tuple[Any, ...]:
    return (pk, external_id, *_PLAIN_STATE(state), _json_text(state["tags"]), _json_text(state["attributes"]), state["search_text"])


def _load_json(text: str) -> Any:
    # orjson reads integers beyond 64 bits as floats; json keeps them exact, as JSONField does.
    return json.loads(text) if _LONG_DIGITS.search(text) else orjson.loads(text)


_LONG_DIGITS = re.compile(r"\d{19}")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _create_customers(tenant: Tenant, items: list[tuple[str, dict[str, Any], tuple[Any, ...] | None]], moment: datetime) -> dict[str, int]:
    """Insert new profiles (external_id, state, staging row if made ahead); ids by external_id of
    those inserted (not of ids or emails taken by others: ON CONFLICT skips those rather than
    failing the batch)."""
    if connection.vendor != "postgresql":
        customers = [Customer(tenant=tenant, external_id=external_id, created_at=moment, first_seen_at=moment, updated_at=moment,
                              **{f: state[f] for f in STATE_FIELDS}) for external_id, state, _staged in items]
        Customer.objects.bulk_create(customers, batch_size=500)
        return {c.external_id: c.pk for c in customers}
    columns, placeholders, values = model_values(
        Customer, {"tenant_id": tenant.pk, "created_at": moment, "updated_at": moment, "first_seen_at": moment},
        exclude={"external_id", *STATE_FIELDS},
    )
    with connection.cursor() as cursor:
        _stage_customers(cursor, [_stage_row(None, external_id, state) if staged is None else staged for external_id, state, staged in items])
        cursor.execute(
            f"INSERT INTO customers_customer ({', '.join(columns)}, external_id, {', '.join(STATE_FIELDS)}) "  # noqa: S608 - names from the model
            f"SELECT {', '.join(placeholders)}, external_id, {', '.join(STATE_FIELDS)} FROM {_CUSTOMER_STAGE} "
            "ON CONFLICT DO NOTHING RETURNING external_id, id",
            values,
        )
        return dict(cursor.fetchall())


def _update_customers(tenant: Tenant, states: list[dict[str, Any]], fields: list[str], moment: datetime) -> None:
    """Write the changed fields (plus updated_at) of existing profiles, one statement for the batch."""
    if connection.vendor != "postgresql":
        customers = [Customer(pk=state["id"], tenant=tenant, updated_at=moment, **{f: state[f] for f in fields}) for state in states]
        Customer.objects.for_tenant(tenant).bulk_update(customers, [*fields, "updated_at"], batch_size=500)
        return
    ids = "{" + ",".join(str(state["id"]) for state in states) + "}"
    with connection.cursor() as cursor:
        _stage_customers(cursor, (_stage_row(state["id"], "", state) for state in states))
        # c.id = ANY(...): the planner fetches the rows by primary key instead of hashing the tenant.
        cursor.execute(
            f"UPDATE customers_customer AS c SET {', '.join(f'{f} = s.{f}' for f in fields)}, updated_at = %s "  # noqa: S608 - names from STATE_FIELDS
            f"FROM {_CUSTOMER_STAGE} AS s WHERE c.id = s.id AND c.id = ANY(%s::bigint[]) AND c.tenant_id = %s",
            [moment, ids, tenant.pk],
        )


def create_customer(*, tenant: Tenant, data: dict[str, Any], source: str = "api") -> Customer:
    """One customer; external_id is generated when not given. Conflicts are a 409."""
    data = dict(data)
    if not data.get("external_id"):
        data["external_id"] = f"c_{secrets.token_hex(8)}"
    elif Customer.objects.for_tenant(tenant).filter(external_id=str(data["external_id"]).strip()).exists():
        raise ConflictError("A customer with this external_id exists.", field="external_id")
    result = upsert_customers(tenant=tenant, rows=[data], source=source)
    if result.errors:
        raise RowInvalid(result.errors[0])
    return result.objects[0]


def update_customer(*, tenant: Tenant, customer: Customer, data: dict[str, Any]) -> Customer:
    if customer.is_erased:
        raise DomainError("This customer was erased and cannot be changed.")
    if "external_id" in data and data["external_id"] != customer.external_id:
        raise DomainError("external_id cannot be changed.", field="external_id")
    result = upsert_customers(tenant=tenant, rows=[{**data, "external_id": customer.external_id}])
    if result.errors:
        raise RowInvalid(result.errors[0])
    return result.objects[0]


def ensure_customers(*, tenant: Tenant, external_ids: set[str], seen: Seen | None = None, created: set[int] | None = None) -> dict[str, int]:
    """Customer ids by external_id, creating bare profiles for unknown ids (events and orders
    often arrive before the profile). Erased people are left out. With `seen`, the first/last
    seen of each customer found (None for new ones) are added to it; with `created`, the ids of
    the profiles this call created."""
    if not external_ids:
        return {}
    found = _ids_by_external_id(tenant, external_ids, seen)
    missing = external_ids - set(found)
    if missing:
        hashes = {e: identifier_hash(tenant.pk, "external_id", e) for e in missing}
        erased = _erased_hashes(tenant, set(hashes.values()))
        fresh = sorted(e for e in missing if hashes[e] not in erased)  # sorted: concurrent batches insert in one order
        new = _create_bare_customers(tenant, fresh)
        if created is not None:
            created.update(new.values())
        if len(new) < len(fresh):  # created meanwhile by a concurrent batch
            new.update(_ids_by_external_id(tenant, set(fresh) - set(new), seen))
        found.update(new)
        if seen is not None:
            seen.update((pk, (None, None)) for pk in new.values() if pk not in seen)
        freshness.customers_changed(tenant_id=tenant.pk, customer_ids=new.values(), kinds=["profile"])
    return found


# Customer id -> (first_seen_at, last_seen_at), as read while resolving references.
Seen = dict[int, tuple[datetime | None, datetime | None]]


def _ids_by_external_id(tenant: Tenant, external_ids: set[str], seen: Seen | None = None) -> dict[str, int]:
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of hundreds: the hot path of event ingestion.
        # One index probe per id (LIMIT keeps the planner from flattening the subquery into a
        # hash join): without it a batch of 500 ids is planned as a scan of the tenant's
        # customers whenever the table is small or its statistics are old. On the tenant
        # subquery, see the note above text_array.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT x.external_id, c.id, c.first_seen_at, c.last_seen_at FROM unnest(%s::text[]) AS x(external_id) "
                "CROSS JOIN LATERAL (SELECT id, first_seen_at, last_seen_at FROM customers_customer "
                "WHERE tenant_id = (SELECT %s::bigint) AND external_id = x.external_id LIMIT 1) AS c",
                [text_array(external_ids), tenant.pk],
            )
            rows = cursor.fetchall()
    else:
        rows = list(Customer.objects.for_tenant(tenant).filter(external_id__in=external_ids)
                    .values_list("external_id", "id", "first_seen_at", "last_seen_at"))
    if seen is not None:
        seen.update((pk, (first, last)) for _e, pk, first, last in rows)
    return {external_id: pk for external_id, pk, _first, _last in rows}


def _create_bare_customers(tenant: Tenant, external_ids: list[str]) -> dict[str, int]:
    """Profiles with only an external_id; the ones another batch created first are skipped."""
    if not external_ids:
        return {}
    moment = now()
    if connection.vendor != "postgresql":
        with transaction.atomic():
            Customer.objects.bulk_create(
                [Customer(tenant=tenant, external_id=e, search_text=e.lower(), created_at=moment, updated_at=moment)
                 for e in external_ids],
                ignore_conflicts=True,
            )
        return _ids_by_external_id(tenant, set(external_ids))
    columns, placeholders, values = model_values(
        Customer, {"tenant_id": tenant.pk, "created_at": moment, "updated_at": moment}, exclude={"external_id", "search_text"}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO customers_customer ({', '.join(columns)}, external_id, search_text) "  # noqa: S608 - names from the model
            f"SELECT {', '.join(placeholders)}, x.e, x.s FROM unnest(%s::text[], %s::text[]) AS x(e, s) "
            "ON CONFLICT DO NOTHING RETURNING external_id, id",
            [*values, text_array(external_ids), text_array([e.lower()[:600] for e in external_ids])],
        )
        return dict(cursor.fetchall())


# The lookups here filter with "tenant_id = (SELECT %s::bigint)", not "tenant_id = %s". A constant
# tenant id is estimated from the column's statistics, and for a tenant created or grown since the
# last ANALYZE those say "no rows": every index that starts with tenant_id then looks as cheap as
# the one that also matches the key looked up, and the planner may take one that scans all of the
# tenant's rows on each probe (measured: 0.2 ms per email for 20,000 customers). Behind an InitPlan
# the value is unknown at planning time, the estimate is the column's average, and the composite
# unique index wins.


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal, passed as one parameter with a ::text[] cast. psycopg2 turns a
    list into ARRAY['a', 'b', ...], quoted and then parsed element by element: for the hundreds
    of ids of a batch one literal is cheaper on both sides."""
    items = values if isinstance(values, list | tuple | set | frozenset) else list(values)
    joined = '","'.join(items)
    if "\\" not in joined and joined.count('"') == 2 * (len(items) - 1):  # no value holds a quote or a backslash
        return '{"' + joined + '"}'
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items) + "}"


def model_values(model: type[Any], given: dict[str, Any], *, exclude: set[str]) -> tuple[list[str], list[str], list[Any]]:
    """Columns, typed placeholders and database values for a set-based INSERT: the `given` values
    (by attname), and for every other field except the primary key and `exclude`, what Django
    would have written (the defaults live in Python, not in the database)."""
    columns: list[str] = []
    placeholders: list[str] = []
    values: list[Any] = []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.attname in exclude:
            continue
        value = given[f.attname] if f.attname in given else f.get_default()
        columns.append(connection.ops.quote_name(f.column))
        placeholders.append(f"%s::{f.db_type(connection)}")
        values.append(f.get_db_prep_save(value, connection))
    return columns, placeholders, values


@transaction.atomic
def create_attribute_definition(*, tenant: Tenant, key: str, label: str, type: str, choices: list[str] | None = None) -> AttributeDefinition:
    from django.core.exceptions import ValidationError

    if AttributeDefinition.objects.for_tenant(tenant).filter(key=key).exists():
        raise ConflictError("An attribute with this key exists.", field="key")
    definition = AttributeDefinition(tenant=tenant, key=key, label=label, type=type, choices=choices or [])
    if type == AttributeDefinition.Type.CHOICE and not definition.choices:
        raise DomainError("List the choices, one per line.", field="choices")
    try:
        definition.full_clean(exclude=["tenant"])
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise DomainError(messages[0], field=name) from exc
    definition.save()
    return definition


def delete_attribute_definition(*, tenant: Tenant, definition: AttributeDefinition) -> None:
    """Removes the definition only; values already stored on customers stay as plain values."""
    AttributeDefinition.objects.for_tenant(tenant).filter(pk=definition.pk).delete()
