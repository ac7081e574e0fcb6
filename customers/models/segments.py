"""Groups of customers and what the platform predicts about each one.

A Segment is a definition (JSON, see customers/segments/definition.py) that compiles to one SQL
query. Its members are stored, not computed on read, so offers, campaigns and metrics join a
small table instead of re-running rules; SegmentChange keeps who entered or left and when, which
automations read as events. Built-in segments (RFM groups, behavioural clusters, churn risk,
predicted value) are ordinary rule segments over CustomerScore, which the prediction jobs write.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from tenants.scoping import TenantOwnedModel


class Segment(TenantOwnedModel):
    class Kind(models.TextChoices):
        RULE = "rule", _("Rule segment")
        RFM = "rfm", _("RFM group")
        CLUSTER = "cluster", _("Behavioural cluster")
        PREDICTION = "prediction", _("Prediction")

    class Status(models.TextChoices):
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    name = models.CharField(_("name"), max_length=120)
    description = models.CharField(_("description"), max_length=300, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.RULE)
    # Stable key of a built-in segment ("rfm:champions", "cluster:2"); blank for a marketer's own.
    builtin_key = models.CharField(max_length=64, blank=True)
    definition = models.JSONField(_("definition"), default=dict)
    # What data the definition reads ("profile", "event:add_to_cart", "segment:12", ...), derived
    # from the definition on save: incremental refreshes only re-evaluate segments a change touches.
    depends_on = models.JSONField(default=list, blank=True, editable=False)
    # Free-form facts about a built-in segment (a cluster's describing words, its feature profile).
    meta = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    member_count = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["kind", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "builtin_key"], condition=~models.Q(builtin_key=""),
                                    name="segment_unique_builtin_key"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_builtin(self) -> bool:
        return bool(self.builtin_key)


class SegmentMembership(TenantOwnedModel):
    """Who is in a segment now. One row per (segment, customer); written only by segment services."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, db_index=False, related_name="memberships")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, db_index=False, related_name="segment_memberships")
    entered_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_membership_unique")]
        indexes = [models.Index(fields=["tenant", "customer"], name="segmember_tenant_customer")]


class SegmentChange(TenantOwnedModel):
    """A customer entered or left a segment: membership history, and the event automations use."""

    class Change(models.TextChoices):
        ENTERED = "entered", _("Entered")
        LEFT = "left", _("Left")

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, db_index=False, related_name="changes")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, db_index=False, related_name="segment_changes")
    change = models.CharField(max_length=8, choices=Change.choices)
    at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "segment", "-at"], name="segchange_segment_time"),
            models.Index(fields=["tenant", "customer", "-at"], name="segchange_customer_time"),
        ]


class SegmentSize(TenantOwnedModel):
    """A segment's size at the end of each day it was refreshed: the trend on the segments page."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes")
    day = models.DateField()
    size = models.BigIntegerField()

    class Meta:
        ordering = ["day"]
        constraints = [models.UniqueConstraint(fields=["segment", "day"], name="segment_size_unique_day")]


class CustomerScore(TenantOwnedModel):
    """The latest predictions about one customer. Each prediction job writes its own columns."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, db_index=False, related_name="+")
    recency_days = models.FloatField(null=True, blank=True)
    frequency = models.IntegerField(null=True, blank=True)
    monetary = models.FloatField(null=True, blank=True)
    r_score = models.PositiveSmallIntegerField(null=True, blank=True)
    f_score = models.PositiveSmallIntegerField(null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_group = models.CharField(max_length=32, blank=True, default="", db_default="")
    cluster = models.SmallIntegerField(null=True, blank=True)
    churn_probability = models.FloatField(null=True, blank=True)
    expected_purchases = models.FloatField(null=True, blank=True)
    expected_value = models.FloatField(null=True, blank=True)
    prob_alive = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "customer"], name="customer_score_unique")]


class PredictionRun(TenantOwnedModel):
    """One training or scoring run of a prediction model: what the model pages show."""

    class Model(models.TextChoices):
        RFM = "rfm", _("RFM scores")
        CLUSTERS = "clusters", _("Behavioural clusters")
        CHURN = "churn", _("Churn risk")
        CLV = "clv", _("Predicted lifetime value")

    SCORE_COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "rfm": ("recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_group"),
        "clusters": ("cluster",),
        "churn": ("churn_probability",),
        "clv": ("expected_purchases", "expected_value", "prob_alive"),
    }

    model = models.CharField(max_length=16, choices=Model.choices)
    job = models.ForeignKey("tenants.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trained_at = models.DateTimeField(default=now)
    n_customers = models.BigIntegerField(default=0)  # scored
    n_excluded = models.BigIntegerField(default=0)  # left out by their consent
    method = models.CharField(max_length=64, blank=True)
    is_fallback = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True)  # why a fallback was used
    metrics: Any = models.JSONField(default=dict, blank=True)  # validation scores, fitted parameters
    details: Any = models.JSONField(default=dict, blank=True)  # cluster profiles, group sizes
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-trained_at", "-id"]
        indexes = [models.Index(fields=["tenant", "model", "-trained_at"], name="predrun_model_time")]
