"""The customer portal's pages (/p/<tenant_slug>/...): parse, call a service or selector, render.

Who is signed in: the session holds `portal:<tenant id>` -> customer id, written only by a used
sign-in link. The key is named by the tenant, so a session signed in to one tenant's portal is
simply not signed in to another's: its pages redirect to that tenant's sign-in, and its object
ids are looked up within the tenant the URL names and the signed-in customer (a 404 otherwise).
The same browser may hold a dashboard login beside it; the portal never reads `request.user`.
"""

from __future__ import annotations

import contextlib
import json
import zoneinfo
from typing import Any

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache

from b2p_platform.exceptions import DomainError
from customers.intake import RowInvalid
from customers.models import Customer
from offers.models import OfferRequest
from offers.portal import display, selectors, services
from offers.portal.forms import DeleteAccountForm, LanguageForm, OfferForm, PreferencesForm, SignInForm
from offers.services import claims, pricing
from tenants.models import Tenant
from tenants.scoping import resolve_tenant
from tenants.views.base import add_domain_error, client_ip

RECENT_PRODUCTS = 5


def _key(tenant: Tenant, suffix: str = "") -> str:
    return f"portal:{tenant.pk}{':' + suffix if suffix else ''}"


def sign_in_customer(request: HttpRequest, tenant: Tenant, customer: Customer) -> None:
    # A new session key: whoever knew the old one (a fixated or leaked cookie) is not signed in with it.
    request.session.cycle_key()
    request.session[_key(tenant)] = customer.pk


def sign_out_customer(request: HttpRequest, tenant: Tenant) -> None:
    for suffix in ("", "recent", "next"):
        request.session.pop(_key(tenant, suffix), None)
    request.session.cycle_key()


def brand_text_color(hex_color: str) -> str:
    """Black or white, whichever reads better on the brand colour (WCAG relative luminance)."""
    try:
        channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    except (ValueError, IndexError):
        return "#ffffff"
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#111111" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#ffffff"


@method_decorator(never_cache, name="dispatch")
class PortalView(View):
    """Resolves the tenant (any active one: the sign-in page is public), the signed-in customer,
    the language (the customer's choice or locale, else the tenant's) and the time zone."""

    requires_customer = True
    section = ""
    request: HttpRequest
    tenant: Tenant
    customer: Customer | None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.tenant, _membership = resolve_tenant(slug=kwargs["tenant_slug"], public=True)
        self.customer = selectors.get_signed_in_customer(tenant=self.tenant, customer_id=request.session.get(_key(self.tenant)))
        if self.customer is None and _key(self.tenant) in request.session:
            sign_out_customer(request, self.tenant)  # erased or gone since they signed in
        language = request.session.get(_key(self.tenant, "language"))
        if language not in services.PORTAL_LANGUAGES:
            language = selectors.customer_language(tenant=self.tenant, customer=self.customer)
        translation.activate(language)  # LocaleMiddleware activates afresh for every request
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
        if self.requires_customer and self.customer is None:
            return self._to_sign_in(request)
        with timezone.override(self._zone()):
            return super().dispatch(request, *args, **kwargs)

    def _zone(self) -> zoneinfo.ZoneInfo:
        for name in (self.customer.timezone if self.customer else "", self.tenant.timezone):
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
        return zoneinfo.ZoneInfo("UTC")

    def _to_sign_in(self, request: HttpRequest) -> HttpResponse:
        url = reverse("portal:sign_in", kwargs={"tenant_slug": self.tenant.slug})
        if request.method == "GET" and not request.htmx:  # type: ignore[attr-defined]
            request.session[_key(self.tenant, "next")] = request.get_full_path()
        if request.htmx:  # type: ignore[attr-defined]
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return redirect(url)

    def url(self, name: str, **kwargs: Any) -> str:
        return reverse(f"portal:{name}", kwargs={"tenant_slug": self.tenant.slug, **kwargs})

    def render(self, template: str, status: int = 200, **context: Any) -> HttpResponse:
        base = {"tenant": self.tenant, "customer": self.customer, "section": self.section,
                "brand_text": brand_text_color(self.tenant.brand_color)}
        return render(self.request, template, {**base, **context}, status=status)


