"""A visitor signs up through a tenant's public lead form, confirms by the emailed link, and the
marketer finds the new customer with the granted consent on the profile."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from customers.models import Consent, Customer, LeadForm
from tenants.roles import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_confirm_and_see_the_customer(page: Page, live_server: Any) -> None:
    # given: a workspace with a newsletter form, and its owner
    tenant = TenantFactory(name="Acme Telecom", slug="acme")
    MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="owner@acme.example"))
    LeadForm.objects.create(
        tenant=tenant, name="Newsletter", slug="news", consent_text="Yes, email me offers.", consent_version="v2",
        consent_purposes=["marketing"], fields=[{"key": "email", "label": "Email", "type": "email", "required": True}],
    )
    mail.outbox.clear()

    # when: a visitor signs up on the public page
    page.goto(f"{live_server.url}/f/acme/news/")
    page.get_by_label("Email").first.fill("Visitor@Example.com")
    page.locator("input[type=checkbox]").last.check()
    page.get_by_role("button").last.click()
    expect(page.locator("body")).to_contain_text("Check your inbox")
    assert not Customer.objects.for_tenant(tenant).exists()  # nothing is stored before confirmation

    # and confirms with the link from the email
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/f/acme/confirm/\S+/", mail.outbox[0].body).group(0)
    page.goto(live_server.url + link[link.index("/f/"):])
    page.get_by_test_id("confirm-button").click()
    expect(page.locator("body")).not_to_contain_text("invalid")

    # then: the marketer sees the person and the consent on their profile
    customer = Customer.objects.for_tenant(tenant).get(email="visitor@example.com")
    consent = Consent.objects.for_tenant(tenant).get(customer=customer)
    assert (consent.status, consent.source, consent.text_version) == ("granted", "form", "v2")
    page.goto(f"{live_server.url}/accounts/sign-in/")
    page.get_by_label("Email").fill("owner@acme.example")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/t/acme/customers/?q=visitor")
    page.get_by_role("link", name=re.compile("visitor@example.com")).click()
    expect(page.get_by_test_id("consent-table")).to_contain_text("granted")
    expect(page.get_by_test_id("timeline")).to_contain_text("Marketing")
