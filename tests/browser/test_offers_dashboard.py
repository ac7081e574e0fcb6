"""The offers dashboard in a real browser. A customer claims a tariff in the portal; a marketer
finds the claim in the request queue by its filters, moves it to review and approves it with a
comment, and the customer's "My requests" shows it approved. And a marketer builds a configurable
offer with the option-group builder (a server-side error shown next to its input on the way),
which the portal's configurator then offers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from customers import services as customer_services
from customers.models import Customer
from offers.models import Offer, OfferRequest, Option, OptionGroup, Product
from offers.services import claims
from tenants.models import Tenant
from tenants.roles import Role
from tests.browser.helpers import portal_sign_in
from tests.factories import TEST_PASSWORD, MembershipFactory, TenantFactory, UserFactory

# The portal's sign-in email is sent by a Celery task: run it in this process so that it lands in mail.outbox.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_eager")]

SCREENSHOTS = Path("/tmp/offers-dashboard-screenshots")


def _shop() -> tuple[Tenant, Customer, Offer]:
    """Acme with a marketer, Anna and Boris, a SIM deal and a configurable tariff; and a look-alike
    tenant with a claim of its own that must never show up."""
    tenant = TenantFactory(name="Acme Telecom", slug="acme")
    MembershipFactory(tenant=tenant, role=Role.MARKETER, user=UserFactory(email="marketer@acme.example"))
    people = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "c-1", "email": "anna@example.com", "first_name": "Anna", "last_name": "Adams"},
        {"external_id": "c-2", "email": "boris@example.com", "first_name": "Boris", "last_name": "Brown"}]).objects
    anna, boris = people[0], people[1]
    sim = Product.objects.create(tenant=tenant, sku="sim-1", name="SIM card", category="sim", base_price=Decimal("10.00"), currency="EUR")
    deal = Offer.objects.create(tenant=tenant, name="10% off your SIM card", kind="percent_off", status="active", product=sim,
                                value=Decimal("10"), currency="EUR")
    tariff = Offer.objects.create(tenant=tenant, name="Build your tariff", kind="configurable", status="active",
                                  base_price=Decimal("5.00"), currency="EUR", priority=10)
    data = OptionGroup.objects.create(tenant=tenant, offer=tariff, key="data", label="Data", position=0)
    Option.objects.create(tenant=tenant, group=data, key="5gb", label="5 GB", price=Decimal("7.00"), position=0)
    Option.objects.create(tenant=tenant, group=data, key="20gb", label="20 GB", price=Decimal("15.00"), position=1)
    claims.claim_offer(tenant=tenant, customer=boris, offer_id=deal.pk, source="portal")  # filtered out below

    other = TenantFactory(name="Other Telecom", slug="other")
    their_customer = customer_services.upsert_customers(tenant=other, rows=[
        {"external_id": "c-1", "email": "anna@example.com", "first_name": "Anna"}]).objects[0]
    their_tariff = Offer.objects.create(tenant=other, name="Build your tariff", kind="amount_off", status="active",
                                        product=Product.objects.create(tenant=other, sku="sim-1", name="SIM", base_price=Decimal("9"),
                                                                       currency="EUR"),
                                        value=Decimal("1"), currency="EUR")
    claims.claim_offer(tenant=other, customer=their_customer, offer_id=their_tariff.pk, source="portal")
    return tenant, anna, tariff


@pytest.fixture
def marketer_page(browser: Browser, browser_context_args: dict[str, Any]) -> Iterator[Page]:
    """A second browser (its own cookies) for the marketer, beside the customer's `page`."""
    context: BrowserContext = browser.new_context(**browser_context_args)
    yield context.new_page()
    context.close()


