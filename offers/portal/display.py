"""How the portal words things for a customer: reasons, money, percentages.

Reason dicts come from `offers.services.pricing` (eligibility and pricing) and from the
recommendation job. Codes that describe the tenant's internal view of a person (predicted value,
churn risk, which consent an offer needed) are not shown to that person: `reason_text` answers
None for them, and for codes it does not know."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from offers.models import Offer
from offers.services import pricing

# Reasons a customer is not shown: the business's predictions about them, and rule plumbing.
HIDDEN_CODES = frozenset({"min_expected_value", "min_churn_probability", "max_churn_probability", "consent", "configured"})


def number(value: Any) -> str:
    """A localized number without trailing zeros: 10.00 -> "10", 12.50 -> "12,5" in Russian."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    amount = amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()
    return formats.number_format(amount, use_l10n=True)


def money(value: Any, currency: str) -> str:
    """A localized amount with two decimals and its currency code: "1 234,50 EUR"."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return f"{value} {currency}".strip()
    return f"{formats.number_format(amount, 2, use_l10n=True, force_grouping=True)} {currency}".strip()


def _product(reason: dict[str, Any]) -> str:
    for key in ("product", "product_name", "anchor", "item"):
        value = reason.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _recommendation_reason_text(reason: dict[str, Any]) -> str | None:
    """The recommendation job's own wording for the codes it writes, so the portal, the API and
    the dashboard preview say the same thing; None for codes it does not write."""
    try:
        # Imported on use: the module loads the recommender (numpy, scipy) that pages never need otherwise.
        from offers import recommendations
    except ImportError:
        return None
    codes = getattr(recommendations, "CODES", ())
    if reason.get("code") not in codes:
        return None
    return str(recommendations.reason_text(reason))


def reason_text(reason: dict[str, Any], *, currency: str = "") -> str | None:
    """One sentence for the customer about why they see an offer or its price; None to leave it out."""
    if not isinstance(reason, dict):
        return None
    code = reason.get("code")
    if not isinstance(code, str) or code in HIDDEN_CODES:
        return None
    recommendation_text = _recommendation_reason_text(reason)
    if recommendation_text is not None:
        return recommendation_text
    product = _product(reason)
    if code == "not_personalized":
        return _("You asked us not to personalize: these are popular offers")
    if code == "bought":
        return _("Because you bought %(product)s") % {"product": product} if product else _("Because of what you bought before")
    if code in ("similar_to", "content"):
        return _("Similar to %(product)s, which you chose") % {"product": product} if product else _("Similar to what you chose before")
    if code in ("also_chose", "similar", "also_bought"):
        if product:
            return _("Customers who chose %(product)s also chose this") % {"product": product}
        return _("Customers like you also chose this")
    if code == "popular_with_kind":
        if reason.get("kind") == "business_buyer":
            return _("Popular with business buyers like you")
        return _("Popular with customers like you")
    if code in ("popular", "most_popular", "trending"):
        return _("Popular with our customers")
    if code == "recently_viewed":
        return _("You looked at this recently")
    if code == "kind":
        if reason.get("kind") == "business_buyer":
            return _("An offer for business buyers")
        return _("An offer for private customers")
    if code == "company_size":
        return _("Made for companies of your size")
    if code == "in_segment":
        return _("Picked for customers like you")
    if code == "percent_off":
        return _("%(percent)s%% off") % {"percent": number(reason.get("percent", ""))}
    if code == "amount_off":
        return _("%(amount)s off") % {"amount": money(reason.get("amount", ""), currency)}
    if code == "personal_price":
        return _("Your personal price")
    if code == "negotiated_price":
        if product:
            return _("Your company's negotiated price for %(product)s") % {"product": product}
        return _("Your company's negotiated price")
    if code == "volume_tier":
        return _("%(percent)s%% off from %(quantity)s units") % {
            "percent": number(reason.get("percent_off", "")), "quantity": reason.get("min_quantity", "")}
    if code == "bundle":
        count = int(reason.get("items") or 0)
        return ngettext("A bundle of %(count)s product", "A bundle of %(count)s products", count) % {"count": count}
    return None


def reason_texts(reasons: list[dict[str, Any]], *, currency: str = "") -> list[str]:
    """The sentences for a list of reasons, in order, each once."""
    texts = (reason_text(r, currency=currency) for r in reasons or [])
    return list(dict.fromkeys(t for t in texts if t))


# What the pages show ---------------------------------------------------------------------------


@dataclass
class PriceView:
    """A price as shown: the customer's price and, when it is lower, the list price to strike through."""

    price: str
    list_price: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def price_view(quote: pricing.Quote) -> PriceView:
    lines = [{"label": line.get("label", ""), "quantity": line.get("quantity", 1),
              "unit_price": money(line.get("unit_price", ""), quote.currency)} for line in quote.lines]
    return PriceView(
        price=money(quote.price, quote.currency),
        list_price=money(quote.list_price, quote.currency) if quote.price < quote.list_price else None,
        lines=lines, reasons=reason_texts(quote.reasons, currency=quote.currency),
    )


@dataclass
class OfferCard:
    offer: Offer
    price: PriceView | None  # None for a configurable offer: `from_price` instead
    from_price: str | None
    reasons: list[str]

    @property
    def is_configurable(self) -> bool:
        return self.offer.kind == Offer.Kind.CONFIGURABLE


def offer_card(item: pricing.EligibleOffer) -> OfferCard:
    currency = item.offer.currency
    return OfferCard(
        offer=item.offer,
        price=price_view(item.quote) if item.quote is not None else None,
        from_price=money(item.from_price, currency) if item.from_price is not None else None,
        reasons=reason_texts(item.reasons, currency=currency),
    )
