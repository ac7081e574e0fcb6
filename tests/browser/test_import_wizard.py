"""A marketer imports orders from a CSV file in a real browser: upload, map the columns, start,
watch the job a real Celery worker runs reach 100%, then find the orders on the customer's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from customers.models import Customer, Order
from tenants.roles import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORDERS = """Order No,Customer,Date,SKU,Product,Qty,Price
A-1,w-1,2026-01-05 10:00,sim-1,SIM card,1,10.00
A-2,w-1,2026-02-07 12:30,tab-9,Tablet,1,199.00
A-1,w-1,2026-01-05 10:00,case-2,Phone case,2,7.50
B-1,w-2,2026-01-09 09:15,sim-1,SIM card,3,10.00
C-1,,2026-01-10 11:00,sim-1,SIM card,1,10.00
"""


def test_import_orders_through_the_wizard_and_see_them_on_the_timeline(
    page: Page, live_server: Any, celery_worker_process: Any, tmp_path: Path
) -> None:
    # given: a workspace with an owner, and a CSV export of orders from a shop
    tenant = TenantFactory(name="Acme Telecom", slug="acme")
    MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="owner@acme.example"))
    upload = tmp_path / "shop-orders.csv"
    upload.write_text(ORDERS, encoding="utf-8")

    # when: the owner signs in and opens the import tab of the customers section
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill("owner@acme.example")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("nav-customers").click()
    page.get_by_test_id("tab-import").click()

    # step 1: uploads the file as orders
    page.get_by_label("The file holds").select_option("orders")
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_test_id("upload-file").click()

    # step 2: sees the detected columns and first rows, with most fields matched by name
    expect(page.get_by_test_id("import-file-name")).to_have_text("shop-orders.csv")
    preview = page.get_by_test_id("import-preview")
    expect(preview).to_contain_text("Order No")
    expect(preview).to_contain_text("Phone case")
    expect(page.get_by_label("External id", exact=True)).to_have_value("0")
    expect(page.get_by_label("Customer external id")).to_have_value("1")
    expect(page.get_by_label("Line: quantity")).to_have_value("5")
    # maps the one column whose name says nothing, and merges rows of one order
    page.get_by_label("Line: product name").select_option(label="Product")
    page.get_by_label("Rows with the same order id are one order with several lines").check()
    page.screenshot(path=str(tmp_path / "import-columns.png"), full_page=True)
    page.get_by_test_id("start-import").click()

    # then: the job page's progress bar reaches 100% while a real worker runs the import
    status = page.get_by_test_id("job-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(page.locator(".progress[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("job-processed")).to_contain_text("5 / 5")
    # the row without a customer is reported in a downloadable error file
    expect(page.get_by_test_id("job-download")).to_be_visible()
    page.screenshot(path=str(tmp_path / "import-finished.png"), full_page=True)
    assert Order.objects.for_tenant(tenant).count() == 3

    # and: the customer's profile shows the imported orders with their lines on the timeline
    page.get_by_test_id("nav-customers").click()
    page.get_by_role("link", name="w-1", exact=True).click()
    expect(page.get_by_test_id("customer-name")).to_have_text("w-1")
    expect(page.get_by_test_id("order-count")).to_have_text("2")
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("li.tl-order")).to_have_count(2)
    expect(timeline).to_contain_text("Order A-2")
    expect(timeline).to_contain_text("Order A-1")
    expect(timeline).to_contain_text("Phone case")
    expect(timeline).to_contain_text("Tablet")
    assert Customer.objects.for_tenant(tenant).filter(external_id__in=["w-1", "w-2"]).count() == 2
