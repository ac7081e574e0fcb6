"""Customer profiles: create, update and bulk upsert by external_id, with tombstone checks."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
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


def is_erased_row(tenant: Tenant, row: dict[str, Any], erased: set[str]) -> bool:
    if not erased:
        return False
    return any(row.get(k) and identifier_hash(tenant, k, row[k]) in erased for k in ("email", "phone", "external_id"))


def search_text_for(customer: Customer) -> str:
    parts = (customer.first_name, customer.last_name, customer.email, customer.phone, customer.external_id)
    return " ".join(p for p in parts if p).lower()[:600]


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


@transaction.atomic
def upsert_customers(*, tenant: Tenant, rows: list[dict[str, Any]], source: str = "api") -> BatchResult:
    """Create or update customers by external_id. `rows` are raw dicts; invalid rows are reported
    by index and the valid ones are written. Fields absent from a row are left as they are;
    attributes are merged key by key."""
    result = BatchResult()
    definitions = attribute_definitions(tenant=tenant)
    cleaned: dict[int, dict[str, Any]] = {}
    seen_ids: dict[str, int] = {}
    for index, raw in enumerate(rows):
        try:
            row = clean_customer(raw, definitions=definitions, partial=True)
            if not row.get("external_id"):
                raise RowInvalid({"external_id": ["This field is required."]})
        except RowInvalid as exc:
            result.errors[index] = exc.errors
            continue
        if row["external_id"] in seen_ids:
            result.errors[index] = {"external_id": [f"Duplicate of row {seen_ids[row['external_id']]} in this batch."]}
            continue
        seen_ids[row["external_id"]] = index
        cleaned[index] = row

    erased = erased_identifiers(tenant=tenant, rows=list(cleaned.values()))
    for index in [i for i, row in cleaned.items() if is_erased_row(tenant, row, erased)]:
        result.errors[index] = {"non_field_errors": ["This person asked to be erased; they are not stored again."]}
        del cleaned[index]

    existing = {
        c.external_id: c
        for c in Customer.objects.for_tenant(tenant).filter(external_id__in=[r["external_id"] for r in cleaned.values()])
    }
    # An email may belong to one customer per tenant.
    emails = {r["email"]: i for i, r in cleaned.items() if r.get("email")}
    # exclude(email=""): lets PostgreSQL use the partial unique index on email.
    owners = dict(
        Customer.objects.for_tenant(tenant).filter(email__in=list(emails)).exclude(email="").values_list("email", "external_id")
    )
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
    to_create: list[tuple[int, Customer]] = []
    to_update: list[Customer] = []
    update_fields: set[str] = set()
    moment = now()
    for index, row in cleaned.items():
        customer = existing.get(row["external_id"])
        is_new = customer is None
        if customer is None:
            customer = Customer(tenant=tenant, external_id=row["external_id"], created_at=moment, first_seen_at=moment)
        changed = _apply(customer, row, companies)
        customer.search_text = search_text_for(customer)
        if is_new:
            customer.updated_at = moment
            to_create.append((index, customer))
        elif changed:
            customer.updated_at = moment
            to_update.append(customer)
            update_fields |= changed | {"search_text", "updated_at"}
            result.updated += 1
        else:
            result.unchanged += 1
        result.objects[index] = customer
    if to_create:
        Customer.objects.bulk_create([c for _i, c in to_create], batch_size=500)
        result.created = len(to_create)
    if to_update:
        Customer.objects.for_tenant(tenant).bulk_update(to_update, sorted(update_fields), batch_size=500)
    freshness.customers_changed(tenant_id=tenant.pk, customer_ids=[c.pk for _i, c in to_create] + [c.pk for c in to_update],
                                kinds=["profile"])
    return result


def _apply(customer: Customer, row: dict[str, Any], companies: dict[tuple[str, str], Company]) -> set[str]:
    changed: set[str] = set()
    for name in PROFILE_FIELDS:
        if name not in row:
            continue
        value = row[name]
        if name == "attributes":
            value = {**customer.attributes, **value}
        if getattr(customer, name) != value:
            setattr(customer, name, value)
            changed.add(name)
    if "company" in row:
        company = companies.get(_company_key(row["company"])) if row["company"] else None
        if customer.company_id != (company.pk if company else None):
            customer.company = company
            changed.add("company")
        if company is not None and row.get("kind") is None and customer.kind != Customer.Kind.BUSINESS_BUYER:
            customer.kind = Customer.Kind.BUSINESS_BUYER  # a person with a company buys for it
            changed.add("kind")
    return changed


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


def ensure_customers(*, tenant: Tenant, external_ids: set[str]) -> dict[str, int]:
    """Customer ids by external_id, creating bare profiles for unknown ids (events and orders
    often arrive before the profile). Erased people are left out."""
    if not external_ids:
        return {}
    found = _ids_by_external_id(tenant, external_ids)
    missing = external_ids - set(found)
    if missing:
        erased = erased_identifiers(tenant=tenant, rows=[{"external_id": e} for e in missing])
        fresh = [e for e in missing if identifier_hash(tenant, "external_id", e) not in erased]
        moment = now()
        try:
            with transaction.atomic():
                Customer.objects.bulk_create(
                    [Customer(tenant=tenant, external_id=e, search_text=e.lower(), created_at=moment, updated_at=moment) for e in fresh],
                    ignore_conflicts=True,
                )
        except IntegrityError:  # pragma: no cover - ignore_conflicts covers the unique index
            pass
        created = _ids_by_external_id(tenant, set(fresh))
        found.update(created)
        freshness.customers_changed(tenant_id=tenant.pk, customer_ids=created.values(), kinds=["profile"])
    return found


def _ids_by_external_id(tenant: Tenant, external_ids: set[str]) -> dict[str, int]:
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of hundreds: the hot path of event ingestion.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id, id FROM customers_customer WHERE tenant_id = %s AND external_id = ANY(%s)",
                [tenant.pk, list(external_ids)],
            )
            return dict(cursor.fetchall())
    return dict(Customer.objects.for_tenant(tenant).filter(external_id__in=external_ids).values_list("external_id", "id"))


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
