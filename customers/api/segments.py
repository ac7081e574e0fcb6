"""Segments and predictions in the REST API: definitions as JSON, members, a customer's segments
and predictions. The same services as the dashboard builder."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.serializers import CustomerSerializer
from customers.models import Customer, CustomerScore, Segment, SegmentMembership
from customers.segments import selectors, services
from tenants.api.base import TenantScopedViewSet
from tenants.models import JobRun


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "description", "kind", "builtin_key", "definition", "status", "member_count", "refreshed_at",
                  "refresh_ms", "last_error", "meta", "created_at", "updated_at"]
        read_only_fields = fields


class SegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    definition = serializers.JSONField(help_text='{"match": "all"|"any", "conditions": [...]}; see customers/segments/definition.py')

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return attrs


class SegmentPatchSerializer(SegmentInputSerializer):
    name = serializers.CharField(max_length=120, required=False)
    definition = serializers.JSONField(required=False)


class PreviewInputSerializer(serializers.Serializer):
    definition = serializers.JSONField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = CustomerSerializer(many=True)
    definition = serializers.JSONField()


class JobRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobRun
        fields = ["id", "kind", "status", "progress"]


class SegmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Rule segments (definitions compile to one SQL query) and the built-in RFM, cluster and prediction segments."""

    scope_resource = "segments"
    scope_write: bool | None = None  # the preview action (a POST that stores nothing) sets False
    serializer_class = SegmentSerializer

    def base_queryset(self) -> QuerySet[Segment]:
        return Segment.objects.order_by("-id")

    def _input(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        if not isinstance(self.request.data, dict):
            raise ValidationError({"non_field_errors": ["Send one JSON object."]})
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return dict(data.validated_data)

    @extend_schema(request=SegmentInputSerializer, responses={201: SegmentSerializer})
    def create(self, request: Request) -> Response:
        """Create a rule segment; its members are built by a job (status "building" until done)."""
        data = self._input(SegmentInputSerializer)
        segment = services.create_segment(tenant=request.tenant, actor=request.auth, **data)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SegmentPatchSerializer, responses=SegmentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        data = self._input(SegmentPatchSerializer)
        segment = services.update_segment(tenant=request.tenant, actor=request.auth, segment=self.get_object(), **data)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_segment(tenant=request.tenant, actor=request.auth, segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=CustomerSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str) -> Response:
        """The segment's current members, newest customers first (cursor pagination)."""
        members = selectors.list_members(tenant=request.tenant, segment=self.get_object())
        page = self.paginate_queryset(members)
        return self.get_paginated_response(CustomerSerializer(page, many=True).data)

    @extend_schema(request=PreviewInputSerializer, responses=PreviewSerializer)
    @action(detail=False, methods=["post"], scope_write=False)
    def preview(self, request: Request) -> Response:
        """How many customers a definition selects right now, and the newest ten; nothing is stored."""
        data = self._input(PreviewInputSerializer)
        result = services.preview_definition(tenant=request.tenant, definition=data["definition"])
        return Response(PreviewSerializer(result).data)

    @extend_schema(request=None, responses={202: JobRefSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request: Request, pk: str) -> Response:
        """Queue a full rebuild of this segment's members."""
        job = services.request_rebuild(tenant=request.tenant, actor=request.auth, segment=self.get_object())
        return Response(JobRefSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CustomerSegmentSerializer(serializers.ModelSerializer):
    segment_id = serializers.IntegerField(source="segment.id")
    name = serializers.CharField(source="segment.name")
    kind = serializers.CharField(source="segment.kind")
    builtin_key = serializers.CharField(source="segment.builtin_key")

    class Meta:
        model = SegmentMembership
        fields = ["segment_id", "name", "kind", "builtin_key", "entered_at"]


class CustomerSegmentsViewSet(TenantScopedViewSet):
    scope_resource = "segments"

    def base_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.all()

    @extend_schema(responses=CustomerSegmentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def segments(self, request: Request, pk: str) -> Response:
        """The segments this customer is in now, with when they entered."""
        memberships = selectors.customer_segments(tenant=request.tenant, customer=self.get_object())
        return Response(CustomerSegmentSerializer(memberships, many=True).data)


class CustomerScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerScore
        fields = ["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_group", "cluster",
                  "churn_probability", "expected_purchases", "expected_value", "prob_alive", "updated_at"]


class CustomerPredictionsViewSet(TenantScopedViewSet):
    scope_resource = "customers"

    def base_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.all()

    @extend_schema(responses=inline_serializer("CustomerPredictions", {
        "customer_id": serializers.IntegerField(), "scores": CustomerScoreSerializer(allow_null=True),
        "models": serializers.DictField(child=serializers.DictField()),
        "excluded": serializers.BooleanField(help_text="Left out of profiling by their consent."),
    }))
    @action(detail=True, methods=["get"])
    def predictions(self, request: Request, pk: str) -> Response:
        """RFM scores and group, cluster, churn probability and predicted value, with the model behind each."""
        from customers.segments import predictions

        customer = self.get_object()
        score = selectors.get_customer_score(tenant=request.tenant, customer=customer)
        runs = selectors.latest_prediction_runs(tenant=request.tenant)
        return Response({
            "customer_id": customer.pk,
            "scores": CustomerScoreSerializer(score).data if score else None,
            "models": {name: {"trained_at": run.trained_at, "method": run.method, "is_fallback": run.is_fallback,
                              "reason": run.reason, "metrics": run.metrics} for name, run in runs.items()},
            "excluded": predictions.is_excluded(tenant=request.tenant, customer=customer),
        })

