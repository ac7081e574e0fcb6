"""Products as a kind of the CSV import (customers/imports.py), added by OffersConfig.ready().

The import framework belongs to the customers app, which never imports offers; this module hands
it the catalogue's targets and a writer that checks each row with the rules the API uses
(`catalogue.clean_product`) and upserts the valid ones by SKU, a chunk per transaction.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from customers import imports as csv_import
from offers.services import catalogue
from tenants.models import Tenant

TARGETS = ("sku", "name", "category", "base_price", "currency", "in_stock", "is_active")
LABELS: dict[str, Any] = {
    "sku": _("SKU"),
    "name": _("Product name"),
    "category": _("Category"),
    "base_price": _("Base price"),
    "currency": _("Currency"),
    "in_stock": _("In stock (yes or no)"),
    "is_active": _("Active (yes or no)"),
}
# Header names (lower-case letters and digits) that pre-fill a target; the target's own name matches too.
SYNONYMS = {
    "sku": ("stockcode", "productcode", "productid", "itemcode", "itemid", "article", "code"),
    "name": ("productname", "itemname", "title", "description"),
    "category": ("productcategory", "categoryname", "group"),
    "base_price": ("price", "baseprice", "unitprice", "listprice"),
    "currency": ("currencycode",),
    "in_stock": ("instock", "stock", "available", "availability"),
    "is_active": ("active", "isactive", "enabled"),
}
REQUIRED = {
    "sku": _("Map sku: products are matched by it, so a re-run updates instead of duplicating."),
    "name": _("Map name: every product needs one."),
    "base_price": _("Map base_price: every product needs a price (0 or more)."),
}


def write_products(*, tenant: Tenant, rows: list[dict[str, Any]]) -> csv_import.Written:
    result = catalogue.import_products(tenant=tenant, rows=rows)
    return csv_import.Written(rejected=result.errors, created=result.created, updated=result.updated, unchanged=result.unchanged)


def register() -> None:
    csv_import.register_kind(csv_import.ImportKind(
        name="products", label=_("Products"), targets=TARGETS, labels=LABELS, required=REQUIRED, write=write_products,
        synonyms=SYNONYMS, unique="sku", extra_prefix="attributes.", keep_unmapped=True, id_targets=frozenset({"sku"}),
    ))
