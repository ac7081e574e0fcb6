"""What a customer can get, at what price, and why: the one function the portal, the API and
campaign content call (`offers_for_customer`), and the pieces it is made of.

Rules:
- An offer is open to a customer when it is active, inside its validity window, within its total
  cap and budget, under the customer's own cap, and the customer matches every eligibility rule
  it names (segments in / not in, customer kind, company size, predicted value, churn risk,
  consent). Each rule that decided is returned as a reason code with its parameters; the UI
  words them.
- Prices: the list price is the product's base price (a bundle's items, a configurable offer's
  fee plus its chosen options). A business buyer's company price list replaces the base price,
  and volume tiers take a percentage off by quantity. The offer's own discount then applies to
  that price if the offer combines with other prices, else to the list price, and the buyer
  pays the lower of the two.
- A person who opted out of personalization gets offers in the tenant's order (priority, then
  popularity), never by their recommendation scores, and the reason says so.
- Everything for one customer is read in one statement (`offers.services.context`), whatever the
  number of offers; the tenant's active offers are held per process (see `cached_active_offers`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from b2p_platform.exceptions import DomainError
from customers.models import Customer
from customers.services.consent import allows_in
from offers.models import Offer, OfferItem, Option, OptionGroup, Product
from offers.services.context import CustomerContext, load_context
from tenants.models import Tenant

CENT = Decimal("0.01")
MAX_PER_CATEGORY = 2  # diversity: at most this many offers of one product category in a list


class ConfigurationError(DomainError):
    """A configuration breaks an option group's rules; `errors` name the group or option."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(_("This configuration is not possible."), field="configuration")
        self.errors = errors

    def as_dict(self) -> dict[str, Any]:
        return {"configuration": self.errors}


@dataclass
class Quote:
    currency: str
    list_price: Decimal
    price: Decimal
    lines: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def discount(self) -> Decimal:
        return max(self.list_price - self.price, Decimal(0))

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "list_price": str(self.list_price), "price": str(self.price),
                "discount": str(self.discount), "lines": self.lines, "reasons": self.reasons}


# Eligibility ----------------------------------------------------------------------------------


def check_eligibility(*, offer: Offer, context: CustomerContext, now: datetime | None = None) -> tuple[bool, list[dict[str, Any]]]:
    """(eligible, reasons): every rule that passed, or the first that failed."""
    now = now or timezone.now()
    rules = offer.eligibility or {}
    passed: list[dict[str, Any]] = []

    def fail(code: str, **params: Any) -> tuple[bool, list[dict[str, Any]]]:
        return False, [{"code": code, **params}]

    if offer.status != Offer.Status.ACTIVE:
        return fail("not_active")
    if (offer.starts_at and now < offer.starts_at) or (offer.ends_at and now >= offer.ends_at):
        return fail("outside_window")
    if offer.total_cap is not None and offer.claims_count >= offer.total_cap:
        return fail("sold_out")
    if offer.budget is not None and offer.spent >= offer.budget:
        return fail("budget_used")
    if offer.per_customer_cap is not None and context.claims[offer.pk] >= offer.per_customer_cap:
        return fail("already_claimed", times=context.claims[offer.pk])
    customer = context.customer
    if rules.get("kinds"):
        if customer.kind not in rules["kinds"]:
            return fail("kind", kind=customer.kind)
        passed.append({"code": "kind", "kind": customer.kind})
    if rules.get("company_sizes"):
        size = context.company_size
        if size not in rules["company_sizes"]:
            return fail("company_size", size=size)
        passed.append({"code": "company_size", "size": size})
    wanted = set(rules.get("segments") or [])
    if wanted:
        hit = wanted & context.segment_ids
        if not hit:
            return fail("not_in_segment")
        passed.append({"code": "in_segment", "segment_ids": sorted(hit)})
    if set(rules.get("not_segments") or []) & context.segment_ids:
        return fail("excluded_segment")
    score = context.score
    for key, attr, compare in (("min_expected_value", "expected_value", "ge"), ("min_churn_probability", "churn_probability", "ge"),
                               ("max_churn_probability", "churn_probability", "le")):
        if rules.get(key) is None:
            continue
        value = getattr(score, attr, None) if score else None
        ok = value is not None and (value >= rules[key] if compare == "ge" else value <= rules[key])
        if not ok:
            return fail(key, value=value, threshold=rules[key])
        passed.append({"code": key, "value": round(value, 3), "threshold": rules[key]})
    consent = rules.get("consent")
    if consent:
        purpose, channel = consent[0], consent[1] if len(consent) > 1 else "all"
        if not allows_in(context.consents, channel=channel, purpose=purpose):
            return fail("consent", purpose=purpose, channel=channel)
        passed.append({"code": "consent", "purpose": purpose, "channel": channel})
    return True, passed


