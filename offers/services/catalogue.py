"""Products and offers: creating and changing them.

Rules: SKUs are unique per tenant and upserts match on them; a product's fields keep the model's
limits, its currency is three letters (upper-cased) and its base price 0 or more — checked by
`check_currency`/`check_base_price` for the API and by `clean_product` for rows of text (CSV
imports), one set of rules for both; an offer's kind decides what it
needs (a product for percent/amount/fixed, a value for percent/amount/fixed, items for a bundle,
option groups for a configurable offer); percentages are 0–100; an offer's eligibility names
only known keys and the tenant's own segments; option groups are replaced as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from b2p_platform.exceptions import DomainError
from customers.intake import RowInvalid
from customers.models import Company, Customer, Segment
from offers.models import Offer, OfferItem, Option, OptionGroup, Product
from offers.services import option_groups, pricing
from tenants.models import Tenant
from tenants.services import Actor, record_audit

ELIGIBILITY_KEYS = {"segments", "not_segments", "kinds", "company_sizes", "min_expected_value", "min_churn_probability",
                    "max_churn_probability", "consent", "requires_voucher"}
PRODUCT_FIELDS = ("name", "category", "attributes", "base_price", "currency", "in_stock", "is_active")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_FLAGS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
_CENT = Decimal("0.01")


def check_currency(value: str) -> str:
    """An ISO 4217 code, upper-cased; the API's serializer and `clean_product` both call this."""
    if not _CURRENCY_RE.match(value):
        raise DomainError(_("Use a 3-letter currency code."), field="currency")
    return value.upper()


def check_base_price(value: Decimal) -> Decimal:
    if value < 0:
        raise DomainError(_("A price is 0 or more."), field="base_price")
    return value


def clean_product(raw: dict[str, Any], *, default_currency: str) -> dict[str, Any]:
    """A product from text values (a CSV row): sku, name and base_price required, currency defaulting to
    `default_currency`, in_stock/is_active as yes/no, true/false or 1/0, attributes an object of values.
    Fields absent from `raw` stay absent (an upsert leaves them as they are). Raises RowInvalid."""
    errors: dict[str, list[str]] = {}
    row: dict[str, Any] = {}
    # The model's own limits (max_length, blank, 14 digits with 2 places): what the API's ModelSerializer enforces.
    for name in ("sku", "name", "base_price", *(["category"] if "category" in raw else [])):
        model_field = Product._meta.get_field(name)
        value = raw.get(name)
        if value is None or value == "":
            if model_field.blank:
                row[name] = ""
            else:
                errors[name] = [str(model_field.error_messages["blank"])]
            continue
        try:
            value = model_field.clean(value, None)
            row[name] = check_base_price(value).quantize(_CENT) if name == "base_price" else value
        except ValidationError as exc:
            errors[name] = list(exc.messages)
        except DomainError as exc:
            errors[name] = [exc.message]
    try:
        row["currency"] = check_currency(str(raw.get("currency") or default_currency).strip())
    except DomainError as exc:
        errors["currency"] = [exc.message]
    for name in ("in_stock", "is_active"):
        if name not in raw:
            continue
        value = raw[name]
        flag = value if isinstance(value, bool) else _FLAGS.get(str(value).strip().lower())
        if flag is None:
            errors[name] = [_("Use yes or no (or true/false, 1/0).")]
        else:
            row[name] = flag
    if "attributes" in raw:
        if isinstance(raw["attributes"], dict) and all(not isinstance(v, dict | list) for v in raw["attributes"].values()):
            row["attributes"] = raw["attributes"]
        else:
            errors["attributes"] = [_("Attributes are an object of text, number or true/false values.")]
    if errors:
        raise RowInvalid(errors)
    return row


@dataclass
class ProductBatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # by the row's index


@transaction.atomic
def import_products(*, tenant: Tenant, rows: list[dict[str, Any]], default_currency: str = "") -> ProductBatchResult:
    """Rows of text (a chunk of a CSV import, whose reader already refused a SKU repeated in the
    file): each checked by `clean_product`, the invalid ones reported by index, the others upserted by SKU with their attributes merged key by key (a file
    with some attribute columns keeps the others). Currency defaults to the tenant's."""
    result = ProductBatchResult()
    valid: list[dict[str, Any]] = []
    for index, raw in enumerate(rows):
        try:
            valid.append(clean_product(raw, default_currency=default_currency or tenant.currency))
        except RowInvalid as exc:
            result.errors[index] = exc.errors
    result.created, result.updated = upsert_products(tenant=tenant, rows=valid, merge_attributes=True)
    result.unchanged = len(valid) - result.created - result.updated
    return result


