"""Lead capture: forms in the dashboard, public sign-up with honeypot and rate limit, double opt-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers import leads, services
from customers.forms_leads import LeadFormForm, form_token
from customers.models import AttributeDefinition, Consent, Customer, LeadForm, LeadSubmission
from tenants.models import AuditLog, Membership, Tenant
from tenants.roles import Role

EMAIL = "Lena.Lead@Example.com"


@pytest.fixture
def lead_form(tenant: Tenant, other_tenant: Tenant) -> LeadForm:
    AttributeDefinition.objects.create(tenant=tenant, key="plan", label="Plan", type="choice", choices=["prepaid", "postpaid"])
    return leads.create_lead_form(
        tenant=tenant, actor=None, name="Newsletter", slug="newsletter",
        shown_fields=["first_name", "phone", "attributes.plan"], required_fields=["first_name"],
        consent_text="Yes, email me news and offers.", consent_version="v2", consent_purposes=["marketing", "personalization"],
        success_message="Thanks! Look for our email.",
    )


def _form_url(tenant: Tenant, form: LeadForm, query: str = "") -> str:
    return reverse("leadforms:form", kwargs={"tenant_slug": tenant.slug, "form_slug": form.slug}) + query


def _answers(form: LeadForm, **overrides: Any) -> dict[str, Any]:
    data = {"email": EMAIL, "first_name": "Lena", "phone": "+49 30 1234567", "attr_plan": "postpaid", "consent": "on",
            "form_token": form_token(form), "website": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def sign_up(client: Client, tenant: Tenant, lead_form: LeadForm, django_capture_on_commit_callbacks: Callable) -> Callable[..., Any]:
    """POST the public form (after-commit callbacks run, so the email goes out)."""

    def post(form: LeadForm | None = None, **overrides: Any) -> Any:
        form = form or lead_form
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(_form_url(tenant, form), _answers(form, **overrides))

    return post


def _confirm_path() -> str:
    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    link = re.search(r"https?://\S+/f/\S+", mail.outbox[0].body).group(0)
    return urlsplit(link).path


def _submissions(tenant: Tenant) -> Any:
    return LeadSubmission.objects.for_tenant(tenant)


# Public sign-up ----------------------------------------------------------------------------------


def test_form_page_shows_fields_consent_text_and_brand(client: Client, tenant: Tenant, lead_form: LeadForm) -> None:
    tenant.brand_color = "#aa3300"
    tenant.save()

    response = client.get(_form_url(tenant, lead_form))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Yes, email me news and offers." in body and "Acme Telecom" in body and "#aa3300" in body
    assert 'name="email"' in body and 'name="first_name"' in body and 'name="attr_plan"' in body and "postpaid" in body
    assert 'name="last_name"' not in body
    assert response["X-Frame-Options"] == "DENY"


def test_sign_up_emails_a_single_use_link_and_creates_nobody_yet(sign_up: Callable, tenant: Tenant, lead_form: LeadForm) -> None:
    response = sign_up()

    assert response.status_code == 200
    assert "Thanks! Look for our email." in response.content.decode()
    submission = _submissions(tenant).get()
    assert submission.email == EMAIL.lower() and submission.ip == "127.0.0.1" and submission.confirmed_at is None
    assert submission.data["fields"]["first_name"] == "Lena" and submission.data["consent"] == {
        "version": "v2", "purposes": ["marketing", "personalization"]}
    message = mail.outbox[0]
    assert message.to == [EMAIL.lower()] and message.from_email == settings.DEFAULT_FROM_EMAIL
    token = _confirm_path().rstrip("/").rsplit("/", 1)[1]
    assert submission.token_hash != token and len(submission.token_hash) == 64  # only the hash is stored
    assert not Customer.objects.for_tenant(tenant).filter(email=EMAIL.lower()).exists()
    assert not Consent.objects.for_tenant(tenant).exists()


def test_confirmation_creates_the_customer_and_the_consent_ledger(client: Client, sign_up: Callable, tenant: Tenant, lead_form: LeadForm) -> None:
    # given: a sign-up, and its link opened (as a mail scanner would): nothing happens on GET
    sign_up()
    path = _confirm_path()
    page = client.get(path)
    assert page.status_code == 200 and "confirm-button" in page.content.decode()
    assert not Customer.objects.for_tenant(tenant).filter(email=EMAIL.lower()).exists()

    # when: the person presses the button
    response = client.post(path, REMOTE_ADDR="203.0.113.9")

    # then: the customer exists with the answers, and one consent entry per purpose
    assert response.status_code == 200 and "lead-confirmed" in response.content.decode()
    customer = Customer.objects.for_tenant(tenant).get(email=EMAIL.lower())
    assert customer.external_id.startswith("lead-") and customer.first_name == "Lena"
    assert customer.phone == "+49301234567" and customer.attributes == {"plan": "postpaid"}
    entries = Consent.objects.for_tenant(tenant).filter(customer=customer).order_by("purpose")
    assert [(c.channel, c.purpose, c.status, c.source, c.source_detail, c.text_version, c.ip) for c in entries] == [
        ("email", "marketing", "granted", "form", "newsletter", "v2", "203.0.113.9"),
        ("email", "personalization", "granted", "form", "newsletter", "v2", "203.0.113.9"),
    ]
    assert services.allows(tenant=tenant, customer=customer, channel="email", purpose="marketing")
    submission = _submissions(tenant).get()
    assert submission.confirmed_at is not None and submission.customer_id == customer.pk


def test_a_link_works_only_once(client: Client, sign_up: Callable, tenant: Tenant) -> None:
    sign_up()
    path = _confirm_path()
    assert client.post(path).status_code == 200

    again = client.post(path)

    assert again.status_code == 410 and "link-invalid" in again.content.decode()
    assert client.get(path).status_code == 410
    assert Consent.objects.for_tenant(tenant).count() == 2


def test_a_known_person_keeps_their_external_id(client: Client, sign_up: Callable, tenant: Tenant) -> None:
    known = services.create_customer(tenant=tenant, data={"external_id": "crm-7", "email": EMAIL, "first_name": "L."})
    sign_up()

    client.post(_confirm_path())

    customer = Customer.objects.for_tenant(tenant).get(email=EMAIL.lower())
    assert customer.pk == known.pk and customer.external_id == "crm-7" and customer.first_name == "Lena"
    assert Customer.objects.for_tenant(tenant).filter(email=EMAIL.lower()).count() == 1


@pytest.mark.parametrize("tamper", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: t + "x", lambda t: "nope"])
def test_tampered_or_unknown_tokens_are_refused(client: Client, sign_up: Callable, tenant: Tenant, tamper: Callable[[str], str]) -> None:
    sign_up()
    prefix, token = _confirm_path().rstrip("/").rsplit("/", 1)

    path = f"{prefix}/{tamper(token)}/"

    assert client.get(path).status_code == 404
    response = client.post(path)
    assert response.status_code == 404 and "link-invalid" in response.content.decode()
    assert _submissions(tenant).get().confirmed_at is None
    assert not Consent.objects.for_tenant(tenant).exists()


def test_a_token_under_another_tenants_slug_is_refused(client: Client, sign_up: Callable, tenant: Tenant, other_tenant: Tenant) -> None:
    sign_up()
    path = _confirm_path()
    foreign = path.replace(f"/f/{tenant.slug}/", f"/f/{other_tenant.slug}/")

    assert client.get(foreign).status_code == 404
    assert client.post(foreign).status_code == 404

    assert _submissions(tenant).get().confirmed_at is None
    assert not Customer.objects.for_tenant(other_tenant).filter(email=EMAIL.lower()).exists()
    assert client.post(path).status_code == 200  # still valid where it belongs


def test_an_expired_link_is_refused(client: Client, sign_up: Callable, tenant: Tenant) -> None:
    sign_up()
    _submissions(tenant).update(created_at=timezone.now() - leads.LINK_TTL - timedelta(minutes=1))

    response = client.post(_confirm_path())

    assert response.status_code == 410
    assert not Customer.objects.for_tenant(tenant).filter(email=EMAIL.lower()).exists()


def test_the_honeypot_answers_success_and_stores_nothing(sign_up: Callable, tenant: Tenant) -> None:
    response = sign_up(website="http://spam.example")

    assert response.status_code == 200 and "lead-success" in response.content.decode()
    assert not _submissions(tenant).exists()
    assert mail.outbox == []


def test_the_sixth_sign_up_in_ten_minutes_from_one_address_is_throttled(sign_up: Callable, tenant: Tenant) -> None:
    for n in range(leads.SUBMISSION_RATE_LIMIT):
        assert sign_up(email=f"person{n}@example.com").status_code == 200

    response = sign_up(email="one-more@example.com")

    assert response.status_code == 429
    assert "try again" in response.content.decode() and response["Retry-After"] == "600"
    assert _submissions(tenant).count() == leads.SUBMISSION_RATE_LIMIT


@pytest.mark.parametrize(
    ("overrides", "field_error"),
    [
        ({"email": None}, "This field is required."),
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"consent": None}, "Please tick the box to agree."),
        ({"first_name": ""}, "This field is required."),
        ({"attr_plan": "platinum"}, "Select a valid choice."),
        ({"phone": "call me maybe"}, "Enter a phone number of digits"),
        ({"form_token": "forged"}, "This form has expired."),
    ],
    ids=["email-missing", "email-invalid", "consent-unticked", "required-field", "bad-choice", "bad-phone", "bad-form-token"],
)
def test_invalid_sign_ups_show_errors_and_store_nothing(
    sign_up: Callable, tenant: Tenant, overrides: dict[str, Any], field_error: str
) -> None:
    response = sign_up(**overrides)

    assert response.status_code == 400
    assert field_error in response.content.decode()
    assert not _submissions(tenant).exists()
    assert mail.outbox == []


def test_an_inactive_form_is_not_found(client: Client, tenant: Tenant, lead_form: LeadForm) -> None:
    leads.deactivate_lead_form(tenant=tenant, actor=None, form=lead_form)

    assert client.get(_form_url(tenant, lead_form)).status_code == 404
    assert client.post(_form_url(tenant, lead_form), _answers(lead_form)).status_code == 404
    assert client.get(reverse("leadforms:embed", args=[tenant.slug, lead_form.slug])).status_code == 404
    assert not _submissions(tenant).exists()


def test_a_form_of_another_tenant_is_not_served_under_this_slug(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    # other_tenant has a "newsletter" form; this tenant has none
    assert client.get(reverse("leadforms:form", args=[tenant.slug, "newsletter"])).status_code == 404
    assert client.get(reverse("leadforms:form", args=[other_tenant.slug, "newsletter"])).status_code == 200


def test_a_link_confirmed_after_erasure_stores_nothing(client: Client, sign_up: Callable, tenant: Tenant) -> None:
    # given: a known person signs up, then asks to be erased before confirming
    known = services.create_customer(tenant=tenant, data={"external_id": "crm-9", "email": EMAIL})
    sign_up()
    services.erase_customer(tenant=tenant, actor=None, customer=known)

    response = client.post(_confirm_path())

    assert response.status_code == 200 and "at its owner" in response.content.decode()
    assert not Customer.objects.for_tenant(tenant).filter(email=EMAIL.lower()).exists()
    assert not Consent.objects.for_tenant(tenant).exists()
    submission = _submissions(tenant).get()
    assert submission.confirmed_at is None and submission.email == "" and submission.ip is None


def test_an_erased_person_signing_up_again_is_neither_stored_nor_emailed(sign_up: Callable, tenant: Tenant) -> None:
    known = services.create_customer(tenant=tenant, data={"external_id": "crm-9", "email": EMAIL})
    services.erase_customer(tenant=tenant, actor=None, customer=known)

    response = sign_up()

    assert response.status_code == 200 and "lead-success" in response.content.decode()
    assert not _submissions(tenant).exists()
    assert mail.outbox == []


def test_pages_and_email_follow_the_tenants_language_unless_the_browser_asks(
    client: Client, sign_up: Callable, tenant: Tenant, lead_form: LeadForm
) -> None:
    tenant.locale = "ru"
    tenant.save()

    assert client.get(_form_url(tenant, lead_form))["Content-Language"] == "ru"
    assert client.get(_form_url(tenant, lead_form), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")["Content-Language"] == "en"
    assert client.get(_form_url(tenant, lead_form), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")["Content-Language"] == "ru"

    sign_up()
    assert _submissions(tenant).get().data["locale"] == "ru"
    client.post(_confirm_path())
    assert Customer.objects.for_tenant(tenant).get(email=EMAIL.lower()).locale == "ru"


def test_the_embed_script_frames_the_embed_page(client: Client, tenant: Tenant, lead_form: LeadForm) -> None:
    script = client.get(reverse("leadforms:embed", args=[tenant.slug, lead_form.slug]))

    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    source = script.content.decode()
    assert f'"http://testserver/f/{tenant.slug}/{lead_form.slug}/?embed=1"' in source and "iframe" in source
    framed = client.get(_form_url(tenant, lead_form, "?embed=1"))
    assert framed.status_code == 200 and "X-Frame-Options" not in framed
    assert '<form method="post" data-testid="lead-form">' in framed.content.decode()  # no action: posts back to ?embed=1


def test_the_embedded_form_posts_without_a_csrf_cookie(tenant: Tenant, lead_form: LeadForm, django_capture_on_commit_callbacks: Callable) -> None:
    # A cross-site iframe gets no SameSite=Lax CSRF cookie; the signed form token stands in for it.
    client = Client(enforce_csrf_checks=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_form_url(tenant, lead_form, "?embed=1"), _answers(lead_form))

    assert response.status_code == 200 and "X-Frame-Options" not in response
    assert _submissions(tenant).count() == 1 and len(mail.outbox) == 1


# Dashboard ---------------------------------------------------------------------------------------


def _editor_data(**overrides: Any) -> dict[str, Any]:
    data = {"name": "Trade fair", "slug": "fair", "shown_fields": ["first_name", "company", "company_role"],
            "required_fields": ["company"], "consent_text": "Email me.", "consent_version": "1",
            "consent_purposes": ["marketing"], "success_message": "", "is_active": "on"}
    data.update(overrides)
    return data


def _editor_initial(lead_form: LeadForm) -> dict[str, Any]:
    return LeadFormForm.initial_for(lead_form)


def test_a_marketer_creates_and_edits_a_form(make_member: Callable[..., Membership], login_as: Callable, tenant: Tenant) -> None:
    client = login_as(make_member(Role.MARKETER).user)

    response = client.post(reverse("customers:leadform_create", args=[tenant.slug]), _editor_data())

    assert response.status_code == 302
    form = LeadForm.objects.for_tenant(tenant).get(slug="fair")
    assert [(f["key"], f["required"]) for f in form.fields] == [
        ("email", True), ("first_name", False), ("company", True), ("company_role", False)]
    assert response.url == reverse("customers:leadform_detail", args=[tenant.slug, form.pk])
    detail = client.get(response.url).content.decode()
    assert f"/f/{tenant.slug}/fair/embed.js" in detail and "?embed=1" in detail
    assert AuditLog.objects.for_tenant(tenant).filter(action="leadform.created").exists()

    # a changed consent text needs a new version
    edit_url = reverse("customers:leadform_edit", args=[tenant.slug, form.pk])
    assert client.get(edit_url).status_code == 200
    refused = client.post(edit_url, _editor_data(consent_text="Email and text me."))
    assert refused.status_code == 400 and "new version" in refused.content.decode()
    assert client.post(edit_url, _editor_data(consent_text="Email and text me.", consent_version="2")).status_code == 302
    form.refresh_from_db()
    assert (form.consent_text, form.consent_version) == ("Email and text me.", "2")


def test_a_slug_is_unique_per_tenant(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    # "newsletter" exists in other_tenant only: free here
    assert dashboard_client.post(reverse("customers:leadform_create", args=[tenant.slug]), _editor_data(slug="newsletter")).status_code == 302

    again = dashboard_client.post(reverse("customers:leadform_create", args=[tenant.slug]), _editor_data(slug="newsletter"))

    assert again.status_code == 400 and "uses this slug" in again.content.decode()


def test_the_list_counts_sign_ups_and_confirmations(
    dashboard_client: Client, client: Client, sign_up: Callable, tenant: Tenant, lead_form: LeadForm
) -> None:
    sign_up()
    client.post(_confirm_path())
    sign_up(email="second@example.com")

    forms = leads.list_lead_forms(tenant=tenant)

    assert [(f.slug, f.submission_count, f.confirmed_count) for f in forms] == [("newsletter", 2, 1)]
    page = dashboard_client.get(reverse("customers:leadform_list", args=[tenant.slug]))
    assert page.status_code == 200 and "Newsletter" in page.content.decode()
    detail = dashboard_client.get(reverse("customers:leadform_detail", args=[tenant.slug, lead_form.pk])).content.decode()
    assert "second@example.com" in detail and EMAIL.lower() in detail


def test_a_viewer_sees_forms_but_cannot_change_them(
    make_member: Callable[..., Membership], login_as: Callable, tenant: Tenant, lead_form: LeadForm
) -> None:
    client = login_as(make_member(Role.VIEWER).user)

    assert client.get(reverse("customers:leadform_list", args=[tenant.slug])).status_code == 200
    assert client.get(reverse("customers:leadform_detail", args=[tenant.slug, lead_form.pk])).status_code == 200
    assert client.get(reverse("customers:leadform_create", args=[tenant.slug])).status_code == 403
    assert client.post(reverse("customers:leadform_create", args=[tenant.slug]), _editor_data()).status_code == 403
    assert client.post(reverse("customers:leadform_edit", args=[tenant.slug, lead_form.pk]), _editor_data()).status_code == 403
    assert client.post(reverse("customers:leadform_deactivate", args=[tenant.slug, lead_form.pk])).status_code == 403
    lead_form.refresh_from_db()
    assert lead_form.is_active and lead_form.slug == "newsletter"


def test_another_tenants_form_is_not_found(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = other_tenant.seeded["lead_form"]  # type: ignore[attr-defined]

    detail, edit, deactivate = (reverse(f"customers:leadform_{n}", args=[tenant.slug, foreign.pk]) for n in ("detail", "edit", "deactivate"))

    assert dashboard_client.get(detail).status_code == 404
    assert dashboard_client.get(edit).status_code == 404
    assert dashboard_client.post(edit, _editor_data()).status_code == 404
    assert dashboard_client.post(deactivate).status_code == 404

    foreign.refresh_from_db()
    assert foreign.is_active and foreign.name == "Newsletter"


def test_deactivating_stops_sign_ups_but_sent_links_still_confirm(
    dashboard_client: Client, client: Client, sign_up: Callable, tenant: Tenant, lead_form: LeadForm
) -> None:
    sign_up()

    response = dashboard_client.post(reverse("customers:leadform_deactivate", args=[tenant.slug, lead_form.pk]))

    assert response.status_code == 302
    assert client.get(_form_url(tenant, lead_form)).status_code == 404
    assert client.post(_confirm_path()).status_code == 200
    assert Consent.objects.for_tenant(tenant).count() == 2


def test_the_ledger_records_the_consent_version_the_person_saw(
    client: Client, sign_up: Callable, tenant: Tenant, lead_form: LeadForm
) -> None:
    # given: a sign-up under version v2, then the text and version change before the person confirms
    sign_up()
    leads.update_lead_form(
        tenant=tenant, actor=None, form=lead_form, **{**_editor_initial(lead_form), "consent_text": "New text.", "consent_version": "v3"}
    )

    client.post(_confirm_path())

    assert set(Consent.objects.for_tenant(tenant).values_list("text_version", flat=True)) == {"v2"}


def test_an_untouched_consent_text_sent_with_crlf_needs_no_new_version(tenant: Tenant, lead_form: LeadForm) -> None:
    lead_form.consent_text = "Line one.\nLine two."
    lead_form.save()

    form = leads.update_lead_form(
        tenant=tenant, actor=None, form=lead_form, **{**_editor_initial(lead_form), "consent_text": "Line one.\r\nLine two.\r\n"}
    )

    assert form.consent_version == "v2"


def test_unconfirmed_submissions_are_purged_after_a_while(tenant: Tenant, other_tenant: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from customers import tasks
    from customers.models import LeadForm, LeadSubmission

    form, _ = LeadForm.objects.for_tenant(tenant).get_or_create(tenant=tenant, slug="purge-test", defaults={"name": "N", "consent_text": "ok"})
    old = LeadSubmission.objects.create(tenant=tenant, form=form, email="old@example.com", token_hash="purge-old",
                                        created_at=timezone.now() - timedelta(days=40))
    LeadSubmission.objects.create(tenant=tenant, form=form, email="new@example.com", token_hash="purge-new")

    assert tasks.purge_unconfirmed_lead_submissions() == 1
    assert not LeadSubmission.objects.for_tenant(tenant).filter(pk=old.pk).exists()
    assert LeadSubmission.objects.for_tenant(tenant).filter(token_hash="purge-new").exists()
