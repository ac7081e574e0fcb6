"""Tenant dashboard pages owned by this app: overview, jobs, settings, members, keys, audit log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView

from b2p_platform.exceptions import DomainError, ForbiddenError
from tenants import selectors, services
from tenants.forms import ApiKeyForm, InviteForm, RoleForm, StartJobForm, TenantSettingsForm
from tenants.jobs import job_label
from tenants.roles import PERMISSIONS, Perm, Role
from tenants.views.base import TenantViewMixin, add_domain_error, client_ip, keyset_page


class OverviewView(TenantViewMixin, TemplateView):
    template_name = "tenants/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["recent_jobs"] = list(selectors.list_jobs(tenant=self.tenant)[:5])
        context["member_count"] = selectors.list_members(tenant=self.tenant).count()
        context["active_key_count"] = selectors.list_api_keys(tenant=self.tenant).filter(revoked_at__isnull=True).count()
        context["activity"] = selectors.audit_activity_by_day(tenant=self.tenant)
        return context


class SectionView(TenantViewMixin, TemplateView):
    """A dashboard section whose features arrive with a later issue; says so instead of faking data."""

    template_name = "tenants/section_pending.html"
    section_title: Any = ""
    section_text: Any = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["section_title"] = self.section_title
        context["section_text"] = self.section_text
        return context


SECTIONS = {
    "campaigns": (gettext_lazy("Campaigns"), gettext_lazy("Email and social campaigns, A/B tests, surveys and automations.")),
    "metrics": (gettext_lazy("Metrics"), gettext_lazy("CR, CAC, LTV, CRR, NPS and ROI, funnels and cohorts.")),
}


# Jobs ------------------------------------------------------------------------------------------


class JobListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        page = keyset_page(selectors.list_jobs(tenant=self.tenant), before=request.GET.get("before"), size=25)
        context = {
            "tenant": self.tenant,
            "membership": self.membership,
            "page": page,
            "jobs": page.items,
            "has_running": any(not job.is_finished for job in page.items),
            "can_export_audit": self.can(Perm.VIEW_AUDIT_LOG),
        }
        if request.htmx and request.GET.get("partial") == "rows":
            return render(request, "tenants/job_list.html#rows", context)
        return render(request, "tenants/job_list.html", context)

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = StartJobForm(request.POST)
        if not form.is_valid():
            raise Http404
        try:
            job = services.start_job(
                tenant=self.tenant, actor=request.user, actor_membership=self.membership, kind=form.cleaned_data["kind"]
            )
        except ForbiddenError as exc:
            raise PermissionDenied from exc
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("tenants:jobs", tenant_slug=self.tenant.slug)
        messages.success(request, _("Job started: %(label)s.") % {"label": job_label(job.kind)})
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)


class JobDetailView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, job_id: int) -> HttpResponse:
        job = selectors.get_job(tenant=self.tenant, job_id=job_id)
        context = {"tenant": self.tenant, "membership": self.membership, "job": job}
        if request.htmx:
            return render(request, "tenants/job_detail.html#job-status", context)
        return render(request, "tenants/job_detail.html", context)


class JobDownloadView(TenantViewMixin, View):
    required_perm = Perm.EXPORT_DATA

    def get(self, request: HttpRequest, tenant_slug: str, job_id: int) -> FileResponse:
        job = selectors.get_job(tenant=self.tenant, job_id=job_id)
        if not job.result_file:
            raise Http404
        name = job.result_file.name.rsplit("/", 1)[-1]
        return FileResponse(job.result_file.open("rb"), as_attachment=True, filename=name)


# Settings --------------------------------------------------------------------------------------


class TenantSettingsView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self._render(TenantSettingsForm(instance=self.tenant))

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        if not self.can(Perm.MANAGE_SETTINGS):
            raise PermissionDenied
        form = TenantSettingsForm(request.POST, request.FILES, instance=selectors.get_tenant_for_update(tenant=self.tenant))
        if form.is_valid():
            try:
                services.update_tenant_settings(
                    tenant=self.tenant, actor=request.user, ip=client_ip(request),
                    **{name: form.cleaned_data[name] for name in form.changed_data},
                )
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Settings saved."))
                return redirect("tenants:settings", tenant_slug=self.tenant.slug)
        return self._render(form, status=400)

    def _render(self, form: TenantSettingsForm, status: int = 200) -> HttpResponse:
        context = {"tenant": self.tenant, "membership": self.membership, "form": form, "can_edit": self.can(Perm.MANAGE_SETTINGS)}
        return render(self.request, "tenants/settings.html", context, status=status)


class LogoView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> FileResponse:
        if not self.tenant.logo:
            raise Http404
        return FileResponse(self.tenant.logo.open("rb"))


class MemberListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self._render(InviteForm())

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                services.invite_member(
                    tenant=self.tenant, actor=request.user, actor_membership=self.membership,
                    email=form.cleaned_data["email"], role=form.cleaned_data["role"], ip=client_ip(request),
                )
            except ForbiddenError as exc:
                raise PermissionDenied from exc
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]})
                return redirect("tenants:members", tenant_slug=self.tenant.slug)
        return self._render(form, status=400)

    def _render(self, form: InviteForm, status: int = 200) -> HttpResponse:
        page = keyset_page(selectors.list_members(tenant=self.tenant), before=self.request.GET.get("before"), size=100)
        context = {
            "tenant": self.tenant,
            "membership": self.membership,
            "page": page,
            "members": page.items,
            "invitations": selectors.list_pending_invitations(tenant=self.tenant)[:100],
            "form": form,
            "roles": Role.choices,
            "can_manage": self.can(Perm.MANAGE_MEMBERS),
            "can_manage_owners": self.can(Perm.MANAGE_OWNERS),
        }
        return render(self.request, "tenants/member_list.html", context, status=status)


class MemberRoleView(TenantViewMixin, View):
    def post(self, request: HttpRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
        target = selectors.get_membership(tenant=self.tenant, membership_id=membership_id)
        form = RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose a valid role."))
            return redirect("tenants:members", tenant_slug=self.tenant.slug)
        try:
            services.change_member_role(
                tenant=self.tenant, actor=request.user, actor_membership=self.membership,
                membership=target, role=form.cleaned_data["role"], ip=client_ip(request),
            )
        except ForbiddenError as exc:
            raise PermissionDenied from exc
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Role changed."))
        return redirect("tenants:members", tenant_slug=self.tenant.slug)


class MemberRemoveView(TenantViewMixin, View):
    def post(self, request: HttpRequest, tenant_slug: str, membership_id: int) -> HttpResponse:
        target = selectors.get_membership(tenant=self.tenant, membership_id=membership_id)
        leaving = target.user_id == request.user.pk
        try:
            services.remove_member(
                tenant=self.tenant, actor=request.user, actor_membership=self.membership, membership=target, ip=client_ip(request)
            )
        except ForbiddenError as exc:
            raise PermissionDenied from exc
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("tenants:members", tenant_slug=self.tenant.slug)
        if leaving:
            messages.success(request, _("You left %(tenant)s.") % {"tenant": self.tenant.name})
            return redirect("tenants:home")
        messages.success(request, _("Member removed."))
        return redirect("tenants:members", tenant_slug=self.tenant.slug)


class InvitationRevokeView(TenantViewMixin, View):
    required_perm = Perm.MANAGE_MEMBERS

    def post(self, request: HttpRequest, tenant_slug: str, invitation_id: int) -> HttpResponse:
        invitation = selectors.get_invitation(tenant=self.tenant, invitation_id=invitation_id)
        services.revoke_invitation(
            tenant=self.tenant, actor=request.user, actor_membership=self.membership, invitation=invitation, ip=client_ip(request)
        )
        messages.success(request, _("Invitation revoked."))
        return redirect("tenants:members", tenant_slug=self.tenant.slug)


class ApiKeyListView(TenantViewMixin, View):
    required_perm = Perm.MANAGE_API_KEYS

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self._render(ApiKeyForm())

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                api_key, raw_key = services.create_api_key(
                    tenant=self.tenant, actor=request.user, actor_membership=self.membership, ip=client_ip(request),
                    **form.cleaned_data,
                )
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                # The secret is rendered in this one response and never again.
                return self._render(ApiKeyForm(), new_key=raw_key, new_key_obj=api_key)
        return self._render(form, status=400)

    def _render(self, form: ApiKeyForm, status: int = 200, **extra: Any) -> HttpResponse:
        page = keyset_page(selectors.list_api_keys(tenant=self.tenant), before=self.request.GET.get("before"), size=50)
        context = {"tenant": self.tenant, "membership": self.membership, "page": page, "keys": page.items, "form": form, **extra}
        response = render(self.request, "tenants/api_key_list.html", context, status=status)
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevokeView(TenantViewMixin, View):
    required_perm = Perm.MANAGE_API_KEYS

    def post(self, request: HttpRequest, tenant_slug: str, api_key_id: int) -> HttpResponse:
        api_key = selectors.get_api_key(tenant=self.tenant, api_key_id=api_key_id)
        services.revoke_api_key(
            tenant=self.tenant, actor=request.user, actor_membership=self.membership, api_key=api_key, ip=client_ip(request)
        )
        messages.success(request, _("Key revoked: it stops working at once."))
        return redirect("tenants:api_keys", tenant_slug=self.tenant.slug)


class AuditLogView(TenantViewMixin, View):
    required_perm = Perm.VIEW_AUDIT_LOG

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        action = request.GET.get("action") or None
        page = keyset_page(selectors.list_audit_log(tenant=self.tenant, action=action), before=request.GET.get("before"), size=50)
        context = {"tenant": self.tenant, "membership": self.membership, "page": page, "entries": page.items, "action": action or "",
                   "extra_query": urlencode({"action": action}) if action else ""}
        return render(request, "tenants/audit_log.html", context)


def roles_table() -> list[tuple[str, list[bool]]]:
    return [(perm.value, [role in PERMISSIONS[perm] for role in Role]) for perm in Perm]