# Pricing --------------------------------------------------------------------------------------


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _unit_price(product: Product, quantity: int, context: CustomerContext | None, lines: list[dict[str, Any]],
                reasons: list[dict[str, Any]]) -> Decimal:
    """The price a customer pays per unit before any offer: negotiated price, then volume tier."""
    price = product.base_price
    if context and product.pk in context.negotiated:
        price = context.negotiated[product.pk]
        reasons.append({"code": "negotiated_price", "product": product.name})
    if context:
        tier = next((t for t in context.tiers if quantity >= t.min_quantity and t.product_id in (None, product.pk)), None)
        if tier is not None:
            price = price * (Decimal(100) - tier.percent_off) / Decimal(100)
            reasons.append({"code": "volume_tier", "min_quantity": tier.min_quantity, "percent_off": str(tier.percent_off)})
    lines.append({"label": product.name, "quantity": quantity, "unit_price": str(_money(price))})
    return price


def validate_configuration(offer: Offer, configuration: Any) -> list[Option]:
    """The options chosen, checked against each group's min/max and the options' requires/excludes."""
    if not isinstance(configuration, dict):
        raise ConfigurationError({"configuration": [_("Send an object of group key → option key(s).")]})
    groups = list(offer.option_groups.all())
    errors: dict[str, list[str]] = {}
    unknown = set(configuration) - {g.key for g in groups}
    for key in sorted(unknown):
        errors.setdefault(key, []).append(_("No such option group."))
    chosen: list[Option] = []
    chosen_keys: set[str] = set()
    for group in groups:
        raw = configuration.get(group.key, [])
        keys = [raw] if isinstance(raw, str) else raw
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            errors.setdefault(group.key, []).append(_("Choose option keys."))
            continue
        options = {o.key: o for o in group.options.all()}
        for key in keys:
            if key not in options:
                errors.setdefault(group.key, []).append(_("No such option: %(key)s.") % {"key": key})
        picked = [options[k] for k in dict.fromkeys(keys) if k in options]
        if not group.min_select <= len(picked) <= group.max_select:
            errors.setdefault(group.key, []).append(
                _("Choose between %(min)s and %(max)s.") % {"min": group.min_select, "max": group.max_select})
        chosen += picked
        chosen_keys |= {f"{group.key}.{o.key}" for o in picked}
    for option in chosen:
        name = f"{option.group.key}.{option.key}"
        for needed in option.requires:
            if needed not in chosen_keys:
                errors.setdefault(name, []).append(_("Needs %(other)s.") % {"other": needed})
        for banned in option.excludes:
            if banned in chosen_keys:
                errors.setdefault(name, []).append(_("Cannot go with %(other)s.") % {"other": banned})
    if errors:
        raise ConfigurationError(errors)
    return chosen


