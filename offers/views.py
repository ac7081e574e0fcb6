"""Offers in the dashboard: offers and their vouchers, the catalogue, the request queue with SLA
ageing, a preview of what one customer would see and why, and the recommendation model page."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from b2p_platform.exceptions import DomainError
from customers.models import Customer
from offers import selectors
from offers.models import Offer, OfferRequest, Product, Voucher
from offers.services import catalogue, claims, pricing
from offers.services.option_groups import OptionGroupsInvalid
from tenants.models import JobRun
from tenants.roles import Perm
from tenants.views.base import TenantViewMixin, add_domain_error, keyset_page

SLA_HOURS = 48  # requests older than this, still undecided, are flagged in the queue


class OfferForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    description = forms.CharField(label=gettext_lazy("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=Offer.Kind.choices)
    status = forms.ChoiceField(label=gettext_lazy("Status"), choices=Offer.Status.choices)
    product_id = forms.IntegerField(label=gettext_lazy("Product id"), required=False)
    value = forms.DecimalField(label=gettext_lazy("Value (percent, amount or price)"), required=False, max_digits=14, decimal_places=2)
    base_price = forms.DecimalField(label=gettext_lazy("Base fee (configurable)"), required=False, max_digits=14, decimal_places=2)
    currency = forms.RegexField(label=gettext_lazy("Currency"), regex=r"^[A-Za-z]{3}$", max_length=3)
    priority = forms.IntegerField(label=gettext_lazy("Priority"), initial=0)
    combinable = forms.BooleanField(label=gettext_lazy("Combines with negotiated prices"), required=False)
    per_customer_cap = forms.IntegerField(label=gettext_lazy("Claims per customer"), required=False, min_value=1)
    total_cap = forms.IntegerField(label=gettext_lazy("Claims in total"), required=False, min_value=1)
    budget = forms.DecimalField(label=gettext_lazy("Budget (discount given)"), required=False, max_digits=14, decimal_places=2, min_value=0)
    starts_at = forms.DateTimeField(label=gettext_lazy("Valid from"), required=False)
    ends_at = forms.DateTimeField(label=gettext_lazy("Valid until"), required=False)
    eligibility = forms.CharField(label=gettext_lazy("Eligibility (JSON)"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text=gettext_lazy('e.g. {"segments": [12], "kinds": ["business_buyer"], "max_churn_probability": 0.9}'))
    items = forms.CharField(label=gettext_lazy("Bundle items (JSON)"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
                            help_text=gettext_lazy('[{"product_id": 3, "quantity": 1}]'))
    # Edited with the option-group builder (static/js/offer_options.js), which writes this JSON; without
    # JavaScript the JSON itself is the editor. The same shape as the API's.
    option_groups = forms.CharField(label=gettext_lazy("Option groups as JSON (the same as in the API)"), required=False,
                                    widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
                                    help_text=gettext_lazy('[{"key": "data", "label": "Data", "min_select": 1, "max_select": 1, '
                                                           '"options": [{"key": "5gb", "label": "5 GB", "price": "7.00", '
                                                           '"requires": [], "excludes": []}]}]'))

    def _json(self, name: str) -> Any:
        raw = self.cleaned_data.get(name, "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(_("This is not valid JSON.")) from exc

    def clean_eligibility(self) -> Any:
        return self._json("eligibility") or {}

    def clean_items(self) -> Any:
        return self._json("items")

    def clean_option_groups(self) -> Any:
        return self._json("option_groups")

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["currency"] = data["currency"].upper()
        for key in ("items", "option_groups"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


def _initial(offer: Offer) -> dict[str, Any]:
    groups = [{"key": g.key, "label": g.label, "min_select": g.min_select, "max_select": g.max_select,
               "options": [{"key": o.key, "label": o.label, "price": str(o.price), "requires": o.requires, "excludes": o.excludes}
                           for o in g.options.all()]} for g in offer.option_groups.all()]
    items = [{"product_id": i.product_id, "quantity": i.quantity} for i in offer.items.all()]
    return {
        "name": offer.name, "description": offer.description, "kind": offer.kind, "status": offer.status,
        "product_id": offer.product_id, "value": offer.value, "base_price": offer.base_price, "currency": offer.currency,
        "priority": offer.priority, "combinable": offer.combinable, "per_customer_cap": offer.per_customer_cap,
        "total_cap": offer.total_cap, "budget": offer.budget, "starts_at": offer.starts_at, "ends_at": offer.ends_at,
        "eligibility": json.dumps(offer.eligibility) if offer.eligibility else "",
        "items": json.dumps(items) if items else "", "option_groups": json.dumps(groups, ensure_ascii=False) if groups else "",
    }


def option_builder_labels() -> dict[str, str]:
    """The option-group builder's words, in the page's language ("%(n)s" is a number the script fills in)."""
    return {
        "group": _("Group %(n)s"), "option": _("Option %(n)s"), "options": _("Options"),
        "label": _("Name shown to customers"), "key": _("Key"),
        "key_help": _("Letters, digits, - and _; names the choice in the API and in rules."),
        "required": _("Required: the customer must choose"), "min_select": _("Choose at least"), "max_select": _("Choose at most"),
        "price": _("Price"), "requires": _("Needs"), "excludes": _("Cannot go with"),
        "refs_help": _("Other options; hold Ctrl (⌘ on a Mac) to pick several."),
        "add_group": _("Add option group"), "add_option": _("Add option"), "remove_group": _("Remove group"),
        "remove_option": _("Remove option"), "move_up": _("Move up"), "move_down": _("Move down"),
        "empty": _("No option groups yet."), "added": _("Added."), "removed": _("Removed."), "moved": _("Moved."),
        "invalid_json": _("The JSON below is not a list of option groups; correct it there, or empty it to start again."),
    }


def describe_option_path(path: str, labels: dict[str, str]) -> str:
    """A service error's path in words ("0.options.1.price" -> "Group 1 › Option 2 › Price") for the error list."""
    parts, words = path.split("."), []
    for i, part in enumerate(parts):
        if part.isdigit():
            words.append(labels["option" if i and parts[i - 1] == "options" else "group"] % {"n": int(part) + 1})
        elif part != "options" or i == len(parts) - 1:
            words.append(labels.get(part, part))
    return " › ".join(words)


class OfferListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        status = request.GET.get("status", "")
        offers = Offer.objects.for_tenant(self.tenant).select_related("product")
        if status in Offer.Status.values:
            offers = offers.filter(status=status)
        page = keyset_page(offers, before=request.GET.get("before"), size=50)
        return render(request, "offers/offer_list.html", {
            "tenant": self.tenant, "membership": self.membership, "page": page, "offers": page.items, "status": status,
            "statuses": Offer.Status.choices, "extra_query": f"status={status}" if status else "",
        })


class OfferEditView(TenantViewMixin, View):
    required_perm = Perm.EDIT_DATA

    def _render(self, request: HttpRequest, form: OfferForm, offer: Offer | None, status: int = 200,
                option_errors: dict[str, list[str]] | None = None) -> HttpResponse:
        return render(request, "offers/offer_form.html", {
            "tenant": self.tenant, "membership": self.membership, "form": form, "offer": offer,
            "option_labels": option_builder_labels(), "option_errors": option_errors or {},
        }, status=status)

    def get(self, request: HttpRequest, tenant_slug: str, offer_id: int | None = None) -> HttpResponse:
        offer = get_object_or_404(Offer.objects.for_tenant(self.tenant), pk=offer_id) if offer_id else None
        form = OfferForm(initial=_initial(offer) if offer else {"currency": self.tenant.currency, "status": "draft", "priority": 0})
        return self._render(request, form, offer)

    def post(self, request: HttpRequest, tenant_slug: str, offer_id: int | None = None) -> HttpResponse:
        offer = get_object_or_404(Offer.objects.for_tenant(self.tenant), pk=offer_id) if offer_id else None
        form = OfferForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, offer, status=400)
        try:
            if offer is None:
                offer = catalogue.create_offer(tenant=self.tenant, actor=request.user, data=form.service_data())
            else:
                catalogue.update_offer(tenant=self.tenant, actor=request.user, offer=offer, data=form.service_data())
        except OptionGroupsInvalid as exc:
            # Each message goes next to its input in the builder (by path), and into the list above the JSON.
            labels = option_builder_labels()
            for path, problems in exc.errors.items():
                form.add_error("option_groups", f"{describe_option_path(path, labels)}: {' '.join(problems)}")
            return self._render(request, form, offer, status=400, option_errors=exc.errors)
        except DomainError as exc:
            add_domain_error(form, exc)
            return self._render(request, form, offer, status=400)
        messages.success(request, _("Offer saved."))
        return redirect("offers:detail", tenant_slug=self.tenant.slug, offer_id=offer.pk)


