"""People a tenant sells to, what they do and buy, and what they agreed to.

Events and consents are append-only. A customer's current consent is derived from the ledger,
never stored beside it. Tenant-scoped uniqueness (external_id, email, event id, order id) is
enforced by the database, which is what makes re-sent events and re-run imports harmless.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from customers.querysets import CustomerQuerySet, EventQuerySet
from tenants.scoping import TenantManager, TenantOwnedModel, TenantQuerySet


class Company(TenantOwnedModel):
    class Size(models.TextChoices):
        MICRO = "1-9", _("1–9 employees")
        SMALL = "10-49", _("10–49 employees")
        MEDIUM = "50-249", _("50–249 employees")
        LARGE = "250-999", _("250–999 employees")
        ENTERPRISE = "1000+", _("1000+ employees")

    external_id = models.CharField(_("external id"), max_length=128, blank=True)
    name = models.CharField(_("name"), max_length=200)
    industry = models.CharField(_("industry"), max_length=100, blank=True)
    size = models.CharField(_("size"), max_length=10, choices=Size.choices, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], condition=~Q(external_id=""), name="company_unique_external_id"),
        ]
        indexes = [models.Index(fields=["tenant", "name"], name="company_tenant_name")]

    def __str__(self) -> str:
        return self.name


class Customer(TenantOwnedModel):
    class Kind(models.TextChoices):
        CONSUMER = "consumer", _("Consumer")
        BUSINESS_BUYER = "business_buyer", _("Business buyer")

    # Every index below leads with tenant_id or company_id (a company belongs to one tenant); a
    # single-column tenant index would only cost writes and tempt the planner into scanning a
    # whole tenant for external_id lookups.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.CONSUMER)
    external_id = models.CharField(_("external id"), max_length=128)
    email = models.CharField(_("email"), max_length=254, blank=True)  # normalised lower-case; validated by services
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    locale = models.CharField(_("language"), max_length=8, blank=True)
    timezone = models.CharField(_("time zone"), max_length=64, blank=True)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="buyers", db_index=False)
    company_role = models.CharField(_("role at the company"), max_length=64, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    # Lower-cased name, email, phone and ids: one trigram-indexed column for the dashboard search.
    search_text = models.CharField(max_length=600, blank=True, editable=False)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    erased_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager.from_queryset(CustomerQuerySet)()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="customer_unique_external_id"),
            models.UniqueConstraint(fields=["tenant", "email"], condition=~Q(email=""), name="customer_unique_email"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-id"], name="customer_tenant_id_desc"),
            models.Index(fields=["tenant", "kind", "-id"], name="customer_tenant_kind"),
            # A company's buyers, newest first; also what deleting a company looks them up by
            # (SET_NULL, the FK check). Partial: most customers have no company, and adding one
            # then touches no index of it (it replaces (tenant, company) and (company), two of
            # the ten index writes each new consumer made; migration 0008).
            models.Index(fields=["company", "-id"], name="customer_company_buyers", condition=Q(company__isnull=False)),
        ]
        # No index on first/last_seen_at: event ingestion widens them constantly, and with no
        # indexed column changing PostgreSQL updates the row in place (HOT) without touching
        # the GIN indexes. Fill factor 85 (migration 0005) leaves room on each page for that.

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.external_id

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class AttributeDefinition(TenantOwnedModel):
    """A tenant-defined custom attribute: the dashboard filters by it and the API validates it."""

    class Type(models.TextChoices):
        STRING = "string", _("Text")
        NUMBER = "number", _("Number")
        BOOLEAN = "boolean", _("Yes/no")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Choice")

    key = models.SlugField(_("key"), max_length=64)
    label = models.CharField(_("label"), max_length=100)
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.STRING)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="attribute_unique_key")]
        ordering = ["key"]

    def __str__(self) -> str:
        return self.label


class Event(TenantOwnedModel):
    """A behaviour event. Append-only; `event_id` (client-supplied or derived) makes it idempotent."""

    BUILTIN_TYPES: ClassVar[tuple[str, ...]] = (
        "page_view", "product_view", "add_to_cart", "offer_view", "offer_click", "signup",
    )

    # The hottest table: no database FK checks and no single-column indexes, which halve COPY
    # speed (measured: 32k → 80k rows/s). Ingestion takes customer ids from the tenant's own
    # customers in the same transaction; the composite indexes below lead with tenant_id.
    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="events")
    type = models.CharField(max_length=64)
    event_id = models.CharField(max_length=128)
    properties = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, default="api")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=now)

    objects = TenantManager.from_queryset(EventQuerySet)()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "event_id"], name="event_unique_event_id")]
        indexes = [
            models.Index(fields=["tenant", "customer", "-occurred_at"], name="event_customer_time"),
            models.Index(fields=["tenant", "type", "occurred_at"], name="event_tenant_type_time"),
            # Time-range scans over all types (retention) use a BRIN index on PostgreSQL
            # (migration 0003): a fraction of a B-tree's cost on every insert.
        ]

    def __str__(self) -> str:
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class Order(TenantOwnedModel):
    class Status(models.TextChoices):
        PLACED = "placed", _("Placed")
        PAID = "paid", _("Paid")
        FULFILLED = "fulfilled", _("Fulfilled")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    # Orders that count as revenue; cancelled and refunded ones are kept but do not.
    REVENUE_STATUSES: ClassVar[tuple[str, ...]] = (Status.PLACED, Status.PAID, Status.FULFILLED)

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    external_id = models.CharField(_("order id"), max_length=128)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PAID)
    currency = models.CharField(_("currency"), max_length=3)
    total = models.DecimalField(_("total"), max_digits=14, decimal_places=2)
    ordered_at = models.DateTimeField(_("ordered at"))
    source = models.CharField(max_length=16, default="api")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="order_unique_external_id")]
        indexes = [
            models.Index(fields=["tenant", "customer", "-ordered_at"], name="order_customer_time"),
            models.Index(fields=["tenant", "ordered_at"], name="order_tenant_time"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.total} {self.currency})"


class OrderLine(TenantOwnedModel):
    id = models.BigAutoField(primary_key=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product_sku = models.CharField(_("product"), max_length=128)
    product_name = models.CharField(_("product name"), max_length=300, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=3)
    unit_price = models.DecimalField(_("unit price"), max_digits=14, decimal_places=4)

    class Meta:
        indexes = [models.Index(fields=["tenant", "product_sku"], name="orderline_tenant_sku")]

    @property
    def line_total(self) -> Any:
        return self.quantity * self.unit_price


class ConsentQuerySet(TenantQuerySet):
    def update(self, **kwargs: Any) -> int:
        self._check_scope()
        raise PermissionError("the consent ledger is append-only")


class Consent(TenantOwnedModel):
    """One entry of the append-only consent ledger. The current state is the latest entry per
    (customer, channel, purpose)."""

    class Channel(models.TextChoices):
        ALL = "all", _("All channels")
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        SOCIAL = "social", _("Social")
        PHONE = "phone", _("Phone")

    class Purpose(models.TextChoices):
        MARKETING = "marketing", _("Marketing")
        PERSONALIZATION = "personalization", _("Personalization")
        ANALYTICS = "analytics", _("Analytics")

    class Status(models.TextChoices):
        GRANTED = "granted", _("Granted")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class Source(models.TextChoices):
        FORM = "form", _("Lead form")
        API = "api", _("API")
        IMPORT = "import", _("Import")
        PORTAL = "portal", _("Customer portal")
        DASHBOARD = "dashboard", _("Dashboard")

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    source_detail = models.CharField(max_length=200, blank=True)  # which key, form or user
    text_version = models.CharField(_("consent text version"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    occurred_at = models.DateTimeField(default=now)

    objects = TenantManager.from_queryset(ConsentQuerySet)()

    class Meta:
        indexes = [models.Index(fields=["tenant", "customer", "channel", "purpose", "-occurred_at"], name="consent_current")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("the consent ledger is append-only")
        super().save(*args, **kwargs)


class LeadForm(TenantOwnedModel):
    """A lead-capture form a tenant embeds on its site; sign-ups confirm by email (double opt-in)."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=64)
    fields = models.JSONField(_("fields"), default=list, blank=True)  # [{"key", "label", "type", "required"}]
    consent_text = models.TextField(_("consent text"))
    consent_version = models.CharField(_("consent text version"), max_length=64, default="1")
    consent_purposes = models.JSONField(default=list, blank=True)  # purposes granted on confirmation
    success_message = models.CharField(_("message after sign-up"), max_length=300, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="leadform_unique_slug")]

    def __str__(self) -> str:
        return self.name


class LeadSubmission(TenantOwnedModel):
    form = models.ForeignKey(LeadForm, on_delete=models.CASCADE, related_name="submissions")
    email = models.CharField(max_length=254)
    data = models.JSONField(default=dict, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["tenant", "form", "-created_at"], name="leadsub_form_time")]


class ErasureTombstone(TenantOwnedModel):
    """What is left of an erased person: keyed hashes of their identifiers, so that a later import
    or API call does not bring them back or contact them again."""

    identifier_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)  # email, phone, external_id
    erased_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "identifier_hash"], name="tombstone_unique_hash")]
