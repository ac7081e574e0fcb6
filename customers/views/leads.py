"""Lead forms: the dashboard pages (/t/<tenant_slug>/customers/forms/) and the public pages (/f/<tenant_slug>/...).

CSRF and framing of the public sign-up form. The form is embedded on the tenant's own site in an
iframe, so its page is cross-site to the top-level page. Browsers neither store nor send our
SameSite=Lax CSRF cookie in such a frame (and Safari blocks third-party cookies outright), so
Django's cookie-based CSRF check would refuse every embedded sign-up. The sign-up POST is
therefore `csrf_exempt`, which is safe here because it acts on no session or account: a forged
POST can do nothing the forger could not do directly. In its place: a signed, timestamped form
token (the POST must come from a page we rendered), a honeypot field, a per-IP rate limit, and
double opt-in (nothing happens to an address until its owner confirms). Only the embed variant
(`?embed=1`) may be framed (`xframe_options_exempt` per response); the standalone page and the
confirmation page keep X-Frame-Options: DENY, and the confirmation keeps CSRF (it opens from an
email in a top-level window, where the cookie works).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.decorators import method_decorator
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from b2p_platform.exceptions import DomainError
from customers import leads
from customers.forms_leads import LeadFormForm, PublicLeadForm
from customers.intake import RowInvalid
from customers.models import LeadForm
from tenants.models import Tenant
from tenants.roles import Perm
from tenants.scoping import resolve_tenant
from tenants.views.base import TenantViewMixin, add_domain_error, client_ip, keyset_page

PAGE_SIZE = 50


# Dashboard ---------------------------------------------------------------------------------------


def public_url(request: HttpRequest, lead_form: LeadForm, tenant: Tenant, name: str = "leadforms:form") -> str:
    return request.build_absolute_uri(reverse(name, kwargs={"tenant_slug": tenant.slug, "form_slug": lead_form.slug}))


class LeadFormListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        context = {"tenant": self.tenant, "membership": self.membership, "forms": leads.list_lead_forms(tenant=self.tenant)}
        return render(request, "customers/leadform_list.html", context)


class _LeadFormEditMixin(TenantViewMixin):
    required_perm = Perm.EDIT_DATA

    def _form(self, data: Any = None, initial: dict[str, Any] | None = None) -> LeadFormForm:
        return LeadFormForm(data, initial=initial, field_choices=leads.field_choices(tenant=self.tenant))

    def _render(self, form: LeadFormForm, lead_form: LeadForm | None = None, status: int = 200) -> HttpResponse:
        context = {"tenant": self.tenant, "membership": self.membership, "form": form, "lead_form": lead_form}
        return render(self.request, "customers/leadform_form.html", context, status=status)


class LeadFormCreateView(_LeadFormEditMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self._render(self._form(initial={"consent_text": _("Yes, send me news and offers by email. I can unsubscribe at any time.")}))

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = self._form(request.POST)
        if form.is_valid():
            try:
                lead_form = leads.create_lead_form(tenant=self.tenant, actor=request.user, ip=client_ip(request), **form.cleaned_data)
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Form created. Put it on your site with the snippet below."))
                return redirect("customers:leadform_detail", tenant_slug=self.tenant.slug, form_id=lead_form.pk)
        return self._render(form, status=400)


class LeadFormEditView(_LeadFormEditMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, form_id: int) -> HttpResponse:
        lead_form = leads.get_lead_form(tenant=self.tenant, form_id=form_id)
        return self._render(self._form(initial=LeadFormForm.initial_for(lead_form)), lead_form)

    def post(self, request: HttpRequest, tenant_slug: str, form_id: int) -> HttpResponse:
        lead_form = leads.get_lead_form(tenant=self.tenant, form_id=form_id)
        form = self._form(request.POST)
        if form.is_valid():
            try:
                leads.update_lead_form(
                    tenant=self.tenant, actor=request.user, form=lead_form, ip=client_ip(request), **form.cleaned_data
                )
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Form saved."))
                return redirect("customers:leadform_detail", tenant_slug=self.tenant.slug, form_id=lead_form.pk)
        return self._render(form, lead_form, status=400)


class LeadFormDeactivateView(TenantViewMixin, View):
    required_perm = Perm.EDIT_DATA

    def post(self, request: HttpRequest, tenant_slug: str, form_id: int) -> HttpResponse:
        lead_form = leads.get_lead_form(tenant=self.tenant, form_id=form_id)
        leads.deactivate_lead_form(tenant=self.tenant, actor=request.user, form=lead_form, ip=client_ip(request))
        messages.success(request, _("The form no longer accepts sign-ups; links already sent still confirm."))
        return redirect("customers:leadform_detail", tenant_slug=self.tenant.slug, form_id=lead_form.pk)


class LeadFormDetailView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, form_id: int) -> HttpResponse:
        lead_form = leads.get_lead_form(tenant=self.tenant, form_id=form_id)
        page = keyset_page(leads.list_submissions(tenant=self.tenant, form=lead_form), before=request.GET.get("before"), size=PAGE_SIZE)
        url = public_url(request, lead_form, self.tenant)
        script_url = public_url(request, lead_form, self.tenant, "leadforms:embed")
        context = {
            "tenant": self.tenant, "membership": self.membership, "lead_form": lead_form, "page": page, "submissions": page.items,
            "specs": leads.resolve_fields(tenant=self.tenant, form=lead_form),
            "public_url": url,
            "script_snippet": f'<script src="{script_url}" data-height="520" async></script>',
            "iframe_snippet": f'<iframe src="{url}?embed=1" title="{escape(lead_form.name)}" style="width:100%;max-width:520px;height:520px;border:0"></iframe>',
            "link_days": leads.LINK_TTL.days,
        }
        return render(request, "customers/leadform_detail.html", context)


# Public pages ------------------------------------------------------------------------------------


def public_language(request: HttpRequest, tenant: Tenant) -> str:
    """The tenant's language, unless the visitor's browser (or language cookie) asks for another we have."""
    supported = dict(settings.LANGUAGES)
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if cookie in supported:
        return cookie
    for code, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return tenant.locale if tenant.locale in supported else settings.LANGUAGE_CODE


class _PublicMixin:
    """Resolves the tenant from the URL (any active tenant: these pages are public) and the language."""

    request: HttpRequest
    tenant: Tenant

    def setup_public(self, request: HttpRequest, tenant_slug: str) -> None:
        self.tenant, _membership = resolve_tenant(slug=tenant_slug, public=True)
        language = public_language(request, self.tenant)
        translation.activate(language)  # LocaleMiddleware activates afresh for every request
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]


@method_decorator(csrf_exempt, name="dispatch")  # see the module docstring
class PublicLeadFormView(_PublicMixin, View):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.setup_public(request, kwargs["tenant_slug"])
        self.lead_form = leads.get_public_form(tenant=self.tenant, slug=kwargs["form_slug"])
        self.specs = leads.resolve_fields(tenant=self.tenant, form=self.lead_form)
        self.embed = request.GET.get("embed") == "1"
        response = super().dispatch(request, *args, **kwargs)
        if self.embed:
            response.xframe_options_exempt = True  # type: ignore[attr-defined]
        return response

    def get(self, request: HttpRequest, tenant_slug: str, form_slug: str) -> HttpResponse:
        return self._render("customers/public_form.html", form=self._form())

    def post(self, request: HttpRequest, tenant_slug: str, form_slug: str) -> HttpResponse:
        if not leads.allow_submission(tenant=self.tenant, form=self.lead_form, ip=client_ip(request)):
            response = self._render("customers/public_throttled.html", status=429)
            response["Retry-After"] = str(leads.SUBMISSION_RATE_WINDOW_SECONDS)
            return response
        form = self._form(request.POST)
        if form.is_spam():
            return self._render("customers/public_success.html")  # looks like success to the bot; nothing stored
        if form.is_valid():
            try:
                leads.submit_lead(
                    tenant=self.tenant, form=self.lead_form, values=form.values(), ip=client_ip(request),
                    locale=translation.get_language() or "",
                )
            except RowInvalid as exc:
                form.add_answer_errors(exc.errors)
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                return self._render("customers/public_success.html")
        form.refresh_token()
        return self._render("customers/public_form.html", form=form, status=400)

    def _form(self, data: Any = None) -> PublicLeadForm:
        return PublicLeadForm(data, lead_form=self.lead_form, specs=self.specs)

    def _render(self, template: str, status: int = 200, **extra: Any) -> HttpResponse:
        context = {"tenant": self.tenant, "lead_form": self.lead_form, "embed": self.embed, **extra}
        return render(self.request, template, context, status=status)


EMBED_SCRIPT = """(function () {
  var script = document.currentScript;
  if (!script) return;
  var src = %(src)s, origin = %(origin)s;
  var frame = document.createElement("iframe");
  frame.src = src;
  frame.title = %(title)s;
  frame.setAttribute("loading", "lazy");
  frame.style.width = "100%%";
  frame.style.maxWidth = script.getAttribute("data-max-width") || "520px";
  frame.style.border = "0";
  frame.style.height = (parseInt(script.getAttribute("data-height"), 10) || 520) + "px";
  script.parentNode.insertBefore(frame, script.nextSibling);
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (data && data.type === "b2p-leadform-height" && typeof data.height === "number") {
      frame.style.height = Math.min(Math.max(data.height, 120), 4000) + "px";
    }
  });
})();
"""


class LeadFormEmbedScriptView(_PublicMixin, View):
    """embed.js: puts an iframe of the form (?embed=1) right after its own <script> tag and
    follows the form's height, which the framed page reports with postMessage."""

    def get(self, request: HttpRequest, tenant_slug: str, form_slug: str) -> HttpResponse:
        self.setup_public(request, tenant_slug)
        lead_form = leads.get_public_form(tenant=self.tenant, slug=form_slug)
        src = public_url(request, lead_form, self.tenant) + "?embed=1"
        parts = urlsplit(src)
        # json.dumps makes each value a JS string literal; "<" is escaped too, in case a page inlines the script.
        body = EMBED_SCRIPT % {
            name: json.dumps(value).replace("<", "\\u003c")
            for name, value in {"src": src, "origin": f"{parts.scheme}://{parts.netloc}", "title": lead_form.name}.items()
        }
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
        response["Cache-Control"] = "public, max-age=300"
        return response


