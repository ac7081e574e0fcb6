from tenants.views.base import TenantViewMixin

__all__ = ["TenantViewMixin"]
