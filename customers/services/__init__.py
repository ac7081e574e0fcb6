"""Customers, events, orders, consent and data-subject rights: the rules.

- A customer is identified per tenant by external_id (stable) and, when present, a unique email.
- Events and orders are idempotent: an event_id or order external_id is stored once per tenant.
- Events and orders may name a customer by external_id before the profile exists; a bare
  profile is created so nothing is lost. Erased people are never re-created.
- The consent ledger is append-only; the current state is derived from it.
- Batches report per-row errors and store the valid rows; a batch never half-writes a row.
"""

from customers.services.consent import allows, consent_state, current_consents, opted_out_of_personalization, record_consent
from customers.services.events import IngestResult, ingest_events
from customers.services.gdpr import erase_customer, export_customer, purge_expired_events, register_export_section
from customers.services.orders import OrdersResult, record_orders
from customers.services.profiles import (
    BatchResult,
    CleanCustomer,
    attribute_definitions,
    clean_customer_row,
    create_attribute_definition,
    create_customer,
    delete_attribute_definition,
    ensure_customers,
    identifier_hash,
    update_customer,
    upsert_customers,
)

__all__ = [
    "BatchResult",
    "CleanCustomer",
    "IngestResult",
    "OrdersResult",
    "allows",
    "attribute_definitions",
    "clean_customer_row",
    "consent_state",
    "create_attribute_definition",
    "create_customer",
    "current_consents",
    "delete_attribute_definition",
    "ensure_customers",
    "erase_customer",
    "export_customer",
    "identifier_hash",
    "ingest_events",
    "opted_out_of_personalization",
    "purge_expired_events",
    "record_consent",
    "record_orders",
    "register_export_section",
    "update_customer",
    "upsert_customers",
]