def quote_offer(*, offer: Offer, context: CustomerContext | None, configuration: Any = None, quantity: int = 1) -> Quote:
    """The price of an offer for a customer (or anonymous, with `context=None`), with its lines."""
    if quantity < 1 or quantity > 100_000:
        raise DomainError(_("Quantity must be between 1 and 100000."), field="quantity")
    lines: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    if offer.kind == Offer.Kind.CONFIGURABLE:
        options = validate_configuration(offer, configuration or {})
        fee = offer.base_price or Decimal(0)
        lines.append({"label": offer.name, "quantity": quantity, "unit_price": str(_money(fee))})
        lines += [{"label": f"{o.group.label}: {o.label}", "quantity": quantity, "unit_price": str(o.price)} for o in options]
        list_price = (fee + sum((o.price for o in options), Decimal(0))) * quantity
        return Quote(currency=offer.currency, list_price=_money(list_price), price=_money(list_price), lines=lines,
                     reasons=[{"code": "configured", "options": len(options)}])
    if offer.kind == Offer.Kind.BUNDLE:
        items = list(offer.items.select_related("product"))
        base = sum((i.product.base_price * i.quantity for i in items), Decimal(0)) * quantity
        customer_price = sum((_unit_price(i.product, i.quantity * quantity, context, lines, reasons) * i.quantity
                              for i in items), Decimal(0)) * quantity
        offered = (offer.value if offer.value is not None else base) * quantity
        reasons.append({"code": "bundle", "items": len(items)})
        price = min(customer_price, offered)
        return Quote(currency=offer.currency, list_price=_money(base), price=_money(price), lines=lines, reasons=reasons)
    product = offer.product
    if product is None:
        raise DomainError(_("This offer has no product."))
    list_price = product.base_price * quantity
    customer_price = _unit_price(product, quantity, context, lines, reasons) * quantity
    start = customer_price if offer.combinable else list_price
    value = offer.value or Decimal(0)
    if offer.kind == Offer.Kind.PERCENT_OFF:
        offered = start * (Decimal(100) - value) / Decimal(100)
        reasons.append({"code": "percent_off", "percent": str(value)})
    elif offer.kind == Offer.Kind.AMOUNT_OFF:
        offered = max(start - value * quantity, Decimal(0))
        reasons.append({"code": "amount_off", "amount": str(value)})
    else:
        offered = value * quantity
        reasons.append({"code": "personal_price", "price": str(value)})
    price = min(customer_price, offered)
    return Quote(currency=offer.currency, list_price=_money(list_price), price=_money(price), lines=lines, reasons=reasons)


# What this customer can get -------------------------------------------------------------------


@dataclass
class EligibleOffer:
    offer: Offer
    quote: Quote | None  # None for a configurable offer until configured ("from" price in `from_price`)
    from_price: Decimal | None
    score: float | None
    reasons: list[dict[str, Any]]


# The active offers of a tenant are the same for every customer: each web process keeps them for
# a few seconds, and any change to an offer bumps a version in the shared cache. A process asks
# the shared cache for that version at most once a second (a round trip to Redis costs as much as
# the rest of ranking), so an edit shows everywhere within a second, at once in the process that
# made it, while a burst of page views reads the catalogue once. Caps and budgets in this copy may
# be a few seconds old; a claim re-reads the offer under a lock, so that is only about display.
ACTIVE_OFFERS_TTL = 15.0
VERSION_CHECK_INTERVAL = 1.0


@dataclass
class _HeldOffers:
    version: int
    expires: float
    checked: float
    offers: list[Offer]


_active_offers: dict[int, _HeldOffers] = {}


def _version_key(tenant_id: int) -> str:
    return f"offers:version:{tenant_id}"


def offers_changed(*, tenant: Tenant) -> None:
    """Tell every web process to reload this tenant's active offers."""
    _active_offers.pop(tenant.pk, None)
    key = _version_key(tenant.pk)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)


def cached_active_offers(*, tenant: Tenant) -> list[Offer]:
    held = _active_offers.get(tenant.pk)
    now = time.monotonic()
    if held and held.expires > now:
        if now - held.checked < VERSION_CHECK_INTERVAL:
            return held.offers
        if cache.get(_version_key(tenant.pk), 0) == held.version:
            held.checked = now
            return held.offers
    version = cache.get(_version_key(tenant.pk), 0)
    offers = active_offers(tenant=tenant)
    _active_offers[tenant.pk] = _HeldOffers(version=version, expires=now + ACTIVE_OFFERS_TTL, checked=now, offers=offers)
    return offers