@method_decorator(never_cache, name="dispatch")
class LeadConfirmView(_PublicMixin, View):
    """GET shows a button, POST confirms: mail scanners fetch links, and must not confirm for the person."""

    def get(self, request: HttpRequest, tenant_slug: str, token: str) -> HttpResponse:
        self.setup_public(request, tenant_slug)
        try:
            submission = leads.get_confirmable_submission(tenant=self.tenant, token=token)
        except (leads.LinkInvalid, leads.LinkGone) as exc:
            return self._invalid(exc)
        context = {"tenant": self.tenant, "lead_form": submission.form, "submission": submission}
        return render(request, "customers/public_confirm.html", context)

    def post(self, request: HttpRequest, tenant_slug: str, token: str) -> HttpResponse:
        self.setup_public(request, tenant_slug)
        try:
            outcome, _submission = leads.confirm_lead(tenant=self.tenant, token=token, ip=client_ip(request))
        except (leads.LinkInvalid, leads.LinkGone) as exc:
            return self._invalid(exc)
        context = {"tenant": self.tenant, "outcome": outcome.value, "is_erased": outcome == leads.ConfirmOutcome.ERASED}
        return render(request, "customers/public_confirmed.html", context)

    def _invalid(self, exc: DomainError) -> HttpResponse:
        context = {"tenant": self.tenant, "reason": exc.message, "is_gone": isinstance(exc, leads.LinkGone)}
        return render(self.request, "customers/public_link_invalid.html", context, status=exc.status_code)