# Sign-in ----------------------------------------------------------------------------------------


class SignInView(PortalView):
    requires_customer = False

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        if self.customer is not None:
            return redirect(self.url("offers"))
        return self.render("portal/sign_in.html", form=SignInForm())

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = SignInForm(request.POST)
        if not services.allow_link_request(tenant=self.tenant, email=request.POST.get("email", ""), ip=client_ip(request)):
            response = self.render("portal/throttled.html", status=429)
            response["Retry-After"] = str(services.RATE_WINDOW_SECONDS)
            return response
        if not form.is_valid():
            return self.render("portal/sign_in.html", form=form, status=400)
        # The same page whether or not the address is a customer's: the form must not tell who is one.
        services.request_sign_in_link(tenant=self.tenant, email=form.cleaned_data["email"], language=translation.get_language() or "")
        minutes = int(services.LINK_TTL.total_seconds() // 60)
        return self.render("portal/check_email.html", email=form.cleaned_data["email"], minutes=minutes)


class SignInLinkView(PortalView):
    """GET shows a button, POST signs in: mail scanners open links, and must not use them up."""

    requires_customer = False

    def get(self, request: HttpRequest, tenant_slug: str, token: str) -> HttpResponse:
        try:
            services.get_usable_link(tenant=self.tenant, token=token)
        except (services.LinkInvalid, services.LinkGone) as exc:
            return self._invalid(exc)
        return self.render("portal/link_confirm.html")

    def post(self, request: HttpRequest, tenant_slug: str, token: str) -> HttpResponse:
        try:
            customer = services.use_sign_in_link(tenant=self.tenant, token=token)
        except (services.LinkInvalid, services.LinkGone) as exc:
            return self._invalid(exc)
        next_url = request.session.pop(_key(self.tenant, "next"), None)
        sign_in_customer(request, self.tenant, customer)
        return redirect(next_url if self._is_portal_path(next_url) else self.url("offers"))

    def _is_portal_path(self, url: Any) -> bool:
        return isinstance(url, str) and url.startswith(f"/p/{self.tenant.slug}/") and url_has_allowed_host_and_scheme(
            url, allowed_hosts={self.request.get_host()})

    def _invalid(self, exc: DomainError) -> HttpResponse:
        return self.render("portal/link_invalid.html", status=exc.status_code, reason=exc.message,
                           is_gone=isinstance(exc, services.LinkGone))


class SignOutView(PortalView):
    requires_customer = False

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        sign_out_customer(request, self.tenant)
        messages.success(request, _("You are signed out."))
        return redirect(self.url("sign_in"))


class LanguageView(PortalView):
    """Switch the portal's language; a signed-in customer's choice is saved on their profile."""

    requires_customer = False

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = LanguageForm(request.POST)
        if form.is_valid():
            language = form.cleaned_data["language"]
            request.session[_key(self.tenant, "language")] = language
            if self.customer is not None:
                # If the profile cannot take it, the session still keeps the choice for this visit.
                with contextlib.suppress(DomainError, RowInvalid):
                    services.set_customer_language(tenant=self.tenant, customer=self.customer, language=language)
        next_url = request.POST.get("next", "")
        if not (next_url.startswith(f"/p/{self.tenant.slug}/")
                and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()})):
            next_url = self.url("sign_in")
        return HttpResponseRedirect(next_url)


# Offers -----------------------------------------------------------------------------------------


