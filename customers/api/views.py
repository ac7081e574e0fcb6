from __future__ import annotations

import codecs
import re
from typing import IO, Any

import django_filters
import orjson
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import json as strict_json

from customers import services
from customers.api import serializers as s
from customers.intake import MAX_BATCH, RowInvalid
from customers.models import Consent, Customer, Event, Order, OrderLine
from customers.selectors import typed_attribute_value
from tenants.api.base import TenantScopedViewSet


class FastJSONParser(JSONParser):
    """JSONParser with orjson: a batch of 1,000 events parses three times faster. Bodies orjson
    would read differently fall back to json: another charset, and integers of 19 digits or more
    (orjson reads those as floats beyond 64 bits, which would change a property's value)."""

    _LONG_INTEGER = re.compile(rb"[:,\[]\s*-?\d{19}")

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        if codecs.lookup(get_encoding(parser_context or {})).name != "utf-8":
            return super().parse(stream, media_type, parser_context)
        body = stream.read()
        try:
            if self._LONG_INTEGER.search(body):
                return strict_json.loads(body)  # as JSONParser: NaN and Infinity refused
            return orjson.loads(body)
        except ValueError as exc:  # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors too
            raise ParseError(f"JSON parse error - {exc}") from exc


def _batch(request: Request, key: str) -> tuple[list[Any], bool]:
    """The rows of a request that is either one object or {key: [...]}; and whether it was a batch."""
    data = request.data
    if isinstance(data, dict) and key in data:
        rows = data[key]
        if not isinstance(rows, list):
            raise ValidationError({key: ["Must be a list."]})
        if not rows:
            raise ValidationError({key: ["Send at least one."]})
        if len(rows) > MAX_BATCH:
            raise ValidationError({key: [f"At most {MAX_BATCH} per request."]})
        extra = set(data) - {key}
        if extra:
            raise ValidationError({name: ["Unknown field."] for name in sorted(extra)})
        return rows, True
    if isinstance(data, list):
        raise ValidationError({"non_field_errors": [f'Send one object, or {{"{key}": [...]}}.']})
    return [data], False


