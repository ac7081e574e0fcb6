from typing import Any

from django.http import HttpRequest

from tenants import selectors
from tenants.roles import Perm


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Tenant switcher entries and the current member's permissions, for the base layout."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "switcher_memberships": selectors.list_user_tenants(user=user)[:50],
        "can": {p.value: membership.can(p) for p in Perm} if membership else {},
    }