def active_offers(*, tenant: Tenant, now: datetime | None = None) -> list[Offer]:
    now = now or timezone.now()
    offers = (Offer.objects.for_tenant(tenant).filter(status=Offer.Status.ACTIVE)
              .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now)).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
              .select_related("product").prefetch_related(
                  # Children are narrowed by their parents' ids, which are already this tenant's.
                  Prefetch("items", queryset=OfferItem.objects.unscoped().select_related("product")),
                  Prefetch("option_groups", queryset=OptionGroup.objects.unscoped().prefetch_related(
                      Prefetch("options", queryset=Option.objects.unscoped().select_related("group"))))))
    return list(offers.order_by("-priority", "id"))


def offers_for_customer(
    *, tenant: Tenant, customer: Customer, limit: int = 10, now: datetime | None = None, offers: list[Offer] | None = None,
    recent_products: list[str] | None = None, context: CustomerContext | None = None,
) -> list[EligibleOffer]:
    """The offers this customer can claim now, best first, each with its price and the reasons.
    Products the customer viewed or carted lately (their latest events, and `recent_products` a
    caller saw in this session) lift matching offers before the next training run. `context`
    saves a read when the caller already loaded it (the API loads the customer with it)."""
    if customer.tenant_id != tenant.pk or customer.is_erased:
        return []
    now = now or timezone.now()
    if context is None or context.customer.pk != customer.pk:
        context = load_context(tenant=tenant, customer=customer)
    candidates = offers if offers is not None else cached_active_offers(tenant=tenant)
    recommended = context.recommended if context.personalized else {}
    results: list[EligibleOffer] = []
    for offer in candidates:
        eligible, reasons = check_eligibility(offer=offer, context=context, now=now)
        if not eligible:
            continue
        score, why = recommended.get(offer.pk, (None, None))
        if not context.personalized:
            reasons = [{"code": "not_personalized"}, *reasons]
        elif why:
            reasons = [why, *reasons]
        results.append(EligibleOffer(offer=offer, quote=None, from_price=None, score=score, reasons=reasons))
    recent = [*(recent_products or ()), *context.recent_products] if context.personalized else None
    results = _rank(results, recent_products=recent)
    served = _diversify(results, limit=limit)
    # Ranking does not depend on price, so only the offers served are priced.
    for item in served:
        if item.offer.kind == Offer.Kind.CONFIGURABLE:
            item.from_price = _cheapest_configuration(item.offer)
        else:
            item.quote = quote_offer(offer=item.offer, context=context)
            item.reasons = item.reasons + item.quote.reasons
    return served


def _cheapest_configuration(offer: Offer) -> Decimal:
    """The lowest price a valid configuration can have: the fee plus each group's cheapest minimum."""
    total = offer.base_price or Decimal(0)
    for group in offer.option_groups.all():
        prices = sorted(o.price for o in group.options.all())
        total += sum(prices[: group.min_select], Decimal(0))
    return _money(total)


def _rank(results: list[EligibleOffer], *, recent_products: list[str] | None) -> list[EligibleOffer]:
    """Recommendation score first (recent behaviour lifts offers on products just viewed), then priority."""
    recent = set(recent_products or [])

    def key(item: EligibleOffer) -> tuple[float, int, int]:
        boost = 1.0 if item.offer.product_id and item.offer.product and item.offer.product.sku in recent else 0.0
        return (-((item.score or 0.0) + boost), -item.offer.priority, item.offer.pk)

    return sorted(results, key=key)


def _diversify(results: list[EligibleOffer], *, limit: int) -> list[EligibleOffer]:
    picked: list[EligibleOffer] = []
    per_category: Counter[str] = Counter()
    later: list[EligibleOffer] = []
    for item in results:
        category = item.offer.product.category if item.offer.product_id and item.offer.product else ""
        if category and per_category[category] >= MAX_PER_CATEGORY:
            later.append(item)
            continue
        per_category[category] += 1
        picked.append(item)
    return (picked + later)[:limit]
