"""Offers in the REST API: catalogue, offers, vouchers, requests, and what a customer is offered."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from b2p_platform.exceptions import DomainError
from customers.models import Customer
from offers.models import Offer, OfferItem, OfferRequest, OfferRequestEvent, Option, OptionGroup, Product, Voucher
from offers.services import catalogue, claims, pricing
from offers.services.context import load_context_for_id
from tenants.api.base import TenantScopedViewSet


def _strict(serializer_class: type[serializers.Serializer], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate a JSON object, refusing fields the serializer does not know."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send one JSON object."]})
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    unknown = set(data) - set(serializer.fields)
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
    return dict(serializer.validated_data)


# Products -------------------------------------------------------------------------------------


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "category", "attributes", "base_price", "currency", "in_stock", "is_active",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"sku": {"validators": []}}

    # The catalogue's rules, shared with CSV imports (catalogue.clean_product).
    def validate_currency(self, value: str) -> str:
        try:
            return catalogue.check_currency(value)
        except DomainError as exc:
            raise serializers.ValidationError(exc.message) from exc

    def validate_base_price(self, value: Any) -> Any:
        try:
            return catalogue.check_base_price(value)
        except DomainError as exc:
            raise serializers.ValidationError(exc.message) from exc


class ProductViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The catalogue. POST upserts by SKU (one product, or {"products": [...]} up to 1,000)."""

    scope_resource = "offers"
    serializer_class = ProductSerializer

    def base_queryset(self) -> QuerySet[Product]:
        return Product.objects.all()

    @extend_schema(request=ProductSerializer, responses={200: inline_serializer("ProductUpsert", {
        "created": serializers.IntegerField(), "updated": serializers.IntegerField()})})
    def create(self, request: Request) -> Response:
        data = request.data
        rows = data["products"] if isinstance(data, dict) and "products" in data else [data]
        if not isinstance(rows, list) or not 1 <= len(rows) <= 1000:
            raise ValidationError({"products": ["Send 1 to 1,000 products."]})
        checked, errors = [], {}
        for index, row in enumerate(rows):
            try:
                checked.append(_strict(ProductSerializer, row))
            except ValidationError as exc:
                errors[str(index)] = exc.detail
        if errors:
            raise ValidationError({"products": errors} if len(rows) > 1 else errors["0"])
        created, updated = catalogue.upsert_products(tenant=request.tenant, rows=checked)
        return Response({"created": created, "updated": updated})

    @extend_schema(request=ProductSerializer, responses=ProductSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        product = self.get_object()
        data = _strict(ProductSerializer, request.data, partial=True)
        data.pop("sku", None)
        catalogue.upsert_products(tenant=request.tenant, rows=[{"sku": product.sku, **data}])
        product.refresh_from_db()
        return Response(ProductSerializer(product).data)


class OfferRequestEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OfferRequestEvent
        fields = ["from_status", "to_status", "actor_label", "comment", "at"]


class OfferRequestSerializer(serializers.ModelSerializer):
    events = OfferRequestEventSerializer(many=True, read_only=True)

    class Meta:
        model = OfferRequest
        fields = ["id", "offer", "customer", "status", "configuration", "quantity", "price", "list_price", "currency", "quote",
                  "voucher", "source", "created_at", "updated_at", "decided_at", "fulfilled_at", "events"]


# Offers ---------------------------------------------------------------------------------------


class OptionSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64)
    label = serializers.CharField(max_length=120)
    price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    requires = serializers.ListField(child=serializers.CharField(), required=False)
    excludes = serializers.ListField(child=serializers.CharField(), required=False)


class OptionGroupSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64)
    label = serializers.CharField(max_length=120)
    min_select = serializers.IntegerField(min_value=0, default=1)
    max_select = serializers.IntegerField(min_value=1, default=1)
    options = OptionSerializer(many=True, allow_empty=False)


class OfferItemSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    quantity = serializers.IntegerField(min_value=1, default=1)


class OfferInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Offer.Kind.choices)
    status = serializers.ChoiceField(choices=Offer.Status.choices, required=False)
    product_id = serializers.IntegerField(required=False, allow_null=True)
    value = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, allow_null=True)
    base_price = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, allow_null=True, min_value=0)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$")
    eligibility = serializers.JSONField(required=False)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    per_customer_cap = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    total_cap = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, allow_null=True, min_value=0)
    priority = serializers.IntegerField(required=False)
    combinable = serializers.BooleanField(required=False)
    items = OfferItemSerializer(many=True, required=False)
    option_groups = OptionGroupSerializer(many=True, required=False)


class OptionOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Option
        fields = ["key", "label", "price", "requires", "excludes"]


class OptionGroupOutSerializer(serializers.ModelSerializer):
    options = OptionOutSerializer(many=True)

    class Meta:
        model = OptionGroup
        fields = ["key", "label", "min_select", "max_select", "options"]


