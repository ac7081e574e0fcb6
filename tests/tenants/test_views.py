from __future__ import annotations

import re
from collections.abc import Callable

from django.core import mail
from django.test import Client
from django.urls import reverse

from tenants.models import AuditLog, Membership, Tenant, User
from tenants.roles import Role
from tests.factories import AuditLogFactory, JobRunFactory, TenantFactory


def test_sign_in_with_email_and_password_is_audited(member: Membership, client: Client, password: str, tenant: Tenant) -> None:
    response = client.post(reverse("tenants:login"), {"username": "OWNER@acme.example", "password": password})

    assert response.status_code == 302
    assert client.get(reverse("tenants:home")).url == reverse("tenants:overview", args=[tenant.slug])
    entry = AuditLog.objects.for_tenant(tenant).get(action="auth.sign_in")
    assert entry.actor == member.user and entry.ip == "127.0.0.1"


def test_wrong_password_is_refused_and_audited(member: Membership, client: Client, tenant: Tenant) -> None:
    response = client.post(reverse("tenants:login"), {"username": "owner@acme.example", "password": "nope"})

    assert response.status_code == 200
    assert "not right" in response.content.decode()
    assert AuditLog.objects.for_tenant(tenant).filter(action="auth.sign_in_failed").count() == 1


def test_repeated_failures_are_throttled(member: Membership, client: Client, password: str) -> None:
    for _ in range(10):
        client.post(reverse("tenants:login"), {"username": "owner@acme.example", "password": "nope"})

    response = client.post(reverse("tenants:login"), {"username": "owner@acme.example", "password": password})

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_sign_out_needs_post_and_ends_the_session(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.post(reverse("tenants:logout"))

    assert response.status_code == 302
    assert dashboard_client.get(reverse("tenants:overview", args=[tenant.slug])).status_code == 302


def test_anonymous_user_is_sent_to_sign_in(client: Client, tenant: Tenant) -> None:
    response = client.get(reverse("tenants:jobs", args=[tenant.slug]))

    assert response.status_code == 302
    assert response.url.startswith(reverse("tenants:login"))


def test_password_reset_by_email(member: Membership, client: Client) -> None:
    # given: a reset link sent by email
    client.post(reverse("tenants:password_reset"), {"email": "owner@acme.example"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+", mail.outbox[0].body).group(0)

    # when: the person follows it and chooses a new password
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    new_password = "a-brand-new-long-password"
    response = client.post(form_url, {"new_password1": new_password, "new_password2": new_password})

    # then
    assert response.status_code == 302
    assert User.objects.get(pk=member.user.pk).check_password(new_password)
    assert Client().login(username="owner@acme.example", password=new_password)


def test_password_reset_does_not_reveal_unknown_addresses(client: Client, tenant: Tenant) -> None:
    response = client.post(reverse("tenants:password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert mail.outbox == []


def test_language_switch_is_saved_on_the_account(dashboard_client: Client, member: Membership, tenant: Tenant) -> None:
    overview = reverse("tenants:overview", args=[tenant.slug])

    response = dashboard_client.post(reverse("tenants:set_language"), {"language": "ru", "next": overview})

    assert response.status_code == 302 and response.url == overview
    member.user.refresh_from_db()
    assert member.user.language == "ru"
    page = dashboard_client.get(overview).content.decode()
    assert "Обзор" in page and "Задачи" in page


def test_language_follows_the_browser_for_anonymous_visitors(client: Client) -> None:
    page = client.get(reverse("tenants:login"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()

    assert "Войти" in page


def test_language_switch_refuses_foreign_redirects(dashboard_client: Client) -> None:
    response = dashboard_client.post(reverse("tenants:set_language"), {"language": "en", "next": "https://evil.example/"})

    assert response.url == "/"


def test_tenant_switcher_lists_only_own_tenants(
    dashboard_client: Client, tenant: Tenant, other_tenant: Tenant, member: Membership
) -> None:
    second = TenantFactory(name="Second Shop", slug="second")
    Membership.objects.create(tenant=second, user=member.user, role=Role.VIEWER)

    page = dashboard_client.get(reverse("tenants:overview", args=[tenant.slug])).content.decode()
    listing = dashboard_client.get(reverse("tenants:tenant_list")).content.decode()

    for body in (page, listing):
        assert "Second Shop" in body and "Acme Telecom" in body
        assert "Other Telecom" not in body
    assert dashboard_client.get(reverse("tenants:overview", args=["second"])).status_code == 200


def test_tenant_list_shows_only_own_tenants(dashboard_client: Client, other_tenant: Tenant) -> None:
    assert "Other Telecom" not in dashboard_client.get(reverse("tenants:tenant_list")).content.decode()


def test_unknown_tenant_and_foreign_tenant_are_the_same_404(dashboard_client: Client, other_tenant: Tenant) -> None:
    missing = dashboard_client.get("/t/no-such-tenant/")
    foreign = dashboard_client.get(f"/t/{other_tenant.slug}/")

    assert missing.status_code == foreign.status_code == 404

    def without_csrf(body: bytes) -> str:
        return re.sub(r'(csrfmiddlewaretoken" value="|X-CSRFToken": ")[^"]+', "", body.decode())

    assert without_csrf(missing.content) == without_csrf(foreign.content).replace("/t/other/", "/t/no-such-tenant/")


def test_audit_log_page_shows_own_entries_with_keyset_paging(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    AuditLogFactory.create_batch(60, tenant=tenant, action="bulk.entry")

    first = dashboard_client.get(reverse("tenants:audit_log", args=[tenant.slug]))
    next_before = first.context["page"].next_before
    second = dashboard_client.get(reverse("tenants:audit_log", args=[tenant.slug]), {"before": next_before})

    assert len(first.context["entries"]) == 50
    assert len(second.context["entries"]) == 10
    assert "lookalike.seeded" not in first.content.decode() + second.content.decode()


def test_jobs_page_and_htmx_partial(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    running = JobRunFactory(tenant=tenant, status="running", progress=40, processed=40, total=100, finished_at=None)

    page = dashboard_client.get(reverse("tenants:jobs", args=[tenant.slug]))
    partial = dashboard_client.get(reverse("tenants:jobs", args=[tenant.slug]), {"partial": "rows"}, HTTP_HX_REQUEST="true")
    detail = dashboard_client.get(reverse("tenants:job_detail", args=[tenant.slug, running.pk]), HTTP_HX_REQUEST="true")

    assert 'aria-valuenow="40"' in page.content.decode()
    assert partial.content.decode().lstrip().startswith("<tbody") and 'hx-trigger="every 2s"' in partial.content.decode()
    assert detail.content.decode().lstrip().startswith("<section") and "40 / 100" in detail.content.decode()
    assert "<html" not in partial.content.decode()


def test_settings_form_saves_and_reports_field_errors(dashboard_client: Client, tenant: Tenant) -> None:
    url = reverse("tenants:settings", args=[tenant.slug])
    good = {"name": "Acme Mobile", "locale": "ru", "timezone": "Europe/Moscow", "currency": "RUB", "brand_color": "#112233"}

    bad = dashboard_client.post(url, {**good, "timezone": "Mars/Olympus", "currency": "rubles"})
    tenant.refresh_from_db()
    assert bad.status_code == 400 and tenant.name == "Acme Telecom"
    assert set(bad.context["form"].errors) == {"timezone", "currency"}

    assert dashboard_client.post(url, good).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.currency, tenant.timezone) == ("Acme Mobile", "RUB", "Europe/Moscow")
    assert AuditLog.objects.for_tenant(tenant).filter(action="tenant.settings_changed").exists()


def test_api_key_secret_is_shown_once(dashboard_client: Client, tenant: Tenant) -> None:
    url = reverse("tenants:api_keys", args=[tenant.slug])

    created = dashboard_client.post(url, {"name": "CRM sync", "scopes": ["jobs:read", "customers:write"]})
    later = dashboard_client.get(url)

    raw = re.search(r"b2p_[0-9a-f]{12}_[\w-]+", created.content.decode()).group(0)
    assert raw not in later.content.decode()
    assert created["Cache-Control"] == "no-store"


def test_api_key_form_reports_bad_scopes(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.post(reverse("tenants:api_keys", args=[tenant.slug]), {"name": "x", "scopes": ["root:all"]})

    assert response.status_code == 400
    assert response.context["form"].errors["scopes"]


def test_section_pages_render_for_members(dashboard_client: Client, tenant: Tenant, make_member: Callable) -> None:
    for section in ("campaigns", "metrics"):
        assert dashboard_client.get(reverse(f"tenants:section_{section}", args=[tenant.slug])).status_code == 200


def test_healthz(client: Client, db: None) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_api_docs_and_schema_are_served_offline(client: Client, db: None) -> None:
    docs = client.get("/api/docs/").content.decode()
    schema = client.get("/api/schema/")

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "//cdn" not in docs and "unpkg" not in docs
    assert schema.status_code == 200 and b"/api/v1/jobs/" in schema.content


def test_admin_is_for_platform_staff_only(dashboard_client: Client, tenant: Tenant) -> None:
    response = dashboard_client.get("/admin/")

    assert response.status_code == 302 and "/admin/login/" in response.url


def test_staff_views_of_tenant_data_are_audited(tenant: Tenant, other_tenant: Tenant, login_as: Callable) -> None:
    staff = User.objects.create_superuser("staff@platform.example", "staff-pass-123")
    client = login_as(staff)
    job = other_tenant.seeded["job"]

    assert client.get(f"/admin/tenants/jobrun/{job.pk}/change/").status_code == 200
    assert client.get("/admin/tenants/membership/").status_code == 200

    entry = AuditLog.objects.for_tenant(other_tenant).get(action="staff.viewed")
    assert entry.actor == staff and entry.target_id == str(job.pk)
    assert AuditLog.objects.unscoped().filter(action="staff.listed", actor=staff).exists()


def test_overview_activity_counts_only_own_recent_entries(dashboard_client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    AuditLogFactory.create_batch(3, tenant=tenant)
    AuditLogFactory(tenant=tenant, created_at=timezone.now() - timedelta(days=30))

    activity = dashboard_client.get(reverse("tenants:overview", args=[tenant.slug])).context["activity"]

    assert len(activity) == 14
    assert sum(day["count"] for day in activity) == 3