@transaction.atomic
def upsert_products(*, tenant: Tenant, rows: list[dict[str, Any]], merge_attributes: bool = False) -> tuple[int, int]:
    """Create or update products by SKU (rows already shape-checked); (created, updated). A row's
    attributes replace the product's, or with `merge_attributes` are added to them key by key."""
    skus = [r["sku"] for r in rows]
    if len(set(skus)) != len(skus):
        raise DomainError(_("Each SKU may appear once per request."), field="products")
    existing = {p.sku: p for p in Product.objects.for_tenant(tenant).filter(sku__in=skus)}
    now = timezone.now()
    created, changed = [], []
    for row in rows:
        product = existing.get(row["sku"])
        if product is None:
            created.append(Product(tenant=tenant, created_at=now, updated_at=now, **row))
            continue
        if merge_attributes and "attributes" in row:
            row = {**row, "attributes": {**(product.attributes or {}), **row["attributes"]}}
        updates = {k: v for k, v in row.items() if k in PRODUCT_FIELDS and getattr(product, k) != v}
        if updates:
            for k, v in updates.items():
                setattr(product, k, v)
            product.updated_at = now
            changed.append(product)
    Product.objects.bulk_create(created, batch_size=500)
    if changed:
        Product.objects.for_tenant(tenant).bulk_update(changed, [*PRODUCT_FIELDS, "updated_at"], batch_size=500)
        # Cached active offers hold their products (prices, stock): reload them.
        transaction.on_commit(partial(pricing.offers_changed, tenant=tenant))
    return len(created), len(changed)


def _product(tenant: Tenant, product_id: Any, field: str) -> Product:
    product = Product.objects.for_tenant(tenant).filter(pk=product_id).first() if isinstance(product_id, int) else None
    if product is None:
        raise DomainError(_("Unknown product."), field=field)
    return product


def _check_eligibility(tenant: Tenant, rules: Any) -> dict[str, Any]:
    if rules in (None, ""):
        return {}
    if not isinstance(rules, dict):
        raise DomainError(_("Eligibility is an object."), field="eligibility")
    unknown = set(rules) - ELIGIBILITY_KEYS
    if unknown:
        raise DomainError(_("Unknown eligibility rules: %(keys)s.") % {"keys": ", ".join(sorted(unknown))}, field="eligibility")
    for key in ("segments", "not_segments"):
        ids = rules.get(key) or []
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise DomainError(_("%(key)s is a list of segment ids.") % {"key": key}, field="eligibility")
        if Segment.objects.for_tenant(tenant).filter(pk__in=ids).count() != len(set(ids)):
            raise DomainError(_("Unknown segment in %(key)s.") % {"key": key}, field="eligibility")
    if not set(rules.get("kinds") or []) <= set(Customer.Kind.values):
        raise DomainError(_("Unknown customer kind."), field="eligibility")
    if not set(rules.get("company_sizes") or []) <= set(Company.Size.values):
        raise DomainError(_("Unknown company size."), field="eligibility")
    for key in ("min_expected_value", "min_churn_probability", "max_churn_probability"):
        value = rules.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DomainError(_("%(key)s is a number.") % {"key": key}, field="eligibility")
    consent = rules.get("consent")
    if consent is not None and (not isinstance(consent, list) or not 1 <= len(consent) <= 2):
        raise DomainError(_("consent is [purpose] or [purpose, channel]."), field="eligibility")
    return rules


def _check_offer(tenant: Tenant, data: dict[str, Any], offer: Offer | None) -> dict[str, Any]:
    kind = data.get("kind", offer.kind if offer else None)
    if kind not in Offer.Kind.values:
        raise DomainError(_("Choose a kind."), field="kind")
    if "product_id" in data:
        data["product"] = _product(tenant, data.pop("product_id"), "product_id") if data["product_id"] is not None else None
    product = data.get("product", offer.product if offer else None)
    value = data.get("value", offer.value if offer else None)
    if kind in (Offer.Kind.PERCENT_OFF, Offer.Kind.AMOUNT_OFF, Offer.Kind.FIXED_PRICE):
        if product is None:
            raise DomainError(_("This kind of offer needs a product."), field="product_id")
        if value is None or value < 0:
            raise DomainError(_("Give a value of 0 or more."), field="value")
        if kind == Offer.Kind.PERCENT_OFF and value > 100:
            raise DomainError(_("A percentage is at most 100."), field="value")
    starts, ends = data.get("starts_at", offer.starts_at if offer else None), data.get("ends_at", offer.ends_at if offer else None)
    if starts and ends and ends <= starts:
        raise DomainError(_("The offer must end after it starts."), field="ends_at")
    if "eligibility" in data:
        data["eligibility"] = _check_eligibility(tenant, data["eligibility"])
    return data