def _batch_answer(summary: dict[str, Any], rejected: int, rows: list[Any]) -> Response:
    """A batch is a 400 only when every row was rejected; otherwise the good rows were stored."""
    code = status.HTTP_400_BAD_REQUEST if rejected == len(rows) else status.HTTP_200_OK
    return Response(summary, status=code)


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(method="filter_email")
    external_id = django_filters.CharFilter()
    kind = django_filters.ChoiceFilter(choices=Customer.Kind.choices)
    tag = django_filters.CharFilter(method="filter_tag")
    attribute = django_filters.CharFilter(method="filter_attribute", help_text="key:value, e.g. plan:postpaid")

    class Meta:
        model = Customer
        fields = ["email", "external_id", "kind", "tag", "attribute"]

    def filter_email(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(email=value.strip().lower())

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.with_tag(value.strip().lower())

    def filter_attribute(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        key, sep, raw = value.partition(":")
        if not sep or not key:
            raise ValidationError({"attribute": ["Use key:value."]})
        return queryset.with_attribute(key, typed_attribute_value(tenant=self.request.tenant, key=key, value=raw))


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """People and business buyers of the key's tenant."""

    scope_resource = "customers"
    serializer_class = s.CustomerSerializer
    filterset_class = CustomerFilter

    def base_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.select_related("company")

    @extend_schema(request=s.CustomerInputSerializer, responses={201: s.CustomerSerializer})
    def create(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Send one JSON object."]})
        try:
            customer = services.create_customer(tenant=request.tenant, data=request.data)
        except RowInvalid as exc:
            raise ValidationError(exc.errors) from exc
        return Response(s.CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.CustomerInputSerializer, responses=s.CustomerSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Send one JSON object."]})
        try:
            customer = services.update_customer(tenant=request.tenant, customer=self.get_object(), data=request.data)
        except RowInvalid as exc:
            raise ValidationError(exc.errors) from exc
        return Response(s.CustomerSerializer(customer).data)

    @extend_schema(request=s.BulkCustomersInputSerializer, responses={200: s.BulkResultSerializer, 400: s.BulkResultSerializer})
    @action(detail=False, methods=["post"], url_path="bulk", parser_classes=[FastJSONParser])
    def bulk(self, request: Request) -> Response:
        """Upsert up to 1,000 customers by external_id; invalid rows are reported, valid ones stored."""
        rows, _ = _batch(request, "customers")
        result = services.upsert_customers(tenant=request.tenant, rows=rows, with_objects=False)
        return _batch_answer(result.as_dict(), len(result.errors), rows)

    @extend_schema(methods=["GET"], responses=s.ConsentLedgerSerializer)
    @extend_schema(methods=["POST"], request=s.ConsentInputSerializer, responses={201: s.ConsentSerializer})
    @action(detail=True, methods=["get", "post"])
    def consents(self, request: Request, pk: str) -> Response:
        """The consent ledger (append-only) and the current state derived from it; POST appends."""
        customer = self.get_object()
        if request.method == "POST":
            data = s.ConsentInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            entry = services.record_consent(
                tenant=request.tenant, customer=customer, source=Consent.Source.API,
                source_detail=f"api-key:{request.auth.prefix}", **data.validated_data,
            )
            return Response(s.ConsentSerializer(entry).data, status=status.HTTP_201_CREATED)
        ledger = Consent.objects.for_tenant(request.tenant).filter(customer=customer).order_by("-occurred_at", "-id")[:1000]
        return Response({"current": services.consent_state(tenant=request.tenant, customer=customer),
                         "ledger": s.ConsentSerializer(ledger, many=True).data})

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> Response:
        """Everything held about this person (GDPR access request)."""
        return Response(services.export_customer(tenant=request.tenant, customer=self.get_object()))

    @extend_schema(request=None, responses=s.CustomerSerializer)
    @action(detail=True, methods=["post"])
    def erase(self, request: Request, pk: str) -> Response:
        """Anonymise this person everywhere (GDPR erasure); counts stay, identifiers go. Idempotent."""
        customer = services.erase_customer(tenant=request.tenant, actor=request.auth, customer=self.get_object())
        return Response(s.CustomerSerializer(customer).data)


class EventFilter(django_filters.FilterSet):
    customer_id = django_filters.NumberFilter()
    type = django_filters.CharFilter()
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["customer_id", "type", "occurred_after", "occurred_before"]


class EventViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Behaviour events: send one, or up to 1,000 at once."""

    scope_resource = "events"
    serializer_class = s.EventSerializer
    filterset_class = EventFilter
    parser_classes = [FastJSONParser]

    def base_queryset(self) -> QuerySet[Event]:
        return Event.objects.all()

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="EventOrEventBatch", serializers=[s.EventInputSerializer, s.EventBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={200: s.IngestResultSerializer, 400: s.IngestResultSerializer},
    )
    def create(self, request: Request) -> Response:
        rows, is_batch = _batch(request, "events")
        result = services.ingest_events(tenant=request.tenant, rows=rows)
        if not is_batch and result.rejected:
            return Response(result.rejected[0]["errors"], status=status.HTTP_400_BAD_REQUEST)
        return _batch_answer(result.as_dict(), len(result.rejected), rows)


class OrderFilter(django_filters.FilterSet):
    customer_id = django_filters.NumberFilter()
    external_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)

    class Meta:
        model = Order
        fields = ["customer_id", "external_id", "status"]


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Purchases with lines. Sending an order again (same external_id) updates its status and total."""

    scope_resource = "orders"
    serializer_class = s.OrderSerializer
    filterset_class = OrderFilter

    def base_queryset(self) -> QuerySet[Order]:
        return Order.objects.prefetch_related(Prefetch("lines", queryset=OrderLine.objects.unscoped()))

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="OrderOrOrderBatch", serializers=[s.OrderInputSerializer, s.OrderBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={200: s.OrdersResultSerializer, 400: s.OrdersResultSerializer},
    )
    def create(self, request: Request) -> Response:
        rows, is_batch = _batch(request, "orders")
        result = services.record_orders(tenant=request.tenant, rows=rows)
        if not is_batch:
            if result.rejected:
                return Response(result.rejected[0]["errors"], status=status.HTTP_400_BAD_REQUEST)
            order = next(iter(result.orders.values()))
            code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
            return Response(s.OrderSerializer(self.get_queryset().get(pk=order.pk)).data, status=code)
        return _batch_answer(result.as_dict(), len(result.rejected), rows)


