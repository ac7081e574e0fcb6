"""What a tenant can offer and what its customers claimed.

Rules: prices are Decimals in the offer's currency; an offer's eligibility is data (segments,
customer kinds, company sizes, prediction thresholds, consent) that `offers.services.pricing`
evaluates, never code. Counters that caps depend on (claims, budget spent, voucher redemptions)
change only under a row lock or a conditional UPDATE, so two claims at once cannot both take
the last unit. A request's every status change is kept (OfferRequestEvent).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from tenants.scoping import TenantOwnedModel


class Product(TenantOwnedModel):
    sku = models.CharField(_("SKU"), max_length=128)
    name = models.CharField(_("name"), max_length=300)
    category = models.CharField(_("category"), max_length=120, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    base_price = models.DecimalField(_("base price"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    in_stock = models.BooleanField(_("in stock"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "sku"], name="product_unique_sku")]
        indexes = [models.Index(fields=["tenant", "category"], name="product_tenant_category")]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Offer(TenantOwnedModel):
    class Kind(models.TextChoices):
        PERCENT_OFF = "percent_off", _("Percent off")
        AMOUNT_OFF = "amount_off", _("Amount off")
        FIXED_PRICE = "fixed_price", _("Personal fixed price")
        BUNDLE = "bundle", _("Bundle")
        CONFIGURABLE = "configurable", _("Configurable")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        ARCHIVED = "archived", _("Archived")

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    # percent_off / amount_off / fixed_price apply to one product; a bundle's products are its items.
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="offers")
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, null=True, blank=True)
    base_price = models.DecimalField(_("base price"), max_digits=14, decimal_places=2, null=True, blank=True)  # configurable: fee before options
    currency = models.CharField(_("currency"), max_length=3)
    # {"segments": [ids], "not_segments": [ids], "kinds": [...], "company_sizes": [...],
    #  "min_expected_value": n, "min_churn_probability": p, "max_churn_probability": p, "consent": [purpose, channel]}
    eligibility = models.JSONField(_("eligibility"), default=dict, blank=True)
    starts_at = models.DateTimeField(_("valid from"), null=True, blank=True)
    ends_at = models.DateTimeField(_("valid until"), null=True, blank=True)
    per_customer_cap = models.PositiveIntegerField(_("claims per customer"), null=True, blank=True)
    total_cap = models.PositiveIntegerField(_("claims in total"), null=True, blank=True)
    budget = models.DecimalField(_("budget (discount given)"), max_digits=14, decimal_places=2, null=True, blank=True)
    spent = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    claims_count = models.PositiveIntegerField(default=0)
    priority = models.IntegerField(_("priority"), default=0)
    combinable = models.BooleanField(_("combines with other offers"), default=False)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "status", "-priority"], name="offer_tenant_status")]

    def __str__(self) -> str:
        return self.name


class OfferItem(TenantOwnedModel):
    """A product in a bundle."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)


class OptionGroup(TenantOwnedModel):
    """A choice a customer makes in a configurable offer ("data volume"), with how many to pick."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="option_groups")
    key = models.SlugField(max_length=64)
    label = models.CharField(max_length=120)
    min_select = models.PositiveSmallIntegerField(default=1)
    max_select = models.PositiveSmallIntegerField(default=1)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["offer", "key"], name="optiongroup_unique_key")]


class Option(TenantOwnedModel):
    group = models.ForeignKey(OptionGroup, on_delete=models.CASCADE, related_name="options")
    key = models.SlugField(max_length=64)
    label = models.CharField(max_length=120)
    price = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    # Option keys ("group.option") this one needs, or cannot go with.
    requires = models.JSONField(default=list, blank=True)
    excludes = models.JSONField(default=list, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["group", "key"], name="option_unique_key")]


class PriceList(TenantOwnedModel):
    """A company's negotiated prices: its buyers pay these instead of the base price."""

    company = models.ForeignKey("customers.Company", on_delete=models.CASCADE, related_name="price_lists")
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)


