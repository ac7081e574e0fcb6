"""A marketer's first minutes, in a real browser: sign in, switch to Russian, see the translated
dashboard, open the jobs page and watch a job that a real Celery worker runs finish."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tenants.models import AuditLog
from tenants.roles import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_switch_to_russian_and_run_a_job(page: Page, live_server: Any, celery_worker_process: Any, tmp_path: Path) -> None:
    # given: a workspace with an owner, and another workspace the owner must never see
    tenant = TenantFactory(name="Acme Telecom", slug="acme")
    TenantFactory(name="Other Telecom", slug="other")
    MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="owner@acme.example"))
    AuditLog.objects.bulk_create([AuditLog(tenant=tenant, actor_label="seed", action="seed") for _ in range(500)])

    # when: the owner signs in
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill("owner@acme.example")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Other Telecom")
    # the vendored chart library draws the activity chart (no network needed)
    page.wait_for_function("() => window.Chart && Chart.getChart('activity-chart') !== undefined")
    assert page.evaluate("Chart.getChart('activity-chart').data.datasets[0].data.reduce((a, b) => a + b, 0)") >= 500

    # and switches the interface to Russian
    page.get_by_test_id("language-select").select_option("ru")
    expect(page.get_by_role("heading", name="Обзор")).to_be_visible()
    expect(page.locator("nav.sidenav")).to_contain_text("Клиенты")
    expect(page.locator("html")).to_have_attribute("lang", "ru")

    # then: the jobs page opens in Russian; an export started there runs on the worker and the
    # progress bar reaches 100% without reloading the page (htmx polling)
    page.get_by_test_id("nav-jobs").click()
    expect(page.get_by_role("heading", name="Задачи")).to_be_visible()
    page.get_by_test_id("start-audit-export").click()
    status = page.get_by_test_id("job-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(page.locator(".progress[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("job-download")).to_be_visible()
    page.screenshot(path=str(tmp_path / "job-finished.png"), full_page=True)

    page.get_by_role("link", name=re.compile("Все задачи")).click()
    expect(page.get_by_test_id("job-table")).to_contain_text("100%")
    expect(page.get_by_test_id("job-table")).to_contain_text("Выполнена")
