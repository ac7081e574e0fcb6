"""The customer portal (/p/<tenant_slug>/): sign-in by an emailed single-use link, offers with
prices and reasons, the configurator, claims, requests, preferences, data and account deletion,
and that a customer of one tenant never reaches another tenant's portal data."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import Consent, Customer
from offers import tasks
from offers.models import Offer, OfferRequest, Option, OptionGroup, PortalSignInLink, Recommendation
from offers.portal import services
from offers.portal.display import reason_text
from offers.services import claims
from tenants.models import AuditLog, Tenant
from tests.factories import seed_customer_data

pytestmark = pytest.mark.django_db


# Helpers ----------------------------------------------------------------------------------------


def url(tenant: Tenant, name: str, **kwargs: Any) -> str:
    return reverse(f"portal:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def link_path(tenant: Tenant) -> str:
    """The path of the sign-in link in the last email."""
    match = re.search(rf"https?://\S+(/p/{tenant.slug}/link/\S+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


@pytest.fixture
def ask(django_capture_on_commit_callbacks: Callable[..., Any], celery_eager: None) -> Callable[..., HttpResponse]:
    """Ask for a sign-in link as a browser does; the task that emails it runs on commit, here in-process."""

    def ask(client: Client, tenant: Tenant, email: str = "anna@example.com") -> HttpResponse:
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url(tenant, "sign_in"), {"email": email})

    return ask


def sign_in(ask: Callable[..., HttpResponse], client: Client, tenant: Tenant, email: str = "anna@example.com") -> None:
    response = ask(client, tenant, email)
    assert response.status_code == 200
    response = client.post(link_path(tenant))
    assert response.status_code == 302, response.content


@pytest.fixture
def seeded(tenant: Tenant, other_tenant: Tenant) -> dict[str, Any]:
    """Our tenant with the same look-alike rows as other_tenant (anna@example.com exists in both)."""
    return seed_customer_data(tenant)


@pytest.fixture
def anna(seeded: dict[str, Any]) -> Customer:
    return seeded["customer"]


@pytest.fixture
def portal(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> Client:
    client = Client()
    sign_in(ask, client, tenant)
    mail.outbox.clear()
    return client


@pytest.fixture
def tariff(tenant: Tenant, seeded: dict[str, Any]) -> Offer:
    """A mobile tariff: a base fee, one data volume, optional minutes (unlimited needs 20 GB), up to two extras."""
    offer = Offer.objects.create(tenant=tenant, name="Mobile tariff", kind="configurable", status="active",
                                 base_price=Decimal("5.00"), currency="EUR", priority=5)
    data = OptionGroup.objects.create(tenant=tenant, offer=offer, key="data", label="Data", min_select=1, max_select=1, position=0)
    Option.objects.create(tenant=tenant, group=data, key="5gb", label="5 GB", price=Decimal("7.00"), position=0)
    Option.objects.create(tenant=tenant, group=data, key="20gb", label="20 GB", price=Decimal("15.00"), position=1)
    minutes = OptionGroup.objects.create(tenant=tenant, offer=offer, key="minutes", label="Minutes", min_select=0, max_select=1,
                                         position=1)
    Option.objects.create(tenant=tenant, group=minutes, key="300", label="300 minutes", price=Decimal("3.00"))
    Option.objects.create(tenant=tenant, group=minutes, key="unlimited", label="Unlimited", price=Decimal("10.00"),
                          requires=["data.20gb"])
    extras = OptionGroup.objects.create(tenant=tenant, offer=offer, key="extras", label="Extras", min_select=0, max_select=2,
                                        position=2)
    Option.objects.create(tenant=tenant, group=extras, key="roaming", label="Roaming", price=Decimal("4.00"))
    Option.objects.create(tenant=tenant, group=extras, key="esim", label="eSIM", price=Decimal("1.00"))
    return offer


def idempotency_key(client: Client, tenant: Tenant, offer: Offer) -> str:
    page = client.get(url(tenant, "offer", offer_id=offer.pk)).content.decode()
    return re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)


# Sign-in ----------------------------------------------------------------------------------------


def test_sign_in_page_is_in_the_tenants_branding(tenant: Tenant, other_tenant: Tenant) -> None:
    # given
    Tenant.objects.filter(pk=tenant.pk).update(brand_color="#aa3300")

    # when
    response = Client().get(url(tenant, "sign_in"))

    # then
    assert response.status_code == 200
    body = response.content.decode()
    assert "Acme Telecom" in body and "--brand: #aa3300" in body
    assert body.count("<h1") == 1
    assert 'for="id_email"' in body


def test_sign_in_link_signs_in_once(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    client = Client()

    # when: the customer asks for a link and opens it
    response = ask(client, tenant, " Anna@Example.com ")
    assert response.status_code == 200
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["anna@example.com"]
    assert "15 minutes" in mail.outbox[0].body
    path = link_path(tenant)
    confirm = client.get(path)
    assert confirm.status_code == 200
    assert client.get(url(tenant, "offers")).status_code == 302  # opening the link alone does not sign in
    old_session = client.session.session_key
    response = client.post(path)

    # then: signed in, under a new session key
    assert response.status_code == 302 and response["Location"] == url(tenant, "offers")
    assert client.session[f"portal:{tenant.pk}"] == anna.pk
    assert client.session.session_key != old_session
    assert client.get(url(tenant, "offers")).status_code == 200
    link = PortalSignInLink.objects.for_tenant(tenant).get()
    assert link.used_at is not None and link.customer_id == anna.pk
    assert path.rstrip("/").rsplit("/", 1)[1] not in link.token_hash  # only the hash is stored

    # and the link does not work a second time
    other = Client()
    assert other.get(path).status_code == 410
    assert other.post(path).status_code == 410
    assert other.get(url(tenant, "offers")).status_code == 302


def test_tampered_link_is_refused(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    client = Client()
    ask(client, tenant, "anna@example.com")
    path = link_path(tenant)
    tampered = path[:-2] + ("A" if path[-2] != "A" else "B") + "/"

    response = client.post(tampered)

    assert response.status_code == 404
    assert f"portal:{tenant.pk}" not in client.session
    assert PortalSignInLink.objects.for_tenant(tenant).get().used_at is None


def test_expired_link_is_refused(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    client = Client()
    ask(client, tenant, "anna@example.com")
    path = link_path(tenant)
    PortalSignInLink.objects.for_tenant(tenant).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(path)

    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert f"portal:{tenant.pk}" not in client.session


def test_link_of_another_tenant_is_refused(tenant: Tenant, anna: Customer, other_tenant: Tenant, ask: Callable[..., HttpResponse]) -> None:
    # given: a link emailed by the other tenant's portal (the same address is a customer of both)
    client = Client()
    ask(client, other_tenant, "anna@example.com")
    other_path = link_path(other_tenant)
    token = other_path.rstrip("/").rsplit("/", 1)[1]

    # when: it is used under our tenant's slug
    response = client.post(url(tenant, "link", token=token))

    # then: not valid here, nobody signed in, and the link is still unused
    assert response.status_code == 404
    assert f"portal:{tenant.pk}" not in client.session and f"portal:{other_tenant.pk}" not in client.session
    assert PortalSignInLink.objects.for_tenant(other_tenant).get().used_at is None


def test_asking_for_a_link_does_not_reveal_who_is_a_customer(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    # given: an erased customer too
    erased = Customer.objects.for_tenant(tenant).get(email="boris@example.com")
    services.delete_account(tenant=tenant, customer=erased)

    # when
    pages = {}
    for email in ("anna@example.com", "nobody@example.com", "boris@example.com"):
        response = ask(Client(), tenant, email)
        body = re.sub(r'(csrfmiddlewaretoken" value="|X-CSRFToken": ")[^"]+"', "", response.content.decode()).replace(email, "EMAIL")
        pages[email] = (response.status_code, body)

    # then: the same answer; only the customer got an email
    assert len(set(pages.values())) == 1
    assert [m.to for m in mail.outbox] == [["anna@example.com"]]


def test_asking_for_a_link_does_the_same_work_for_known_and_unknown_addresses(
    tenant: Tenant, anna: Customer, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # when: a customer's address and an unknown one are asked for, tasks not run yet
    work = {}
    for email in ("anna@example.com", "nobody@example.com"):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
            response = Client().post(url(tenant, "sign_in"), {"email": email})
        assert response.status_code == 200
        work[email] = (len(queries), callbacks)
        assert not any("customers_customer" in q["sql"] or "portalsigninlink" in q["sql"] for q in queries), email

    # then: the same number of statements and one task enqueued for each; no link exists yet
    (known_queries, known_tasks), (unknown_queries, unknown_tasks) = work.values()
    assert known_queries == unknown_queries
    assert len(known_tasks) == len(unknown_tasks) == 1
    for callback, email in ((known_tasks[0], "anna@example.com"), (unknown_tasks[0], "nobody@example.com")):
        assert callback.func == tasks.send_sign_in_link.apply_async
        assert callback.keywords["kwargs"] == {"tenant_id": tenant.pk, "email": email, "language": "en"}
        assert email not in callback.keywords["kwargsrepr"]  # nor in the worker's log lines
    assert not PortalSignInLink.objects.for_tenant(tenant).exists() and mail.outbox == []

    # when: the tasks run (as the worker does)
    for callback in (known_tasks[0], unknown_tasks[0]):
        tasks.send_sign_in_link(**callback.keywords["kwargs"])

    # then: only the customer has a link and an email
    assert list(PortalSignInLink.objects.for_tenant(tenant).values_list("customer_id", flat=True)) == [anna.pk]
    assert [m.to for m in mail.outbox] == [["anna@example.com"]]


def test_the_raw_token_is_in_the_email_only(tenant: Tenant, anna: Customer, celery_eager: None,
                                            django_capture_on_commit_callbacks: Callable[..., Any],
                                            caplog: pytest.LogCaptureFixture) -> None:
    # when: a link is asked for and the task runs
    with caplog.at_level("DEBUG"), django_capture_on_commit_callbacks(execute=True) as callbacks:
        Client().post(url(tenant, "sign_in"), {"email": "anna@example.com"})

    # then: the token is neither in the task's message nor in any log line, and only its hash is stored
    token = link_path(tenant).rstrip("/").rsplit("/", 1)[1]
    assert token not in json.dumps(callbacks[0].keywords["kwargs"]) and token not in caplog.text
    assert PortalSignInLink.objects.for_tenant(tenant).get().token_hash != token


def test_a_failed_email_leaves_no_usable_link(tenant: Tenant, anna: Customer, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a mail server that is down
    def refuse(**kwargs: Any) -> None:
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(services, "send_mail", refuse)

    # when / then: the task's try fails (so Celery retries it) and leaves no link behind
    with pytest.raises(ConnectionRefusedError):
        services.send_sign_in_link(tenant=tenant, email="anna@example.com")
    assert not PortalSignInLink.objects.for_tenant(tenant).exists()
    assert issubclass(ConnectionRefusedError, tasks.send_sign_in_link.autoretry_for)


def test_the_sign_in_task_finds_customers_of_its_own_tenant_only(tenant: Tenant, anna: Customer, other_tenant: Tenant) -> None:
    # given: anna@example.com is a customer of both tenants
    theirs = Customer.objects.for_tenant(other_tenant).get(email="anna@example.com")

    # when: the other tenant's portal is asked
    tasks.send_sign_in_link(tenant_id=other_tenant.pk, email="ANNA@example.com ", language="ru")

    # then: the link is theirs, for their customer, in the language asked for
    link = PortalSignInLink.objects.unscoped().get()
    assert (link.tenant_id, link.customer_id) == (other_tenant.pk, theirs.pk)
    assert f"/p/{other_tenant.slug}/link/" in mail.outbox[0].body and "Other Telecom" in mail.outbox[0].subject
    assert not PortalSignInLink.objects.for_tenant(tenant).exists()


def test_link_requests_are_rate_limited_per_ip_and_address(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    client = Client()
    statuses = [ask(client, tenant, "anna@example.com").status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]
    assert len(mail.outbox) == 5
    assert ask(client, tenant, "someone@example.com").status_code == 200


def test_pages_need_a_signed_in_customer(tenant: Tenant, anna: Customer) -> None:
    for name in ("offers", "requests", "preferences", "data", "data_export", "delete"):
        response = Client().get(url(tenant, name))
        assert response.status_code == 302 and response["Location"] == url(tenant, "sign_in"), name


def test_after_sign_in_the_customer_lands_on_the_page_they_asked_for(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    client = Client()
    client.get(url(tenant, "requests"))

    ask(client, tenant, "anna@example.com")
    response = client.post(link_path(tenant))

    assert response["Location"] == url(tenant, "requests")


def test_sign_out(portal: Client, tenant: Tenant) -> None:
    response = portal.post(url(tenant, "sign_out"))

    assert response.status_code == 302
    assert portal.get(url(tenant, "offers")).status_code == 302


# Language ---------------------------------------------------------------------------------------


def test_language_is_the_tenants_then_the_customers_and_can_be_switched(tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    # given: a Russian-speaking tenant; Anna's profile says English
    Tenant.objects.filter(pk=tenant.pk).update(locale="ru")
    Customer.objects.for_tenant(tenant).filter(pk=anna.pk).update(locale="en")
    client = Client()

    # then: the sign-in page is Russian; once signed in, English
    assert 'lang="ru"' in client.get(url(tenant, "sign_in")).content.decode()
    ask(client, tenant, "anna@example.com")
    client.post(link_path(tenant))
    assert 'lang="en"' in client.get(url(tenant, "offers")).content.decode()

    # when: she switches to Russian
    response = client.post(url(tenant, "language"), {"language": "ru", "next": url(tenant, "offers")})

    # then: the portal is Russian and her profile remembers it
    assert response["Location"] == url(tenant, "offers")
    body = client.get(url(tenant, "offers")).content.decode()
    assert 'lang="ru"' in body and "Предложения для вас" in body
    assert Customer.objects.for_tenant(tenant).get(pk=anna.pk).locale == "ru"


def test_language_switch_ignores_foreign_next_urls(tenant: Tenant, anna: Customer) -> None:
    response = Client().post(url(tenant, "language"), {"language": "ru", "next": "https://evil.example/"})

    assert response["Location"] == url(tenant, "sign_in")


# Offers -----------------------------------------------------------------------------------------


def test_offers_page_shows_prices_and_reasons(portal: Client, tenant: Tenant, seeded: dict[str, Any], tariff: Offer) -> None:
    # given: the recommendation job explained the SIM offer by a purchase
    Recommendation.objects.for_tenant(tenant).filter(offer=seeded["offer"]).update(reason={"code": "bought", "product": "SIM card"})

    # when
    body = portal.get(url(tenant, "offers")).content.decode()

    # then: the discounted price, the list price struck through, the reasons; the tariff "from" its cheapest configuration
    assert "10% off SIM" in body
    assert re.search(r'<strong class="price">9\.00 EUR</strong>.*?<s class="list-price"[^>]*>10\.00 EUR</s>', body, re.S)
    assert "Because you bought SIM card" in body and "10% off" in body
    assert "Mobile tariff" in body and "from 12.00 EUR" in body
    assert body.count("<h1") == 1


def test_turning_personalization_off_writes_the_ledger_and_changes_the_reasons(
    portal: Client, tenant: Tenant, anna: Customer, seeded: dict[str, Any]
) -> None:
    # given
    Recommendation.objects.for_tenant(tenant).filter(offer=seeded["offer"]).update(reason={"code": "bought", "product": "SIM card"})
    assert "Because you bought SIM card" in portal.get(url(tenant, "offers")).content.decode()

    # when: she keeps email marketing (granted via the API), adds SMS, and turns personalization off
    response = portal.post(url(tenant, "preferences"), {"marketing_email": "on", "marketing_sms": "on"})

    # then: one ledger entry per change, from the portal
    assert response.status_code == 302
    entries = list(Consent.objects.for_tenant(tenant).filter(customer=anna, source="portal")
                   .values_list("channel", "purpose", "status"))
    assert sorted(entries) == [("all", "personalization", "withdrawn"), ("sms", "marketing", "granted")]
    body = portal.get(url(tenant, "offers")).content.decode()
    assert "You asked us not to personalize" in body
    assert "Because you bought SIM card" not in body

    # and the preferences page shows the saved state; saving it again changes nothing
    page = portal.get(url(tenant, "preferences")).content.decode()
    assert re.search(r'name="marketing_sms"[^>]*checked', page)
    assert not re.search(r'name="personalization"[^>]*checked', page)
    portal.post(url(tenant, "preferences"), {"marketing_email": "on", "marketing_sms": "on"})
    assert Consent.objects.for_tenant(tenant).filter(customer=anna, source="portal").count() == 2

    # and turning it on again is one more entry
    portal.post(url(tenant, "preferences"), {"marketing_email": "on", "marketing_sms": "on", "personalization": "on"})
    latest = Consent.objects.for_tenant(tenant).filter(customer=anna, purpose="personalization").latest("occurred_at", "id")
    assert (latest.status, latest.source) == ("granted", "portal")


def test_preferences_withdraw_marketing(portal: Client, tenant: Tenant, anna: Customer) -> None:
    portal.post(url(tenant, "preferences"), {"personalization": "on"})

    entry = Consent.objects.for_tenant(tenant).get(customer=anna, source="portal")
    assert (entry.channel, entry.purpose, entry.status) == ("email", "marketing", "withdrawn")


def test_offer_the_customer_cannot_get_is_a_404(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    Offer.objects.for_tenant(tenant).filter(pk=tariff.pk).update(status="paused")

    assert portal.get(url(tenant, "offer", offer_id=tariff.pk)).status_code == 404
    assert portal.get(url(tenant, "offer", offer_id=999_999)).status_code == 404


# Configurator -----------------------------------------------------------------------------------


def test_configurator_starts_at_the_cheapest_configuration(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    body = portal.get(url(tenant, "offer", offer_id=tariff.pk)).content.decode()

    assert re.search(r'data-testid="price">12\.00 EUR<', body)
    assert re.search(r'value="5gb"[^>]*checked', body)
    for option in ("5gb", "20gb", "300", "unlimited", "roaming", "esim"):
        option_id = re.search(rf'<input[^>]*value="{option}"[^>]*id="([^"]+)"', body).group(1)
        assert f'for="{option_id}"' in body, option  # every option has its label


def test_configurator_live_price_follows_the_options(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    price_url = url(tenant, "offer_price", offer_id=tariff.pk)

    response = portal.get(price_url, {"opt_data": "20gb", "opt_minutes": "unlimited", "opt_extras": ["roaming", "esim"],
                                      "quantity": "2"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body  # the partial only
    assert re.search(r'data-testid="price">70\.00 EUR<', body)  # (5 + 15 + 10 + 4 + 1) × 2
    assert "20 GB" in body and "Unlimited" in body


def test_configurator_shows_a_broken_constraint(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    response = portal.get(url(tenant, "offer_price", offer_id=tariff.pk),
                          {"opt_data": "5gb", "opt_minutes": "unlimited", "quantity": "1"}, HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="price-errors"' in body
    assert "Needs “Data: 20 GB”" in body
    assert 'data-testid="price">—<' in body


def test_configurator_needs_the_minimum_of_a_group(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    body = portal.get(url(tenant, "offer_price", offer_id=tariff.pk), {"quantity": "1"}).content.decode()

    assert "Data: Choose between 1 and 1." in body


# Claims -----------------------------------------------------------------------------------------


def test_claim_once_with_a_double_submit(portal: Client, tenant: Tenant, anna: Customer, tariff: Offer) -> None:
    # given: one rendered form
    key = idempotency_key(portal, tenant, tariff)
    form = {"opt_data": "20gb", "opt_minutes": "300", "quantity": "1", "voucher_code": "", "idempotency_key": key}

    # when: it is sent twice
    first = portal.post(url(tenant, "offer_claim", offer_id=tariff.pk), form)
    first_page = portal.get(first["Location"]).content.decode()
    second = portal.post(url(tenant, "offer_claim", offer_id=tariff.pk), form)
    second_page = portal.get(second["Location"]).content.decode()

    # then: one request, both answers show it
    requests = OfferRequest.objects.for_tenant(tenant).filter(offer=tariff)
    assert requests.count() == 1
    claim = requests.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == url(tenant, "request", request_id=claim.pk)
    assert (claim.customer_id, claim.source, claim.price) == (anna.pk, "portal", Decimal("23.00"))
    assert claim.configuration == {"data": ["20gb"], "minutes": ["300"], "extras": []}
    assert claim.events.get().actor_label == f"portal:{anna.pk}"
    assert "Your request was sent" in first_page and "Mobile tariff" in first_page
    assert "You had already sent this request" in second_page


def test_claim_with_a_broken_configuration_changes_nothing(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    key = idempotency_key(portal, tenant, tariff)

    response = portal.post(url(tenant, "offer_claim", offer_id=tariff.pk),
                           {"opt_data": "5gb", "opt_minutes": "unlimited", "quantity": "1", "idempotency_key": key})

    assert response.status_code == 400
    assert "Needs “Data: 20 GB”" in response.content.decode()
    assert not OfferRequest.objects.for_tenant(tenant).filter(offer=tariff).exists()


def test_claim_with_a_used_voucher_is_refused(portal: Client, tenant: Tenant, seeded: dict[str, Any]) -> None:
    offer, voucher = seeded["offer"], seeded["voucher"]
    type(voucher).objects.for_tenant(tenant).filter(pk=voucher.pk).update(redemptions=1)
    before = OfferRequest.objects.for_tenant(tenant).count()
    key = idempotency_key(portal, tenant, offer)

    response = portal.post(url(tenant, "offer_claim", offer_id=offer.pk),
                           {"quantity": "1", "voucher_code": voucher.code.lower(), "idempotency_key": key})

    assert response.status_code == 400
    assert "already been used" in response.content.decode()
    assert OfferRequest.objects.for_tenant(tenant).count() == before


def test_claim_with_a_forged_idempotency_key_is_refused(portal: Client, tenant: Tenant, tariff: Offer, other_tenant: Tenant) -> None:
    for key in ("", "seed-1", f"portal-{other_tenant.seeded['customer'].pk}-{'0' * 32}"):
        response = portal.post(url(tenant, "offer_claim", offer_id=tariff.pk), {"opt_data": "5gb", "quantity": "1", "idempotency_key": key})
        assert response.status_code == 400, key
    assert not OfferRequest.objects.for_tenant(tenant).filter(offer=tariff).exists()


def test_preview_without_javascript_claims_nothing(portal: Client, tenant: Tenant, tariff: Offer) -> None:
    key = idempotency_key(portal, tenant, tariff)

    response = portal.post(url(tenant, "offer_claim", offer_id=tariff.pk),
                           {"opt_data": "20gb", "quantity": "1", "idempotency_key": key, "preview": "1"})

    assert response.status_code == 200
    assert re.search(r'data-testid="price">20\.00 EUR<', response.content.decode())
    assert not OfferRequest.objects.for_tenant(tenant).filter(offer=tariff).exists()


# Requests ---------------------------------------------------------------------------------------


def test_my_requests_list_and_history(portal: Client, tenant: Tenant, anna: Customer, seeded: dict[str, Any], member: Any) -> None:
    # given: the seeded claim, approved by a marketer with a note to the customer, and an internal comment
    claim = seeded["offer_request"]
    claims.transition_request(tenant=tenant, actor=member.user, request=claim, to_status="approved", comment="Enjoy!")
    claims.comment_on_request(tenant=tenant, actor=member.user, request=claim, comment="internal: VIP")

    # when
    listing = portal.get(url(tenant, "requests")).content.decode()
    detail = portal.get(url(tenant, "request", request_id=claim.pk)).content.decode()

    # then
    assert "10% off SIM" in listing and "Approved" in listing
    assert "New" in detail and "Approved" in detail and "Enjoy!" in detail
    assert "internal: VIP" not in detail
    assert member.user.email not in detail  # the team shows as the business, not as a person's address
    assert "9.00 EUR" in detail


def test_another_customers_request_is_a_404(portal: Client, tenant: Tenant, seeded: dict[str, Any], tariff: Offer) -> None:
    boris = seeded["buyer"]
    theirs = claims.claim_offer(tenant=tenant, customer=boris, offer_id=tariff.pk, configuration={"data": ["5gb"]}).request

    assert portal.get(url(tenant, "request", request_id=theirs.pk)).status_code == 404
    assert "Mobile tariff" not in portal.get(url(tenant, "requests")).content.decode()


# Data and account -------------------------------------------------------------------------------


def test_download_my_data(portal: Client, tenant: Tenant, anna: Customer) -> None:
    response = portal.get(url(tenant, "data_export"))

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-my-data.json"'
    data = json.loads(response.content)
    assert data["tenant"] == "acme" and data["profile"]["email"] == "anna@example.com"
    assert [r["offer"] for r in data["offer_requests"]] == ["10% off SIM"]


def test_delete_my_account_erases_and_signs_out(portal: Client, tenant: Tenant, anna: Customer, ask: Callable[..., HttpResponse]) -> None:
    # when: without ticking the box nothing happens
    assert portal.post(url(tenant, "delete"), {}).status_code == 400
    assert Customer.objects.for_tenant(tenant).get(pk=anna.pk).erased_at is None

    # when: confirmed
    response = portal.post(url(tenant, "delete"), {"confirm": "on"})

    # then: erased, signed out, no link left, and no new link can be asked for
    assert response.status_code == 200 and "Your account is deleted" in response.content.decode()
    erased = Customer.objects.for_tenant(tenant).get(pk=anna.pk)
    assert erased.is_erased and erased.email == ""
    assert not PortalSignInLink.objects.for_tenant(tenant).filter(customer=anna).exists()
    assert AuditLog.objects.for_tenant(tenant).get(action="customer.erased").actor_label == f"portal:{anna.pk}"  # not "system"
    assert portal.get(url(tenant, "offers")).status_code == 302
    mail.outbox.clear()
    ask(Client(), tenant, "anna@example.com")
    assert mail.outbox == []


def test_a_session_of_a_customer_erased_meanwhile_is_signed_out(portal: Client, tenant: Tenant, anna: Customer) -> None:
    from customers import services as customer_services

    customer_services.erase_customer(tenant=tenant, actor=None, customer=anna)

    assert portal.get(url(tenant, "offers")).status_code == 302
    assert f"portal:{tenant.pk}" not in portal.session


# Tenant isolation -------------------------------------------------------------------------------


PORTAL_PAGES = [
    ("offers", {}), ("requests", {}), ("preferences", {}), ("data", {}), ("data_export", {}), ("delete", {}),
    ("offer", {"offer_id": "offer"}), ("offer", {"offer_id": "tariff"}), ("offer_price", {"offer_id": "tariff"}),
    ("offer_claim", {"offer_id": "offer"}), ("request", {"request_id": "offer_request"}),
]


def test_every_portal_url_name_is_covered_by_the_isolation_test() -> None:
    from offers.portal import urls

    public = {"sign_in", "link", "sign_out", "language"}
    assert {p.name for p in urls.urlpatterns} == public | {name for name, _kwargs in PORTAL_PAGES}


@pytest.mark.parametrize(("name", "kwargs"), PORTAL_PAGES, ids=[f"{n}-{'-'.join(k.values())}" for n, k in PORTAL_PAGES])
def test_a_customer_never_reaches_another_tenants_portal(
    portal: Client, tenant: Tenant, other_tenant: Tenant, name: str, kwargs: dict[str, str]
) -> None:
    # given: Anna is signed in to our tenant's portal; the other tenant has a look-alike Anna with requests
    seeded = other_tenant.seeded
    object_kwargs = {k: seeded[v].pk for k, v in kwargs.items()}
    other_requests = set(OfferRequest.objects.for_tenant(other_tenant).values_list("pk", "status"))
    other_consents = Consent.objects.for_tenant(other_tenant).count()
    secret = f"/{other_tenant.slug}-secret-page"  # in the other Anna's events: her data export would show it

    # when: she opens the other tenant's pages, and our pages with the other tenant's object ids
    other_url = url(other_tenant, name, **object_kwargs)
    for method in ("get", "post"):
        response = getattr(portal, method)(other_url, {"confirm": "on", "opt_data": "5gb", "quantity": "1",
                                                       "personalization": "on", "marketing_sms": "on"})
        # then: the other tenant's sign-in page, never its data
        assert response.status_code == 302 and response["Location"] == url(other_tenant, "sign_in"), (method, other_url)
    if object_kwargs:
        ours = url(tenant, name, **object_kwargs)
        for method in ("get", "post"):
            response = getattr(portal, method)(ours, {"quantity": "1", "opt_data": "5gb"})
            assert response.status_code in (404, 405), (method, ours, response.status_code)
            assert secret not in response.content.decode()

    # and nothing of the other tenant changed
    assert set(OfferRequest.objects.for_tenant(other_tenant).values_list("pk", "status")) == other_requests
    assert Consent.objects.for_tenant(other_tenant).count() == other_consents
    assert Customer.objects.for_tenant(other_tenant).get(pk=seeded["customer"].pk).erased_at is None
    assert portal.get(url(tenant, "offers")).status_code == 200  # still signed in to her own portal


def test_signed_in_to_one_tenant_is_not_signed_in_to_another(portal: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    data = portal.get(url(other_tenant, "data_export"))

    assert data.status_code == 302
    assert portal.get(url(tenant, "data_export")).json()["tenant"] == "acme"


# Wording ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "text"), [
    ({"code": "bought", "product": "SIM card"}, "Because you bought SIM card"),
    ({"code": "popular_with_kind", "kind": "business_buyer"}, "Popular with business buyers like you"),
    ({"code": "percent_off", "percent": "10.00"}, "10% off"),
    ({"code": "percent_off", "percent": "12.5"}, "12.5% off"),
    ({"code": "amount_off", "amount": "3"}, "3.00 EUR off"),
    ({"code": "volume_tier", "min_quantity": 10, "percent_off": "5.00"}, "5% off from 10 units"),
    ({"code": "bundle", "items": 3}, "A bundle of 3 products"),
    ({"code": "negotiated_price", "product": "Brake pads"}, "Your company's negotiated price for Brake pads"),
    ({"code": "min_churn_probability", "value": 0.8, "threshold": 0.5}, None),
    ({"code": "something_new"}, None),
])
def test_reason_text(reason: dict[str, Any], text: str | None) -> None:
    assert reason_text(reason, currency="EUR") == text


def test_reason_text_of_recommendations_is_the_recommendation_jobs_wording() -> None:
    recommendations = pytest.importorskip("offers.recommendations")

    for reason in ({"code": "not_personalized"}, {"code": "viewed", "product": "SIM card"}, {"code": "popular"}):
        assert reason_text(reason) == recommendations.reason_text(reason)
    assert "personalize" in reason_text({"code": "not_personalized"})


def test_reason_text_in_russian() -> None:
    from django.utils import translation

    with translation.override("ru"):
        assert reason_text({"code": "bought", "product": "SIM"}) == "Потому что вы купили SIM"