class OfferListView(PortalView):
    section = "offers"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        recent = request.session.get(_key(self.tenant, "recent")) or []
        offers = selectors.list_offers(tenant=self.tenant, customer=self.customer, recent_products=recent)
        cards = [display.offer_card(item) for item in offers]
        personalized = not any(r.get("code") == "not_personalized" for item in offers for r in item.reasons)
        if not offers:
            personalized = selectors.get_preferences(tenant=self.tenant, customer=self.customer).personalization
        return self.render("portal/offer_list.html", cards=cards, personalized=personalized)


class _OfferMixin(PortalView):
    section = "offers"

    def load(self, offer_id: int) -> pricing.EligibleOffer:
        assert self.customer is not None
        return selectors.get_offer(tenant=self.tenant, customer=self.customer, offer_id=offer_id)

    def form(self, item: pricing.EligibleOffer, data: Any = None, *, is_claim: bool = False) -> OfferForm:
        assert self.customer is not None
        if data is None or not any(k in data for k in ("quantity", "idempotency_key")):
            # First view: bind the defaults, so the price and any rule the defaults break show at once.
            blank = OfferForm(offer=item.offer, customer=self.customer)
            data = {name: blank.initial.get(name, field.initial) for name, field in blank.fields.items()}
            data = {k: v for k, v in data.items() if v is not None}
        return OfferForm(data, offer=item.offer, customer=self.customer, is_claim=is_claim)

    def price(self, item: pricing.EligibleOffer, form: OfferForm) -> display.PriceView | None:
        """The price of what the form says, or None with the reasons on the form."""
        assert self.customer is not None
        if not form.is_valid():
            return None
        try:
            quote = pricing.quote_offer(
                offer=item.offer, context=pricing.load_context(tenant=self.tenant, customer=self.customer),
                configuration=form.configuration(), quantity=form.cleaned_data["quantity"],
            )
        except pricing.ConfigurationError as exc:
            form.add_configuration_errors(exc.errors)
            return None
        except DomainError as exc:
            add_domain_error(form, exc)
            return None
        return display.price_view(quote)

    def page(self, item: pricing.EligibleOffer, form: OfferForm, price: display.PriceView | None, status: int = 200) -> HttpResponse:
        card = display.offer_card(item)
        return self.render("portal/offer_detail.html", status=status, item=item, card=card, form=form, price=price)


class OfferDetailView(_OfferMixin):
    def get(self, request: HttpRequest, tenant_slug: str, offer_id: int) -> HttpResponse:
        item = self.load(offer_id)
        self._remember(item)
        form = self.form(item, request.GET or None)
        return self.page(item, form, self.price(item, form))

    def _remember(self, item: pricing.EligibleOffer) -> None:
        """Recently viewed products lift their offers in "for you" at once (pricing re-ranks by them)."""
        product = item.offer.product
        if product is None:
            return
        key = _key(self.tenant, "recent")
        recent = [sku for sku in self.request.session.get(key, []) if sku != product.sku]
        self.request.session[key] = [product.sku, *recent][:RECENT_PRODUCTS]


class OfferPriceView(_OfferMixin):
    """The live price of a configuration (htmx swaps it into the offer page as options change)."""

    def get(self, request: HttpRequest, tenant_slug: str, offer_id: int) -> HttpResponse:
        item = self.load(offer_id)
        form = self.form(item, request.GET)
        price = self.price(item, form)
        return self.render("portal/offer_detail.html#price", item=item, form=form, price=price)


