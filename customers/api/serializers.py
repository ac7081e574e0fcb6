"""Read serializers, and input serializers that document the write shapes in the OpenAPI schema.
Writes are validated by customers.intake (the same rules as CSV imports), not by these."""

from __future__ import annotations

from rest_framework import serializers

from customers.models import Company, Consent, Customer, Event, Order, OrderLine


class CompanySerializer(serializers.ModelSerializer):
    class Meta:
        model = Company
        fields = ["id", "external_id", "name", "industry", "size"]


class CustomerSerializer(serializers.ModelSerializer):
    company = CompanySerializer(read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id", "external_id", "kind", "email", "phone", "first_name", "last_name", "locale", "timezone", "company",
            "company_role", "tags", "attributes", "first_seen_at", "last_seen_at", "created_at", "updated_at", "erased_at",
        ]
        read_only_fields = fields


class CompanyInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False)
    name = serializers.CharField()
    industry = serializers.CharField(required=False)
    size = serializers.ChoiceField(choices=Company.Size.choices, required=False)


class CustomerInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, help_text="Your stable id; generated when omitted on create.")
    kind = serializers.ChoiceField(choices=Customer.Kind.choices, required=False)
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(required=False)
    first_name = serializers.CharField(required=False)
    last_name = serializers.CharField(required=False)
    locale = serializers.CharField(required=False)
    timezone = serializers.CharField(required=False)
    company = CompanyInputSerializer(required=False, allow_null=True)
    company_role = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    attributes = serializers.DictField(required=False)


class BulkCustomersInputSerializer(serializers.Serializer):
    customers = CustomerInputSerializer(many=True, help_text="Up to 1,000 customers, upserted by external_id.")


class RejectedRowSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = RejectedRowSerializer(many=True)


class EventInputSerializer(serializers.Serializer):
    event_id = serializers.CharField(required=False, help_text="Your unique id: the same event sent twice is stored once.")
    type = serializers.CharField(help_text="page_view, product_view, add_to_cart, offer_view, offer_click, signup, or your own")
    customer_id = serializers.IntegerField(required=False)
    customer_external_id = serializers.CharField(required=False, help_text="Creates a bare profile when unknown.")
    email = serializers.EmailField(required=False)
    occurred_at = serializers.DateTimeField(required=False, help_text="Defaults to now; not in the future.")
    properties = serializers.DictField(required=False)


class EventBatchInputSerializer(serializers.Serializer):
    events = EventInputSerializer(many=True, help_text="Up to 1,000 events.")


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectedRowSerializer(many=True)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "event_id", "type", "customer_id", "properties", "source", "occurred_at", "received_at"]
        read_only_fields = fields


class OrderLineSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="product_sku")
    name = serializers.CharField(source="product_name")

    class Meta:
        model = OrderLine
        fields = ["sku", "name", "quantity", "unit_price"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = ["id", "external_id", "customer_id", "status", "currency", "total", "ordered_at", "source", "lines", "created_at", "updated_at"]
        read_only_fields = fields


class OrderLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField(required=False)
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, required=False)
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=4)


class OrderInputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    customer_id = serializers.IntegerField(required=False)
    customer_external_id = serializers.CharField(required=False)
    email = serializers.EmailField(required=False)
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    currency = serializers.CharField(required=False)
    total = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, help_text="Defaults to the sum of the lines.")
    ordered_at = serializers.DateTimeField()
    lines = OrderLineInputSerializer(many=True, required=False)


class OrderBatchInputSerializer(serializers.Serializer):
    orders = OrderInputSerializer(many=True)


class OrdersResultSerializer(BulkResultSerializer):
    pass


class ConsentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Consent
        fields = ["id", "channel", "purpose", "status", "source", "source_detail", "text_version", "ip", "occurred_at"]
        read_only_fields = fields


class ConsentInputSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Consent.Channel.choices)
    purpose = serializers.ChoiceField(choices=Consent.Purpose.choices)
    status = serializers.ChoiceField(choices=Consent.Status.choices)
    text_version = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    occurred_at = serializers.DateTimeField(required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True, default=None, help_text="The person's IP when they agreed.")


class ConsentStateSerializer(serializers.Serializer):
    channel = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.CharField()
    since = serializers.DateTimeField()
    source = serializers.CharField()
    text_version = serializers.CharField()


class ConsentLedgerSerializer(serializers.Serializer):
    current = ConsentStateSerializer(many=True)
    ledger = ConsentSerializer(many=True)