@transaction.atomic
def create_offer(*, tenant: Tenant, actor: Actor, data: dict[str, Any]) -> Offer:
    items, groups = data.pop("items", None), data.pop("option_groups", None)
    data = _check_offer(tenant, data, None)
    offer = Offer.objects.create(tenant=tenant, **data)
    _set_parts(tenant, offer, items, groups)
    record_audit(tenant=tenant, actor=actor, action="offer.created", target=offer)
    transaction.on_commit(partial(pricing.offers_changed, tenant=tenant))
    return offer


@transaction.atomic
def update_offer(*, tenant: Tenant, actor: Actor, offer: Offer, data: dict[str, Any]) -> Offer:
    offer = Offer.objects.for_tenant(tenant).select_for_update().get(pk=offer.pk)
    items, groups = data.pop("items", None), data.pop("option_groups", None)
    data = _check_offer(tenant, data, offer)
    for key, value in data.items():
        setattr(offer, key, value)
    offer.updated_at = timezone.now()
    offer.save()
    _set_parts(tenant, offer, items, groups)
    record_audit(tenant=tenant, actor=actor, action="offer.updated", target=offer, metadata={"fields": sorted(data)})
    transaction.on_commit(partial(pricing.offers_changed, tenant=tenant))
    return offer


@transaction.atomic
def archive_offer(*, tenant: Tenant, actor: Actor, offer: Offer) -> Offer:
    """Take an offer off every list for good. It is archived, not deleted: its claims, requests
    and vouchers keep pointing at what was claimed."""
    offer = Offer.objects.for_tenant(tenant).select_for_update().get(pk=offer.pk)
    if offer.status != Offer.Status.ARCHIVED:
        offer.status = Offer.Status.ARCHIVED
        offer.updated_at = timezone.now()
        offer.save(update_fields=["status", "updated_at"])
        record_audit(tenant=tenant, actor=actor, action="offer.archived", target=offer)
        transaction.on_commit(partial(pricing.offers_changed, tenant=tenant))
    return offer


def _set_parts(tenant: Tenant, offer: Offer, items: list[dict[str, Any]] | None, groups: list[dict[str, Any]] | None) -> None:
    if offer.kind == Offer.Kind.BUNDLE and items is None and not offer.items.exists():
        raise DomainError(_("A bundle needs items."), field="items")
    if items is not None:
        if offer.kind != Offer.Kind.BUNDLE:
            raise DomainError(_("Only a bundle has items."), field="items")
        if not items:
            raise DomainError(_("A bundle needs items."), field="items")
        OfferItem.objects.for_tenant(tenant).filter(offer=offer).delete()
        OfferItem.objects.bulk_create([
            OfferItem(tenant=tenant, offer=offer, product=_product(tenant, i.get("product_id"), "items"), quantity=i.get("quantity", 1))
            for i in items])
    if offer.kind == Offer.Kind.CONFIGURABLE and groups is None and not offer.option_groups.exists():
        raise DomainError(_("A configurable offer needs option groups."), field="option_groups")
    if groups is not None:
        if offer.kind != Offer.Kind.CONFIGURABLE:
            raise DomainError(_("Only a configurable offer has option groups."), field="option_groups")
        _set_option_groups(tenant, offer, groups)


def _set_option_groups(tenant: Tenant, offer: Offer, groups: list[dict[str, Any]]) -> None:
    groups = option_groups.clean_option_groups(groups)  # raises with every problem by path
    OptionGroup.objects.for_tenant(tenant).filter(offer=offer).delete()
    for position, g in enumerate(groups):
        group = OptionGroup.objects.create(tenant=tenant, offer=offer, key=g["key"], label=g["label"], position=position,
                                           min_select=g["min_select"], max_select=g["max_select"])
        Option.objects.bulk_create([
            Option(tenant=tenant, group=group, key=o["key"], label=o["label"], price=o["price"],
                   requires=o["requires"], excludes=o["excludes"], position=i)
            for i, o in enumerate(g["options"])])