def _dashboard_sign_in(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill("marketer@acme.example")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_marketer_reviews_and_approves_a_claim_the_customer_then_sees(page: Page, marketer_page: Page, live_server: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tenant, anna, tariff = _shop()

    # given: Anna claims the tariff with 20 GB in the portal
    portal_sign_in(page, live_server)
    page.get_by_role("link", name=re.compile("Configure")).click()
    page.get_by_label("20 GB").check()
    expect(page.get_by_test_id("price")).to_have_text("20.00 EUR")
    page.get_by_test_id("claim-button").click()
    expect(page.get_by_test_id("request-status")).to_have_text("New")
    claim = OfferRequest.objects.for_tenant(tenant).get(customer=anna)

    # when: the marketer opens the request queue and narrows it to new claims of the tariff
    marketer = marketer_page
    _dashboard_sign_in(marketer, live_server)
    marketer.get_by_test_id("nav-offers").click()
    marketer.get_by_test_id("tab-requests").click()
    table = marketer.get_by_test_id("request-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    marketer.get_by_label("Status", exact=True).select_option("new")
    marketer.get_by_label("Offer", exact=True).select_option(label="Build your tariff")
    marketer.get_by_role("button", name="Filter").click()
    expect(marketer).to_have_url(re.compile(rf"status=new&offer={tariff.pk}"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Anna Adams")
    expect(table).not_to_contain_text("Boris")
    marketer.screenshot(path=str(SCREENSHOTS / "queue-filtered.png"), full_page=True)

    # and opens the claim, moves it to review, then approves it with a comment
    table.get_by_role("link", name=str(claim.pk), exact=True).click()
    expect(marketer.get_by_role("heading", level=1)).to_contain_text(f"#{claim.pk}")
    expect(marketer.get_by_test_id("request-status")).to_have_text("New")
    marketer.get_by_label("Move to").select_option(label="In review")
    marketer.get_by_label("Comment").fill("Checking the coverage at her address.")
    marketer.get_by_test_id("move-request").click()
    expect(marketer.get_by_test_id("request-status")).to_have_text("In review")
    marketer.get_by_label("Move to").select_option(label="Approved")
    marketer.get_by_label("Comment").fill("Welcome aboard!")
    marketer.get_by_test_id("move-request").click()
    expect(marketer.get_by_test_id("request-status")).to_have_text("Approved")
    history = marketer.get_by_test_id("request-history")
    expect(history).to_contain_text("New → In review")
    expect(history).to_contain_text("In review → Approved")
    expect(history).to_contain_text("Welcome aboard!")
    marketer.screenshot(path=str(SCREENSHOTS / "request-approved.png"), full_page=True)
    claim.refresh_from_db()
    assert claim.status == "approved" and claim.decided_at is not None

    # then: Anna's "My requests" shows it approved, with the comment and without who wrote it
    page.get_by_test_id("nav-requests").click()
    expect(page.get_by_test_id("request-item")).to_have_count(1)
    expect(page.get_by_test_id("request-list")).to_contain_text("Approved")
    page.get_by_role("link", name=re.compile("Build your tariff")).click()
    expect(page.get_by_test_id("request-status")).to_have_text("Approved")
    expect(page.get_by_test_id("request-history")).to_contain_text("Welcome aboard!")
    expect(page.get_by_test_id("request-history")).not_to_contain_text("marketer@acme.example")

    # and the decision counts in the queue's processing time
    marketer.get_by_role("link", name=re.compile("All requests")).click()
    expect(marketer.get_by_test_id("time-to-decision")).not_to_have_text("—")


def test_marketer_builds_a_configurable_offer_with_two_option_groups(page: Page, marketer_page: Page, live_server: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tenant, _anna, _tariff = _shop()
    marketer = marketer_page

    # when: the marketer starts a configurable offer
    _dashboard_sign_in(marketer, live_server)
    marketer.get_by_test_id("nav-offers").click()
    marketer.get_by_test_id("new-offer").click()
    builder = marketer.get_by_test_id("option-builder")
    expect(marketer.get_by_test_id("option-groups")).to_be_hidden()  # not for a percentage off
    marketer.get_by_role("textbox", name="Name", exact=True).fill("Family tariff")
    marketer.get_by_label("Kind").select_option("configurable")
    marketer.get_by_label("Status").select_option("active")
    marketer.get_by_label("Base fee (configurable)").fill("5")
    expect(builder).to_be_visible()
    expect(marketer.locator("#option-groups-json")).not_to_have_attribute("open", "")  # the JSON is folded away

    # and adds a required "Data" group with two options (keys follow the names)
    builder.get_by_test_id("add-group").click()
    data = builder.get_by_test_id("option-group").nth(0)
    expect(data.get_by_label("Name shown to customers").first).to_be_focused()
    marketer.keyboard.type("Data")
    expect(data.get_by_label("Key").first).to_have_value("data")
    expect(data.get_by_label("Required: the customer must choose")).to_be_checked()
    first = data.get_by_test_id("option").nth(0)
    first.get_by_label("Name shown to customers").fill("10 GB")
    first.get_by_label("Price").fill("8")
    data.get_by_test_id("add-option").click()
    second = data.get_by_test_id("option").nth(1)
    expect(second.get_by_label("Name shown to customers")).to_be_focused()
    marketer.keyboard.type("Unlimited data")
    second.get_by_label("Price").fill("20")

    # and an optional "Extras" group of up to two, one of which needs unlimited data
    builder.get_by_test_id("add-group").click()
    extras = builder.get_by_test_id("option-group").nth(1)
    extras.get_by_label("Name shown to customers").first.fill("Extras")
    extras.get_by_label("Required: the customer must choose").uncheck()
    expect(extras.get_by_label("Choose at least")).to_have_value("0")
    extras.get_by_label("Choose at most").fill("2")
    roaming = extras.get_by_test_id("option").nth(0)
    roaming.get_by_label("Name shown to customers").fill("EU roaming")
    roaming.get_by_label("Needs").select_option(label="Data: Unlimited data")
    extras.get_by_test_id("add-option").click()
    extras.get_by_test_id("option").nth(1).get_by_label("Name shown to customers").fill("Second SIM")
    extras.get_by_test_id("option").nth(1).get_by_label("Price").fill("3")

    # and saves, with the roaming price forgotten: the server's message sits next to that input
    marketer.get_by_test_id("save-offer").click()
    expect(marketer.get_by_test_id("option-group-errors")).to_contain_text("Group 2 › Option 1 › Price")
    price = marketer.get_by_test_id("option-group").nth(1).get_by_test_id("option").nth(0).get_by_label("Price")
    expect(price).to_have_attribute("aria-invalid", "true")
    expect(marketer.locator("#og-1-options-0-price-error")).to_have_text("Give a price, e.g. 9.90.")
    assert not Offer.objects.for_tenant(tenant).filter(name="Family tariff").exists()
    marketer.screenshot(path=str(SCREENSHOTS / "builder-error.png"), full_page=True)
    # every control of the builder has a label
    unlabelled = marketer.evaluate("""() => [...document.querySelectorAll('#option-builder :is(input, select, button)')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.outerHTML)""")
    assert unlabelled == []
    price.fill("4.50")
    expect(price).not_to_have_attribute("aria-invalid", "true")
    marketer.get_by_test_id("save-offer").click()

    # then: saved with both groups, their options, prices and the rule
    expect(marketer.get_by_test_id("offer-name")).to_have_text("Family tariff")
    offer = Offer.objects.for_tenant(tenant).get(name="Family tariff")
    saved = [(g.key, g.label, g.min_select, g.max_select, [(o.key, o.label, str(o.price), o.requires) for o in g.options.all()])
             for g in offer.option_groups.all()]
    assert saved == [
        ("data", "Data", 1, 1, [("10-gb", "10 GB", "8.00", []), ("unlimited-data", "Unlimited data", "20.00", [])]),
        ("extras", "Extras", 0, 2, [("eu-roaming", "EU roaming", "4.50", ["data.unlimited-data"]),
                                    ("second-sim", "Second SIM", "3.00", [])]),
    ]
    marketer.screenshot(path=str(SCREENSHOTS / "offer-saved.png"), full_page=True)

    # and the portal's configurator offers it to Anna, priced from its options
    portal_sign_in(page, live_server)
    card = page.get_by_test_id("offer-card").filter(has_text="Family tariff")
    expect(card.get_by_test_id("offer-price")).to_have_text("from 13.00 EUR")
    card.get_by_role("link", name=re.compile("Configure")).click()
    expect(page.get_by_test_id("price")).to_have_text("13.00 EUR")
    page.get_by_label("Unlimited data").check()
    page.get_by_label("EU roaming").check()
    expect(page.get_by_test_id("price")).to_have_text("29.50 EUR")
