"""CSV import of catalogue products: the kind the offers app adds to the customers app's import
(the job, the error report, the command and the wizard), with the API's product rules."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from customers import imports
from customers.models import Segment
from offers.models import Product
from offers.services import catalogue
from tenants import tasks
from tenants.models import JobRun, Membership, Tenant
from tests.commands import run_import_csv
from tests.import_helpers import (
    csv_bytes,
    error_report,
    media_root,  # noqa: F401 - the fixture, used through pytestmark
    run_import,
)

pytestmark = pytest.mark.usefixtures("media_root")

HEADER = ["SKU", "Product name", "Category", "Price", "Currency", "In stock", "Active", "colour"]
MAPPING = {
    "sku": "SKU", "name": "Product name", "category": "Category", "base_price": "Price", "currency": "Currency",
    "in_stock": "In stock", "is_active": "Active", "attributes.colour": "colour",
}


def _counts(job: JobRun) -> dict[str, int]:
    return {k: job.result[k] for k in ("created", "updated", "unchanged", "rejected")}


def _sim(tenant: Tenant) -> Product:
    return Product.objects.create(tenant=tenant, sku="sim-1", name="SIM card", category="sim", base_price=Decimal("10.00"),
                                  currency="EUR", attributes={"network": "5g"})


def _products(tenant: Tenant) -> dict[str, Product]:
    return {p.sku: p for p in Product.objects.for_tenant(tenant)}


CATALOGUE = [
    HEADER,
    ["case-1", "Phone case", "accessories", "12.50", "eur", "yes", "true", "black"],
    ["tab-1", "Tablet", "tablets", "300", "", "no", "1", ""],
    ["sim-1", "SIM card, new", "sim", "9.90", "EUR", "TRUE", "0", "red"],
]


# The job -----------------------------------------------------------------------------------------


def test_products_import_creates_and_updates_and_a_rerun_changes_nothing(tenant: Tenant, member: Membership) -> None:
    # given: sim-1 exists, with an attribute the file does not name
    _sim(tenant)

    # when
    job = run_import(tenant, member, "products", csv_bytes(CATALOGUE), MAPPING)

    # then
    assert (job.status, job.progress, job.processed, job.total, job.error_count) == ("succeeded", 100, 3, 3, 0)
    assert _counts(job) == {"created": 2, "updated": 1, "unchanged": 0, "rejected": 0}
    assert job.result["kind"] == "products" and "new_customers" not in job.result and not job.result_file
    products = _products(tenant)
    case, tablet, sim = products["case-1"], products["tab-1"], products["sim-1"]
    assert (case.name, case.category, case.base_price, case.currency, case.in_stock, case.is_active, case.attributes) == (
        "Phone case", "accessories", Decimal("12.50"), "EUR", True, True, {"colour": "black"})
    assert (tablet.base_price, tablet.currency, tablet.in_stock, tablet.attributes) == (Decimal("300.00"), tenant.currency, False, {})
    assert (sim.name, sim.base_price, sim.is_active, sim.attributes) == ("SIM card, new", Decimal("9.90"), False,
                                                                        {"network": "5g", "colour": "red"})
    stamps = {sku: p.updated_at for sku, p in products.items()}

    # when: the same file again
    again = run_import(tenant, member, "products", csv_bytes(CATALOGUE), MAPPING)

    # then: nothing changed
    assert _counts(again) == {"created": 0, "updated": 0, "unchanged": 3, "rejected": 0}
    assert {sku: p.updated_at for sku, p in _products(tenant).items()} == stamps


def test_the_currency_defaults_to_the_mappings_then_the_tenants(tenant: Tenant, member: Membership) -> None:
    rows = [["SKU", "Product name", "Price"], ["a-1", "A", "1"]]

    run_import(tenant, member, "products", csv_bytes(rows), {"sku": "SKU", "name": "Product name", "base_price": "Price"})
    run_import(tenant, member, "products", csv_bytes([*rows, ["b-1", "B", "2"]]),
            {"sku": "SKU", "name": "Product name", "base_price": "Price", "default_currency": "usd"})

    products = _products(tenant)
    assert (products["a-1"].currency, products["b-1"].currency) == ("USD", "USD")
    tenant.currency = "RUB"
    tenant.save()
    run_import(tenant, member, "products", csv_bytes([["SKU", "Product name", "Price"], ["c-1", "C", "3"]]),
            {"sku": "SKU", "name": "Product name", "base_price": "Price"})
    assert Product.objects.for_tenant(tenant).get(sku="c-1").currency == "RUB"


def test_bad_rows_are_reported_by_line_and_field_and_the_good_rows_are_imported(tenant: Tenant, member: Membership) -> None:
    rows = [
        HEADER,
        ["ok-1", "Good", "", "10", "EUR", "yes", "", ""],        # line 2
        ["bad-1", "Bad price", "", "ten", "EUR", "", "", ""],    # line 3
        ["neg-1", "Negative", "", "-1", "EUR", "", "", ""],      # line 4
        ["", "No SKU", "", "5", "EUR", "", "", ""],              # line 5
        ["ok-1", "Twice", "", "11", "EUR", "", "", ""],          # line 6
        ["stock-1", "Bad stock", "", "5", "EUR", "maybe", "", ""],  # line 7
        ["cur-1", "Bad currency", "", "5", "E1R", "", "", ""],   # line 8
        ["cent-1", "Too precise", "", "1.234", "EUR", "", "", ""],  # line 9
        ["ok-2", "Fine", "", "0", "EUR", "0", "", "blue"],       # line 10
    ]

    job = run_import(tenant, member, "products", csv_bytes(rows), MAPPING)

    assert job.status == "succeeded" and (job.processed, job.error_count) == (9, 7)
    assert (job.result["created"], job.result["rejected"]) == (2, 7)
    assert set(_products(tenant)) & {"ok-1", "ok-2", "bad-1", "neg-1", "stock-1", "cur-1", "cent-1"} == {"ok-1", "ok-2"}
    assert Product.objects.for_tenant(tenant).get(sku="ok-1").name == "Good"  # the first of the two rows
    report = error_report(job)
    assert [(r["line"], r["field"], r["column"]) for r in report] == [
        ("3", "base_price", "Price"), ("4", "base_price", "Price"), ("5", "sku", "SKU"), ("6", "sku", "SKU"),
        ("7", "in_stock", "In stock"), ("8", "currency", "Currency"), ("9", "base_price", "Price")]
    errors = {r["line"]: r["error"] for r in report}
    assert "decimal" in errors["3"] and "0 or more" in errors["4"] and "blank" in errors["5"]
    assert "Duplicate of line 2" in errors["6"] and "yes or no" in errors["7"] and "3-letter" in errors["8"]
    assert "2 decimal places" in errors["9"]
    assert (report[0]["SKU"], report[0]["Price"]) == ("bad-1", "ten")  # the original row, to fix and re-import


def test_duplicates_across_chunks_are_refused_by_line(tenant: Tenant, member: Membership) -> None:
    rows = [["SKU", "Product name", "Price"], *[[f"c-{i}", f"P{i}", str(i)] for i in range(5)], ["c-1", "Again", "9"]]

    job = run_import(tenant, member, "products", csv_bytes(rows), {"sku": "SKU", "name": "Product name", "base_price": "Price"}, chunk_size=2)

    assert (job.status, job.result["created"], job.result["rejected"]) == ("succeeded", 5, 1)
    assert error_report(job)[0]["line"] == "7" and Product.objects.for_tenant(tenant).get(sku="c-1").name == "P1"


def test_a_chunk_is_written_in_bulk_whatever_its_size(tenant: Tenant) -> None:
    mapping = imports.parse_mapping("products", {"sku": "sku", "name": "name", "base_price": "price", "attributes.colour": "colour"})

    def queries(prefix: str, n: int, price: str) -> int:
        content = ("sku,name,price,colour\n" + "".join(f"{prefix}-{i},P{i},{price},red\n" for i in range(n))).encode()
        with CaptureQueriesContext(connection) as captured:
            imports.run_import(tenant=tenant, mapping=mapping, opener=lambda: io.BytesIO(content))
        return len(captured.captured_queries)

    assert queries("few", 5, "1") == queries("many", 400, "1")  # created
    assert queries("few", 5, "2") == queries("many", 400, "2")  # updated


def test_wrong_encoding_stops_the_import_before_anything_is_written(tenant: Tenant, member: Membership) -> None:
    content = "SKU,Product name,Price\nru-1,Чехол,100\nru-2,Зарядка,200\n".encode("cp1251")
    mapping = {"sku": "SKU", "name": "Product name", "base_price": "Price"}

    job = run_import(tenant, member, "products", content, mapping)

    assert job.status == "failed" and "utf-8" in job.error and "line 2" in job.error and "cp1251" in job.error
    assert not Product.objects.for_tenant(tenant).filter(sku__startswith="ru-").exists()

    fixed = run_import(tenant, member, "products", content, {**mapping, "encoding": "cp1251"})
    assert fixed.status == "succeeded" and Product.objects.for_tenant(tenant).get(sku="ru-1").name == "Чехол"


def test_the_import_touches_only_its_own_tenants_products(tenant: Tenant, member: Membership, other_tenant: Tenant) -> None:
    # given: both tenants have a product with SKU sim-1
    _sim(tenant)
    before = {p.sku: (p.name, p.base_price, p.attributes, p.updated_at) for p in Product.objects.for_tenant(other_tenant)}
    assert "sim-1" in before

    job = run_import(tenant, member, "products", csv_bytes(CATALOGUE), MAPPING)

    assert _counts(job) == {"created": 2, "updated": 1, "unchanged": 0, "rejected": 0}
    assert {p.sku: (p.name, p.base_price, p.attributes, p.updated_at) for p in Product.objects.for_tenant(other_tenant)} == before
    assert Product.objects.for_tenant(tenant).get(sku="sim-1").name == "SIM card, new"


@pytest.mark.parametrize(("mapping", "message"), [
    ({"name": "n", "base_price": "p"}, "Map sku"),
    ({"sku": "s", "base_price": "p"}, "Map name"),
    ({"sku": "s", "name": "n"}, "Map base_price"),
    ({"sku": "s", "name": "n", "base_price": "p", "line.sku": "x"}, "Unknown target field 'line.sku'"),
    ({"sku": "s", "name": "n", "base_price": "p", "attributes.bad key": "x"}, "letters, digits"),
])
def test_bad_product_mappings_are_refused_with_a_reason(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(imports.ImportFileError, match=message):
        imports.parse_mapping("products", mapping)


def test_a_products_import_does_not_rebuild_segments(tenant: Tenant, member: Membership) -> None:
    Segment.objects.create(tenant=tenant, name="VIP", depends_on=["profile"], definition={"match": "all", "conditions": [
        {"type": "profile", "field": "tags", "op": "contains", "value": "vip"}]})

    run_import(tenant, member, "products", csv_bytes(CATALOGUE), MAPPING)

    assert not JobRun.objects.for_tenant(tenant).filter(kind="segments_rebuild").exists()


# The rules the API shares ------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "field"), [
    ({"sku": "a", "name": "A", "base_price": "-0.01", "currency": "EUR"}, "base_price"),
    ({"sku": "a", "name": "A", "base_price": "1", "currency": "EURO"}, "currency"),
    ({"sku": "a" * 129, "name": "A", "base_price": "1", "currency": "EUR"}, "sku"),
    ({"sku": "a", "name": "", "base_price": "1", "currency": "EUR"}, "name"),
    ({"sku": "a", "name": "A", "base_price": "1", "is_active": "maybe"}, "is_active"),
    ({"sku": "a", "name": "A", "base_price": "1", "attributes": {"x": [1]}}, "attributes"),
])
def test_clean_product_refuses_what_the_catalogue_rules_refuse(raw: dict[str, Any], field: str) -> None:
    from customers.intake import RowInvalid

    with pytest.raises(RowInvalid) as caught:
        catalogue.clean_product(raw, default_currency="EUR")

    assert list(caught.value.errors) == [field]


@pytest.mark.parametrize(("currency", "price", "field"), [("E1R", "1.00", "currency"), ("EUR", "-1.00", "base_price")])
def test_the_api_refuses_products_by_the_same_rules(api_client: APIClient, tenant: Tenant, currency: str, price: str,
                                                      field: str) -> None:
    response = api_client.post("/api/v1/products/", {"sku": "x-1", "name": "X", "base_price": price, "currency": currency},
                               format="json")

    assert response.status_code == 400 and field in response.json()
    assert not Product.objects.for_tenant(tenant).filter(sku="x-1").exists()


# The command -------------------------------------------------------------------------------------


def test_command_imports_products_matching_columns_by_name_and_keeps_the_others_as_attributes(tenant: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_bytes(csv_bytes([["sku", "name", "price", "in_stock", "Screen size"], ["tv-9", "TV", "499.99", "no", "55"],
                           ["tv-9", "TV again", "1", "yes", ""], ["tv-8", "TV", "1", "perhaps", ""]]))

    code, output = run_import_csv(tenant.slug, "products", str(path))

    assert code == 0, output
    assert "created 1" in output and "2 rows rejected" in output and "attributes.screen_size" in output
    tv = Product.objects.for_tenant(tenant).get(sku="tv-9")
    assert (tv.base_price, tv.in_stock, tv.currency, tv.attributes) == (Decimal("499.99"), False, "EUR", {"screen_size": "55"})
    job = JobRun.objects.for_tenant(tenant).get(kind="customers_import")
    assert (job.status, job.params["kind"], job.result["rejected"]) == ("succeeded", "products", 2)

    code, output = run_import_csv(tenant.slug, "products", str(path))
    assert code == 0 and "unchanged 1" in output


def test_command_refuses_a_products_mapping_without_a_price(tenant: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_bytes(csv_bytes([["sku", "name"], ["tv-9", "TV"]]))

    code, output = run_import_csv(tenant.slug, "products", str(path), "--mapping", '{"sku": "sku", "name": "name"}')

    assert code == 1 and "Map base_price" in output
    assert not Product.objects.for_tenant(tenant).filter(sku="tv-9").exists()


# The wizard --------------------------------------------------------------------------------------


def test_catalogue_links_to_the_wizard_with_products_preselected(dashboard_client: Client, tenant: Tenant) -> None:
    page = dashboard_client.get(reverse("offers:products", args=[tenant.slug]))
    link = reverse("customers:import", args=[tenant.slug]) + "?kind=products"
    assert page.status_code == 200 and f'href="{link}"' in page.content.decode()

    upload = dashboard_client.get(link)

    assert upload.status_code == 200 and upload.context["form"]["kind"].value() == "products"
    assert dict(upload.context["form"].fields["kind"].choices)["products"] == "Products"


def test_wizard_maps_product_columns_and_starts_the_import(dashboard_client: Client, tenant: Tenant, member: Membership,
                                                          django_capture_on_commit_callbacks: Callable,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.run_job, "delay", lambda **kw: sent.append(kw))
    mapping_url = reverse("customers:import_mapping", args=[tenant.slug])

    # step 1: upload
    response = dashboard_client.post(reverse("customers:import", args=[tenant.slug]), {
        "kind": "products", "encoding": "utf-8", "file": SimpleUploadedFile("catalogue.csv", csv_bytes(CATALOGUE), "text/csv")})
    assert response.status_code == 302 and response["Location"] == mapping_url

    # step 2: suggested columns, unmapped ones pre-checked as attributes, a default currency field
    page = dashboard_client.get(mapping_url)
    assert page.status_code == 200 and "Phone case" in page.content.decode()
    form = page.context["form"]
    assert {name: form[f"map_{name}"].initial for name in ("sku", "name", "category", "base_price", "currency", "in_stock", "is_active")} == {
        "sku": "0", "name": "1", "category": "2", "base_price": "3", "currency": "4", "in_stock": "5", "is_active": "6"}
    assert form["extra_columns"].initial == ["7"] and "default_currency" in form.fields

    # step 3: start → the job page
    data = {"action": "start", "delimiter": ",", "header": "on", "encoding": "utf-8", "extra_columns": ["7"],
            **{f"map_{name}": str(i) for i, name in enumerate(("sku", "name", "category", "base_price", "currency", "in_stock", "is_active"))}}
    with django_capture_on_commit_callbacks(execute=True):
        response = dashboard_client.post(mapping_url, data)
    job = JobRun.objects.for_tenant(tenant).get(kind="customers_import")
    assert response.status_code == 302 and response["Location"] == reverse("tenants:job_detail", args=[tenant.slug, job.pk])
    assert sent == [{"tenant_id": tenant.pk, "job_id": job.pk}]
    assert job.params["kind"] == "products" and job.params["mapping"]["attributes.colour"] == "colour"

    tasks.run_job(tenant_id=tenant.pk, job_id=job.pk)
    assert Product.objects.for_tenant(tenant).get(sku="case-1").attributes == {"colour": "black"}
    detail = dashboard_client.get(reverse("tenants:job_detail", args=[tenant.slug, job.pk]))
    assert detail.status_code == 200
    body = detail.content.decode()
    assert 'data-testid="job-result"' in body and "Unchanged" in body and "Rejected" in body


def test_wizard_start_without_the_product_price_is_a_form_error(dashboard_client: Client, tenant: Tenant) -> None:
    dashboard_client.post(reverse("customers:import", args=[tenant.slug]), {
        "kind": "products", "encoding": "utf-8", "file": SimpleUploadedFile("catalogue.csv", csv_bytes(CATALOGUE), "text/csv")})

    response = dashboard_client.post(reverse("customers:import_mapping", args=[tenant.slug]), {
        "action": "start", "delimiter": ",", "header": "on", "encoding": "utf-8", "map_sku": "0", "map_name": "1"})

    assert response.status_code == 400 and "Map base_price" in response.content.decode()
    assert not JobRun.objects.for_tenant(tenant).filter(kind="customers_import").exists()
