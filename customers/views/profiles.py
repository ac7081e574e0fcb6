"""Customer list, profile with timeline, companies and attribute definitions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views import View

from b2p_platform.exceptions import DomainError
from customers import selectors, services
from customers.forms import AttributeDefinitionForm, CustomerFilterForm, EraseForm
from customers.segments import predictions
from customers.segments import selectors as segment_selectors
from tenants.roles import Perm
from tenants.views.base import TenantViewMixin, add_domain_error, client_ip, keyset_page

PAGE_SIZE = 50


class CustomerListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = CustomerFilterForm(request.GET or None)
        filters = selectors.CustomerFilters()
        if form.is_bound and form.is_valid():
            filters = selectors.CustomerFilters(**{k: v for k, v in form.cleaned_data.items() if v})
        page = keyset_page(selectors.list_customers(tenant=self.tenant, filters=filters), before=request.GET.get("before"), size=PAGE_SIZE)
        query = {k: v for k, v in request.GET.items() if k in form.fields and v}
        context = {
            "tenant": self.tenant, "membership": self.membership, "form": form, "page": page, "customers": page.items,
            "extra_query": urlencode(query), "is_filtered": bool(query),
        }
        if request.htmx and request.htmx.target == "customer-rows":
            return render(request, "customers/customer_list.html#rows", context)
        return render(request, "customers/customer_list.html", context)


class CustomerDetailView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, customer_id: int) -> HttpResponse:
        customer = selectors.get_customer(tenant=self.tenant, customer_id=customer_id)
        before = parse_datetime(request.GET.get("before", "")) if request.GET.get("before") else None
        timeline = selectors.customer_timeline(tenant=self.tenant, customer=customer, before=before)
        context = {
            "tenant": self.tenant, "membership": self.membership, "customer": customer, "timeline": timeline,
            "older": timeline[-1].at.isoformat() if len(timeline) >= selectors.TIMELINE_LIMIT else None,
        }
        if request.htmx and before is not None:
            return render(request, "customers/customer_detail.html#timeline-items", context)
        context["consents"] = services.consent_state(tenant=self.tenant, customer=customer)
        context["summary"] = selectors.customer_order_summary(tenant=self.tenant, customer=customer)
        context["erase_form"] = EraseForm()
        context["segments"] = segment_selectors.customer_segments(tenant=self.tenant, customer=customer)
        context["score"] = segment_selectors.get_customer_score(tenant=self.tenant, customer=customer)
        context["excluded"] = predictions.is_excluded(tenant=self.tenant, customer=customer)
        return render(request, "customers/customer_detail.html", context)


class CustomerExportView(TenantViewMixin, View):
    """Everything held about one person, as a JSON download (data-subject access request)."""

    required_perm = Perm.EXPORT_DATA

    def get(self, request: HttpRequest, tenant_slug: str, customer_id: int) -> HttpResponse:
        customer = selectors.get_customer(tenant=self.tenant, customer_id=customer_id)
        data = services.export_customer(tenant=self.tenant, customer=customer)
        response = HttpResponse(json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
        return response


class CustomerEraseView(TenantViewMixin, View):
    required_perm = Perm.EDIT_DATA

    def post(self, request: HttpRequest, tenant_slug: str, customer_id: int) -> HttpResponse:
        customer = selectors.get_customer(tenant=self.tenant, customer_id=customer_id)
        form = EraseForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Type ERASE to confirm."))
        else:
            services.erase_customer(tenant=self.tenant, actor=request.user, customer=customer, ip=client_ip(request))
            messages.success(request, _("The person was erased. Their counts remain in reports."))
        return redirect("customers:detail", tenant_slug=self.tenant.slug, customer_id=customer.pk)


class CompanyListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        q = request.GET.get("q", "")[:100]
        page = keyset_page(selectors.list_companies(tenant=self.tenant, q=q), before=request.GET.get("before"), size=PAGE_SIZE)
        context = {"tenant": self.tenant, "membership": self.membership, "page": page, "companies": page.items, "q": q,
                   "extra_query": urlencode({"q": q}) if q else ""}
        return render(request, "customers/company_list.html", context)


class CompanyDetailView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str, company_id: int) -> HttpResponse:
        company = selectors.get_company(tenant=self.tenant, company_id=company_id)
        filters = selectors.CustomerFilters(company_id=company.pk)
        page = keyset_page(selectors.list_customers(tenant=self.tenant, filters=filters), before=request.GET.get("before"), size=PAGE_SIZE)
        context = {"tenant": self.tenant, "membership": self.membership, "company": company, "page": page, "customers": page.items}
        return render(request, "customers/company_detail.html", context)


class AttributeListView(TenantViewMixin, View):
    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        return self._render(AttributeDefinitionForm())

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        if not self.can(Perm.EDIT_DATA):
            raise PermissionDenied
        form = AttributeDefinitionForm(request.POST)
        if form.is_valid():
            try:
                services.create_attribute_definition(tenant=self.tenant, **form.cleaned_data)
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Attribute added."))
                return redirect("customers:attributes", tenant_slug=self.tenant.slug)
        return self._render(form, status=400)

    def _render(self, form: AttributeDefinitionForm, status: int = 200) -> HttpResponse:
        context: dict[str, Any] = {"tenant": self.tenant, "membership": self.membership, "form": form,
                                   "definitions": selectors.list_attribute_definitions(tenant=self.tenant)[:500]}
        return render(self.request, "customers/attribute_list.html", context, status=status)


class AttributeDeleteView(TenantViewMixin, View):
    required_perm = Perm.EDIT_DATA

    def post(self, request: HttpRequest, tenant_slug: str, attribute_id: int) -> HttpResponse:
        definition = selectors.get_attribute_definition(tenant=self.tenant, attribute_id=attribute_id)
        services.delete_attribute_definition(tenant=self.tenant, definition=definition)
        messages.success(request, _("Attribute removed; stored values stay on the profiles."))
        return redirect("customers:attributes", tenant_slug=self.tenant.slug)


