"""A marketer builds a segment with the builder in a real browser, sees the live count, saves it,
watches a real Celery worker build it, and sees a new event move a person into it within seconds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers import services as customer_services
from customers.models import Segment, SegmentMembership
from tenants.roles import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_build_a_segment_see_its_count_and_watch_it_stay_fresh(
    page: Page, live_server: Any, celery_worker_process: Any, tmp_path: Path
) -> None:
    # given: customers, two of whom put something in the cart at least twice this month
    tenant = TenantFactory(name="Acme Telecom", slug="acme")
    MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="owner@acme.example"))
    customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": f"b{i}", "first_name": name, "kind": "business_buyer" if i < 3 else "consumer"}
        for i, name in enumerate(["Anna", "Boris", "Clara", "Dmitri", "Eva"])
    ])
    recent = (timezone.now() - timedelta(days=3)).isoformat()
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": f"c-{who}-{n}", "type": "add_to_cart", "customer_external_id": who, "occurred_at": recent}
        for who in ("b0", "b1", "b4") for n in range(2)
    ])

    # when: the owner opens the builder
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill("owner@acme.example")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("nav-segments").click()
    page.get_by_test_id("new-segment").click()
    page.get_by_label("Name").fill("Active business carts")

    # the first condition: kind is business buyer
    first = page.get_by_test_id("condition").nth(0)
    first.locator("select").nth(3).select_option("business_buyer")
    expect(page.get_by_test_id("preview-count")).to_have_text("3")
    # and a second: added to cart at least 2 times within 30 days
    page.get_by_test_id("add-condition").click()
    second = page.get_by_test_id("condition").nth(1)
    second.locator("select").nth(0).select_option("event")
    second = page.get_by_test_id("condition").nth(1)
    second.locator("select").nth(1).select_option("at_least")
    second = page.get_by_test_id("condition").nth(1)
    second.locator("input").nth(0).fill("add_to_cart")
    second.locator("input").nth(0).dispatch_event("change")
    second = page.get_by_test_id("condition").nth(1)
    second.locator("input").nth(1).fill("2")
    second.locator("input").nth(1).dispatch_event("change")

    # then: the live count and sample follow the definition
    expect(page.get_by_test_id("preview-count")).to_have_text("2")
    expect(page.get_by_test_id("preview-sample")).to_contain_text("Anna")
    expect(page.get_by_test_id("preview-sample")).not_to_contain_text("Eva")
    page.screenshot(path=str(tmp_path / "segment-builder.png"), full_page=True)
    page.get_by_test_id("save-segment").click()

    # and: the worker builds it; the segment page shows two members
    expect(page.get_by_test_id("segment-name")).to_have_text("Active business carts")
    expect(page.get_by_test_id("segment-count")).to_have_text("2", timeout=30_000)
    segment = Segment.objects.for_tenant(tenant).get(name="Active business carts")
    assert segment.definition["match"] == "all" and len(segment.definition["conditions"]) == 2

    # when: Clara adds to cart twice (through the API's service), the worker refreshes her alone
    customer_services.ingest_events(tenant=tenant, rows=[
        {"event_id": f"c-b2-{n}", "type": "add_to_cart", "customer_external_id": "b2", "occurred_at": timezone.now().isoformat()}
        for n in range(2)
    ])
    for _ in range(30):  # freshness target: seconds, not the next scheduled rebuild
        if SegmentMembership.objects.for_tenant(tenant).filter(segment=segment).count() == 3:
            break
        page.wait_for_timeout(500)
    page.reload()
    expect(page.get_by_test_id("segment-count")).to_have_text("3")
    expect(page.get_by_test_id("member-table")).to_contain_text("Clara")
    page.screenshot(path=str(tmp_path / "segment-page.png"), full_page=True)