class OfferClaimView(_OfferMixin):
    def post(self, request: HttpRequest, tenant_slug: str, offer_id: int) -> HttpResponse:
        assert self.customer is not None
        item = self.load(offer_id)
        if request.POST.get("preview"):  # "Update price" without JavaScript: show the price, claim nothing
            form = self.form(item, request.POST)
            return self.page(item, form, self.price(item, form))
        form = self.form(item, request.POST, is_claim=True)
        price = self.price(item, form)
        if price is not None:
            try:
                result = claims.claim_offer(
                    tenant=self.tenant, customer=self.customer, offer_id=item.offer.pk, configuration=form.configuration(),
                    quantity=form.cleaned_data["quantity"], voucher_code=form.cleaned_data["voucher_code"],
                    idempotency_key=form.cleaned_data["idempotency_key"], source="portal", actor=f"portal:{self.customer.pk}",
                )
            except pricing.ConfigurationError as exc:
                form.add_configuration_errors(exc.errors)
            except DomainError as exc:
                if exc.field in ("offer", "customer", "idempotency_key"):
                    form.add_error(None, _("This offer cannot be claimed any more. Please reload the page."))
                else:
                    add_domain_error(form, exc)
            else:
                if result.created:
                    messages.success(request, _("Your request was sent. We will email you as it moves on."))
                else:
                    messages.info(request, _("You had already sent this request; here it is."))
                return redirect(self.url("request", request_id=result.request.pk))
        return self.page(item, form, None if form.errors else price, status=400)


# Requests ---------------------------------------------------------------------------------------


class RequestListView(PortalView):
    section = "requests"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        requests = list(selectors.list_requests(tenant=self.tenant, customer=self.customer))
        rows = [{"request": r, "price": display.money(r.price, r.currency)} for r in requests]
        return self.render("portal/request_list.html", rows=rows)


class RequestDetailView(PortalView):
    section = "requests"

    def get(self, request: HttpRequest, tenant_slug: str, request_id: int) -> HttpResponse:
        assert self.customer is not None
        offer_request = selectors.get_request(tenant=self.tenant, customer=self.customer, request_id=request_id)
        own = f"portal:{self.customer.pk}"
        history = [
            {"event": e, "to": OfferRequest.Status(e.to_status).label if e.to_status in OfferRequest.Status.values else e.to_status,
             "by": _("You") if e.actor_label == own else self.tenant.name}
            for e in offer_request.history  # type: ignore[attr-defined]
        ]
        quote = offer_request.quote or {}
        lines = [{"label": line.get("label", ""), "quantity": line.get("quantity", 1),
                  "unit_price": display.money(line.get("unit_price", ""), offer_request.currency)}
                 for line in quote.get("lines", [])]
        return self.render(
            "portal/request_detail.html", offer_request=offer_request, history=history, lines=lines,
            price=display.money(offer_request.price, offer_request.currency),
            list_price=display.money(offer_request.list_price, offer_request.currency)
            if offer_request.price < offer_request.list_price else None,
        )


# Preferences, data, account ---------------------------------------------------------------------


class PreferencesView(PortalView):
    section = "preferences"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        current = selectors.get_preferences(tenant=self.tenant, customer=self.customer)
        return self.render("portal/preferences.html", form=PreferencesForm(
            initial=PreferencesForm.initial_for(current.marketing, current.personalization)))

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        form = PreferencesForm(request.POST)
        if form.is_valid():
            try:
                services.update_preferences(tenant=self.tenant, customer=self.customer, marketing=form.marketing(),
                                            personalization=form.cleaned_data["personalization"], ip=client_ip(request))
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Your preferences are saved."))
                return redirect(self.url("preferences"))
        return self.render("portal/preferences.html", form=form, status=400)


class DataView(PortalView):
    section = "data"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self.render("portal/data.html")


class DataExportView(PortalView):
    section = "data"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        data = selectors.export_data(tenant=self.tenant, customer=self.customer)
        response = HttpResponse(json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
                                content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.tenant.slug}-my-data.json"'
        return response


class DeleteAccountView(PortalView):
    section = "data"

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self.render("portal/delete_confirm.html", form=DeleteAccountForm())

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        assert self.customer is not None
        form = DeleteAccountForm(request.POST)
        if not form.is_valid():
            return self.render("portal/delete_confirm.html", form=form, status=400)
        services.delete_account(tenant=self.tenant, customer=self.customer, ip=client_ip(request))
        sign_out_customer(request, self.tenant)
        self.customer = None
        return self.render("portal/deleted.html")

