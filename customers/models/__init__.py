"""The customers app's models: people and what they do (profiles), and how they are grouped and
scored (segments). Public names stay importable from `customers.models`."""

from customers.models.profiles import (
    AttributeDefinition,
    Company,
    Consent,
    ConsentQuerySet,
    Customer,
    ErasureTombstone,
    Event,
    LeadForm,
    LeadSubmission,
    Order,
    OrderLine,
)
from customers.models.segments import (
    CustomerScore,
    PredictionRun,
    Segment,
    SegmentChange,
    SegmentMembership,
    SegmentSize,
)

__all__ = [
    "AttributeDefinition", "Company", "Consent", "ConsentQuerySet", "Customer", "CustomerScore", "ErasureTombstone",
    "Event", "LeadForm", "LeadSubmission", "Order", "OrderLine", "PredictionRun", "Segment", "SegmentChange",
    "SegmentMembership", "SegmentSize",
]
