"""The CSV import wizard (upload → columns → job page) and the filtered customer export.

The pending upload lives in the session (one per tenant) and its file in the default storage
under imports/<tenant id>/, so no URL carries an upload token.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import View

from b2p_platform.exceptions import DomainError, ForbiddenError
from customers import imports
from customers.forms import CustomerFilterForm
from customers.forms_imports import ImportMappingForm, ImportOptionsForm, ImportUploadForm, delimiter_choice, kind_choices
from tenants import services as tenant_services
from tenants.roles import Perm
from tenants.views.base import TenantViewMixin, add_domain_error


def _session_key(tenant_id: int) -> str:
    return f"customers_import:{tenant_id}"


class _ImportMixin(TenantViewMixin):
    required_perm = Perm.RUN_JOBS

    def pending(self) -> dict[str, Any] | None:
        data = self.request.session.get(_session_key(self.tenant.pk))
        return data if isinstance(data, dict) and data.get("path") else None

    def set_pending(self, data: dict[str, Any]) -> None:
        self.request.session[_session_key(self.tenant.pk)] = data

    def discard_pending(self, *, delete_file: bool = True) -> None:
        data = self.request.session.pop(_session_key(self.tenant.pk), None)
        if delete_file and isinstance(data, dict):
            imports.delete_upload(tenant=self.tenant, path=data.get("path"))

    def opener(self, pending: dict[str, Any]) -> imports.Opener:
        return imports.upload_opener(tenant=self.tenant, path=pending["path"])

    def start_job(self, *, kind: str, params: dict[str, Any]) -> Any:
        try:
            return tenant_services.start_job(tenant=self.tenant, actor=self.request.user, actor_membership=self.membership,
                                             kind=kind, params=params)
        except ForbiddenError as exc:
            raise PermissionDenied from exc


class ImportUploadView(_ImportMixin, View):
    """Step 1: the file and what it holds."""

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        # ?kind=products preselects what the file holds (the catalogue links here so).
        kind = request.GET.get("kind")
        return self._render(ImportUploadForm(initial={"kind": kind} if kind in imports.KINDS else None))

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = ImportUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
            return self._render(form, status=413 if too_large else 400)
        upload = form.cleaned_data["file"]
        encoding = form.cleaned_data["encoding"]
        self.discard_pending()
        path = imports.store_upload(tenant=self.tenant, name=upload.name or "upload.csv", content=upload)
        try:
            opener = imports.upload_opener(tenant=self.tenant, path=path)
            imports.check_encoding(opener, encoding)
            preview = imports.preview_file(opener, encoding=encoding)
        except DomainError as exc:
            imports.delete_upload(tenant=self.tenant, path=path)
            add_domain_error(form, exc)
            return self._render(form, status=400)
        self.set_pending({
            "path": path, "name": upload.name, "size": upload.size, "kind": form.cleaned_data["kind"],
            "encoding": encoding, "delimiter": delimiter_choice(preview.delimiter), "header": preview.header,
        })
        return redirect("customers:import_mapping", tenant_slug=self.tenant.slug)

    def _render(self, form: ImportUploadForm, status: int = 200) -> HttpResponse:
        context = {"tenant": self.tenant, "membership": self.membership, "form": form, "pending": self.pending(),
                   "max_mb": imports.MAX_UPLOAD_BYTES // (1024 * 1024)}
        return render(self.request, "customers/import_upload.html", context, status=status)


class ImportMappingView(_ImportMixin, View):
    """Step 2: the detected columns and first rows, a select per target field; then step 3, the job."""

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        pending = self.pending()
        if pending is None:
            messages.info(request, _("Upload a file to import first."))
            return redirect("customers:import", tenant_slug=self.tenant.slug)
        try:
            preview = self._preview(pending)
        except DomainError as exc:
            self.discard_pending()
            messages.error(request, exc.message)
            return redirect("customers:import", tenant_slug=self.tenant.slug)
        options = ImportOptionsForm(initial={k: pending[k] for k in ("delimiter", "header", "encoding")})
        suggested = imports.suggest_mapping(pending["kind"], preview.columns) if preview.header else {}
        form = ImportMappingForm(kind=pending["kind"], columns=preview.columns, header=preview.header, suggested=suggested)
        return self._render(pending, preview, options, form)

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        pending = self.pending()
        if pending is None:
            messages.info(request, _("Upload a file to import first."))
            return redirect("customers:import", tenant_slug=self.tenant.slug)
        action = request.POST.get("action", "start")
        if action == "cancel":
            self.discard_pending()
            messages.info(request, _("The upload was discarded."))
            return redirect("customers:import", tenant_slug=self.tenant.slug)
        try:
            preview = self._preview(pending)
        except DomainError as exc:
            self.discard_pending()
            messages.error(request, exc.message)
            return redirect("customers:import", tenant_slug=self.tenant.slug)
        options = ImportOptionsForm(request.POST)
        form = ImportMappingForm(request.POST, kind=pending["kind"], columns=preview.columns, header=preview.header)
        if not options.is_valid():
            return self._render(pending, preview, options, form, status=400)
        changed = {k: options.cleaned_data[k] for k in ("delimiter", "header", "encoding") if options.cleaned_data[k] != pending[k]}
        if changed or action == "preview":
            return self._change_options(pending, preview, options, form, changed)
        if not form.is_valid():
            return self._render(pending, preview, options, form, status=400)
        try:
            mapping = imports.parse_mapping(pending["kind"], form.build_mapping(options.cleaned_data))
            imports.check_import(mapping=mapping, opener=self.opener(pending))
        except DomainError as exc:
            add_domain_error(form, exc)
            return self._render(pending, preview, options, form, status=400)
        job = self.start_job(kind="customers_import", params={
            "kind": mapping.kind, "mapping": mapping.as_json(), "path": pending["path"], "file_name": pending["name"],
        })
        self.discard_pending(delete_file=False)  # the job owns the file now and deletes it when done
        messages.success(request, _("The import has started. This page shows its progress."))
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)

    def _change_options(self, pending: dict[str, Any], preview: imports.FilePreview, options: ImportOptionsForm,
                        form: ImportMappingForm, changed: dict[str, Any]) -> HttpResponse:
        if "encoding" in changed:
            try:
                imports.check_encoding(self.opener(pending), changed["encoding"])
            except DomainError as exc:
                options.add_error("encoding", exc.message)
                return self._render(pending, preview, options, form, status=400)
        self.set_pending({**pending, **changed})
        if changed:
            messages.info(self.request, _("The file was read again with the new options: check the columns."))
        return redirect("customers:import_mapping", tenant_slug=self.tenant.slug)

    def _preview(self, pending: dict[str, Any]) -> imports.FilePreview:
        delimiter = "\t" if pending["delimiter"] == "tab" else pending["delimiter"]
        return imports.preview_file(self.opener(pending), encoding=pending["encoding"], delimiter=delimiter, header=pending["header"])

    def _render(self, pending: dict[str, Any], preview: imports.FilePreview, options: ImportOptionsForm, form: ImportMappingForm,
                status: int = 200) -> HttpResponse:
        context = {
            "tenant": self.tenant, "membership": self.membership, "pending": pending, "preview": preview,
            "preview_rows": [row + [""] * (len(preview.columns) - len(row)) for row in preview.rows],
            "options_form": options, "form": form, "kind_label": dict(kind_choices()).get(pending["kind"], pending["kind"]),
        }
        return render(self.request, "customers/import_mapping.html", context, status=status)


class CustomerListExportView(TenantViewMixin, View):
    """Start a CSV export of the customers the list shows with the filters in the query string."""

    required_perm = Perm.EXPORT_DATA

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = CustomerFilterForm(request.GET)
        if not form.is_valid():
            messages.error(request, _("Fix the filters before exporting."))
            return redirect("customers:list", tenant_slug=self.tenant.slug)
        filters = {k: v for k, v in form.cleaned_data.items() if v}
        try:
            job = tenant_services.start_job(tenant=self.tenant, actor=request.user, actor_membership=self.membership,
                                            kind="customers_export", params={"filters": filters})
        except ForbiddenError as exc:
            raise PermissionDenied from exc
        messages.success(request, _("The export has started; download the file from this page when it is done."))
        return redirect("tenants:job_detail", tenant_slug=self.tenant.slug, job_id=job.pk)
