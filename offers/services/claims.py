"""Claims, vouchers and the request workflow.

Rules:
- A claim re-checks eligibility and prices under a lock on the offer row, so caps and budget
  hold when many people claim at once. The same Idempotency-Key returns the first request.
- A voucher redemption is one conditional UPDATE (`redemptions < max_redemptions`, not expired):
  two redemptions of a single-use code at once, exactly one wins.
- Requests move new → in review → approved or declined → fulfilled; every step is an
  OfferRequestEvent with who and when. A declined request gives back its cap, budget and voucher
  use. The customer is told by email after each step (after commit).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from b2p_platform.exceptions import ConflictError, DomainError
from customers.models import Customer
from offers.models import Offer, OfferRequest, OfferRequestEvent, Voucher
from offers.services import pricing
from tenants.models import Tenant
from tenants.services import Actor, actor_label, record_audit

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


@dataclass(frozen=True)
class ClaimResult:
    request: OfferRequest
    created: bool


def claim_offer(
    *, tenant: Tenant, customer: Customer, offer_id: int, configuration: Any = None, quantity: int = 1,
    voucher_code: str = "", idempotency_key: str = "", source: str = "api", actor: Actor = None,
) -> ClaimResult:
    """Claim an offer for a customer: a new request, or the earlier one for the same key."""
    key = (idempotency_key or "").strip()[:128]
    if key:
        earlier = OfferRequest.objects.for_tenant(tenant).filter(idempotency_key=key).first()
        if earlier is not None:
            return _same_claim(earlier, customer=customer, offer_id=offer_id)
    try:
        with transaction.atomic():
            return ClaimResult(request=_claim(tenant=tenant, customer=customer, offer_id=offer_id, configuration=configuration,
                                              quantity=quantity, voucher_code=voucher_code, key=key, source=source,
                                              actor=actor), created=True)
    except IntegrityError:
        # The same key claimed at the same moment by another request: that one won.
        earlier = OfferRequest.objects.for_tenant(tenant).filter(idempotency_key=key).first() if key else None
        if earlier is None:
            raise
        return _same_claim(earlier, customer=customer, offer_id=offer_id)


def _same_claim(earlier: OfferRequest, *, customer: Customer, offer_id: int) -> ClaimResult:
    if earlier.customer_id != customer.pk or earlier.offer_id != offer_id:
        raise ConflictError(_("This Idempotency-Key was used for another claim."), field="idempotency_key")
    return ClaimResult(request=earlier, created=False)


def _claim(
    *, tenant: Tenant, customer: Customer, offer_id: int, configuration: Any, quantity: int, voucher_code: str, key: str,
    source: str, actor: Actor,
) -> OfferRequest:
    offer = Offer.objects.for_tenant(tenant).select_for_update().filter(pk=offer_id).first()
    if offer is None or customer.tenant_id != tenant.pk:
        raise DomainError(_("Unknown offer."), field="offer", code="not_found")
    if customer.is_erased:
        raise DomainError(_("This customer was erased."), field="customer")
    context = pricing.load_context(tenant=tenant, customer=customer)
    eligible, reasons = pricing.check_eligibility(offer=offer, context=context)
    if not eligible:
        raise ConflictError(_("This offer is not open to this customer: %(why)s.") % {"why": reasons[0]["code"]}, field="offer")
    quote = pricing.quote_offer(offer=offer, context=context, configuration=configuration, quantity=quantity)
    if offer.budget is not None and offer.spent + quote.discount > offer.budget:
        raise ConflictError(_("This offer's budget is used up."), field="offer")
    voucher = _redeem_voucher(tenant=tenant, offer=offer, code=voucher_code) if voucher_code else None
    if (offer.eligibility or {}).get("requires_voucher") and voucher is None:
        raise DomainError(_("This offer needs a voucher code."), field="voucher_code")
    request = OfferRequest.objects.create(
        tenant=tenant, offer=offer, customer=customer, configuration=configuration or {}, quantity=quantity, price=quote.price,
        list_price=quote.list_price, currency=quote.currency, quote=quote.as_dict(), voucher=voucher, source=source,
        idempotency_key=key,
    )
    Offer.objects.for_tenant(tenant).filter(pk=offer.pk).update(claims_count=F("claims_count") + 1, spent=F("spent") + quote.discount)
    OfferRequestEvent.objects.create(tenant=tenant, request=request, to_status=OfferRequest.Status.NEW, actor_label=actor_label(actor))
    transaction.on_commit(partial(_notify, tenant_id=tenant.pk, request_id=request.pk))
    return request


def _redeem_voucher(*, tenant: Tenant, offer: Offer, code: str) -> Voucher:
    code = code.strip().upper()
    voucher = Voucher.objects.for_tenant(tenant).filter(code=code).first()
    if voucher is None or voucher.offer_id != offer.pk:
        raise DomainError(_("This voucher code is not valid for this offer."), field="voucher_code")
    now = timezone.now()
    if voucher.expires_at and voucher.expires_at <= now:
        raise DomainError(_("This voucher has expired."), field="voucher_code")
    # One statement decides: of two concurrent redemptions of the last use, one updates a row.
    taken = Voucher.objects.for_tenant(tenant).filter(pk=voucher.pk, redemptions__lt=F("max_redemptions")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)).update(redemptions=F("redemptions") + 1)
    if not taken:
        raise ConflictError(_("This voucher has already been used."), field="voucher_code")
    return voucher


@transaction.atomic
def transition_request(*, tenant: Tenant, actor: Actor, request: OfferRequest, to_status: str, comment: str = "") -> OfferRequest:
    request = OfferRequest.objects.for_tenant(tenant).select_for_update().get(pk=request.pk)
    if to_status not in OfferRequest.TRANSITIONS.get(request.status, ()):
        raise ConflictError(_("A request that is %(from)s cannot become %(to)s.") % {"from": request.status, "to": to_status},
                            field="status")
    now = timezone.now()
    previous, request.status, request.updated_at = request.status, to_status, now
    if to_status in (OfferRequest.Status.APPROVED, OfferRequest.Status.DECLINED):
        request.decided_at = now
    if to_status == OfferRequest.Status.FULFILLED:
        request.fulfilled_at = now
    request.save(update_fields=["status", "updated_at", "decided_at", "fulfilled_at"])
    if to_status == OfferRequest.Status.DECLINED:
        discount = max(request.list_price - request.price, Decimal(0))
        Offer.objects.for_tenant(tenant).filter(pk=request.offer_id).update(
            claims_count=F("claims_count") - 1, spent=F("spent") - discount)
        if request.voucher_id:
            Voucher.objects.for_tenant(tenant).filter(pk=request.voucher_id, redemptions__gt=0).update(redemptions=F("redemptions") - 1)
    OfferRequestEvent.objects.create(tenant=tenant, request=request, from_status=previous, to_status=to_status,
                                     actor_label=actor_label(actor), comment=comment[:5000])
    transaction.on_commit(partial(_notify, tenant_id=tenant.pk, request_id=request.pk))
    return request


@transaction.atomic
def comment_on_request(*, tenant: Tenant, actor: Actor, request: OfferRequest, comment: str) -> OfferRequestEvent:
    if not comment.strip():
        raise DomainError(_("Write a comment."), field="comment")
    return OfferRequestEvent.objects.create(tenant=tenant, request=request, actor_label=actor_label(actor), comment=comment[:5000])


def _notify(*, tenant_id: int, request_id: int) -> None:
    """Tell the customer where their request stands (a service message about their own request)."""
    request = OfferRequest.objects.for_tenant(tenant_id).select_related("offer", "customer", "tenant").filter(pk=request_id).first()
    if request is None or not request.customer.email:
        return
    status = request.get_status_display()
    send_mail(
        subject=_("%(offer)s: your request is %(status)s") % {"offer": request.offer.name, "status": str(status).lower()},
        message=_("Hello,\n\nyour request for “%(offer)s” (%(price)s %(currency)s) is now: %(status)s.\n\n%(tenant)s") % {
            "offer": request.offer.name, "price": request.price, "currency": request.currency, "status": status,
            "tenant": request.tenant.name},
        from_email=None, recipient_list=[request.customer.email], fail_silently=True,
    )


# Vouchers -------------------------------------------------------------------------------------


def _code(prefix: str, length: int = 10) -> str:
    return prefix.upper() + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


@transaction.atomic
def create_voucher(*, tenant: Tenant, actor: Actor, offer: Offer, code: str = "", max_redemptions: int = 1,
                   expires_at: datetime | None = None) -> Voucher:
    code = (code or _code("")).strip().upper()
    if not 3 <= len(code) <= 64 or not code.replace("-", "").isalnum():
        raise DomainError(_("Use 3 to 64 letters, digits or dashes."), field="code")
    if max_redemptions < 1:
        raise DomainError(_("At least one redemption."), field="max_redemptions")
    if Voucher.objects.for_tenant(tenant).filter(code=code).exists():
        raise ConflictError(_("This code exists already."), field="code")
    voucher = Voucher.objects.create(tenant=tenant, offer=offer, code=code, max_redemptions=max_redemptions, expires_at=expires_at)
    record_audit(tenant=tenant, actor=actor, action="voucher.created", target=voucher, metadata={"offer": offer.pk})
    return voucher


@transaction.atomic
def update_voucher(*, tenant: Tenant, actor: Actor, voucher: Voucher, data: dict[str, Any]) -> Voucher:
    """Change how often or until when a code may be used. Lowering the uses below those already
    made is refused: redemptions are history."""
    voucher = Voucher.objects.for_tenant(tenant).select_for_update().get(pk=voucher.pk)
    if "max_redemptions" in data:
        if data["max_redemptions"] < max(voucher.redemptions, 1):
            raise ConflictError(_("This code was used %(n)s times already.") % {"n": voucher.redemptions}, field="max_redemptions")
        voucher.max_redemptions = data["max_redemptions"]
    if "expires_at" in data:
        voucher.expires_at = data["expires_at"]
    voucher.save(update_fields=["max_redemptions", "expires_at"])
    record_audit(tenant=tenant, actor=actor, action="voucher.updated", target=voucher, metadata={"fields": sorted(data)})
    return voucher


@transaction.atomic
def delete_voucher(*, tenant: Tenant, actor: Actor, voucher: Voucher) -> None:
    """Delete a code nobody has used; a used one stays with the claims it paid for (expire it instead)."""
    voucher = Voucher.objects.for_tenant(tenant).select_for_update().get(pk=voucher.pk)
    if voucher.redemptions:
        raise ConflictError(_("A used code is kept with the claims it was used on: set it to expire instead."), field="voucher")
    record_audit(tenant=tenant, actor=actor, action="voucher.deleted", target=voucher, metadata={"offer": voucher.offer_id})
    voucher.delete()


@transaction.atomic
def generate_vouchers(*, tenant: Tenant, actor: Actor, offer: Offer, count: int, prefix: str = "", max_redemptions: int = 1,
                      expires_at: datetime | None = None, batch: str = "") -> list[Voucher]:
    """A set of random single- or multi-use codes (10 random characters: collisions are retried)."""
    if not 1 <= count <= 100_000:
        raise DomainError(_("Generate between 1 and 100000 codes."), field="count")
    if prefix and (len(prefix) > 16 or not prefix.replace("-", "").isalnum()):
        raise DomainError(_("A prefix is up to 16 letters, digits or dashes."), field="prefix")
    batch = batch or timezone.now().strftime("%Y%m%d-%H%M%S")
    made: list[Voucher] = []
    while len(made) < count:
        wanted = {_code(prefix) for _ in range(count - len(made))}
        taken = set(Voucher.objects.for_tenant(tenant).filter(code__in=wanted).values_list("code", flat=True))
        fresh = [Voucher(tenant=tenant, offer=offer, code=c, batch=batch, max_redemptions=max_redemptions, expires_at=expires_at)
                 for c in sorted(wanted - taken)]
        made += Voucher.objects.bulk_create(fresh, batch_size=1000)
    record_audit(tenant=tenant, actor=actor, action="voucher.generated", target=offer, metadata={"count": count, "batch": batch})
    return made
