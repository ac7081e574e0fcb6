"""Django admin for platform staff. Uses explicitly unscoped querysets; every view and change of
tenant data is written to the audit log of the tenant it concerns."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from tenants import services
from tenants.models import ApiKey, AuditLog, Invitation, JobRun, Membership, Tenant, User
from tenants.scoping import TenantQuerySet
from tenants.views.base import client_ip


def _tenant_of(obj: Model | None) -> Tenant | None:
    if isinstance(obj, Tenant):
        return obj
    return getattr(obj, "tenant", None) if obj is not None else None


class AuditedAdmin(admin.ModelAdmin):
    """Staff access to tenant data is audited: list views, object views, changes and deletions."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if isinstance(queryset, TenantQuerySet):
            queryset = queryset.unscoped()
        return queryset

    def _audit(self, request: HttpRequest, action: str, obj: Model | None = None, **metadata: Any) -> None:
        services.record_audit(
            tenant=_tenant_of(obj),
            actor=request.user,
            action=action,
            target=obj,
            metadata={"model": self.model._meta.label_lower, **metadata},
            ip=client_ip(request),
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        self._audit(request, "staff.listed", query=request.GET.urlencode()[:500])
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            obj = self.get_object(request, object_id)
            if obj is not None:
                self._audit(request, "staff.viewed", obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._audit(request, "staff.changed" if change else "staff.created", obj, fields=list(form.changed_data))

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self._audit(request, "staff.deleted", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self._audit(request, "staff.deleted", obj)
        super().delete_queryset(request, queryset)


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    list_display = ["name", "slug", "locale", "currency", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["is_active", "locale"]


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "language")}),
        ("Platform", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    raw_id_fields = ["user", "tenant"]


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    search_fields = ["email", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["token_hash"]
    raw_id_fields = ["tenant", "invited_by"]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = ["name", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    raw_id_fields = ["tenant", "created_by", "revoked_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made by `create_api_key` or the dashboard, which show the secret once


@admin.register(JobRun)
class JobRunAdmin(AuditedAdmin):
    list_display = ["kind", "tenant", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["tenant"]
    raw_id_fields = ["tenant", "created_by"]


@admin.register(AuditLog)
class AuditLogAdmin(AuditedAdmin):
    list_display = ["created_at", "tenant", "actor_label", "action", "target_type", "target_label", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target_label"]
    list_select_related = ["tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