class OfferSerializer(serializers.ModelSerializer):
    product = ProductSerializer(read_only=True)
    option_groups = OptionGroupOutSerializer(many=True, read_only=True)
    items = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = ["id", "name", "description", "kind", "status", "product", "value", "base_price", "currency", "eligibility",
                  "starts_at", "ends_at", "per_customer_cap", "total_cap", "budget", "spent", "claims_count", "priority",
                  "combinable", "items", "option_groups", "created_at", "updated_at"]

    def get_items(self, offer: Offer) -> list[dict[str, Any]]:
        return [{"product_id": i.product_id, "sku": i.product.sku, "quantity": i.quantity} for i in offer.items.all()]


class ClaimInputSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    configuration = serializers.JSONField(required=False)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    voucher_code = serializers.CharField(required=False, allow_blank=True, max_length=64)


class QuoteInputSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField(required=False)
    configuration = serializers.JSONField(required=False)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, default=1)


class OfferViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    scope_resource = "offers"
    scope_write: bool | None = None  # the quote action (a POST that stores nothing) sets False
    serializer_class = OfferSerializer

    def base_queryset(self) -> QuerySet[Offer]:
        return Offer.objects.select_related("product").prefetch_related(
            Prefetch("option_groups", queryset=OptionGroup.objects.unscoped().prefetch_related(
                Prefetch("options", queryset=Option.objects.unscoped()))),
            Prefetch("items", queryset=OfferItem.objects.unscoped().select_related("product"))).order_by("-id")

    @extend_schema(request=OfferInputSerializer, responses={201: OfferSerializer})
    def create(self, request: Request) -> Response:
        offer = catalogue.create_offer(tenant=request.tenant, actor=request.auth, data=_strict(OfferInputSerializer, request.data))
        return Response(OfferSerializer(self.get_queryset().get(pk=offer.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=OfferInputSerializer, responses=OfferSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        offer = self.get_object()  # another tenant's offer is a 404 before its body is read
        data = _strict(OfferInputSerializer, request.data, partial=True)
        catalogue.update_offer(tenant=request.tenant, actor=request.auth, offer=offer, data=data)
        return Response(OfferSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Archive the offer: it leaves every list and cannot be claimed; its requests and vouchers stay."""
        catalogue.archive_offer(tenant=request.tenant, actor=request.auth, offer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _customer(self, customer_id: Any) -> Customer:
        customer = Customer.objects.for_tenant(self.request.tenant).filter(pk=customer_id).first()
        if customer is None:
            raise ValidationError({"customer_id": ["Unknown customer."]})
        return customer

    @extend_schema(request=QuoteInputSerializer, responses=inline_serializer("Quote", {
        "currency": serializers.CharField(), "list_price": serializers.CharField(), "price": serializers.CharField(),
        "discount": serializers.CharField(), "lines": serializers.ListField(), "reasons": serializers.ListField()}))
    @action(detail=True, methods=["post"], scope_write=False)
    def quote(self, request: Request, pk: str) -> Response:
        """The live price of a configuration (stores nothing): what the configurator shows."""
        offer = self.get_object()
        data = _strict(QuoteInputSerializer, request.data)
        context = pricing.load_context(tenant=request.tenant, customer=self._customer(data["customer_id"])) \
            if data.get("customer_id") is not None else None
        quote = pricing.quote_offer(offer=offer, context=context, configuration=data.get("configuration"), quantity=data["quantity"])
        return Response(quote.as_dict())

    @extend_schema(request=ClaimInputSerializer, parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
                   responses={201: OfferRequestSerializer, 200: OfferRequestSerializer})
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str) -> Response:
        """Claim this offer for a customer. The same Idempotency-Key returns the first request (200)."""
        offer = self.get_object()
        data = _strict(ClaimInputSerializer, request.data)
        result = claims.claim_offer(
            tenant=request.tenant, customer=self._customer(data["customer_id"]), offer_id=offer.pk,
            configuration=data.get("configuration"), quantity=data["quantity"], voucher_code=data.get("voucher_code", ""),
            idempotency_key=request.headers.get("Idempotency-Key", ""), source="api", actor=request.auth,
        )
        return Response(OfferRequestSerializer(result.request).data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


# Vouchers -------------------------------------------------------------------------------------


class VoucherSerializer(serializers.ModelSerializer):
    class Meta:
        model = Voucher
        fields = ["id", "offer", "code", "batch", "max_redemptions", "redemptions", "expires_at", "created_at"]


class VoucherInputSerializer(serializers.Serializer):
    offer_id = serializers.IntegerField()
    code = serializers.CharField(required=False, allow_blank=True, max_length=64)
    count = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    prefix = serializers.CharField(required=False, allow_blank=True, max_length=16)
    max_redemptions = serializers.IntegerField(min_value=1, default=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class VoucherChangeSerializer(serializers.Serializer):
    max_redemptions = serializers.IntegerField(min_value=1, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class VoucherViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Voucher codes: one (`code`, or a random one) or a generated set (`count`, `prefix`)."""

    scope_resource = "offers"
    serializer_class = VoucherSerializer

    def base_queryset(self) -> QuerySet[Voucher]:
        return Voucher.objects.all()

    @extend_schema(request=VoucherInputSerializer, responses={201: VoucherSerializer(many=True)})
    def create(self, request: Request) -> Response:
        data = _strict(VoucherInputSerializer, request.data)
        offer = Offer.objects.for_tenant(request.tenant).filter(pk=data["offer_id"]).first()
        if offer is None:
            raise ValidationError({"offer_id": ["Unknown offer."]})
        common = {"tenant": request.tenant, "actor": request.auth, "offer": offer, "max_redemptions": data["max_redemptions"],
                  "expires_at": data.get("expires_at")}
        if data.get("count"):
            made = claims.generate_vouchers(count=data["count"], prefix=data.get("prefix", ""), **common)
        else:
            made = [claims.create_voucher(code=data.get("code", ""), **common)]
        return Response(VoucherSerializer(made, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=VoucherChangeSerializer, responses=VoucherSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change a code's uses or expiry (expiring it now stops it at once)."""
        voucher = self.get_object()
        data = _strict(VoucherChangeSerializer, request.data, partial=True)
        return Response(VoucherSerializer(claims.update_voucher(tenant=request.tenant, actor=request.auth, voucher=voucher,
                                                                data=data)).data)

    @extend_schema(responses={204: None, 409: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete a code nobody has used; a used code is 409 (expire it instead)."""
        claims.delete_voucher(tenant=request.tenant, actor=request.auth, voucher=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# Requests -------------------------------------------------------------------------------------


class TransitionInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OfferRequest.Status.choices, required=False)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class OfferRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Claims on their way to fulfilment. POST .../transition/ moves one (or only comments)."""

    scope_resource = "offers"
    serializer_class = OfferRequestSerializer

    def base_queryset(self) -> QuerySet[OfferRequest]:
        return OfferRequest.objects.prefetch_related(Prefetch("events", queryset=OfferRequestEvent.objects.unscoped()))

    @extend_schema(request=TransitionInputSerializer, responses=OfferRequestSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str) -> Response:
        offer_request = self.get_object()
        data = _strict(TransitionInputSerializer, request.data)
        if data.get("status"):
            claims.transition_request(tenant=request.tenant, actor=request.auth, request=offer_request, to_status=data["status"],
                                      comment=data.get("comment", ""))
        else:
            claims.comment_on_request(tenant=request.tenant, actor=request.auth, request=offer_request, comment=data.get("comment", ""))
        return Response(OfferRequestSerializer(self.get_queryset().get(pk=pk)).data)


# What a customer is offered ------------------------------------------------------------------


class ServedOfferSerializer(serializers.Serializer):
    offer_id = serializers.IntegerField(source="offer.pk")
    name = serializers.CharField(source="offer.name")
    kind = serializers.CharField(source="offer.kind")
    currency = serializers.CharField(source="offer.currency")
    price = serializers.SerializerMethodField()
    list_price = serializers.SerializerMethodField()
    from_price = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    score = serializers.FloatField(allow_null=True)
    reasons = serializers.ListField(child=serializers.DictField())

    def get_price(self, item: pricing.EligibleOffer) -> str | None:
        return str(item.quote.price) if item.quote else None

    def get_list_price(self, item: pricing.EligibleOffer) -> str | None:
        return str(item.quote.list_price) if item.quote else None


def served_offer(item: pricing.EligibleOffer) -> dict[str, Any]:
    """What `ServedOfferSerializer` describes (the OpenAPI schema), built directly: serving is the
    hottest endpoint, and DRF's per-field machinery cost more than ranking and pricing together."""
    offer, quote = item.offer, item.quote
    return {
        "offer_id": offer.pk, "name": offer.name, "kind": offer.kind, "currency": offer.currency,
        "price": str(quote.price) if quote else None, "list_price": str(quote.list_price) if quote else None,
        "from_price": str(item.from_price) if item.from_price is not None else None,
        "score": float(item.score) if item.score is not None else None, "reasons": item.reasons,
    }


class CustomerOffersViewSet(TenantScopedViewSet):
    scope_resource = "offers"

    def base_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.all()

    @extend_schema(parameters=[OpenApiParameter("limit", int, description="1–50, default 10")],
                   responses=ServedOfferSerializer(many=True))
    @action(detail=True, methods=["get"])
    def offers(self, request: Request, pk: str) -> Response:
        """Ranked offers this customer can claim now, with price and reasons. Recent product views
        and carts lift matching offers before the next training run."""
        try:
            limit = min(max(int(request.query_params.get("limit", 10)), 1), 50)
        except ValueError as exc:
            raise ValidationError({"limit": ["A whole number from 1 to 50."]}) from exc
        # One statement reads the customer (scoped to this key's tenant: another tenant's id is a
        # 404 like an unknown one) with everything ranking and pricing need.
        context = load_context_for_id(tenant=request.tenant, customer_id=pk)
        if context is None:
            raise NotFound
        served = pricing.offers_for_customer(tenant=request.tenant, customer=context.customer, limit=limit, context=context)
        return Response([served_offer(item) for item in served])
