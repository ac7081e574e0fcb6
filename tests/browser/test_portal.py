"""A customer signs in to the portal by the emailed link, assembles a tariff watching the price
follow the options, claims it and finds it under "My requests"; the marketer's approval shows
there too. The same pages at a phone's width (375px) never scroll sideways."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from customers import services as customer_services
from customers.models import Customer
from offers.models import Offer, OfferRequest, Option, OptionGroup, Product
from offers.services import claims
from tenants.models import Tenant
from tests.browser.helpers import portal_sign_in
from tests.factories import TenantFactory

# The sign-in email is sent by a Celery task: run it in this process so that it lands in mail.outbox.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_eager")]

SCREENSHOTS = Path("/tmp/portal-screenshots")


def _shop() -> tuple[Tenant, Customer, Offer]:
    tenant = TenantFactory(name="Acme Telecom", slug="acme", brand_color="#b4287d")
    customer = customer_services.upsert_customers(tenant=tenant, rows=[
        {"external_id": "c-1", "email": "anna@example.com", "first_name": "Anna"}]).objects[0]
    sim = Product.objects.create(tenant=tenant, sku="sim-1", name="SIM card", category="sim", base_price=Decimal("10.00"), currency="EUR")
    Offer.objects.create(tenant=tenant, name="10% off your SIM card", kind="percent_off", status="active", product=sim,
                         value=Decimal("10"), currency="EUR")
    tariff = Offer.objects.create(tenant=tenant, name="Build your tariff", kind="configurable", status="active",
                                  description="Pick your data and minutes; the price follows.", base_price=Decimal("5.00"),
                                  currency="EUR", priority=10)
    data = OptionGroup.objects.create(tenant=tenant, offer=tariff, key="data", label="Data", position=0)
    Option.objects.create(tenant=tenant, group=data, key="5gb", label="5 GB", price=Decimal("7.00"), position=0)
    Option.objects.create(tenant=tenant, group=data, key="20gb", label="20 GB", price=Decimal("15.00"), position=1)
    minutes = OptionGroup.objects.create(tenant=tenant, offer=tariff, key="minutes", label="Minutes", min_select=0, max_select=1,
                                         position=1)
    Option.objects.create(tenant=tenant, group=minutes, key="300", label="300 minutes", price=Decimal("3.00"), position=0)
    Option.objects.create(tenant=tenant, group=minutes, key="unlimited", label="Unlimited minutes", price=Decimal("10.00"),
                          requires=["data.20gb"], position=1)
    return tenant, customer, tariff


def _sign_in(page: Page, live_server: Any) -> None:
    portal_sign_in(page, live_server)
    expect(page.get_by_role("heading", level=1)).to_have_text("Offers for you, Anna")


def _has_no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_sign_in_configure_claim_and_follow_the_request(page: Page, live_server: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tenant, _customer, tariff = _shop()

    # when: Anna signs in by the emailed link
    _sign_in(page, live_server)
    expect(page.get_by_test_id("offer-card")).to_have_count(2)
    expect(page.get_by_test_id("offer-list")).to_contain_text("from 12.00 EUR")
    page.screenshot(path=str(SCREENSHOTS / "offers.png"), full_page=True)

    # and configures the tariff, watching the price follow her choices
    page.get_by_role("link", name=re.compile("Configure")).click()
    price = page.get_by_test_id("price")
    expect(price).to_have_text("12.00 EUR")
    page.get_by_label("5 GB").focus()
    page.keyboard.press("ArrowDown")  # radios are keyboard-operable: 5 GB -> 20 GB
    expect(page.get_by_label("20 GB")).to_be_checked()
    expect(price).to_have_text("20.00 EUR")
    page.get_by_label("Unlimited minutes").check()
    expect(price).to_have_text("30.00 EUR")

    # a choice that breaks a rule says so, and puts no price on it
    page.get_by_label("5 GB").check()
    expect(page.get_by_test_id("price-errors")).to_contain_text("Needs “Data: 20 GB”")
    expect(price).to_have_text("—")
    page.screenshot(path=str(SCREENSHOTS / "configurator-error.png"), full_page=True)
    page.get_by_label("20 GB").check()
    expect(price).to_have_text("30.00 EUR")
    expect(page.get_by_test_id("price-errors")).to_have_count(0)

    # Enter in the quantity field recalculates, it does not claim
    page.get_by_label("Quantity").fill("2")
    page.get_by_label("Quantity").press("Enter")
    expect(page.get_by_test_id("price")).to_have_text("60.00 EUR")
    assert not OfferRequest.objects.for_tenant(tenant).exists()
    page.get_by_label("Quantity").fill("1")
    expect(page.get_by_test_id("price")).to_have_text("30.00 EUR")
    page.screenshot(path=str(SCREENSHOTS / "configurator.png"), full_page=True)

    # and claims it (a double click claims once)
    page.get_by_test_id("claim-button").dblclick()
    expect(page.get_by_role("heading", level=1)).to_have_text("Build your tariff")
    expect(page.get_by_test_id("request-status")).to_have_text("New")
    expect(page.locator("body")).to_contain_text("Unlimited minutes")
    claim = OfferRequest.objects.for_tenant(tenant).get(offer=tariff)
    assert (claim.price, claim.source, claim.configuration) == (Decimal("30.00"), "portal", {"data": ["20gb"], "minutes": ["unlimited"]})

    # then: it is under "My requests", and the marketer's approval shows there
    claims.transition_request(tenant=tenant, actor="owner@acme.example", request=claim, to_status="approved", comment="Welcome aboard!")
    page.get_by_test_id("nav-requests").click()
    expect(page.get_by_test_id("request-item")).to_have_count(1)
    expect(page.get_by_test_id("request-list")).to_contain_text("Build your tariff")
    expect(page.get_by_test_id("request-list")).to_contain_text("Approved")
    page.get_by_role("link", name=re.compile("Build your tariff")).click()
    expect(page.get_by_test_id("request-history")).to_contain_text("Approved")
    expect(page.get_by_test_id("request-history")).to_contain_text("Welcome aboard!")
    expect(page.get_by_test_id("request-history")).not_to_contain_text("owner@acme.example")
    page.screenshot(path=str(SCREENSHOTS / "request.png"), full_page=True)


def test_portal_fits_a_phone(page: Page, live_server: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tenant, customer, tariff = _shop()
    claims.claim_offer(tenant=tenant, customer=customer, offer_id=tariff.pk, configuration={"data": ["5gb"]}, source="portal")
    page.set_viewport_size({"width": 375, "height": 740})

    _sign_in(page, live_server)
    pages = {"offers": "/p/acme/offers/", "offer": f"/p/acme/offers/{tariff.pk}/", "requests": "/p/acme/requests/",
             "request": f"/p/acme/requests/{OfferRequest.objects.for_tenant(tenant).get().pk}/",
             "preferences": "/p/acme/preferences/", "data": "/p/acme/data/", "delete": "/p/acme/delete/"}
    for name, path in pages.items():
        page.goto(live_server.url + path)
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        assert _has_no_horizontal_scroll(page), name
        page.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"), full_page=True)

    # the configurator works by touch at this width too
    page.goto(live_server.url + pages["offer"])
    page.get_by_label("20 GB").check()
    expect(page.get_by_test_id("price")).to_have_text("20.00 EUR")
    assert _has_no_horizontal_scroll(page)

    # every form control has a label
    for path in pages.values():
        page.goto(live_server.url + path)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map(el => el.outerHTML)""")
        assert unlabelled == [], (path, unlabelled)