class PriceListItem(TenantOwnedModel):
    price_list = models.ForeignKey(PriceList, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    price = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["price_list", "product"], name="pricelistitem_unique_product")]


class VolumeTier(TenantOwnedModel):
    """Business buyers' volume discount: from `min_quantity` units, `percent_off` (one product or all)."""

    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    min_quantity = models.PositiveIntegerField()
    percent_off = models.DecimalField(max_digits=5, decimal_places=2)


class Voucher(TenantOwnedModel):
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="vouchers")
    code = models.CharField(max_length=64)  # stored upper-case
    batch = models.CharField(max_length=64, blank=True)
    max_redemptions = models.PositiveIntegerField(default=1)
    redemptions = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="voucher_unique_code"),
            models.CheckConstraint(condition=Q(redemptions__lte=models.F("max_redemptions")), name="voucher_not_overdrawn"),
        ]


class OfferRequest(TenantOwnedModel):
    """A customer's claim of an offer and its way to fulfilment."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        IN_REVIEW = "in_review", _("In review")
        APPROVED = "approved", _("Approved")
        DECLINED = "declined", _("Declined")
        FULFILLED = "fulfilled", _("Fulfilled")

    TRANSITIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "new": ("in_review", "approved", "declined"),
        "in_review": ("approved", "declined"),
        "approved": ("fulfilled",),
        "declined": (),
        "fulfilled": (),
    }

    id = models.BigAutoField(primary_key=True)
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="requests")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="offer_requests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    configuration: Any = models.JSONField(default=dict, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    price = models.DecimalField(max_digits=14, decimal_places=2)
    list_price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    quote: Any = models.JSONField(default=dict, blank=True)  # the priced lines and reasons at claim time
    voucher = models.ForeignKey(Voucher, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    source = models.CharField(max_length=16, default="api")
    idempotency_key = models.CharField(max_length=128, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    decided_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], condition=~Q(idempotency_key=""),
                                    name="offerrequest_unique_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "created_at"], name="offerrequest_queue"),
            models.Index(fields=["tenant", "customer", "-created_at"], name="offerrequest_customer"),
            models.Index(fields=["tenant", "offer", "customer"], name="offerrequest_offer_customer"),
            # The processing-time metric (offers.selectors.processing_times): decided requests of a
            # date window, read from the index alone (INCLUDE is PostgreSQL's; elsewhere it is left out).
            models.Index(fields=["tenant", "created_at"], name="offerrequest_decided", condition=Q(decided_at__isnull=False),
                         include=["decided_at", "fulfilled_at"]),
        ]


class OfferRequestEvent(TenantOwnedModel):
    request = models.ForeignKey(OfferRequest, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor_label = models.CharField(max_length=200)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["at", "id"]


class Recommendation(TenantOwnedModel):
    """A customer's ranked offer, written by the recommendation job; served after business rules."""

    # Rewritten wholesale by every training run (millions of rows): no database FK checks, which
    # doubled the time of the COPY (measured: 126 s → 57 s for 4M rows). Django's CASCADE still
    # removes a deleted customer's or offer's rows, and the job drops rows of ones deleted meanwhile.
    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+")
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+")
    score = models.FloatField()
    rank = models.PositiveSmallIntegerField()
    reason: Any = models.JSONField(default=dict)  # {"code": "bought", "product": "..."} rendered per language
    model = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "customer", "offer"], name="recommendation_unique")]
        indexes = [models.Index(fields=["tenant", "customer", "rank"], name="recommendation_customer_rank")]


class PortalSignInLink(TenantOwnedModel):
    """A single-use link, emailed for 15 minutes, that signs a customer in to the portal.
    Only the SHA-256 of its random token is stored; the link names its tenant's slug too."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "expires_at"], name="portallink_tenant_expiry")]