class VoucherForm(forms.Form):
    count = forms.IntegerField(label=gettext_lazy("How many codes"), min_value=1, max_value=100_000, initial=1)
    prefix = forms.CharField(label=gettext_lazy("Prefix"), required=False, max_length=16)
    code = forms.CharField(label=gettext_lazy("Or one code of your choice"), required=False, max_length=64)
    max_redemptions = forms.IntegerField(label=gettext_lazy("Uses per code"), min_value=1, initial=1)
    expires_at = forms.DateTimeField(label=gettext_lazy("Expires"), required=False)


class OfferDetailView(TenantViewMixin, View):
    def _context(self, offer: Offer, form: VoucherForm | None = None) -> dict[str, Any]:
        vouchers = Voucher.objects.for_tenant(self.tenant).filter(offer=offer).order_by("-id")[:50]
        return {"tenant": self.tenant, "membership": self.membership, "offer": offer, "vouchers": vouchers,
                "voucher_form": form or VoucherForm(), "initial": _initial(offer)}

    def get(self, request: HttpRequest, tenant_slug: str, offer_id: int) -> HttpResponse:
        offer = get_object_or_404(Offer.objects.for_tenant(self.tenant).select_related("product"), pk=offer_id)
        return render(request, "offers/offer_detail.html", self._context(offer))

    def post(self, request: HttpRequest, tenant_slug: str, offer_id: int) -> HttpResponse:
        """Create vouchers for this offer."""
        if not self.can(Perm.EDIT_DATA):
            return HttpResponse(status=403)
        offer = get_object_or_404(Offer.objects.for_tenant(self.tenant), pk=offer_id)
        form = VoucherForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                common = {"tenant": self.tenant, "actor": request.user, "offer": offer, "max_redemptions": data["max_redemptions"],
                          "expires_at": data["expires_at"]}
                if data["code"]:
                    claims.create_voucher(code=data["code"], **common)
                else:
                    claims.generate_vouchers(count=data["count"], prefix=data["prefix"], **common)
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Vouchers created."))
                return redirect("offers:detail", tenant_slug=self.tenant.slug, offer_id=offer.pk)
        return render(request, "offers/offer_detail.html", self._context(offer, form), status=400)


class ProductListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        q = request.GET.get("q", "").strip()
        products = Product.objects.for_tenant(self.tenant)
        if q:
            products = products.filter(Q(sku__icontains=q) | Q(name__icontains=q) | Q(category__icontains=q))
        page = keyset_page(products, before=request.GET.get("before"), size=50)
        return render(request, "offers/product_list.html", {"tenant": self.tenant, "membership": self.membership, "page": page,
                                                            "products": page.items, "q": q, "extra_query": f"q={q}" if q else ""})


