"""Sign-in, sign-out, password reset, language, invitations and the tenant picker."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from b2p_platform.exceptions import DomainError
from tenants import selectors, services
from tenants.forms import AcceptInvitationForm, LanguageForm, SignInForm
from tenants.models import User
from tenants.views.base import add_domain_error, client_ip

SIGN_IN_MAX_FAILURES = 10
SIGN_IN_WINDOW_SECONDS = 15 * 60


def _failure_key(request: HttpRequest, email: str) -> str:
    return f"signin-failures:{client_ip(request)}:{email.lower()}"


def _audit_sign_in(user_or_email: User | str, action: str, request: HttpRequest) -> None:
    """One entry in each tenant the person belongs to, so their owners see it; else a platform entry."""
    user = user_or_email if isinstance(user_or_email, User) else User.objects.filter(email=user_or_email.lower()).first()
    memberships = list(selectors.list_user_tenants(user=user)) if user else []
    metadata = {"email": user.email if user else str(user_or_email)[:254]}
    for tenant in [m.tenant for m in memberships] or [None]:
        services.record_audit(tenant=tenant, actor=user, action=action, metadata=metadata, ip=client_ip(request))


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "tenants/sign_in.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        email = request.POST.get("username", "")
        if (cache.get(_failure_key(request, email)) or 0) >= SIGN_IN_MAX_FAILURES:
            form = self.get_form()
            form.is_valid()
            form.errors.clear()
            form.add_error(None, form.error_messages["throttled"])
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: SignInForm) -> HttpResponse:
        response = super().form_valid(form)
        user = form.get_user()
        cache.delete(_failure_key(self.request, user.email))
        if user.language:
            response.set_cookie("b2p_language", user.language, samesite="Lax")
        _audit_sign_in(user, "auth.sign_in", self.request)
        return response

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        email = self.request.POST.get("username", "")
        key = _failure_key(self.request, email)
        cache.add(key, 0, SIGN_IN_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, SIGN_IN_WINDOW_SECONDS)
        if email:
            _audit_sign_in(email, "auth.sign_in_failed", self.request)
        return super().form_invalid(form)


class SignOutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            _audit_sign_in(request.user, "auth.sign_out", request)
        return super().post(request, *args, **kwargs)


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "tenants/password_reset.html"
    email_template_name = "tenants/email/password_reset.txt"
    subject_template_name = "tenants/email/password_reset_subject.txt"
    success_url = reverse_lazy("tenants:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "tenants/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "tenants/password_reset_confirm.html"
    success_url = reverse_lazy("tenants:password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        _audit_sign_in(form.user, "auth.password_reset", self.request)
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "tenants/password_reset_complete.html"


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch the UI language: saved on the account when signed in, and in a cookie."""
    form = LanguageForm(request.POST)
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if form.is_valid():
        language = form.cleaned_data["language"]
        if request.user.is_authenticated:
            services.set_user_language(user=request.user, language=language)
        response.set_cookie("b2p_language", language, max_age=365 * 24 * 3600, samesite="Lax")
    return response


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("tenants:login")
    memberships = list(selectors.list_user_tenants(user=request.user)[:2])
    if len(memberships) == 1:
        return redirect("tenants:overview", tenant_slug=memberships[0].tenant.slug)
    return redirect("tenants:tenant_list")


@login_required
def tenant_list(request: HttpRequest) -> HttpResponse:
    memberships = selectors.list_user_tenants(user=request.user)
    return render(request, "tenants/tenant_list.html", {"memberships": memberships})


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.get_pending_invitation(token=token)
    if invitation is None:
        return render(request, "tenants/invitation_invalid.html", status=404)
    signed_in = request.user.is_authenticated
    has_account = not signed_in and User.objects.filter(email=invitation.email).exists()
    form = AcceptInvitationForm(request.POST if request.method == "POST" else None, email=invitation.email)
    error = ""
    if request.method == "POST" and (signed_in or form.is_valid()):
        try:
            membership = services.accept_invitation(
                token=token,
                user=request.user if signed_in else None,
                full_name="" if signed_in else form.cleaned_data.get("full_name", ""),
                password=None if signed_in else form.cleaned_data.get("password1"),
                ip=client_ip(request),
            )
        except DomainError as exc:
            if signed_in:
                error = exc.message
            else:
                add_domain_error(form, exc)
        else:
            if not signed_in:
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome to %(tenant)s.") % {"tenant": invitation.tenant.name})
            return redirect(reverse("tenants:overview", kwargs={"tenant_slug": invitation.tenant.slug}))
    context = {"invitation": invitation, "form": form, "needs_account": not signed_in, "has_account": has_account, "error": error}
    return render(request, "tenants/invitation_accept.html", context)
