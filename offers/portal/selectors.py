"""The portal's reads: always for one tenant and one signed-in customer of it.

Another customer's request, an offer that is not open to this customer, and every object of
another tenant are the same 404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import translation

from customers import services as customer_services
from customers.models import Consent, Customer
from offers.models import Offer, OfferItem, OfferRequest, OfferRequestEvent, Option, OptionGroup
from offers.services import pricing
from tenants.models import Tenant

MARKETING_CHANNELS: tuple[str, ...] = (Consent.Channel.EMAIL, Consent.Channel.SMS, Consent.Channel.SOCIAL, Consent.Channel.PHONE)
OFFERS_LIMIT = 24
REQUESTS_LIMIT = 100


def get_signed_in_customer(*, tenant: Tenant, customer_id: Any) -> Customer | None:
    """The customer a portal session names, if they still exist in this tenant and are not erased."""
    if not isinstance(customer_id, int):
        return None
    return Customer.objects.for_tenant(tenant).select_related("company").filter(pk=customer_id, erased_at__isnull=True).first()


def _supported(code: str) -> str | None:
    if not code:
        return None
    try:
        variant = translation.get_supported_language_variant(code.replace("_", "-").lower())
    except LookupError:
        return None
    return variant if variant in dict(settings.LANGUAGES) else None


def customer_language(*, tenant: Tenant, customer: Customer | None) -> str:
    """The customer's language if they have one we speak, else the tenant's."""
    return (customer and _supported(customer.locale)) or _supported(tenant.locale) or settings.LANGUAGE_CODE


# Offers ----------------------------------------------------------------------------------------


def list_offers(*, tenant: Tenant, customer: Customer, recent_products: list[str] | None = None) -> list[pricing.EligibleOffer]:
    """The customer's offers, best first, with prices and reasons."""
    return pricing.offers_for_customer(tenant=tenant, customer=customer, limit=OFFERS_LIMIT, recent_products=recent_products)


def get_offer(*, tenant: Tenant, customer: Customer, offer_id: int) -> pricing.EligibleOffer:
    """One offer that is open to this customer now, priced for them; else a 404."""
    offer = get_object_or_404(
        Offer.objects.for_tenant(tenant).select_related("product").prefetch_related(
            # Children are narrowed by their parent's id, which is already this tenant's.
            Prefetch("items", queryset=OfferItem.objects.unscoped().select_related("product")),
            Prefetch("option_groups", queryset=OptionGroup.objects.unscoped().prefetch_related(
                Prefetch("options", queryset=Option.objects.unscoped().select_related("group"))))),
        pk=offer_id,
    )
    found = pricing.offers_for_customer(tenant=tenant, customer=customer, offers=[offer], limit=1)
    if not found:
        raise Http404
    return found[0]


# Requests --------------------------------------------------------------------------------------


def list_requests(*, tenant: Tenant, customer: Customer) -> QuerySet[OfferRequest]:
    return (OfferRequest.objects.for_tenant(tenant).filter(customer=customer).select_related("offer")
            .order_by("-created_at", "-pk")[:REQUESTS_LIMIT])


def get_request(*, tenant: Tenant, customer: Customer, request_id: int) -> OfferRequest:
    """One of this customer's requests with its status changes (`history`)."""
    request = get_object_or_404(OfferRequest.objects.for_tenant(tenant).filter(customer=customer).select_related("offer"),
                                pk=request_id)
    # Status changes only: a comment without a status change is the team's note, not a message to the customer.
    request.history = list(  # type: ignore[attr-defined]
        OfferRequestEvent.objects.for_tenant(tenant).filter(request=request).exclude(to_status="").order_by("at", "id")
    )
    return request


def export_requests(*, tenant: Tenant, customer: Customer) -> list[dict[str, Any]]:
    requests = OfferRequest.objects.for_tenant(tenant).filter(customer=customer).select_related("offer").order_by("created_at", "pk")
    events: dict[int, list[dict[str, Any]]] = {}
    for event in (OfferRequestEvent.objects.for_tenant(tenant).filter(request__customer=customer).exclude(to_status="")
                  .order_by("at", "id").values("request_id", "from_status", "to_status", "at")):
        events.setdefault(event.pop("request_id"), []).append(event)
    return [
        {"id": r.pk, "offer": r.offer.name, "status": r.status, "configuration": r.configuration, "quantity": r.quantity,
         "price": r.price, "list_price": r.list_price, "currency": r.currency, "source": r.source, "created_at": r.created_at,
         "history": events.get(r.pk, [])}
        for r in requests
    ]


def export_data(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    """Everything held about the customer: the customers app's export plus their offer requests."""
    data = customer_services.export_customer(tenant=tenant, customer=customer)
    # Until the offers app registers its own export section, the portal adds the requests.
    data.setdefault("offer_requests", export_requests(tenant=tenant, customer=customer))
    return data


# Preferences -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    marketing: dict[str, bool]
    personalization: bool


def get_preferences(*, tenant: Tenant, customer: Customer) -> Preferences:
    """Marketing allowed per channel (no entry: not allowed) and personalization (on unless withdrawn)."""
    marketing = {
        channel: customer_services.allows(tenant=tenant, customer=customer, channel=channel, purpose=Consent.Purpose.MARKETING)
        for channel in MARKETING_CHANNELS
    }
    personalized = not customer_services.opted_out_of_personalization(tenant=tenant, customer=customer)
    return Preferences(marketing=marketing, personalization=personalized)