class RequestQueueView(TenantViewMixin, View):
    """Claims waiting for someone, oldest first, with their age against the SLA."""

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        status = request.GET.get("status", "open")
        requests = OfferRequest.objects.for_tenant(self.tenant).select_related("offer", "customer")
        if status == "open":
            requests = requests.filter(status__in=("new", "in_review", "approved"))
        elif status in OfferRequest.Status.values:
            requests = requests.filter(status=status)
        offer_id = request.GET.get("offer", "")
        if offer_id.isdigit():
            requests = requests.filter(offer_id=int(offer_id))
        rows = list(requests.order_by("created_at", "id")[:200])
        now = timezone.now()
        for row in rows:
            row.age_hours = (now - row.created_at).total_seconds() / 3600  # type: ignore[attr-defined]
            row.overdue = row.status in ("new", "in_review") and row.age_hours > SLA_HOURS  # type: ignore[attr-defined]
        return render(request, "offers/request_queue.html", {
            "tenant": self.tenant, "membership": self.membership, "rows": rows, "status": status, "offer_id": offer_id,
            "statuses": [("open", _("Open")), *OfferRequest.Status.choices], "sla_hours": SLA_HOURS,
            "offers": Offer.objects.for_tenant(self.tenant).order_by("name").values_list("pk", "name")[:500],
            "processing": selectors.processing_times(tenant=self.tenant),
        })


class TransitionForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "—"), *OfferRequest.Status.choices], required=False)
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class RequestDetailView(TenantViewMixin, View):
    def _render(self, request: HttpRequest, offer_request: OfferRequest, form: TransitionForm, status: int = 200) -> HttpResponse:
        labels = dict(OfferRequest.Status.choices)
        return render(request, "offers/request_detail.html", {
            "tenant": self.tenant, "membership": self.membership, "req": offer_request, "form": form,
            "next_statuses": [(s, labels[s]) for s in OfferRequest.TRANSITIONS.get(offer_request.status, ())],
            "events": [(event, labels.get(event.from_status, event.from_status), labels.get(event.to_status, event.to_status))
                       for event in offer_request.events.all()],
        }, status=status)

    def get(self, request: HttpRequest, tenant_slug: str, request_id: int) -> HttpResponse:
        offer_request = get_object_or_404(OfferRequest.objects.for_tenant(self.tenant).select_related("offer", "customer"), pk=request_id)
        return self._render(request, offer_request, TransitionForm())

    def post(self, request: HttpRequest, tenant_slug: str, request_id: int) -> HttpResponse:
        offer_request = get_object_or_404(OfferRequest.objects.for_tenant(self.tenant).select_related("offer", "customer"), pk=request_id)
        if not self.can(Perm.EDIT_DATA):
            return HttpResponse(status=403)
        form = TransitionForm(request.POST)
        if form.is_valid():
            try:
                if form.cleaned_data["status"]:
                    claims.transition_request(tenant=self.tenant, actor=request.user, request=offer_request,
                                              to_status=form.cleaned_data["status"], comment=form.cleaned_data["comment"])
                else:
                    claims.comment_on_request(tenant=self.tenant, actor=request.user, request=offer_request,
                                              comment=form.cleaned_data["comment"])
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                return redirect("offers:request_detail", tenant_slug=self.tenant.slug, request_id=offer_request.pk)
        return self._render(request, offer_request, form, status=400)


class CustomerPreviewView(TenantViewMixin, View):
    """What one customer would see in the portal right now, and why."""

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        raw = request.GET.get("customer", "").strip()
        customer = None
        if raw:
            customers = Customer.objects.for_tenant(self.tenant)
            customer = (customers.filter(pk=int(raw)).first() if raw.isdigit() else None) or \
                customers.filter(Q(external_id=raw) | Q(email=raw.lower())).first()
        served = pricing.offers_for_customer(tenant=self.tenant, customer=customer, limit=20) if customer else []
        return render(request, "offers/customer_preview.html", {
            "tenant": self.tenant, "membership": self.membership, "query": raw, "customer": customer, "served": served,
            "not_found": bool(raw) and customer is None,
        })


class RecommendationModelView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        runs = list(JobRun.objects.for_tenant(self.tenant).filter(kind="recommendations_train").order_by("-created_at")[:5])
        return render(request, "offers/recommendation_model.html", {
            "tenant": self.tenant, "membership": self.membership, "runs": runs, "latest": runs[0] if runs else None,
        })
