"""PostgreSQL-only indexes for the customer list at a million rows: trigram search, tag and
attribute containment. SQLite (the embedded mode) skips them and scans, which is fine there."""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS customer_search_trgm ON customers_customer USING gin (search_text gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS customer_tags_gin ON customers_customer USING gin (tags jsonb_path_ops)",
    "CREATE INDEX IF NOT EXISTS customer_attributes_gin ON customers_customer USING gin (attributes jsonb_path_ops)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS customer_attributes_gin",
    "DROP INDEX IF EXISTS customer_tags_gin",
    "DROP INDEX IF EXISTS customer_search_trgm",
]


def _run(statements: list[str]):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
